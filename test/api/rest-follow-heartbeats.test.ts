import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  FRAME_KIND,
  FrameDecoder,
  HEARTBEAT_HEADER,
  OUTPUT_FRAMES_TYPE,
  type OutputFrame,
} from '../../src/core/output-frames.ts';
import { type Harness, openHarness } from '../helpers/engine-harness.ts';
import { LiveResponse } from '../helpers/live-response.ts';
import { ManualClock } from '../helpers/manual-clock.ts';
import { type AppHarness, openApp, rpcJobs } from '../helpers/rest-app-harness.ts';

/** A live follow of a job's output over real TLS: its head, and its body as it comes. */
class Follow {
  text = '';
  readonly frames: OutputFrame[] = [];
  #live: LiveResponse | undefined;

  static async open(a: AppHarness, token: string, path: string, accept: string): Promise<Follow> {
    const follow = new Follow();
    const decoder = new FrameDecoder();
    follow.#live = await LiveResponse.open(a, token, path, accept, (chunk) => {
      if (accept === OUTPUT_FRAMES_TYPE) follow.frames.push(...decoder.push(chunk));
      else follow.text += chunk.toString('utf8');
    });
    return follow;
  }

  get headers(): Record<string, string | string[] | undefined> {
    return this.#live?.headers ?? {};
  }

  until(predicate: (f: Follow) => boolean): Promise<void> {
    return this.#live!.until(() => predicate(this));
  }

  close(): void {
    this.#live?.close();
  }
}

describe('heartbeats of a quiet follow: REST (frames, SSE, raw) and RPC', () => {
  let h: Harness;
  let a: AppHarness;
  const clock = new ManualClock();
  let token: string;
  let jobId: string;

  before(async () => {
    h = await openHarness();
    a = await openApp(h, { clock, tls: true, service: { eventHeartbeatMs: 10_000 } });
    token = await a.issue('alice', 'user');
    // Prints one line, then nothing until it is stopped: a quiet job.
    const job = await a.service.start(
      { user: 'alice', role: 'user' },
      {
        command: 'sh',
        args: ['-c', 'echo up; exec sleep 600'],
      },
    );
    jobId = job.id;
  });
  after(async () => {
    await h.engine.stop(jobId, { user: 'admin' }).catch(() => undefined);
    await h.engine.waitFor(jobId).catch(() => undefined);
    await a.service.shutdown();
    await a.close();
    await h.close();
  });

  it('sends a heartbeat frame, at the cursor so far, in each period without output, and says how often', async () => {
    const follow = await Follow.open(a, token, `/v1/jobs/${jobId}/output?follow=true`, OUTPUT_FRAMES_TYPE);
    try {
      assert.equal(follow.headers[HEARTBEAT_HEADER.toLowerCase()], '10000');
      await follow.until((f) => f.frames.some((x) => x.kind === FRAME_KIND.stdout));
      assert.equal(follow.frames.length, 1);
      // The period of the output, then one without.
      clock.advance(10_000);
      clock.advance(10_000);
      await follow.until((f) => f.frames.length === 2);
      clock.advance(10_000);
      await follow.until((f) => f.frames.length === 3);
      for (const beat of follow.frames.slice(1)) {
        assert.deepEqual([beat.kind, beat.cursor, beat.payload.length], [FRAME_KIND.heartbeat, 3, 0]);
      }
    } finally {
      follow.close();
    }
  });

  it('sends a comment as the heartbeat of an event stream, which moves no Last-Event-ID', async () => {
    const follow = await Follow.open(a, token, `/v1/jobs/${jobId}/output?follow=true`, 'text/event-stream');
    try {
      assert.equal(follow.headers[HEARTBEAT_HEADER.toLowerCase()], '10000');
      await follow.until((f) => f.text.includes('event: output'));
      clock.advance(10_000);
      clock.advance(10_000);
      await follow.until((f) => f.text.endsWith(': heartbeat\n\n'));
      assert.equal(follow.text.match(/^id: /gm)?.length, 1, 'the output event alone has an id');
    } finally {
      follow.close();
    }
  });

  it('sends heartbeat messages in the RPC stream of a follow (StreamOutput)', async () => {
    const client = rpcJobs(a, token);
    const controller = new AbortController();
    const stream = client
      .streamOutput({ id: jobId, follow: true }, { signal: controller.signal })
      [Symbol.asyncIterator]();
    try {
      const first = await stream.next();
      assert.equal(first.value?.event.case, 'data');
      // The period of the output, then one without.
      clock.advance(10_000);
      clock.advance(10_000);
      const beat = await stream.next();
      assert.equal(beat.value?.event.case, 'heartbeat');
    } finally {
      controller.abort();
      await stream.return?.().catch(() => undefined);
    }
  });

  it('sends no heartbeat in raw bytes (the exact output), nor announces one', async () => {
    const follow = await Follow.open(
      a,
      token,
      `/v1/jobs/${jobId}/output?follow=true`,
      'application/octet-stream',
    );
    try {
      assert.equal(follow.headers[HEARTBEAT_HEADER.toLowerCase()], undefined);
      await follow.until((f) => f.text === 'up\n');
      clock.advance(10_000);
      // A follow as frames opened after it gets its heartbeat on the same clock: by then the raw
      // follow would have had its own, had it one.
      const frames = await Follow.open(a, token, `/v1/jobs/${jobId}/output?follow=true`, OUTPUT_FRAMES_TYPE);
      try {
        await frames.until((f) => f.frames.length === 1);
        clock.advance(10_000);
        clock.advance(10_000);
        await frames.until((f) => f.frames.length === 2);
        assert.equal(follow.text, 'up\n');
      } finally {
        frames.close();
      }
    } finally {
      follow.close();
    }
  });
});
