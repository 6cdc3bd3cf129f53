/**
 * The bundled CLI, `dist/jobworker-cli.cjs` (scripts/bundle-cli.ts), which dist/jobworker.cjs
 * (bundle-entry.ts: Node's version, the compile cache, the staleness check) loads while it is
 * current. It does what main.ts does, from one CommonJS file: no module graph to resolve, no ESM
 * loader, and no top-level await (CommonJS has none). `serve` and `doctor` are in a bundle of their
 * own, loaded when asked for: the server's code is most of the project's.
 */
import packageJson from '../../package.json' with { type: 'json' };
import { exitOnClosedPipe } from './followed-job.ts';

// `--version` alone needs none of the CLI: answered before commander and the commands are set up
// (the bundle initializes a module only when it is first imported), with commander's own output.
const argv = process.argv.slice(2);
if (argv.length === 1 && (argv[0] === '--version' || argv[0] === '-V')) {
  process.stdout.write(`${packageJson.version}\n`);
  process.exit(0);
}

// A reader that went away (`jobworker logs ID | head`) is not an error worth a message, but it
// ends a follow as SIGPIPE would (exitOnClosedPipe). Any other failed write (a full disk) is the
// failure of the write itself, which its caller reports if it can; thrown from here, it would end
// `serve` before it closed.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') exitOnClosedPipe();
    process.exitCode = 1;
  });
}

// Exit at once when done: an idle keep-alive connection must not keep the process waiting.
import('./program.ts').then(
  ({ runCli }) =>
    runCli(argv).then(
      (status) => process.exit(status),
      (err: unknown) => fail(err),
    ),
  (err: unknown) => fail(err),
);

/** runCli reports every error itself: this is a bug, shown as Node would show it. */
function fail(err: unknown): never {
  console.error(err);
  process.exit(1);
}
