/**
 * The entry of the bundled CLI, `dist/jobworker.cjs` (scripts/bundle-cli.ts), which bin/jobworker
 * runs while it is current. It does what main.ts does, from one CommonJS file: no module graph to
 * resolve, no ESM loader, and no top-level await (CommonJS has none). `serve` stays out of the
 * bundle and is loaded from dist/src/ when asked for: the server's code is most of the project's.
 */
import { enableCompileCache } from 'node:module';
import packageJson from '../../package.json' with { type: 'json' };

// bin/jobworker runs `node` from PATH when setup did not unpack Node 24: say so plainly.
if (Number(process.versions.node.split('.')[0]) < 24) {
  process.stderr.write(
    `jobworker: needs Node 24 or newer, this is ${process.version}: run scripts/setup.sh\n`,
  );
  process.exit(1);
}

// Modules loaded later (`serve` and the server) come from the compile cache.
enableCompileCache();

// `--version` alone needs none of the CLI: answered before commander and the commands are set up
// (the bundle initializes a module only when it is first imported), with commander's own output.
const argv = process.argv.slice(2);
if (argv.length === 1 && (argv[0] === '--version' || argv[0] === '-V')) {
  process.stdout.write(`${packageJson.version}\n`);
  process.exit(0);
}

// A reader that went away (`jobworker logs ID | head`) is not an error worth a message.
// Any other failed write (a full disk) is the failure of the write itself, which its caller
// reports if it can; thrown from here, it would end `serve` before it closed.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(0);
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
