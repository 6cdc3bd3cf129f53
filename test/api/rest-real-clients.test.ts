import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { IncomingMessage } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { EventSource } from 'eventsource';
import { BODY_LIMIT } from '../../src/api/rest/rest-app.ts';
import { requestFor } from '../helpers/trust-server.ts';
import { type ApiHarness, type JobJson, openApi, startJob, within } from './api-harness.ts';

/**
 * Real third-party clients on a real port, over TLS: what `inject()` cannot show (a browser's
 * EventSource reconnection, the `100 Continue` handshake of node:http).
 */
describe('REST with real clients', () => {
  let h: ApiHarness;
  before(async () => {
    h = await openApi();
  });
  after(() => h.destroy());

  it('an EventSource (the `eventsource` package) reads to `end`, then stops reconnecting', async () => {
    const job = await startJob(h, { command: 'printf', args: ['one\ntwo\n'] });
    const requests: { lastEventId: string | null; status: number }[] = [];
    const source = new EventSource(h.url(`/v1/jobs/${job.id}/output?follow=true&stream=stdout`), {
      fetch: async (url, init) => {
        const headers = new Headers(init?.headers);
        headers.set('authorization', `Bearer ${h.token}`);
        const res = await fetch(url, { ...init, headers });
        requests.push({ lastEventId: headers.get('last-event-id'), status: res.status });
        return res;
      },
    });
    try {
      const bytes: Buffer[] = [];
      source.addEventListener('output', (e) => {
        bytes.push(Buffer.from((JSON.parse(e.data) as { data: string }).data, 'base64'));
      });
      const end = new Promise<{ job: JobJson }>((resolve) =>
        source.addEventListener('end', (e) => resolve(JSON.parse(e.data) as { job: JobJson })),
      );
      // The server closes the stream after `end`; the EventSource reconnects once, after the
      // `retry:` the server sent, gets 204, and fails the connection for good.
      const failed = new Promise<{ code?: number }>((resolve) => {
        source.onerror = (e) => {
          if (source.readyState === EventSource.CLOSED) resolve(e as { code?: number });
        };
      });
      assert.equal((await within(end, 20_000, 'the end event')).job.status, 'succeeded');
      assert.equal(Buffer.concat(bytes).toString(), 'one\ntwo\n');
      const error = await within(failed, 20_000, 'the EventSource to give up');
      assert.equal(error.code, 204);
      assert.equal(source.readyState, EventSource.CLOSED);
      assert.deepEqual(requests, [
        { lastEventId: null, status: 200 },
        { lastEventId: '8.end', status: 204 },
      ]);
    } finally {
      source.close();
    }
  });

  /** A POST with `Expect: 100-continue` that sends its body only on `100 Continue`. */
  async function expectContinue(length: number): Promise<{ continued: boolean; res: IncomingMessage }> {
    const url = h.url('/v1/jobs');
    const req = requestFor(url)(url, {
      method: 'POST',
      agent: false,
      headers: {
        authorization: `Bearer ${h.token}`,
        'content-type': 'application/json',
        'content-length': String(length),
        expect: '100-continue',
      },
    });
    let continued = false;
    req.on('continue', () => {
      continued = true;
      const body = JSON.stringify({ command: 'true' });
      req.end(body.padEnd(length, ' '));
    });
    const [res] = (await within(once(req, 'response'), 20_000, 'the response')) as [IncomingMessage];
    if (!continued) req.destroy();
    return { continued, res };
  }

  it('answers `Expect: 100-continue` with a Content-Length over the limit with 413, before the body', async () => {
    const { continued, res } = await expectContinue(BODY_LIMIT + 1);
    assert.equal(continued, false, 'no 100 Continue: the body is never sent');
    assert.equal(res.statusCode, 413);
    assert.equal(res.headers.connection, 'close');
    const chunks: Buffer[] = [];
    for await (const chunk of res) chunks.push(chunk as Buffer);
    const body = JSON.parse(Buffer.concat(chunks).toString()) as { error: { code: string } };
    assert.equal(body.error.code, 'PAYLOAD_TOO_LARGE');
  });

  it('answers `Expect: 100-continue` within the limit with 100 Continue, and takes the body', async () => {
    const { continued, res } = await expectContinue(1000);
    assert.equal(continued, true);
    assert.equal(res.statusCode, 201);
    res.resume();
    await once(res, 'end');
  });
});
