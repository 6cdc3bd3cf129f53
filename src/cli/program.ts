import { Command, CommanderError } from 'commander';
import packageJson from '../../package.json' with { type: 'json' };
import { addCommonOptions, type CliContext } from './cli-context.ts';
import { readCliEnvironment } from './cli-env.ts';
import { registerDrain } from './commands/drain.ts';
import { registerList } from './commands/list.ts';
import { registerLogs } from './commands/logs.ts';
import { registerPause } from './commands/pause.ts';
import { registerPrune } from './commands/prune.ts';
import { registerQueue } from './commands/queue.ts';
import { registerRm } from './commands/rm.ts';
import { registerServe } from './commands/serve.ts';
import { registerStart } from './commands/start.ts';
import { registerStatus } from './commands/status.ts';
import { registerStop } from './commands/stop.ts';
import { ApiError, ConnectionError, EXIT, UsageError } from './errors.ts';
import { printable } from './terminal-sanitizer.ts';

/** Builds the `jobworker` command line. Commands set `ctx.exitCode`; errors are thrown. */
export function buildProgram(ctx: CliContext, options: { jsonErrors?: boolean } = {}): Command {
  const program = new Command('jobworker')
    .description(
      'Run any Linux command as a job: start it, follow its output live, stop it with everything it spawned.',
    )
    .version(packageJson.version, '-V, --version')
    .enablePositionalOptions()
    .showSuggestionAfterError()
    .exitOverride()
    .configureOutput({
      writeOut: (text) => ctx.stdout.write(text),
      writeErr: (text) => ctx.stderr.write(text),
      // Commander's messages start with "error: "; ours all start with "jobworker: ", on one line
      // (commander puts its "(Did you mean ...?)" on a second one).
      outputError: (text, write) =>
        options.jsonErrors
          ? write(
              `${JSON.stringify({
                error: {
                  code: 'USAGE',
                  message: text
                    .replace(/^error: /, '')
                    .trim()
                    .replace(/\s*\n\s*/g, ' '),
                },
              })}\n`,
            )
          : write(
              `jobworker: ${text
                .replace(/^error: /, '')
                .trimEnd()
                .replaceAll('\n', ' ')}\n`,
            ),
    });
  addCommonOptions(program);
  registerServe(program, ctx);
  registerStart(program, ctx);
  registerStop(program, ctx);
  registerStatus(program, ctx);
  registerLogs(program, ctx);
  registerList(program, ctx);
  registerPause(program, ctx);
  registerQueue(program, ctx);
  registerDrain(program, ctx);
  registerRm(program, ctx);
  registerPrune(program, ctx);
  return program;
}

/** Runs the CLI and returns the exit status; reports any error as one line on stderr. */
export async function runCli(argv: readonly string[], ctx: CliContext = defaultContext()): Promise<number> {
  const program = buildProgram(ctx, { jsonErrors: wantsJson(argv) });
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return ctx.exitCode;
  } catch (error) {
    // Commander has already printed its own message (or the help).
    if (error instanceof CommanderError) return error.exitCode === 0 ? EXIT.ok : EXIT.usage;
    const usage = error instanceof UsageError;
    if (wantsJson(argv)) {
      // Scripts asked for JSON: the error comes as one JSON document on stderr, in the API's shape.
      ctx.stderr.write(`${JSON.stringify({ error: errorJson(error, usage) })}\n`);
      return usage ? EXIT.usage : EXIT.failure;
    }
    const message =
      error instanceof ApiError ? error.describe() : error instanceof Error ? error.message : String(error);
    ctx.stderr.write(`jobworker: ${printable(message.split('\n')[0] ?? '')}\n`);
    return usage ? EXIT.usage : EXIT.failure;
  }
}

/** `--json` among the options (before a `--` that starts a job's own command line). */
function wantsJson(argv: readonly string[]): boolean {
  const end = argv.indexOf('--');
  return (end === -1 ? argv : argv.slice(0, end)).includes('--json');
}

function errorJson(error: unknown, usage: boolean): { code: string; message: string; field?: string } {
  const message = (error instanceof Error ? error.message : String(error)).split('\n')[0] ?? '';
  if (error instanceof ApiError) {
    return { code: error.code ?? 'ERROR', message, ...(error.field === null ? {} : { field: error.field }) };
  }
  return { code: usage ? 'USAGE' : error instanceof ConnectionError ? 'UNREACHABLE' : 'ERROR', message };
}

function defaultContext(): CliContext {
  return {
    env: readCliEnvironment(),
    stdout: process.stdout,
    stderr: process.stderr,
    cwd: process.cwd(),
    exitCode: EXIT.ok,
  };
}
