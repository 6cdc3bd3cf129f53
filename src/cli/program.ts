import { Command, CommanderError } from 'commander';
import packageJson from '../../package.json' with { type: 'json' };
import { addCommonOptions, type CliContext } from './cli-context.ts';
import { readCliEnvironment } from './cli-env.ts';
import { refuseDesignFlag } from './design-flags.ts';
import { ApiError, ConnectionError, EXIT, FollowError, UsageError } from './errors.ts';
import { jsonText } from './json-text.ts';
import { printable } from './terminal-sanitizer.ts';

type Register = (program: Command, ctx: CliContext) => void;

/**
 * Every command, by the names it answers to, and how to load its module. A run loads only the
 * module of the command it names (each pulls in its own dependencies): most of a CLI command's
 * start-up is loading code, and `jobworker status ID` needs none of `serve` or `start`.
 */
export const COMMANDS: readonly {
  readonly names: readonly string[];
  readonly load: () => Promise<Register>;
}[] = [
  { names: ['serve'], load: async () => (await import('./commands/serve.ts')).registerServe },
  { names: ['start'], load: async () => (await import('./commands/start.ts')).registerStart },
  { names: ['stop'], load: async () => (await import('./commands/stop.ts')).registerStop },
  { names: ['status'], load: async () => (await import('./commands/status.ts')).registerStatus },
  { names: ['logs'], load: async () => (await import('./commands/logs.ts')).registerLogs },
  { names: ['output'], load: async () => (await import('./commands/output.ts')).registerOutput },
  { names: ['list', 'ls'], load: async () => (await import('./commands/list.ts')).registerList },
  { names: ['pause', 'resume'], load: async () => (await import('./commands/pause.ts')).registerPause },
  { names: ['queue'], load: async () => (await import('./commands/queue.ts')).registerQueue },
  { names: ['drain', 'undrain'], load: async () => (await import('./commands/drain.ts')).registerDrain },
  { names: ['nodes'], load: async () => (await import('./commands/nodes.ts')).registerNodes },
  { names: ['rm'], load: async () => (await import('./commands/rm.ts')).registerRm },
  { names: ['prune'], load: async () => (await import('./commands/prune.ts')).registerPrune },
  { names: ['user'], load: async () => (await import('./commands/user.ts')).registerUser },
  { names: ['token'], load: async () => (await import('./commands/token.ts')).registerToken },
  { names: ['audit'], load: async () => (await import('./commands/audit.ts')).registerAudit },
  { names: ['doctor'], load: async () => (await import('./commands/doctor.ts')).registerDoctor },
  { names: ['certs'], load: async () => (await import('./commands/certs.ts')).registerCerts },
  { names: ['webhook'], load: async () => (await import('./commands/webhook.ts')).registerWebhook },
];

/** The command `word` names, if any. */
function commandNamed(word: string | undefined): (typeof COMMANDS)[number] | undefined {
  return word === undefined ? undefined : COMMANDS.find((command) => command.names.includes(word));
}

/**
 * Where the program's own options (`--json`, `--address=HOST:PORT`, `--ca FILE`: the Job Worker
 * grammar's `worker-cli [options] status ID`) end: at the command's word, or at something else
 * (`--help`, an unknown option, `--`), which commander, with every command, answers.
 */
function pastOptions(program: Command, argv: readonly string[]): { word?: string; other?: string } {
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i] ?? '';
    if (!word.startsWith('-')) return { word };
    const flag = word.split('=', 1)[0];
    const option = program.options.find((known) => known.long === flag || known.short === flag);
    if (option === undefined) return { other: word };
    if ((option.required || option.optional) && !word.includes('=')) i++;
  }
  return {};
}

/**
 * The commands a run needs: the one it names (first, or after the program's options), or all of
 * them when it names none (help, a misspelt command that deserves a suggestion).
 */
function commandsFor(program: Command, argv: readonly string[]): Promise<Register[]> {
  if (argv.length === 1 && (argv[0] === '--version' || argv[0] === '-V')) return Promise.resolve([]);
  const named = commandNamed(argv[0]) ?? commandNamed(pastOptions(program, argv).word);
  return Promise.all((named ? [named] : COMMANDS).map((command) => command.load()));
}

/** Builds the `jobworker` command line with every command. Commands set `ctx.exitCode`; errors are thrown. */
export async function buildProgram(
  ctx: CliContext,
  options: { jsonErrors?: boolean; argv?: readonly string[] } = {},
): Promise<Command> {
  const argv = options.argv ?? [];
  const program = new Command(ctx.env.invokedAs)
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
              `${jsonText({
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
  // The options every command takes, also before its name: only a run that does not start with the
  // command's name can have them there (or show them, in the program's help). Each option costs
  // commander some parsing of its flags on every run.
  if (commandNamed(argv[0]) === undefined) addCommonOptions(program);
  for (const register of await commandsFor(program, argv)) register(program, ctx);
  return program;
}

/** Runs the CLI and returns the exit status; reports any error as one line on stderr. */
export async function runCli(argv: readonly string[], ctx: CliContext = defaultContext()): Promise<number> {
  const program = await buildProgram(ctx, { jsonErrors: wantsJson(argv), argv });
  try {
    refuseDesignFlag(pastOptions(program, argv).other);
    await program.parseAsync([...argv], { from: 'user' });
    return ctx.exitCode;
  } catch (error) {
    // Commander has already printed its own message (or the help).
    if (error instanceof CommanderError) return error.exitCode === 0 ? EXIT.ok : EXIT.usage;
    const usage = error instanceof UsageError;
    if (wantsJson(argv)) {
      // Scripts asked for JSON: the error comes as one JSON document on stderr, in the API's shape.
      ctx.stderr.write(`${jsonText({ error: errorJson(error, usage) })}\n`);
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

function errorJson(
  error: unknown,
  usage: boolean,
): { code: string; message: string; field?: string; jobId?: string } {
  // A follow that failed: the code of why, and the job that runs on, for a script to stop or follow.
  if (error instanceof FollowError) {
    return { ...errorJson(error.cause, usage), message: error.message, jobId: error.jobId };
  }
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
    ownsProcess: true,
  };
}
