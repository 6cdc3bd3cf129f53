import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { connect as http2Connect } from 'node:http2';
import { request as httpsRequest } from 'node:https';
import { connect as netConnect } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { promisify } from 'node:util';
import {
  type ApiHarness,
  counterOutput,
  FIXTURES,
  openApi,
  rawGet,
  readSse,
  sseBytes,
  startJob,
} from '../api/api-harness.ts';
import { killProcessGroup, waitForFileText } from '../helpers/wait.ts';

const run = promisify(execFile);
const COUNTER = join(FIXTURES, 'counter.sh');

/** GET over HTTP/2 (ALPN h2); resolves with the status, body and trailers once the stream ends. */
async function h2Get(
  url: string,
  ca: string,
  path: string,
  headers: Record<string, string>,
): Promise<{
  status: number;
  body: Buffer;
  trailers: Record<string, unknown>;
  alpn: string | false | undefined;
}> {
  const session = http2Connect(url, { ca });
  try {
    const stream = session.request({ ':path': path, ...headers });
    const chunks: Buffer[] = [];
    let status = 0;
    let trailers: Record<string, unknown> = {};
    stream.on('response', (h) => (status = Number(h[':status'])));
    stream.on('trailers', (t) => (trailers = t));
    stream.on('data', (c: Buffer) => chunks.push(c));
    await once(stream, 'end');
    return { status, body: Buffer.concat(chunks), trailers, alpn: session.alpnProtocol };
  } finally {
    session.close();
  }
}

describe('TLS transport: HTTPS on TLS 1.3, HTTP/2 and HTTP/1.1', () => {
  let h: ApiHarness;
  let ca: string;
  let auth: Record<string, string>;
  before(async () => {
    h = await openApi();
    ca = await readFile(join(h.dataDir, 'tls', 'ca.pem'), 'utf8');
    auth = { authorization: `Bearer ${h.token}` };
  });
  after(() => h.destroy());

  it('serves https:// and curl verifies it with <data-dir>/tls/ca.pem', async () => {
    assert.match(h.server.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(h.server.caFile, join(h.dataDir, 'tls', 'ca.pem'));
    const { stdout } = await run('curl', ['-sS', '--cacert', h.server.caFile!, `${h.server.url}/healthz`]);
    assert.deepEqual(JSON.parse(stdout), { status: 'ok' });
    // And by the name `localhost`, which the certificate carries too.
    const port = new URL(h.server.url).port;
    const byName = await run('curl', [
      '-sS',
      '--cacert',
      h.server.caFile!,
      `https://localhost:${port}/healthz`,
    ]);
    assert.deepEqual(JSON.parse(byName.stdout), { status: 'ok' });
  });

  it('refuses a TLS 1.2 client (openssl s_client -tls1_2) and negotiates TLS 1.3', async () => {
    const { hostname: host, port } = new URL(h.server.url);
    const s12 = spawn('openssl', ['s_client', '-tls1_2', '-connect', `${host}:${port}`], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    s12.stdout.on('data', (c: Buffer) => (out += c));
    s12.stderr.on('data', (c: Buffer) => (out += c));
    const [code] = await once(s12, 'close');
    assert.notEqual(code, 0);
    assert.match(out, /alert protocol version|no protocols available|wrong version/i);

    const socket = tlsConnect({ host, port: Number(port), ca, servername: 'localhost' });
    await once(socket, 'secureConnect');
    assert.equal(socket.getProtocol(), 'TLSv1.3');
    socket.destroy();
  });

  it('answers HTTP/2 (ALPN h2) and HTTP/1.1 on the same port', async () => {
    const h2 = await h2Get(h.server.url, ca, '/v1/jobs?limit=1', auth);
    assert.equal(h2.alpn, 'h2');
    assert.equal(h2.status, 200);
    assert.ok(Array.isArray(JSON.parse(h2.body.toString()).jobs));

    const h1 = await new Promise<{ status: number; version: string }>((resolve, reject) => {
      const req = httpsRequest(`${h.server.url}/healthz`, { ca, agent: false }, (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, version: res.httpVersion }));
      });
      req.on('error', reject);
      req.end();
    });
    assert.deepEqual(h1, { status: 200, version: '1.1' });
  });

  it('follows raw output with trailers and SSE over HTTP/2', async () => {
    const job = await startJob(h, { command: COUNTER, args: ['60', '3'] });
    const raw = await h2Get(h.server.url, ca, `/v1/jobs/${job.id}/output?stream=stdout&follow=true`, auth);
    assert.equal(raw.status, 200);
    assert.deepEqual(raw.body, counterOutput(60));
    assert.equal(raw.trailers['x-jobworker-status'], 'failed');

    const sse = await h2Get(h.server.url, ca, `/v1/jobs/${job.id}/output?stream=stdout&follow=true`, {
      ...auth,
      accept: 'text/event-stream',
    });
    assert.equal(sse.status, 200);
    const text = sse.body.toString();
    assert.match(text, /event: end/);
    const bytes = Buffer.concat(
      [...text.matchAll(/event: output\n(?:id: .*\n)?data: (.*)\n/g)].map((m) =>
        Buffer.from((JSON.parse(m[1]!) as { data: string }).data, 'base64'),
      ),
    );
    assert.deepEqual(bytes, counterOutput(60));
  });

  it('follows raw output with trailers and SSE over HTTP/1.1', async () => {
    const job = await startJob(h, { command: COUNTER, args: ['60'] });
    const raw = await rawGet(h.url(`/v1/jobs/${job.id}/output?stream=stdout&follow=true`), auth);
    assert.equal(raw.status, 200);
    assert.deepEqual(raw.body, counterOutput(60));
    assert.equal(raw.trailers['x-jobworker-status'], 'succeeded');
    const res = await h.api(`/v1/jobs/${job.id}/output?stream=stdout&follow=true`, {
      headers: { accept: 'text/event-stream' },
    });
    assert.deepEqual(sseBytes(await readSse(res)), counterOutput(60));
  });

  it('refuses plain HTTP on the TLS port and keeps serving others', async () => {
    const { hostname: host, port } = new URL(h.server.url);
    const socket = netConnect(Number(port), host);
    await once(socket, 'connect');
    socket.end('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    await once(socket, 'close');
    assert.doesNotMatch(Buffer.concat(chunks).toString('latin1'), /HTTP\/1\.1 200/);
    const { status } = await h.json('/healthz');
    assert.equal(status, 200);
  });

  it('serves TLS on the Unix socket too (servername localhost)', async () => {
    assert.ok(h.server.socketPath);
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpsRequest(
        'https://localhost/healthz',
        { socketPath: h.server.socketPath!, ca, agent: false },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('error', reject);
      req.end();
    });
    assert.equal(status, 200);
  });

  it('closes gracefully with an HTTP/2 session and an HTTP/1.1 follower open', async () => {
    const other = await openApi();
    const otherCa = await readFile(other.server.caFile!, 'utf8');
    const job = await startJob(other, { command: COUNTER, args: [] });
    const otherAuth = { authorization: `Bearer ${other.token}` };
    const session = http2Connect(other.server.url, { ca: otherCa });
    const stream = session.request({ ':path': `/v1/jobs/${job.id}/output?follow=true`, ...otherAuth });
    stream.resume();
    await once(stream, 'response');
    const h1 = rawGet(other.url(`/v1/jobs/${job.id}/output?follow=true`), otherAuth, () => false);
    // Running and writing: its wrapper has recorded who its processes are (its output may show
    // before its start is on record, so the job's own `pid` may still be null here).
    await rawGet(other.url(`/v1/jobs/${job.id}/output?follow=true`), otherAuth, (body) =>
      body.includes('1\n'),
    );
    const [pid] = (await waitForFileText(join(other.dataDir, 'jobs', job.id, 'process'), '\n')).split(' ');
    const ended = once(stream, 'end');
    await other.server.close();
    await ended;
    assert.equal((await h1).status, 200);
    await other.server.diagnostics.idle();
    session.close();
    killProcessGroup(Number(pid));
    await other.destroy();
  });
});
