import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { build } from 'esbuild';
import { lazyPackages, lazyPackagesEntry } from '../../scripts/bundle/lazy-packages.ts';
import { bundleAndRun, scratchDir, TEST_BUILD_OPTIONS } from './bundle-and-run.ts';
import { REPO } from './cli-harness.ts';

const run = promisify(execFile);

/**
 * Bundles `files` with the groups of packages moved to bundles beside it, as
 * scripts/bundle-server.ts does, runs the bundle and returns its stdout lines.
 */
function bundleAndRunGroups(
  files: Readonly<Record<string, string>>,
  groups: Readonly<Record<string, readonly string[]>>,
): Promise<string[]> {
  const lazy = lazyPackages(groups);
  return bundleAndRun(files, [lazy.plugin], async (dir) => {
    for (const file of lazy.imports.keys()) {
      await build({
        ...TEST_BUILD_OPTIONS,
        stdin: lazyPackagesEntry(lazy.imports, file, REPO),
        outfile: join(dir, file),
      });
    }
  });
}

/** Which of the groups' bundles the process has loaded so far. */
const LOADED = `const loaded = () => Object.keys(require.cache).map((f) => f.slice(f.lastIndexOf('/') + 1)).filter((f) => f.startsWith('group-')).sort().join(',') || 'none';`;

describe('lazyPackages (packages of the server bundle loaded from bundles beside it on first use)', () => {
  it('loads a group at the first import of one of its packages that runs, through every form of import', async () => {
    const lines = await bundleAndRunGroups(
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
    const lines = await bundleAndRunGroups(
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
    const lines = await bundleAndRunGroups(
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
    const dir = await scratchDir('jw-lazy-packages-');
    const lazy = lazyPackages({ 'group-yaml.cjs': ['yaml'] });
    lazy.imports.get('group-yaml.cjs')!.add('yaml');
    await build({
      ...TEST_BUILD_OPTIONS,
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
