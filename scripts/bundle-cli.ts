/**
 * Bundles the CLI into CommonJS files in dist/, which bin/jobworker runs: a CLI command is a whole
 * process start, and loading ~30 ES modules through Node's ESM loader (with the built-ins it pulls
 * in) cost more than the command itself (issue 9, docs/performance.md).
 *
 * - dist/jobworker.cjs: a few hundred bytes (src/cli/bundle-entry.ts) that enable the compile cache
 *   and check the bundles against their sources before the CLI's bundle is compiled.
 * - dist/jobworker-cli.cjs: every command but `serve` and `doctor` (src/cli/bundle-main.ts).
 * - dist/jobworker-serve.cjs: those two, with the whole server (scripts/bundle-server.ts), loaded
 *   by the CLI's bundle only when asked for.
 *
 * esbuild is the bundler because it is one dependency with no plugins to configure and bundles in
 * tens of milliseconds. Each bundle's inputs go to dist/<name>.inputs.json (scripts/bundle/).
 *
 *   node scripts/bundle-cli.ts            (run by scripts/build.sh after tsc)
 */
import { build } from 'esbuild';
import { buildStartedAt, writeBundleInputs } from './bundle/bundle-inputs.ts';
import { commonBuildOptions, MINIFIED_OUTPUT } from './bundle/esbuild-options.ts';
import { lazyBuiltins } from './bundle/lazy-builtins.ts';

const root = new URL('../', import.meta.url).pathname;
const builtAt = buildStartedAt(root);
const common = commonBuildOptions(root);

const entry = await build({
  ...common,
  entryPoints: [`${root}src/cli/bundle-entry.ts`],
  outfile: `${root}dist/jobworker.cjs`,
});

const cli = await build({
  ...common,
  entryPoints: [`${root}src/cli/bundle-main.ts`],
  outfile: `${root}dist/jobworker-cli.cjs`,
  // Minified, as the server's bundle is: `serve` loads this bundle first and holds its text for
  // as long as it runs.
  ...MINIFIED_OUTPUT,
  // `import()` of the server's bundle becomes `require()`: this bundle runs as a vm.Script
  // (src/cli/bundle-code-cache.ts), where a real import() needs vm's experimental
  // USE_MAIN_CONTEXT_DEFAULT_LOADER, whose ExperimentalWarning on stderr broke `--json` errors and
  // the exact stderr of `output ID`. require() also skips the ESM loader's scan of its exports.
  supported: { 'dynamic-import': false },
  plugins: [
    // commander loads child_process for a feature jobworker does not use (see the file).
    lazyBuiltins(['child_process']),
    {
      name: 'serve-bundle',
      setup(b) {
        // `import('./commands/serve.ts')` (and doctor) in src/cli/program.ts: the server's bundle,
        // beside this one, loaded only by those two commands.
        b.onResolve({ filter: /\/commands\/(serve|doctor)\.ts$/ }, () => ({
          path: './jobworker-serve.cjs',
          external: true,
        }));
      },
    },
  ],
});

writeBundleInputs(root, 'jobworker-cli', 'scripts/bundle-cli.ts', builtAt, [entry.metafile, cli.metafile]);
