import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { build } from 'esbuild';
import { lazyBuiltins } from '../../scripts/bundle/lazy-builtins.ts';

const run = promisify(execFile);
const dirs: string[] = [];
after(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

/** Bundles `source` (an ES module) with the plugin for `names`, runs it, and returns its stdout lines. */
async function bundleAndRun(source: string, names: readonly string[]): Promise<string[]> {
  const dir = await mkdtemp(join(tmpdir(), 'jw-lazy-builtins-'));
  dirs.push(dir);
  await writeFile(join(dir, 'entry.mjs'), source);
  await build({
    entryPoints: [join(dir, 'entry.mjs')],
    outfile: join(dir, 'out.cjs'),
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node24',
    logLevel: 'silent',
    plugins: [lazyBuiltins(names)],
  });
  const { stdout } = await run(process.execPath, [join(dir, 'out.cjs')]);
  return stdout.trimEnd().split('\n');
}

const LOADED = `const loaded = (name) => process.moduleLoadList.includes('NativeModule ' + name);`;

describe('lazyBuiltins (the bundles\u2019 built-ins loaded on first use)', () => {
  it('loads a module at its first property read, through every form of import', async () => {
    const lines = await bundleAndRun(
      `${LOADED}
import * as http2 from 'node:http2';
import { connect } from 'node:tls';
import https from 'https';
console.log('before', loaded('http2'), loaded('tls'), loaded('https'));
console.log('keys', Object.keys(http2).includes('createSecureServer'), loaded('http2'));
console.log('http2', http2.constants.HTTP2_HEADER_STATUS, loaded('http2'));
console.log('tls', typeof connect, loaded('tls'));
console.log('https', typeof https.createServer, https.globalAgent instanceof https.Agent, loaded('https'));
`,
      ['http2', 'tls', 'https'],
    );
    assert.deepEqual(lines, [
      'before false false false',
      'keys true false',
      'http2 :status true',
      'tls function true',
      'https function true true',
    ]);
  });

  it("reads names this Node's exports did not have at build time from the module, and writes through", async () => {
    const lines = await bundleAndRun(
      `const os = require('node:os');
os.jobworkerMark = 42;
console.log(os.jobworkerMark, 'jobworkerMark' in os, os.EOL === require('os').EOL);
console.log(process.getBuiltinModule('node:os').jobworkerMark);
`,
      ['os'],
    );
    assert.deepEqual(lines, ['42 true true', '42']);
  });

  it('refuses a module whose exports cannot be stood in for, and one that does not exist', () => {
    assert.throws(
      () => lazyBuiltins(['assert']),
      /node:assert is not a built-in module whose exports are an object/,
    );
    assert.throws(() => lazyBuiltins(['no-such-module']), /node:no-such-module/);
  });
});
