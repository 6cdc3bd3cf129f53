/**
 * Bundles the CLI into one CommonJS file, dist/jobworker.cjs, which bin/jobworker runs: a CLI
 * command is a whole process start, and loading ~30 ES modules through Node's ESM loader (with
 * the built-ins it pulls in) cost more than the command itself (issue 9, docs/performance.md).
 * esbuild is the bundler because it is one dependency with no plugins to configure, bundles in
 * tens of milliseconds and keeps the emitted code readable. `serve` is left out: its import stays
 * dynamic and loads dist/src/cli/commands/serve.js, which tsc emitted beside it.
 *
 *   node scripts/bundle-cli.ts            (run by scripts/build.sh after tsc)
 */
import { build } from 'esbuild';

const root = new URL('../', import.meta.url).pathname;

await build({
  entryPoints: [`${root}src/cli/bundle-main.ts`],
  outfile: `${root}dist/jobworker.cjs`,
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node24',
  logLevel: 'warning',
  // commander loads child_process for a feature jobworker does not use (see the file).
  alias: { 'node:child_process': `${root}scripts/bundle/lazy-child-process.cjs` },
  plugins: [
    {
      name: 'serve-from-dist',
      setup(b) {
        // `import('./commands/serve.ts')` in src/cli/program.ts, resolved at run time from dist/.
        b.onResolve({ filter: /\/commands\/serve\.ts$/ }, () => ({
          path: './src/cli/commands/serve.js',
          external: true,
        }));
      },
    },
  ],
});
