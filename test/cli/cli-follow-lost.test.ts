import assert from 'node:assert/strict';
import { once } from 'node:events';
import { type AddressInfo, connect, createServer, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { ApiJob } from '../../src/client/api-types.ts';
import { startTestServer, type TestServer } from './cli-harness.ts';
import { runCliInProcess } from './cli-in-process.ts';

// `start -f` that loses its follow once the job exists: the job runs on, and the error must name
// it, for a person and for a script (`--json`), which would otherwise start it a second time.

let t: TestServer;
before(async () => {
  t = await startTestServer();
});
after(() => t.close());

/**
 * A TCP proxy in front of the server that lets one connection through (the `start`'s submission:
 * each request of the CLI has a connection of its own) and then, at the second (the follow), cuts
 * it and stops listening: a server that went away for good, once the job was made.
 */
async function proxyLostAfterSubmit(): Promise<{ url: string; cut: Promise<void> }> {
  const { port } = new URL(t.server.url);
  const sockets = new Set<Socket>();
  let connections = 0;
  let lost!: () => void;
  const cut = new Promise<void>((resolve) => {
    lost = resolve;
  });
  const proxy = createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    if (++connections === 1) {
      const upstream = connect(Number(port), '127.0.0.1');
      socket.pipe(upstream).pipe(socket);
      // Either end's close closes the other: no connection to the server outlives the test.
      upstream.once('close', () => socket.destroy());
      socket.once('close', () => upstream.destroy());
      upstream.on('error', () => undefined);
      socket.on('error', () => undefined);
      return;
    }
    proxy.close(() => lost());
    // destroy, not resetAndDestroy: a socket accepted and reset at once keeps Node (24) from exiting.
    for (const open of sockets) open.destroy();
  }).listen(0, '127.0.0.1');
  await once(proxy, 'listening');
  return { url: `https://127.0.0.1:${(proxy.address() as AddressInfo).port}`, cut };
}

const script = ['sh', '-c', 'echo up; while :; do sleep 1; done'];

/** The job named `name`, as the server has it. */
async function jobNamed(name: string): Promise<ApiJob> {
  const status = await runCliInProcess(['status', '--json', name], t.env);
  assert.equal(status.code, 0, status.stderr);
  return JSON.parse(status.stdout) as ApiJob;
}

describe('start -f that loses its follow', () => {
  it('names the job that keeps running and how to reach it', async () => {
    const proxy = await proxyLostAfterSubmit();
    const env = { ...t.env, JOBWORKER_URL: proxy.url, JOBWORKER_RECONNECT_FOR: '300ms' };
    const result = await runCliInProcess(['start', '-f', '--name', 'lost-follow', '--', ...script], env);
    await proxy.cut;
    const job = await jobNamed('lost-follow');
    assert.equal(result.code, 1, result.stderr);
    // Before: only "Cannot reach the server ... (gave up after reconnecting for ...)".
    assert.match(
      result.stderr,
      new RegExp(
        `^jobworker: Cannot reach the server .*gave up after reconnecting.*; job ${job.id} keeps running ` +
          `\\(jobworker logs -f ${job.id}, jobworker stop ${job.id}\\)\\n$`,
      ),
    );
    assert.ok(['queued', 'running'].includes(job.status), job.status);
    assert.equal((await runCliInProcess(['stop', job.id], t.env)).code, 0);
  });

  it('with --json, the error document carries the job id', async () => {
    const proxy = await proxyLostAfterSubmit();
    const env = { ...t.env, JOBWORKER_URL: proxy.url, JOBWORKER_RECONNECT_FOR: '300ms' };
    const result = await runCliInProcess(
      ['start', '--json', '-f', '--name', 'lost-json', '--', ...script],
      env,
    );
    await proxy.cut;
    const job = await jobNamed('lost-json');
    assert.equal(result.code, 1, result.stderr);
    assert.equal(result.stdout, '');
    const lines = result.stderr.trimEnd().split('\n');
    assert.equal(lines.length, 1, 'one JSON document');
    const { error } = JSON.parse(lines[0]!) as { error: { code: string; message: string; jobId?: string } };
    // Before: {"error": {"code": "UNREACHABLE", "message": "Cannot reach ..."}}, no id anywhere.
    assert.equal(error.jobId, job.id);
    assert.equal(error.code, 'UNREACHABLE');
    assert.match(error.message, new RegExp(`; job ${job.id} keeps running `));
    assert.equal((await runCliInProcess(['stop', job.id], t.env)).code, 0);
  });

  it('a job that is gone (404) is not said to keep running', async () => {
    const result = await runCliInProcess(['logs', '-f', '01900000-0000-7000-8000-000000000000'], t.env);
    assert.equal(result.code, 1);
    assert.match(
      result.stderr,
      /^jobworker: No job with id 01900000-0000-7000-8000-000000000000 \(NOT_FOUND\)\n$/,
    );
  });
});
