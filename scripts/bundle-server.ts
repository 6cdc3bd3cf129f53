/**
 * Bundles `serve` and `doctor` with the whole server into one minified CommonJS file,
 * dist/jobworker-serve.cjs (the packages only some servers load in a few beside it, loaded on
 * first use: scripts/bundle/lazy-packages.ts), which the CLI's bundle loads for those two commands
 * (scripts/bundle-cli.ts). A server started from ~400 ES modules and their packages held each
 * module's record and full source text for good; one minified script is a fraction of that in
 * the idle server's heap, and starts without resolving a module graph (issue 9, `npm run bench --
 * idle-memory`).
 *
 * - `import.meta.url` (CommonJS has none) becomes the URL of the module's emitted twin in
 *   dist/src/, which tsc writes beside: paths found from it (dist/native, dist/web, the task
 *   library's worker threads, which run from dist/src/) resolve as they do from there.
 * - No keepNames: it gives every named function its name back at run time (`__name(fn, 'x')`, an
 *   Object.defineProperty), also each time a closure is made, as Fastify's hook runner makes three
 *   per hook per request; that cost the server a fifth of its CPU per `GET /v1/jobs/{id}`
 *   (50-52 -> 40-42 us). The names that show (errors' `name`, the log's `err.type`) are set
 *   explicitly (src/core/errors.ts, test/core/error-names.test.ts). Stack traces name functions
 *   by their minified names (V8 used the restored `name`): the source map written beside the
 *   bundle (no cost unless used) gives them the sources' files and lines, and most names, when
 *   the server runs with `NODE_OPTIONS=--enable-source-maps` (docs/operations.md, "Logs").
 * - The script is pure ASCII (licence comments in a file beside it), which V8 keeps one byte a
 *   character.
 * - piscina stays a package: it finds its own worker file next to its sources.
 *
 * The inputs (dist/jobworker-serve.inputs.json) also list the sources of those worker threads:
 * they run from dist/src/ and must be as current as the bundle.
 *
 *   node scripts/bundle-server.ts            (run by scripts/build.sh after tsc)
 */
import { readFile } from 'node:fs/promises';
import { relative } from 'node:path';
import { build } from 'esbuild';
import { buildStartedAt, writeBundleInputs } from './bundle/bundle-inputs.ts';
import { commonBuildOptions, MINIFIED_OUTPUT } from './bundle/esbuild-options.ts';
import { lazyBuiltins } from './bundle/lazy-builtins.ts';
import { lazyPackages, lazyPackagesEntry } from './bundle/lazy-packages.ts';

const root = new URL('../', import.meta.url).pathname;
const builtAt = buildStartedAt(root);
const common = commonBuildOptions(root);
const external = ['piscina', 'pg-native'];
// Packages that only some servers load, each imported by a module loaded on first use: in
// bundles of their own beside the server's, one per group that goes together (see the plugin).
const lazy = lazyPackages({
  'jobworker-serve-x509.cjs': ['@peculiar/x509'],
  'jobworker-serve-rpc.cjs': ['@bufbuild/protobuf', '@connectrpc/connect', '@connectrpc/connect-node'],
  'jobworker-serve-pg.cjs': ['pg'],
  'jobworker-serve-metrics.cjs': ['prom-client'],
  'jobworker-serve-yaml.cjs': ['yaml'],
  'jobworker-serve-send.cjs': ['@fastify/send'],
});

/** What every bundle of the server is built with, written to `dist/<file>`. */
function serverBundle(file: string) {
  return {
    ...common,
    external,
    outfile: `${root}dist/${file}`,
    ...MINIFIED_OUTPUT,
  } as const;
}
// Fastify's and Connect's, unused by a server on plain HTTP (see the file).
const LAZY_BUILTINS = ['http2', 'https', 'tls'];

const server = await build({
  ...serverBundle('jobworker-serve.cjs'),
  entryPoints: [`${root}src/cli/server-commands.ts`],
  plugins: [
    lazyBuiltins(LAZY_BUILTINS),
    lazy.plugin,
    {
      name: 'import-meta-url-of-dist-src',
      setup(b) {
        b.onLoad({ filter: /\/src\/.*\.ts$/ }, async (args) => {
          const text = await readFile(args.path, 'utf8');
          if (!text.includes('import.meta.url')) return undefined;
          const twin = relative(root, args.path).replace(/\.ts$/, '.js');
          const url = `require('node:url').pathToFileURL(__dirname + ${JSON.stringify(`/${twin}`)}).href`;
          return { contents: text.replaceAll('import.meta.url', url), loader: 'ts' };
        });
      },
    },
  ],
});

// The groups' bundles, from the imports the server's bundle saw (none of them uses import.meta).
const groups = await Promise.all(
  [...lazy.imports.keys()].map((file) =>
    build({
      ...serverBundle(file),
      stdin: lazyPackagesEntry(lazy.imports, file, root),
      plugins: [lazyBuiltins(LAZY_BUILTINS)],
    }),
  ),
);

// The worker threads' entries, only for their inputs (they run from dist/src/).
const workers = await build({
  ...common,
  external,
  entryPoints: [`${root}src/tasks/poller-thread-main.ts`, `${root}src/tasks/blocking-worker.ts`],
  outdir: `${root}dist/unused`,
  write: false,
});

writeBundleInputs(root, 'jobworker-serve', 'scripts/bundle-server.ts', builtAt, [
  server.metafile,
  ...groups.map((group) => group.metafile),
  workers.metafile,
]);
