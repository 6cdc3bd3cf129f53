/**
 * The first file Node loads of the bundled CLI: `dist/jobworker.cjs` (scripts/bundle-cli.ts),
 * which bin/jobworker runs whenever it exists. It is a few hundred bytes on purpose, for two
 * things that must happen before the bundle itself is compiled:
 *
 * - Node's compile cache is enabled, so the bundle (~270 kB) and, for `serve`, the server's
 *   bundle come from the cache instead of being compiled on every run.
 * - The build is checked against its sources. Each bundle lists the files it was made from
 *   (esbuild's metafile, written at build time into `dist/<bundle>.inputs.json` with the time the
 *   build began); when one of them changed since, or is gone, the bundle is stale and the CLI runs
 *   from the TypeScript sources instead, so a developer's edit is never ignored. A command checks
 *   its own bundle only (~100 stats); `serve` and `doctor` check the server's too. An install
 *   without src/ (from a package) has nothing to check.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { enableCompileCache } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';

// bin/jobworker runs `node` from PATH when setup did not unpack Node 24: say so plainly.
if (Number(process.versions.node.split('.')[0]) < 24) {
  process.stderr.write(
    `jobworker: needs Node 24 or newer, this is ${process.version}: run scripts/setup.sh\n`,
  );
  process.exit(1);
}

enableCompileCache();

const dist = __dirname;
const root = dirname(dist);
const first = process.argv[2];
const bundles =
  first === 'serve' || first === 'doctor' ? ['jobworker-cli', 'jobworker-serve'] : ['jobworker-cli'];

if (staleInput(bundles) === undefined) {
  require(join(dist, 'jobworker-cli.cjs'));
} else {
  import(pathToFileURL(join(root, 'src/cli/main.ts')).href).catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}

/** What a bundle was built from, as scripts/bundle-cli.ts writes it. */
interface BundleInputs {
  /** When the build began (ms since the epoch): a source changed after it makes the bundle stale. */
  readonly builtAt: number;
  /** The bundle's source files, relative to the repository. */
  readonly inputs: readonly string[];
}

/** The first source file newer than its bundle (or gone, or the list itself missing); undefined: all current. */
function staleInput(names: readonly string[]): string | undefined {
  if (!existsSync(join(root, 'src'))) return undefined;
  for (const name of names) {
    const listFile = join(dist, `${name}.inputs.json`);
    let list: BundleInputs;
    try {
      list = JSON.parse(readFileSync(listFile, 'utf8')) as BundleInputs;
    } catch {
      return listFile;
    }
    for (const input of list.inputs) {
      const stats = statSync(join(root, input), { throwIfNoEntry: false });
      if (stats === undefined || stats.mtimeMs > list.builtAt) return input;
    }
  }
  return undefined;
}
