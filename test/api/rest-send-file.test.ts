import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FRAME_KIND, FrameDecoder, OUTPUT_FRAMES_TYPE } from '../../src/core/output-frames.ts';
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
// Stretches of both streams, more than loopback's socket buffers hold in all.
const SCRIPT =
  'i=0; while [ $i -lt 12 ]; do head -c 1048576 /dev/urandom; head -c 65536 /dev/urandom >&2; i=$((i+1)); done';

/**
 * Starts `script` and waits for its end (its followed output ends with it); resolves with its id.
 * Without keep-alive, so that no idle connection outlives it (`diagnostics.idle()` waits for none).
 */
async function finishedJob(h: ApiHarness, script: string): Promise<string> {
  const auth = { authorization: `Bearer ${h.token}` };
  const id = await postJob(h, { command: 'sh', args: ['-c', script] });
  const followed = await rawGet(h.url(`/v1/jobs/${id}/output?follow=true`), auth);
  assert.equal(followed.trailers['x-jobworker-status'], 'succeeded');
  return id;
}

/** Most of a read's bytes went from the files (the rest through Node, while the socket was full). */
function mostlyFromFiles(line: { bytes: number; fromFiles?: number }, what: string): void {
  assert.ok(
    line.fromFiles !== undefined && line.fromFiles <= line.bytes && line.fromFiles >= line.bytes / 2,
    `${what}: ${line.fromFiles} of ${line.bytes} bytes copied by the kernel`,
  );
}

/** The `stream completed` log line, logged from line `mark` on, of the read that sent `bytes` bytes. */
async function completed(
  h: ApiHarness,
  mark: number,
  bytes: number,
): Promise<{ bytes: number; fromFiles?: number }> {
  const line = await h.logged(new RegExp(`"bytes":${bytes},.*"msg":"stream completed"`), mark);
  return JSON.parse(line) as { bytes: number; fromFiles?: number };
}

// Over plain HTTP (loopback): the server has the kernel copy a finished job's output (sendfile).
describe('REST API: a finished output sent from its files, over plain HTTP', () => {
  let h: ApiHarness;
  let id: string;
  let dir: string;
  let auth: Record<string, string>;
  before(async () => {
    h = await openApi(undefined, { insecureHttp: true });
    assert.match(h.server.url, /^http:/);
    auth = { authorization: `Bearer ${h.token}` };
    id = await finishedJob(h, SCRIPT);
    dir = join(h.dataDir, 'jobs', id);
  });
  after(() => h.destroy());

  it('sends every view exactly, from cursor 0 and from the middle of a stretch, most of it by the kernel', async () => {
    const stdout = await readFile(join(dir, 'stdout'));
    const stderr = await readFile(join(dir, 'stderr'));
    const { all } = await expectedCombined(dir);
    assert.equal(all.length, 12 * (MiB + 65536));
    const from = 5 * MiB + 4321;
    for (const [view, expected, cursor] of [
      ['stdout', stdout, 0],
      ['stderr', stderr, 0],
      ['all', all, 0],
      ['all', all, from],
    ] as const) {
      const mark = h.logs.length;
      const res = await rawGet(h.url(`/v1/jobs/${id}/output?stream=${view}&cursor=${cursor}`), auth);
      assert.equal(res.status, 200);
      const want = expected.subarray(cursor);
      assert.ok(
        res.body.equals(want),
        `${view} from ${cursor}: ${res.body.length} of ${want.length} bytes, exact`,
      );
      assert.equal(res.trailers['x-jobworker-cursor'], String(expected.length));
      assert.equal(res.trailers['x-jobworker-truncated-bytes'], '0');
      assert.equal(res.trailers['x-jobworker-status'], 'succeeded');
      mostlyFromFiles(await completed(h, mark, want.length), view);
    }
  });

  it('as frames, keeps each run with its stream and cursor, the payloads sent by the kernel', async () => {
    const stdout = await readFile(join(dir, 'stdout'));
    const stderr = await readFile(join(dir, 'stderr'));
    const mark = h.logs.length;
    const res = await rawGet(h.url(`/v1/jobs/${id}/output`), { ...auth, accept: OUTPUT_FRAMES_TYPE });
    assert.equal(res.status, 200);
    const decoder = new FrameDecoder();
    const frames = decoder.push(res.body);
    assert.equal(decoder.pendingBytes, 0, 'the body is whole frames');
    assert.equal(frames.at(-1)?.kind, FRAME_KIND.end);
    const perStream = { stdout: [] as Buffer[], stderr: [] as Buffer[] };
    let cursor = 0;
    for (const frame of frames.slice(0, -1)) {
      cursor += frame.payload.length;
      assert.equal(frame.cursor, cursor, 'each run ends where its cursor says');
      perStream[frame.kind === FRAME_KIND.stdout ? 'stdout' : 'stderr'].push(frame.payload);
    }
    assert.ok(Buffer.concat(perStream.stdout).equals(stdout), 'stdout runs are stdout');
    assert.ok(Buffer.concat(perStream.stderr).equals(stderr), 'stderr runs are stderr');
    mostlyFromFiles(await completed(h, mark, cursor), 'frames');
  });

  it('gives back its descriptors, the socket duplicate too, when the client goes away mid-read', async () => {
    await h.server.diagnostics.idle();
    const fdsBefore = await openFdCount();
    for (const view of ['all', 'stdout']) {
      let first = 0;
      await rawGet(h.url(`/v1/jobs/${id}/output?stream=${view}`), auth, (body) => {
        first = body.length;
        return true;
      });
      assert.ok(first > 0 && first < 12 * MiB, `the ${view} read was cut after ${first} bytes`);
      await within(h.server.diagnostics.idle(), 10_000, 'the read and its connection released');
      assert.equal(h.server.diagnostics.followers(), 0);
      assert.equal(await openFdCount(), fdsBefore, `descriptors back to where they were (${view})`);
    }
    // And the server still answers a whole read.
    const res = await rawGet(h.url(`/v1/jobs/${id}/output?stream=stdout`), auth);
    assert.equal(res.body.length, 12 * MiB);
  });

  // After the descriptor test: fetch keeps its connection open, which `diagnostics.idle()` awaits.
  it('sends POST /run output from the files too', async () => {
    const mark = h.logs.length;
    const res = await h.api('/run', {
      body: { command: 'sh', args: ['-c', 'head -c 3000000 /dev/zero | tr "\\0" x'] },
    });
    assert.equal(res.status, 200);
    const body = Buffer.from(await res.arrayBuffer());
    assert.ok(body.equals(Buffer.alloc(3_000_000, 'x')), 'the output, exact');
    mostlyFromFiles(await completed(h, mark, 3_000_000), '/run');
  });

  it('reads a running job through memory: its kept window may still move', async () => {
    const job = await h.json<{ id: string }>('/v1/jobs', {
      body: { command: 'sh', args: ['-c', 'printf "%06d" 123456; exec sleep 60'] },
    });
    const url = h.url(`/v1/jobs/${job.body.id}/output`);
    let mark = h.logs.length;
    let res = await rawGet(url, auth);
    // The first bytes may not be observed yet: read again until they are.
    while (res.body.length < 6) {
      mark = h.logs.length;
      res = await rawGet(url, auth);
    }
    assert.equal(res.body.toString(), '123456');
    assert.equal(res.trailers['x-jobworker-status'], 'running');
    const line = await completed(h, mark, 6);
    assert.equal(line.fromFiles, undefined, 'no span of a live job');
    await h.api(`/v1/jobs/${job.body.id}/stop`, { method: 'POST', body: { graceMs: 0 } });
  });
});

describe('REST API: a finished output whose start retention dropped, over plain HTTP', () => {
  let h: ApiHarness;
  before(async () => {
    h = await openApi(undefined, { insecureHttp: true, outputCap: '1M' });
  });
  after(() => h.destroy());

  it('reports the dropped bytes, then sends the kept ones from the files', async () => {
    const id = await finishedJob(h, 'head -c 4194304 /dev/urandom');
    const mark = h.logs.length;
    const res = await rawGet(h.url(`/v1/jobs/${id}/output?stream=stdout`), {
      authorization: `Bearer ${h.token}`,
    });
    assert.equal(res.status, 200);
    const truncated = Number(res.trailers['x-jobworker-truncated-bytes']);
    assert.ok(truncated > 0, `retention dropped the start (${truncated} bytes)`);
    assert.equal(truncated + res.body.length, 4 * MiB, 'dropped and sent bytes add up to the output');
    const file = await readFile(join(h.dataDir, 'jobs', id, 'stdout'));
    assert.ok(res.body.equals(file.subarray(truncated)), 'the kept bytes, exact');
    assert.ok(!res.body.subarray(0, 4096).every((b) => b === 0), 'not the zeros of a punched hole');
    mostlyFromFiles(await completed(h, mark, res.body.length), 'the kept bytes');
  });
});

// Over TLS (the default) the bytes are encrypted in the server's process: never sent as they lie.
describe('REST API: a finished output over TLS', () => {
  let h: ApiHarness;
  before(async () => {
    h = await openApi();
  });
  after(() => h.destroy());

  it('is sent through memory and encrypted, never copied from the file as it is', async () => {
    assert.match(h.server.url, /^https:/);
    const id = await finishedJob(h, 'head -c 2000000 /dev/zero | tr "\\0" y');
    const mark = h.logs.length;
    const res = await rawGet(h.url(`/v1/jobs/${id}/output`), { authorization: `Bearer ${h.token}` });
    assert.ok(res.body.equals(Buffer.alloc(2_000_000, 'y')), 'the output, exact');
    assert.equal((await completed(h, mark, 2_000_000)).fromFiles, undefined);
  });
});
