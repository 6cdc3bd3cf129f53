import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { type BuildOptions, build } from 'esbuild';
import { lazyPackages, lazyPackagesEntry } from '../../scripts/bundle/lazy-packages.ts';
import { REPO } from './cli-harness.ts';

const run = promisify(execFile);
const dirs: string[] = [];
after(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

/**
 * Bundles `source` (an ES module) with `packages` moved to a second bundle beside it, as
 * scripts/bundle-server.ts does, runs it, and returns its stdout lines and what the second holds.
 */
async function bundleAndRun(source: string, packages: readonly string[]): Promise<string[]> {
  const dir = await mkdtemp(join(tmpdir(), 'jw-lazy-packages-'));
  dirs.push(dir);
  await writeFile(join(dir, 'entry.mjs'), source);
  const common: BuildOptions = {
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node24',
    logLevel: 'silent',
    nodePaths: [join(REPO, 'node_modules')],
  };
  const lazy = lazyPackages(packages, 'lazy.cjs');
  await build({
    ...common,
    entryPoints: [join(dir, 'entry.mjs')],
    outfile: join(dir, 'out.cjs'),
    plugins: [lazy.plugin],
  });
  await build({ ...common, stdin: lazyPackagesEntry(lazy.imports, REPO), outfile: join(dir, 'lazy.cjs') });
  const { stdout } = await run(process.execPath, [join(dir, 'out.cjs')], { cwd: dir });
  return stdout.trimEnd().split('\n');
}

const LOADED = `const loaded = () => Object.keys(require.cache).some((file) => file.endsWith('/lazy.cjs'));`;

describe('lazyPackages (packages of the server bundle loaded from a second bundle on first use)', () => {
  it('loads the second bundle at the first import that runs, through every form of import', async () => {
    const lines = await bundleAndRun(
      `${LOADED}
console.log('start', loaded());
const later = async () => {
  const { parse } = await import('yaml');
  return parse('a: [1, 2]');
};
console.log('defined', loaded());
(async () => {
  console.log('yaml', JSON.stringify(await later()), loaded());
  const { default: client, Gauge } = await import('prom-client');
  const { default: GaugeFromFile } = await import('prom-client/lib/gauge.js');
  console.log('prom-client', typeof client.Registry, Gauge === client.Gauge, Gauge === GaugeFromFile);
})();
`,
      ['prom-client', 'yaml'],
    );
    assert.deepEqual(lines, [
      'start false',
      'defined false',
      'yaml {"a":[1,2]} true',
      // One copy of each module, whichever import reaches it: the class is the same object.
      'prom-client function true true',
    ]);
  });

  it('leaves a package not listed in the first bundle', async () => {
    const lines = await bundleAndRun(
      `${LOADED}
import { parse } from 'yaml';
console.log(parse('b: 1').b, loaded());
`,
      ['prom-client'],
    );
    assert.deepEqual(lines, ['1 false']);
  });

  it('names an import the second bundle was not built with', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'jw-lazy-packages-'));
    dirs.push(dir);
    const lazy = lazyPackages(['yaml'], 'lazy.cjs');
    lazy.imports.specifiers.add('yaml');
    await build({
      bundle: true,
      platform: 'node',
      format: 'cjs',
      logLevel: 'silent',
      stdin: lazyPackagesEntry(lazy.imports, REPO),
      outfile: join(dir, 'lazy.cjs'),
    });
    const { stdout } = await run(process.execPath, [
      '-e',
      `try { require(${JSON.stringify(join(dir, 'lazy.cjs'))})('pg') } catch (err) { console.log(err.message) }`,
    ]);
    assert.equal(stdout.trim(), 'No package pg in this bundle');
  });
});
