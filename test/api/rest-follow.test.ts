import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { constants } from 'node:fs';
import { open, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FRAME_KIND, FrameDecoder, OUTPUT_FRAMES_TYPE } from '../../src/core/output-frames.ts';
import {
  type ApiHarness,
  counterOutput,
  FIXTURES,
  type JobJson,
  openApi,
  rawGet,
  readSse,
  sseBytes,
  startJob,
} from './api-harness.ts';

const COUNTER = join(FIXTURES, 'counter.sh');

describe('REST API: following output', () => {
  let h: ApiHarness;
  let auth: Record<string, string>;
  before(async () => {
    h = await openApi();
    auth = { authorization: `Bearer ${h.token}` };
  });
  after(() => h.destroy());

  it('follows over raw HTTP: bytes live, start cursor in a header, end cursor and status in trailers', async () => {
    const job = await startJob(h, { command: COUNTER, args: ['150', '3'] });
    let firstChunkAt = -1;
    const res = await rawGet(h.url(`/v1/jobs/${job.id}/output?stream=stdout&follow=true`), auth, (body) => {
      // The first bytes arrive while the job still runs: they are not held back until the end.
      if (firstChunkAt === -1) firstChunkAt = body.length;
      return false;
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers['content-type'], 'application/octet-stream');
    assert.equal(res.headers['transfer-encoding'], 'chunked');
    assert.equal(res.headers['x-accel-buffering'], 'no');
    assert.equal(res.headers['x-jobworker-cursor'], '0');
    assert.equal(res.headers['x-jobworker-job-id'], job.id);
    assert.ok(firstChunkAt > 0 && firstChunkAt < res.body.length, 'output came in several chunks');
    assert.deepEqual(res.body, counterOutput(150));
    assert.equal(res.trailers['x-jobworker-cursor'], String(res.body.length));
    assert.equal(res.trailers['x-jobworker-truncated-bytes'], '0');
    assert.equal(res.trailers['x-jobworker-status'], 'failed');
    assert.equal(res.trailers['x-jobworker-exit-code'], '3');

    // Resuming from any cursor gives exactly the rest.
    const rest = await rawGet(h.url(`/v1/jobs/${job.id}/output?stream=stdout&cursor=100`), auth);
    assert.deepEqual(rest.body, counterOutput(150).subarray(100));
    assert.equal(rest.headers['x-jobworker-cursor'], '100');
    assert.equal(rest.trailers['x-jobworker-cursor'], String(counterOutput(150).length));
  });

  it('without follow, answers what exists while the job runs and says it is still running', async () => {
    const job = await startJob(h, { command: 'sh', args: ['-c', 'echo first; exec sleep 60'] });
    await rawGet(
      h.url(`/v1/jobs/${job.id}/output?follow=true`),
      auth,
      (body) => body.toString() === 'first\n',
    );
    const now = await rawGet(h.url(`/v1/jobs/${job.id}/output`), auth);
    assert.equal(now.body.toString(), 'first\n');
    assert.equal(now.trailers['x-jobworker-status'], 'running');
    assert.equal(now.trailers['x-jobworker-cursor'], '6');
    assert.equal((await h.api(`/v1/jobs/${job.id}/stop`, { body: { graceMs: 0 } })).status, 202);
  });

  it('follows over SSE: base64 output events whose ids are cursors, then an end event with the job', async () => {
    const job = await startJob(h, {
      command: 'sh',
      args: ['-c', 'for i in 1 2 3; do echo "out $i"; echo "err $i" >&2; done; printf "\\377\\000bin"'],
    });
    const res = await h.api(`/v1/jobs/${job.id}/output?follow=true`, {
      headers: { accept: 'text/event-stream' },
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'text/event-stream; charset=utf-8');
    assert.equal(res.headers.get('cache-control'), 'no-cache, no-transform');
    const events = await readSse(res);
    const end = events.at(-1)!;
    assert.equal(end.event, 'end');
    const ended = JSON.parse(end.data) as { job: JobJson; cursor: string };
    assert.equal(ended.job.status, 'succeeded');
    assert.equal(ended.job.id, job.id);
    const outputs = events.filter((e) => e.event === 'output');
    let position = 0;
    for (const e of outputs) {
      const data = JSON.parse(e.data) as { stream: string; data: string; cursor: string };
      position += Buffer.from(data.data, 'base64').length;
      assert.equal(e.id, String(position), 'each id is the cursor after the event');
      assert.equal(data.cursor, e.id);
      assert.ok(data.stream === 'stdout' || data.stream === 'stderr');
    }
    assert.equal(end.id, `${position}.end`, "the end event's id: its cursor, marked as the end");
    assert.equal(ended.cursor, String(position));
    const dir = join(h.dataDir, 'jobs', job.id);
    const stdout = await readFile(join(dir, 'stdout'));
    assert.deepEqual(stdout.subarray(-5), Buffer.from([0xff, 0x00, 0x62, 0x69, 0x6e]), 'binary output');
    const perStream = (stream: string) =>
      sseBytes(outputs.filter((e) => (JSON.parse(e.data) as { stream: string }).stream === stream));
    assert.deepEqual(perStream('stdout'), stdout);
    assert.deepEqual(perStream('stderr'), await readFile(join(dir, 'stderr')));
  });

  it('resuming with Last-Event-ID gives exactly the missing bytes: no gap, no duplicate', async () => {
    const job = await startJob(h, { command: COUNTER, args: ['200'] });
    const expected = counterOutput(200);
    const controller = new AbortController();
    const first = await h.api(`/v1/jobs/${job.id}/output?stream=stdout&follow=true`, {
      headers: { accept: 'text/event-stream' },
      signal: controller.signal,
    });
    // Go away after the first few events, mid-stream.
    let seen = 0;
    const part1Events = await readSse(first, (e) => e.event === 'output' && ++seen === 3);
    controller.abort();
    const lastId = part1Events.at(-1)!.id!;
    const part1 = sseBytes(part1Events);
    assert.equal(lastId, String(part1.length));

    // A reconnecting EventSource sends the same URL (here with cursor=0) plus Last-Event-ID.
    const second = await h.api(`/v1/jobs/${job.id}/output?stream=stdout&follow=true&cursor=0`, {
      headers: { accept: 'text/event-stream', 'last-event-id': lastId },
    });
    assert.equal(second.headers.get('x-jobworker-cursor'), lastId);
    const part2Events = await readSse(second);
    assert.equal(part2Events.at(-1)?.event, 'end');
    const part2 = sseBytes(part2Events);
    assert.deepEqual(part2, expected.subarray(part1.length), 'exactly the missing bytes');
    assert.deepEqual(Buffer.concat([part1, part2]), expected);
  });

  it('follows as frames beside raw followers of the same reads: whole frames, each run with its stream and cursor, the same bytes', async () => {
    // The job prints "ready", then waits at a FIFO until every follower has that first batch:
    // from then on they are caught up at one cursor and share each read, raw and frames alike.
    const gate = join(h.dataDir, `gate-${process.hrtime.bigint()}`);
    execFileSync('mkfifo', [gate]);
    const job = await startJob(h, {
      command: 'sh',
      args: [
        '-c',
        `echo ready; read go < ${gate}; i=0; while [ $i -lt 200 ]; do echo "out $i"; echo "err $i" >&2; i=$((i+1)); done`,
      ],
    });
    let attached = 0;
    const { promise: allAttached, resolve } = Promise.withResolvers<void>();
    const onFirst = () => {
      let seen = false;
      return (body: Buffer) => {
        if (!seen && body.length > 0) {
          seen = true;
          if (++attached === 5) resolve();
        }
        return false;
      };
    };
    const url = (query: string) => h.url(`/v1/jobs/${job.id}/output?follow=true${query}`);
    const framed = [1, 2, 3].map(() => rawGet(url(''), { ...auth, accept: OUTPUT_FRAMES_TYPE }, onFirst()));
    const raw = rawGet(url(''), auth, onFirst());
    const rawStdout = rawGet(url('&stream=stdout'), auth, onFirst());
    const followers: Promise<unknown>[] = [...framed, raw, rawStdout];
    try {
      // A follower whose answer ends (or fails) before its first batch fails the test at once,
      // instead of leaving it waiting for a fifth attachment that never comes.
      await Promise.race([
        allAttached,
        ...followers.map((follower) =>
          follower.then(() => {
            throw new Error('a follower ended before its first batch');
          }),
        ),
      ]);
    } catch (err) {
      // Let the job go on and end, if it still waits at the gate (without blocking when it does not).
      const gateEnd = await open(gate, constants.O_WRONLY | constants.O_NONBLOCK).catch(() => undefined);
      await gateEnd?.write('go\n').finally(() => gateEnd.close());
      throw err;
    }
    await writeFile(gate, 'go\n');
    const lines = (prefix: string) => Array.from({ length: 200 }, (_, i) => `${prefix} ${i}\n`).join('');
    const rawBody = (await raw).body.toString();
    for (const res of await Promise.all(framed)) {
      assert.equal(res.status, 200);
      assert.equal(res.headers['content-type'], OUTPUT_FRAMES_TYPE);
      const decoder = new FrameDecoder();
      const frames = decoder.push(res.body);
      assert.equal(decoder.pendingBytes, 0, 'the body is whole frames');
      const end = frames.at(-1)!;
      assert.equal(end.kind, FRAME_KIND.end);
      let cursor = 0;
      const streams = { stdout: '', stderr: '' };
      for (const frame of frames.slice(0, -1)) {
        assert.ok(frame.kind === FRAME_KIND.stdout || frame.kind === FRAME_KIND.stderr);
        cursor += frame.payload.length;
        assert.equal(frame.cursor, cursor, 'each run ends where its cursor says');
        streams[frame.kind === FRAME_KIND.stdout ? 'stdout' : 'stderr'] += frame.payload.toString();
      }
      assert.equal(end.cursor, cursor);
      assert.equal(streams.stdout, `ready\n${lines('out')}`);
      assert.equal(streams.stderr, lines('err'));
      assert.equal(
        Buffer.concat(frames.slice(0, -1).map((f) => f.payload)).toString(),
        rawBody,
        'the frames carry the raw view, byte for byte',
      );
    }
    assert.equal(rawBody.length, `ready\n${lines('out')}${lines('err')}`.length);
    assert.equal((await rawStdout).body.toString(), `ready\n${lines('out')}`);
  });

  it('20 concurrent followers all get identical bytes', async () => {
    const job = await startJob(h, { command: COUNTER, args: ['200'] });
    const followers = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        i % 2 === 0
          ? h
              .api(`/v1/jobs/${job.id}/output?follow=true`)
              .then(async (r) => Buffer.from(await r.arrayBuffer()))
          : h
              .api(`/v1/jobs/${job.id}/output?follow=true`, { headers: { accept: 'text/event-stream' } })
              .then(async (r) => sseBytes(await readSse(r))),
      ),
    );
    const expected = counterOutput(200);
    for (const [i, body] of followers.entries()) assert.deepEqual(body, expected, `follower ${i}`);
  });
});
