import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { requestFor } from '../helpers/trust-server.ts';
import { type ApiHarness, type JobJson, openApi, openFdCount, rawGet, within } from './api-harness.ts';

/** A JSON request over node:http without keep-alive, so that no client socket outlives it. */
function post(h: ApiHarness, path: string, body: unknown): Promise<{ status: number; body: JobJson }> {
  return new Promise((resolve, reject) => {
    const text = JSON.stringify(body);
    const req = requestFor(h.server.url)(
      h.url(path),
      {
        method: 'POST',
        agent: false,
        headers: { authorization: `Bearer ${h.token}`, 'content-type': 'application/json' },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            body: JSON.parse(Buffer.concat(chunks).toString()) as JobJson,
          }),
        );
      },
    );
    req.on('error', reject);
    req.end(text);
  });
}

// This file uses node:http without keep-alive only (no fetch): a pooled socket would change the
// process's descriptor count on its own schedule.
describe('REST API: a client that goes away mid-stream', () => {
  let h: ApiHarness;
  before(async () => {
    h = await openApi();
  });
  after(() => h.destroy());

  it('releases its follow, its socket and its descriptors', async () => {
    // A job that printed and now waits quietly: the followers are caught up and idle, holding only
    // their output-monitor listener, and nothing else opens files meanwhile.
    const { body: job } = await post(h, '/v1/jobs', {
      command: 'sh',
      args: ['-c', 'seq 1 2000; exec sleep 600'],
    });
    const auth = { authorization: `Bearer ${h.token}` };
    // Seen through the combined view, so the server has observed all of it and is quiet again.
    await rawGet(h.url(`/v1/jobs/${job.id}/output?follow=true`), auth, (body) => body.includes('\n2000\n'));
    const total = Buffer.byteLength(Array.from({ length: 2000 }, (_, i) => `${i + 1}\n`).join(''));

    await h.server.diagnostics.idle();
    const fdsBefore = await openFdCount();
    assert.equal(h.server.diagnostics.followers(), 0);

    for (let round = 0; round < 5; round++) {
      const sse = round % 2 === 1;
      const headers = sse ? { ...auth, accept: 'text/event-stream' } : auth;
      let followersWhileOpen = -1;
      // Read until caught up (the follower then waits on the monitor), then go away.
      const got = await rawGet(
        h.url(`/v1/jobs/${job.id}/output?stream=stdout&follow=true`),
        headers,
        (body) => {
          const caughtUp = sse ? body.includes(`"cursor":"${total}"`) : body.length === total;
          if (caughtUp) followersWhileOpen = h.server.diagnostics.followers();
          return caughtUp;
        },
      );
      assert.equal(got.status, 200);
      assert.equal(followersWhileOpen, 1, 'the follow was open while the client read');
      await within(h.server.diagnostics.idle(), 10_000, 'the follow and its connection released');
      assert.equal(h.server.diagnostics.followers(), 0, 'the follow is released');
      assert.equal(h.server.diagnostics.connections(), 0, 'the connection is closed');
      assert.equal(await openFdCount(), fdsBefore, `descriptors back to where they were (round ${round})`);
    }

    // The job itself is untouched by its followers going away.
    const stopped = await post(h, `/v1/jobs/${job.id}/stop`, { graceMs: 0 });
    assert.equal(stopped.status, 202);
    assert.equal(stopped.body.status, 'running');
    const end = await rawGet(h.url(`/v1/jobs/${job.id}/output?stream=stderr&follow=true`), auth);
    assert.equal(end.trailers['x-jobworker-status'], 'stopped');
  });

  it('releases a client that goes away before any output came', async () => {
    const { body: job } = await post(h, '/v1/jobs', {
      command: 'sh',
      args: ['-c', 'echo ready >&2; exec sleep 600'],
    });
    // Seen through the combined view, so the server has observed it and is quiet again.
    const auth = { authorization: `Bearer ${h.token}` };
    await rawGet(h.url(`/v1/jobs/${job.id}/output?follow=true`), auth, (body) => body.includes('ready'));
    await h.server.diagnostics.idle();
    const fdsBefore = await openFdCount();
    // Nothing on stdout will ever come: go away as soon as the headers arrived.
    await new Promise<void>((resolve, reject) => {
      const req = requestFor(h.server.url)(
        h.url(`/v1/jobs/${job.id}/output?stream=stdout&follow=true`),
        { agent: false, headers: auth },
        (res) => {
          assert.equal(res.statusCode, 200);
          assert.equal(h.server.diagnostics.followers(), 1);
          res.socket.once('close', () => resolve());
          req.destroy();
        },
      );
      req.on('error', (err) => {
        if (!req.destroyed) reject(err);
      });
      req.end();
    });
    await within(h.server.diagnostics.idle(), 10_000, 'the follow and its connection released');
    assert.equal(h.server.diagnostics.followers(), 0);
    assert.equal(await openFdCount(), fdsBefore);
    assert.equal((await post(h, `/v1/jobs/${job.id}/stop`, { graceMs: 0 })).status, 202);
    const end = await rawGet(h.url(`/v1/jobs/${job.id}/output?follow=true`), auth);
    assert.equal(end.trailers['x-jobworker-status'], 'stopped');
  });
});
