import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
// By package name, as a user imports it: resolved through package.json `exports`.
import { JobworkerApiError, JobworkerClient, JobworkerConnectionError } from 'jobworker/client';
import { ValidationError } from '../../src/core/errors.ts';
import { type ApiHarness, openApi } from '../api/api-harness.ts';

describe('JobworkerClient against a real server over TLS', () => {
  let h: ApiHarness;
  let ca: string;
  let jw: JobworkerClient;
  before(async () => {
    h = await openApi();
    ca = await readFile(h.server.caFile!, 'utf8');
    jw = new JobworkerClient({ url: h.server.url, token: h.token, ca });
  });
  after(async () => {
    await h.destroy();
  });

  it('starts a job, reads its output, waits for its end and gets it', async () => {
    const job = await jw.start({ command: '/bin/sh', args: ['-c', 'echo out; echo err >&2; exit 3'] });
    assert.match(job.status, /^(queued|running)$/);
    const done = await jw.wait(job.id);
    assert.equal(done.status, 'failed');
    assert.equal(done.exitCode, 3);
    const chunks: Buffer[] = [];
    for await (const chunk of jw.output(job.id, { stream: 'stdout', follow: false })) chunks.push(chunk);
    assert.equal(Buffer.concat(chunks).toString(), 'out\n');
    const all: Buffer[] = [];
    for await (const chunk of jw.output(job.id)) all.push(chunk);
    assert.equal(Buffer.concat(all).toString().split('\n').sort().join('\n'), '\nerr\nout');
    assert.deepEqual(await jw.get(job.id), done);
  });

  it('lists every page by following nextCursor', async () => {
    const label = `batch=${Date.now()}`;
    const started = [];
    for (let i = 0; i < 5; i++) {
      started.push(await jw.start({ command: '/bin/true', labels: { batch: label.slice(6) } }));
    }
    const pages = [];
    for await (const page of jw.list({ label: [label], limit: 2 })) pages.push(page);
    assert.deepEqual(
      pages.map((p) => p.jobs.length),
      [2, 2, 1],
    );
    const listed = pages.flatMap((p) => p.jobs.map((j) => j.id));
    assert.deepEqual(listed.toSorted(), started.map((j) => j.id).toSorted());
    const one = [];
    for await (const job of jw.jobs({ label: [label], limit: 2 })) one.push(job.id);
    assert.deepEqual(one, listed);
  });

  it('lists by queue and by text in the command line', async () => {
    const mark = `Mark-${Date.now()}`;
    const queued = await jw.start({ command: '/bin/true', args: [mark], queue: 'client-lf' });
    const plain = await jw.start({ command: '/bin/true', args: [mark.toLowerCase()] });
    const ids = async (filter: Parameters<typeof jw.jobs>[0]) => {
      const out = [];
      for await (const job of jw.jobs(filter)) out.push(job.id);
      return out;
    };
    assert.deepEqual(await ids({ text: mark.toUpperCase(), limit: 1 }), [plain.id, queued.id]);
    assert.deepEqual(await ids({ text: mark, queue: 'client-lf' }), [queued.id]);
  });

  it('stops a running job with a grace and waits for it', async () => {
    // It announces it runs, so the stop finds it running rather than still starting (`cancelled`).
    const job = await jw.start({ command: '/bin/sh', args: ['-c', 'echo ready; exec sleep 600'] });
    for await (const chunk of jw.output(job.id, { stream: 'stdout' })) {
      assert.equal(chunk.toString(), 'ready\n');
      break;
    }
    const stopping = await jw.stop(job.id, { graceMs: 2000 });
    assert.equal(stopping.id, job.id);
    const done = await jw.wait(job.id);
    assert.equal(done.status, 'stopped');
    await assert.rejects(jw.stop(job.id), (error: unknown) => {
      assert.ok(error instanceof JobworkerApiError);
      assert.equal(error.status, 409);
      return true;
    });
  });

  it('types error answers by code, status and field', async () => {
    await assert.rejects(jw.get('01900000-0000-7000-8000-000000000000'), (error: unknown) => {
      assert.ok(error instanceof JobworkerApiError);
      assert.equal(error.code, 'NOT_FOUND');
      assert.equal(error.status, 404);
      return true;
    });
    await assert.rejects(jw.get('not-an-id'), (error: unknown) => {
      assert.ok(error instanceof JobworkerApiError);
      assert.equal(error.code, 'VALIDATION_FAILED');
      assert.equal(error.status, 400);
      return true;
    });
    await assert.rejects(jw.start({ command: 'x', timeoutMs: -1 }), (error: unknown) => {
      assert.ok(error instanceof JobworkerApiError);
      assert.equal(error.code, 'VALIDATION_FAILED');
      assert.equal(error.status, 400);
      assert.equal(error.field, 'timeoutMs');
      return true;
    });
    const stranger = new JobworkerClient({ url: h.server.url, token: 'jw_not_a_token', ca });
    await assert.rejects(stranger.get('x'), (error: unknown) => {
      assert.ok(error instanceof JobworkerApiError);
      assert.equal(error.status, 401);
      assert.equal(typeof error.code, 'string');
      assert.doesNotMatch(error.message, /JOBWORKER_TOKEN/);
      return true;
    });
  });

  it('refuses bad options naming the field, and reports an unreachable server', async () => {
    assert.throws(
      () => new JobworkerClient({ url: 'ftp://x', token: 't' }),
      (error: unknown) => error instanceof ValidationError && error.field === 'url',
    );
    assert.throws(
      () => new JobworkerClient({ url: h.server.url } as never),
      (error: unknown) => error instanceof ValidationError && error.field === 'token',
    );
    // A port nothing listens on: the server's own, on another loopback address.
    const port = new URL(h.server.url).port;
    const nobody = new JobworkerClient({ url: `https://127.0.0.2:${port}`, token: h.token, ca });
    await assert.rejects(nobody.get('x'), JobworkerConnectionError);
    // A follower keeps reconnecting for `reconnectForMs`, then gives up naming that option.
    const impatient = new JobworkerClient({
      url: `https://127.0.0.2:${port}`,
      token: h.token,
      ca,
      reconnectForMs: 200,
    });
    await assert.rejects(
      impatient.output('01900000-0000-7000-8000-000000000000').next(),
      (error: unknown) => error instanceof JobworkerConnectionError && /`reconnectForMs`/.test(error.message),
    );
  });

  it('refuses a reconnectForMs that is not whole milliseconds, 0 or more (a follower would never give up)', () => {
    for (const reconnectForMs of ['30s', Number.NaN, -1, 1.5, Number.POSITIVE_INFINITY, null]) {
      assert.throws(
        () => new JobworkerClient({ url: h.server.url, token: h.token, ca, reconnectForMs } as never),
        (error: unknown) => error instanceof ValidationError && error.field === 'reconnectForMs',
        String(reconnectForMs),
      );
    }
    for (const reconnectForMs of [0, 30_000]) {
      assert.doesNotThrow(
        () => new JobworkerClient({ url: h.server.url, token: h.token, ca, reconnectForMs }),
      );
    }
  });

  it('refuses plain http:// to another machine, as the CLI does: the token and jobs would cross it in clear text', () => {
    const cleartext = (error: unknown) =>
      error instanceof ValidationError && error.field === 'url' && /clear text/.test(error.message);
    assert.throws(() => new JobworkerClient({ url: 'http://jobs.corp:8080', token: 't' }), cleartext);
    assert.throws(() => new JobworkerClient({ url: 'http://10.0.0.1', token: 't' }), cleartext);
    // A certificate would go unused over plain HTTP: refused all the same, not sent without it.
    assert.throws(
      () => new JobworkerClient({ url: 'http://jobs.corp:8080', cert: 'c', key: 'k' }),
      cleartext,
    );
    // Loopback stays open, for a server run with --insecure-http (it serves plain HTTP there only).
    for (const url of ['http://127.0.0.1:8080', 'http://localhost:8080', 'http://[::1]:8080']) {
      assert.doesNotThrow(() => new JobworkerClient({ url, token: 't' }), url);
    }
    assert.doesNotThrow(() => new JobworkerClient({ url: 'https://jobs.corp:8080', token: 't' }));
    // A certificate with plain HTTP to loopback would go unused: refused.
    const unusedCert = (error: unknown) =>
      error instanceof ValidationError &&
      error.field === 'cert' &&
      /only TLS presents one/.test(error.message);
    assert.throws(
      () => new JobworkerClient({ url: 'http://127.0.0.1:8080', cert: 'c', key: 'k' }),
      unusedCert,
    );
  });

  it('authenticates with a client certificate the server issued', async () => {
    const { status, body } = await h.json<{ certPem: string; keyPem: string; caPem: string }>('/v1/certs', {
      body: { user: 'admin' },
    });
    assert.equal(status, 201);
    const byCert = new JobworkerClient({
      url: h.server.url,
      cert: body.certPem,
      key: body.keyPem,
      ca: body.caPem,
    });
    const job = await byCert.start({ command: '/bin/true' });
    assert.equal(job.owner, 'admin');
    assert.equal((await byCert.wait(job.id)).status, 'succeeded');
  });

  it('talks to the server through its Unix socket', async (t) => {
    if (h.server.socketPath === null) return t.skip('the data directory path is too long for a socket');
    const local = new JobworkerClient({ socketPath: h.server.socketPath, ca, token: h.token });
    const job = await local.start({ command: '/bin/echo', args: ['over the socket'] });
    assert.equal((await local.wait(job.id)).status, 'succeeded');
    const chunks: Buffer[] = [];
    for await (const chunk of local.output(job.id)) chunks.push(chunk);
    assert.equal(Buffer.concat(chunks).toString(), 'over the socket\n');
  });

  it('resumes a followed output by cursor across a server restart: every byte once, in order', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'jw-client-'));
    const trigger = join(dir, 'go-on');
    try {
      // Part A, then (once the test has restarted the server) part B.
      const script = 'seq 1 3000; while [ ! -e "$1" ]; do sleep 0.05; done; seq 3001 6000';
      const job = await jw.start({ command: '/bin/sh', args: ['-c', script, 'sh', trigger] });
      const partA = Buffer.from(Array.from({ length: 3000 }, (_, i) => `${i + 1}\n`).join(''));
      const whole = Buffer.from(Array.from({ length: 6000 }, (_, i) => `${i + 1}\n`).join(''));
      const received: Buffer[] = [];
      let bytes = 0;
      let restarted = false;
      let logsBefore = 0;
      for await (const chunk of jw.output(job.id, { follow: true, stream: 'stdout' })) {
        received.push(chunk);
        bytes += chunk.length;
        if (!restarted && bytes >= partA.length) {
          assert.deepEqual(Buffer.concat(received), partA);
          restarted = true;
          logsBefore = h.logs.length;
          // Closes the server (and the stream the client is reading), then serves the same data
          // directory on the same port: the client reconnects with its last cursor.
          await h.restart();
          await writeFile(trigger, '');
        }
      }
      assert.ok(restarted);
      // Two streams served: the one the restart cut and the one resumed by cursor.
      assert.equal(h.logs.slice(logsBefore).filter((line) => line.includes('stream completed')).length, 2);
      assert.deepEqual(Buffer.concat(received), whole);
      assert.equal((await jw.wait(job.id)).status, 'succeeded');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('JobworkerClient output past the cap', () => {
  let h: ApiHarness;
  let jw: JobworkerClient;
  before(async () => {
    h = await openApi(undefined, { outputCap: String(64 * 1024) });
    jw = new JobworkerClient({
      url: h.server.url,
      token: h.token,
      ca: await readFile(h.server.caFile!, 'utf8'),
    });
  });
  after(() => h.destroy());

  it("tells output()'s onTruncated how many bytes the output cap dropped, followed or not", async () => {
    // 1,288,895 bytes: far past the cap.
    const job = await jw.start({ command: '/bin/sh', args: ['-c', 'seq 1 200000'] });
    for (const follow of [true, false]) {
      const told: [number, string][] = [];
      const chunks: Buffer[] = [];
      for await (const chunk of jw.output(job.id, {
        follow,
        onTruncated: (skippedBytes, stream) => told.push([skippedBytes, stream]),
      }))
        chunks.push(chunk);
      const kept = Buffer.concat(chunks);
      // Once when the job has ended; a follower slower than the job hears of each drop it met.
      assert.ok(told.length >= 1, `follow ${follow}: told nothing`);
      assert.ok(
        told.every(([, stream]) => stream === 'stdout'),
        JSON.stringify(told),
      );
      const dropped = told.reduce((sum, [skipped]) => sum + skipped, 0);
      assert.equal(dropped + kept.length, 1_288_895, `follow ${follow}: dropped and kept are the whole`);
      assert.ok(kept.toString().endsWith('199999\n200000\n'));
    }
  });
});
