/**
 * Bundles the CLI into one CommonJS file, dist/jobworker.cjs, which bin/jobworker runs: a CLI
 * command is a whole process start, and loading ~30 ES modules through Node's ESM loader (with
 * the built-ins it pulls in) cost more than the command itself (issue 9, docs/performance.md).
 * esbuild is the bundler because it is one dependency with no plugins to configure, bundles in
 * tens of milliseconds and keeps the emitted code readable. `serve` and `doctor` are left out: their
 * imports stay dynamic and load dist/src/cli/commands/{serve,doctor}.js, which tsc emitted beside it.
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
        // `import('./commands/serve.ts')` in src/cli/program.ts, resolved at run time from dist/;
        // `doctor` too: it probes the host with the native spawner, found from its own module's
        // URL (import.meta, which a CommonJS bundle does not have).
        b.onResolve({ filter: /\/commands\/(serve|doctor)\.ts$/ }, (args) => ({
          path: `./src/cli/commands/${args.path.includes('doctor') ? 'doctor' : 'serve'}.js`,
          external: true,
        }));
      },
    },
  ],
});
