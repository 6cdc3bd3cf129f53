import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { type BuildOptions, build } from 'esbuild';
import { commonBuildOptions } from '../../scripts/bundle/esbuild-options.ts';
import { lazyPackages, lazyPackagesEntry } from '../../scripts/bundle/lazy-packages.ts';
import { REPO } from './cli-harness.ts';

const run = promisify(execFile);
const dirs: string[] = [];
after(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

/**
 * Writes `files` (ES modules; `entry.mjs` first) to a new directory, bundles them with the groups
 * of packages moved to bundles beside it, as scripts/bundle-server.ts does, runs the bundle and
 * returns its stdout lines.
 */
async function bundleAndRun(
  files: Readonly<Record<string, string>>,
  groups: Readonly<Record<string, readonly string[]>>,
): Promise<string[]> {
  const dir = await mkdtemp(join(tmpdir(), 'jw-lazy-packages-'));
  dirs.push(dir);
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
  // The server's options, with the packages found from the repository's node_modules.
  const common: BuildOptions = {
    ...commonBuildOptions(REPO),
    logLevel: 'silent',
    nodePaths: [join(REPO, 'node_modules')],
  };
  const lazy = lazyPackages(groups);
  await build({
    ...common,
    entryPoints: [join(dir, 'entry.mjs')],
    outfile: join(dir, 'out.cjs'),
    plugins: [lazy.plugin],
  });
  for (const file of lazy.imports.keys()) {
    await build({ ...common, stdin: lazyPackagesEntry(lazy.imports, file, REPO), outfile: join(dir, file) });
  }
  const { stdout } = await run(process.execPath, [join(dir, 'out.cjs')], { cwd: dir });
  return stdout.trimEnd().split('\n');
}

/** Which of the groups' bundles the process has loaded so far. */
const LOADED = `const loaded = () => Object.keys(require.cache).map((f) => f.slice(f.lastIndexOf('/') + 1)).filter((f) => f.startsWith('group-')).sort().join(',') || 'none';`;

describe('lazyPackages (packages of the server bundle loaded from bundles beside it on first use)', () => {
  it('loads a group at the first import of one of its packages that runs, through every form of import', async () => {
    const lines = await bundleAndRun(
      {
        'entry.mjs': `${LOADED}
console.log('start', loaded());
(async () => {
  // A module with static imports, initialized on first use, as the server's are.
  const uses = await import('./uses.mjs');
  console.log('after', loaded());
  console.log(uses.report());
  const { parse } = await import('yaml');
  console.log('dynamic', parse('a: [1, 2]').a.join('+'), loaded());
})();
`,
        'uses.mjs': `
import client, { Gauge } from 'prom-client';
import * as everything from 'prom-client';
import GaugeFromFile from 'prom-client/lib/gauge.js';
import { stringify } from 'yaml';
export function report() {
  return [
    typeof client.Registry,
    Gauge === client.Gauge,
    everything.Gauge === Gauge,
    // One copy of each module, whichever import reaches it: the class is the same object.
    GaugeFromFile === Gauge,
    stringify({ b: 1 }).trim(),
  ].join(' ');
}
`,
      },
      { 'group-metrics.cjs': ['prom-client'], 'group-yaml.cjs': ['yaml'], 'group-unused.cjs': ['pg'] },
    );
    assert.deepEqual(lines, [
      'start none',
      'after group-metrics.cjs,group-yaml.cjs',
      'function true true true b: 1',
      'dynamic 1+2 group-metrics.cjs,group-yaml.cjs',
    ]);
  });

  it('loads only the group whose package is used', async () => {
    const lines = await bundleAndRun(
      {
        'entry.mjs': `${LOADED}
(async () => {
  const { parse } = await import('yaml');
  console.log(parse('c: 3').c, loaded());
  if (process.argv.length < 0) await import('prom-client');
})();
`,
      },
      { 'group-metrics.cjs': ['prom-client'], 'group-yaml.cjs': ['yaml'] },
    );
    assert.deepEqual(lines, ['3 group-yaml.cjs']);
  });

  it('leaves a package no group lists in the first bundle', async () => {
    const lines = await bundleAndRun(
      {
        'entry.mjs': `${LOADED}
import { parse } from 'yaml';
console.log(parse('b: 1').b, loaded());
`,
      },
      { 'group-metrics.cjs': ['prom-client'] },
    );
    assert.deepEqual(lines, ['1 none']);
  });

  it('names an import a group was not built with', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'jw-lazy-packages-'));
    dirs.push(dir);
    const lazy = lazyPackages({ 'group-yaml.cjs': ['yaml'] });
    lazy.imports.get('group-yaml.cjs')!.add('yaml');
    await build({
      ...commonBuildOptions(REPO),
      logLevel: 'silent',
      stdin: lazyPackagesEntry(lazy.imports, 'group-yaml.cjs', REPO),
      outfile: join(dir, 'group-yaml.cjs'),
    });
    const { stdout } = await run(process.execPath, [
      '-e',
      `const get = require(${JSON.stringify(join(dir, 'group-yaml.cjs'))});
console.log(typeof get('yaml').parse);
try { get('pg') } catch (err) { console.log(err.message) }`,
    ]);
    assert.deepEqual(stdout.trim().split('\n'), ['function', 'No package pg in this bundle']);
  });
});
