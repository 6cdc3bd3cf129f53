/**
 * The `jobworker` command (also installed as `workerctl`); bin/jobworker runs this file.
 * docs/cli.md describes the commands.
 */
import { enableCompileCache } from 'node:module';

// bin/jobworker runs `node` from PATH when setup did not unpack Node 24: say so plainly.
if (Number(process.versions.node.split('.')[0]) < 24) {
  process.stderr.write(
    `jobworker: needs Node 24 or newer, this is ${process.version}: run scripts/setup.sh\n`,
  );
  process.exit(1);
}

// Node caches the compiled (type-stripped) modules on disk: a client command starts twice as fast.
enableCompileCache();
const { runCli } = await import('./program.ts');
const { exitOnClosedPipe } = await import('./followed-job.ts');

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

const status = await runCli(process.argv.slice(2));
// Exit now: an idle keep-alive connection must not keep the process waiting.
process.exit(status);
