/**
 * The first file Node loads of the bundled CLI: `dist/jobworker.cjs` (scripts/bundle-cli.ts),
 * which bin/jobworker runs whenever it exists. It is a few kilobytes on purpose, for two
 * things that must happen before the bundle itself is compiled:
 *
 * - The CLI's bundle (~270 kB) runs with a V8 code cache of the same command's earlier run
 *   (bundle-code-cache.ts), and Node's compile cache is enabled for the rest (for `doctor`, the
 *   server's bundle), so neither is compiled on every run; `serve`, which starts once and then
 *   runs, compiles its bundle (see below).
 * - The build is checked against its sources. Each bundle lists the files it was made from
 *   (esbuild's metafile, written at build time into `dist/<bundle>.inputs.json` with the time the
 *   build began); when one of them changed since, or is gone, the bundle is stale and the CLI runs
 *   from the TypeScript sources instead, so a developer's edit is never ignored. A command checks
 *   its own bundle only (~60 stats); `serve` and `doctor` check the server's too. An install
 *   without src/ (from a package) has nothing to check.
 */
import { enableCompileCache } from 'node:module';
import { pathToFileURL } from 'node:url';
import { runWithCodeCache } from './bundle-code-cache.ts';
import { staleInput } from './stale-bundle.ts';

// bin/jobworker runs `node` from PATH when setup did not unpack Node 24: say so plainly.
if (Number(process.versions.node.split('.')[0]) < 24) {
  process.stderr.write(
    `jobworker: needs Node 24 or newer, this is ${process.version}: run scripts/setup.sh\n`,
  );
  process.exit(1);
}

// Paths by concatenation, not node:path: its join runs cold in the interpreter, and 60 of them
// cost ~1.4 ms of every command (the whole check with them: ~2 ms; without: ~0.6).
const dist = __dirname;
const root = dist.slice(0, dist.lastIndexOf('/'));
const first = process.argv[2];
const bundles =
  first === 'serve' || first === 'doctor' ? ['jobworker-cli', 'jobworker-serve'] : ['jobworker-cli'];

if (staleInput(root, bundles) === undefined) {
  // Node's compile cache (a directory in /tmp made or checked on every run) only where it is used:
  // `doctor`, a command, loads the server's bundle through it. `serve` does not: the cache saved
  // a server 0-30 ms of its start (by hand, ~620 ms to its first line either way) and cost it
  // 0.2-0.5 MB of resident memory for as long as it runs (the top level of its bundle held as
  // deserialized code: docs/performance-history.md, twentieth pass).
  if (bundles.length === 1) runWithCodeCache(`${dist}/jobworker-cli.cjs`, first);
  else {
    if (first !== 'serve') enableCompileCache();
    require(`${dist}/jobworker-cli.cjs`);
  }
} else {
  import(pathToFileURL(`${root}/src/cli/main.ts`).href).catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
