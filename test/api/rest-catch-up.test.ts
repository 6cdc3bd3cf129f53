import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { FRAME_KIND, FrameDecoder, OUTPUT_FRAMES_TYPE } from '../../src/core/output-frames.ts';
import { requestFor } from '../helpers/trust-server.ts';
import {
  type ApiHarness,
  expectedCombined,
  openApi,
  openFdCount,
  postJob,
  rawGet,
  within,
} from './api-harness.ts';

const MiB = 1024 * 1024;
const execFileAsync = promisify(execFile);
const READY = 'ready\n'.length;
// Alternating blocks of random bytes, 6 MiB per stream: several pages of a catch-up read, many
// stretches in the combined index, and more than the socket buffers hold.
const BLOCKS = 48;
const SCRIPT = `i=0; while [ $i -lt ${BLOCKS} ]; do head -c 131072 /dev/urandom; head -c 131072 /dev/urandom >&2; i=$((i+1)); done`;

// This file uses node:http without keep-alive only: a pooled socket would keep a connection open.
describe('REST API: catch-up read of a finished multi-MiB output', () => {
  let h: ApiHarness;
  let id: string;
  let dir: string;
  let auth: Record<string, string>;
  before(async () => {
    h = await openApi();
    auth = { authorization: `Bearer ${h.token}` };
    // The combined view is ordered as the server observed it, and a job is observed closely only
    // while followed: the job says `ready`, waits on a fifo until a follower has seen that, and
    // only then alternates its streams. Over node:http without keep-alive (not fetch), so that
    // no pooled socket stays open.
    const gate = join(h.dataDir, 'gate');
    await execFileAsync('mkfifo', [gate]);
    id = await postJob(h, { command: 'sh', args: ['-c', `echo ready; read _ < '${gate}'; ${SCRIPT}`] });
    let opened = false;
    const followed = await rawGet(h.url(`/v1/jobs/${id}/output?follow=true`), auth, () => {
      if (!opened) {
        opened = true;
        void writeFile(gate, 'go\n');
      }
      return false;
    });
    assert.equal(followed.trailers['x-jobworker-status'], 'succeeded');
    dir = join(h.dataDir, 'jobs', id);
  });
  after(() => h.destroy());

  it('is byte-exact per stream and in combined order', async () => {
    const stdout = await readFile(join(dir, 'stdout'));
    const stderr = await readFile(join(dir, 'stderr'));
    assert.equal(stdout.length, BLOCKS * 128 * 1024 + READY);
    assert.equal(stderr.length, BLOCKS * 128 * 1024);
    const { all, stretches } = await expectedCombined(dir);
    assert.ok(stretches > 2, `the streams interleave in the combined view (${stretches} stretches)`);
    assert.equal(all.length, 12 * MiB + READY);

    for (const [view, expected] of [
      ['stdout', stdout],
      ['stderr', stderr],
      ['all', all],
    ] as const) {
      const res = await rawGet(h.url(`/v1/jobs/${id}/output?stream=${view}`), auth);
      assert.equal(res.status, 200);
      assert.ok(res.body.equals(expected), `${view}: ${res.body.length} bytes, exact`);
      assert.equal(res.trailers['x-jobworker-cursor'], String(expected.length));
      assert.equal(res.trailers['x-jobworker-status'], 'succeeded');
    }
    // From a cursor inside a stretch and not on a page boundary.
    const from = 5 * MiB + 12345;
    const rest = await rawGet(h.url(`/v1/jobs/${id}/output?cursor=${from}`), auth);
    assert.ok(rest.body.equals(all.subarray(from)), 'the rest of the combined view from a cursor');
  });

  it('as frames, keeps each run of the combined view with its stream and cursor', async () => {
    const stdout = await readFile(join(dir, 'stdout'));
    const stderr = await readFile(join(dir, 'stderr'));
    const { all } = await expectedCombined(dir);
    for (const from of [0, 5 * MiB + 12345]) {
      const res = await rawGet(h.url(`/v1/jobs/${id}/output?cursor=${from}`), {
        ...auth,
        accept: OUTPUT_FRAMES_TYPE,
      });
      assert.equal(res.status, 200);
      assert.equal(res.headers['content-type'], OUTPUT_FRAMES_TYPE);
      assert.equal(
        res.headers['x-jobworker-end'],
        String(all.length),
        'the view end, as raw and SSE give it',
      );
      const decoder = new FrameDecoder();
      const frames = decoder.push(res.body);
      assert.equal(decoder.pendingBytes, 0, 'the body is whole frames');
      const end = frames.at(-1)!;
      assert.equal(end.kind, FRAME_KIND.end);
      assert.equal(
        (JSON.parse(end.payload.toString()) as { job: { status: string } }).job.status,
        'succeeded',
      );
      const data = frames.slice(0, -1);
      // Each run ends where its cursor says, and the runs rebuild the view and both streams.
      let cursor = from;
      const perStream = { stdout: [] as Buffer[], stderr: [] as Buffer[] };
      for (const frame of data) {
        assert.ok(frame.kind === FRAME_KIND.stdout || frame.kind === FRAME_KIND.stderr);
        cursor += frame.payload.length;
        assert.equal(frame.cursor, cursor);
        perStream[frame.kind === FRAME_KIND.stdout ? 'stdout' : 'stderr'].push(frame.payload);
      }
      assert.equal(end.cursor, all.length);
      assert.ok(
        Buffer.concat(data.map((f) => f.payload)).equals(all.subarray(from)),
        'the combined view, exact',
      );
      if (from === 0) {
        assert.ok(Buffer.concat(perStream.stdout).equals(stdout), 'stdout runs are stdout');
        assert.ok(Buffer.concat(perStream.stderr).equals(stderr), 'stderr runs are stderr');
      }
    }
  });

  it('releases its descriptors when the client goes away mid-read', async () => {
    await h.server.diagnostics.idle();
    const fdsBefore = await openFdCount();
    for (const view of ['all', 'stdout']) {
      let followersWhileOpen = -1;
      await new Promise<void>((resolve, reject) => {
        const req = requestFor(h.server.url)(
          h.url(`/v1/jobs/${id}/output?stream=${view}`),
          { agent: false, headers: auth },
          (res) => {
            assert.equal(res.statusCode, 200);
            // Gone after the first bytes: the server still has megabytes of this read to send.
            res.once('data', () => {
              followersWhileOpen = h.server.diagnostics.followers();
              res.socket.once('close', () => resolve());
              req.destroy();
            });
          },
        );
        req.on('error', (err) => {
          if (!req.destroyed) reject(err);
        });
        req.end();
      });
      assert.equal(followersWhileOpen, 1, `the ${view} read was still open when the client left`);
      await within(h.server.diagnostics.idle(), 10_000, 'the read and its connection released');
      assert.equal(h.server.diagnostics.followers(), 0);
      assert.equal(await openFdCount(), fdsBefore, `descriptors back to where they were (${view})`);
    }
  });
});
