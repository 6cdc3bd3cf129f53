import { once } from 'node:events';
import { Writable } from 'node:stream';
import type { CliContext } from '../../src/cli/cli-context.ts';
import { readCliEnvironment } from '../../src/cli/cli-env.ts';
import { EXIT } from '../../src/cli/errors.ts';
import { runCli } from '../../src/cli/program.ts';
import type { Clock } from '../../src/core/clock.ts';
import type { CliResult } from './cli-harness.ts';

/** A stream that keeps what is written to it. */
class Captured extends Writable {
  text = '';
  /** Set by a test that wants the CLI to take this stream for a terminal (its notes). */
  isTTY?: boolean;
  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: () => void): void {
    this.text += chunk.toString('utf8');
    this.emit('captured');
    callback();
  }

  /** Resolves once what was written so far includes `text`. */
  async includes(text: string): Promise<void> {
    while (!this.text.includes(text)) await once(this, 'captured');
  }
}

/**
 * Runs the CLI in this process (`runCli` with captured stdout and stderr), against the server
 * named by `env`: as a child process would, minus the cost of starting Node.
 */
export async function runCliInProcess(
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  options: { cwd?: string; stderrIsTTY?: boolean } = {},
): Promise<CliResult> {
  return startCliInProcess(args, env, options).result;
}

/**
 * `runCliInProcess` for a command that a test watches while it runs: its stdout as it comes, and
 * its result. `clock`: the CLI's clock (its pauses), for a test that moves a manual one; `cwd`:
 * its working directory (where it looks for `./cert`), default this process's; `stderrIsTTY`: its
 * stderr taken for a terminal, where the CLI writes its notes (with NO_COLOR in `env`, plain).
 */
export function startCliInProcess(
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  options: { clock?: Clock; cwd?: string; stderrIsTTY?: boolean } = {},
): { stdout: Captured; result: Promise<CliResult> } {
  const stdout = new Captured();
  const stderr = new Captured();
  if (options.stderrIsTTY === true) stderr.isTTY = true;
  const ctx: CliContext = {
    env: readCliEnvironment(env),
    stdout,
    stderr,
    cwd: options.cwd ?? process.cwd(),
    exitCode: EXIT.ok,
    ...(options.clock ? { clock: options.clock } : {}),
  };
  const result = runCli(args, ctx).then((code) => ({
    code,
    signal: null,
    stdout: stdout.text,
    stderr: stderr.text,
  }));
  return { stdout, result };
}
