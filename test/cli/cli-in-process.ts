import { Writable } from 'node:stream';
import type { CliContext } from '../../src/cli/cli-context.ts';
import { readCliEnvironment } from '../../src/cli/cli-env.ts';
import { EXIT } from '../../src/cli/errors.ts';
import { runCli } from '../../src/cli/program.ts';
import type { CliResult } from './cli-harness.ts';

/** A stream that keeps what is written to it. */
class Captured extends Writable {
  text = '';
  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: () => void): void {
    this.text += chunk.toString('utf8');
    callback();
  }
}

/**
 * Runs the CLI in this process (`runCli` with captured stdout and stderr), against the server
 * named by `env`: as a child process would, minus the cost of starting Node.
 */
export async function runCliInProcess(args: readonly string[], env: NodeJS.ProcessEnv): Promise<CliResult> {
  const stdout = new Captured();
  const stderr = new Captured();
  const ctx: CliContext = {
    env: readCliEnvironment(env),
    stdout,
    stderr,
    cwd: process.cwd(),
    exitCode: EXIT.ok,
  };
  const code = await runCli(args, ctx);
  return { code, signal: null, stdout: stdout.text, stderr: stderr.text };
}
