import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { lazyBuiltins } from '../../scripts/bundle/lazy-builtins.ts';
import { bundleAndRun, scratchDir } from './bundle-and-run.ts';
import { baseEnv, CliProcess, LAUNCHER, REPO } from './cli-harness.ts';

/** Bundles `source` (an ES module) with the plugin for `names`, runs it, and returns its stdout lines. */
function bundleAndRunBuiltins(source: string, names: readonly string[]): Promise<string[]> {
  return bundleAndRun({ 'entry.mjs': source }, [lazyBuiltins(names)]);
}

/** The groups' bundles (scripts/bundle/lazy-packages.ts) a server's record shows it loaded, by short name. */
function groupsLoaded(lines: readonly string[]): string[] {
  const prefix = join(REPO, 'dist/jobworker-serve-');
  return lines
    .filter((line) => line.startsWith(prefix) && line.endsWith('.cjs'))
    .map((line) => line.slice(prefix.length, -'.cjs'.length))
    .sort();
}

/** What `jobworker serve --json` prints once it listens. */
interface Ready {
  readonly url: string;
  readonly dataDir: string;
  readonly adminTokenFile: string;
  readonly caFile: string | null;
}

/**
 * Runs `jobworker serve` (its bundle, through bin/jobworker) on a new data directory with `args`,
 * calls `use` once it listens, stops it (SIGTERM, exit 0), and returns what it loaded: the
 * built-in modules and the files it required (test/fixtures/record-builtins.cjs).
 */
async function serveFromDist(
  args: readonly string[],
  use: (ready: Ready) => Promise<void>,
): Promise<string[]> {
  const dir = await scratchDir('jw-lazy-serve-');
  const record = join(dir, 'loaded.txt');
  const env = baseEnv({
    NODE_OPTIONS: `--require ${join(REPO, 'test/fixtures/record-builtins.cjs')}`,
    JW_RECORD_BUILTINS: record,
  });
  const serve = new CliProcess(
    ['serve', ...args, '--listen', '127.0.0.1:0', '--data-dir', join(dir, 'data'), '--json'],
    env,
    LAUNCHER,
  );
  try {
    const ready = await serve.waitUntil(
      (stdout) => stdout.includes('"adminTokenFile"') && stdout.trimEnd().endsWith('}'),
      'its address as JSON',
    );
    await use(JSON.parse(ready) as Ready);
    serve.child.kill('SIGTERM');
    const exited = await serve.result();
    assert.equal(exited.code, 0, exited.stderr);
  } finally {
    // A step that failed must not leave the server running (the test file would never end).
    if (serve.child.exitCode === null && serve.child.signalCode === null) serve.child.kill('SIGKILL');
  }
  const lines = (await readFile(record, 'utf8')).split('\n');
  assert.ok(
    lines.includes(join(REPO, 'dist/jobworker-serve.cjs')),
    'the server ran from its sources, not dist/jobworker-serve.cjs: run scripts/build.sh first',
  );
  return lines;
}

const LOADED = `const loaded = (name) => process.moduleLoadList.includes('NativeModule ' + name);`;

describe('lazyBuiltins (the bundles\u2019 built-ins loaded on first use)', () => {
  it('loads a module at its first property read, through every form of import', async () => {
    // In the order that tells them apart: https loads tls, and http2 loads both.
    const lines = await bundleAndRunBuiltins(
      `${LOADED}
import * as http2 from 'node:http2';
import { connect } from 'node:tls';
import https from 'https';
console.log('before', loaded('http2'), loaded('tls'), loaded('https'));
console.log('keys', Object.keys(http2).includes('createSecureServer'), loaded('http2'));
console.log('tls', typeof connect, loaded('tls'), loaded('https'), loaded('http2'));
console.log('https', typeof https.createServer, https.globalAgent instanceof https.Agent, loaded('https'), loaded('http2'));
console.log('http2', http2.constants.HTTP2_HEADER_STATUS, loaded('http2'));
`,
      ['http2', 'tls', 'https'],
    );
    assert.deepEqual(lines, [
      'before false false false',
      'keys true false',
      'tls function true false false',
      'https function true true false',
      'http2 :status true',
    ]);
  });

  it("reads names this Node's exports did not have at build time from the module, and writes, defines and deletes through", async () => {
    const lines = await bundleAndRunBuiltins(
      `const os = require('node:os');
os.jobworkerMark = 42;
Object.defineProperty(os, 'jobworkerDefined', { value: 7, configurable: true, enumerable: true });
console.log(os.jobworkerMark, 'jobworkerMark' in os, os.EOL === require('os').EOL);
const real = process.getBuiltinModule('node:os');
console.log(real.jobworkerMark, real.jobworkerDefined, delete os.jobworkerDefined, 'jobworkerDefined' in real);
`,
      ['os'],
    );
    assert.deepEqual(lines, ['42 true true', '42 7 true false']);
  });

  it('refuses a module whose exports cannot be stood in for, and one that does not exist', () => {
    assert.throws(
      () => lazyBuiltins(['assert']),
      /node:assert is not a built-in module whose exports are an object/,
    );
    assert.throws(() => lazyBuiltins(['no-such-module']), /node:no-such-module/);
  });

  it('keeps http2, https and tls unloaded in `jobworker serve --insecure-http`, run from its bundle', async () => {
    const lines = await serveFromDist(['--insecure-http'], async ({ url, adminTokenFile }) => {
      const token = (await readFile(adminTokenFile, 'utf8')).trim();
      // Requests through the whole app (routing, authentication, the store) load nothing more.
      assert.equal((await fetch(new URL('healthz', url))).status, 200);
      const listed = await fetch(new URL('v1/jobs', url), { headers: { authorization: `Bearer ${token}` } });
      assert.equal(listed.status, 200);
    });
    for (const name of ['http2', 'https', 'tls']) {
      assert.ok(!lines.includes(`NativeModule ${name}`), `node:${name} was loaded`);
    }
    assert.ok(lines.includes('NativeModule http'), 'the record lists what was loaded');
    // Nor the packages such a server loads on first use (scripts/bundle/lazy-packages.ts).
    assert.deepEqual(groupsLoaded(lines), []);
  });

  it('loads the packages of a first scrape and a first RPC call from their bundles beside the server, and no others', async () => {
    const lines = await serveFromDist(['--insecure-http'], async ({ url, dataDir, adminTokenFile }) => {
      const bearer = async (file: string) => ({
        authorization: `Bearer ${(await readFile(file, 'utf8')).trim()}`,
      });
      // prom-client, for the first scrape.
      const metrics = await fetch(new URL('metrics', url), {
        headers: await bearer(join(dataDir, 'metrics.token')),
      });
      assert.equal(metrics.status, 200);
      assert.match(await metrics.text(), /^nodejs_eventloop_lag_seconds /m);
      // Connect and protobuf, for the first RPC call (Connect's JSON form over HTTP/1.1): it lists
      // the job started through REST.
      const admin = await bearer(adminTokenFile);
      const started = await fetch(new URL('v1/jobs', url), {
        method: 'POST',
        headers: { ...admin, 'content-type': 'application/json' },
        body: JSON.stringify({ command: '/bin/true' }),
      });
      assert.equal(started.status, 201);
      const { id } = (await started.json()) as { id: string };
      const listed = await fetch(new URL('jobworker.v1.JobService/List', url), {
        method: 'POST',
        headers: { ...admin, 'content-type': 'application/json' },
        body: '{}',
      });
      assert.equal(listed.status, 200, await listed.clone().text());
      const { jobs } = (await listed.json()) as { jobs: { id: string }[] };
      assert.deepEqual(
        jobs.map((job) => job.id),
        [id],
      );
    });
    assert.deepEqual(groupsLoaded(lines), ['metrics', 'rpc']);
  });

  it("loads YAML for a tasks file in YAML, and @fastify/send for the dashboard's files, from their bundles", async () => {
    const dir = await scratchDir('jw-lazy-packages-');
    const tasks = join(dir, 'tasks.yaml');
    await writeFile(
      tasks,
      'tasks:\n  hello:\n    command: [/bin/echo, "hello {who}"]\n    params:\n      who: { type: string }\n',
    );
    const lines = await serveFromDist(
      ['--insecure-http', '--tasks', tasks],
      async ({ url, adminTokenFile }) => {
        const token = (await readFile(adminTokenFile, 'utf8')).trim();
        // The definition the YAML file made.
        const defined = await fetch(new URL('v1/tasks', url), {
          headers: { authorization: `Bearer ${token}` },
        });
        assert.equal(defined.status, 200, await defined.clone().text());
        assert.match(await defined.text(), /"hello"/);
        const page = await fetch(new URL('index.html', url));
        assert.equal(page.status, 200);
        assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
        assert.match(await page.text(), /<html/i);
      },
    );
    assert.deepEqual(groupsLoaded(lines), ['send', 'yaml']);
  });

  it('loads the X.509 group, and no other, as a server with TLS starts', async () => {
    const lines = await serveFromDist([], async ({ url, caFile }) => {
      assert.match(url, /^https:/);
      assert.ok(caFile, 'the server made its certificate authority');
    });
    assert.deepEqual(groupsLoaded(lines), ['x509']);
  });
});
