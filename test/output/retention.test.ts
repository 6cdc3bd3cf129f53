import assert from 'node:assert/strict';
import { appendFile, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import type { OutputStream } from '../../src/core/job.ts';
import { followOutput } from '../../src/output/output-follower.ts';
import { OutputMonitor } from '../../src/output/output-monitor.ts';
import { readOutput } from '../../src/output/output-reader.ts';
import { HolePunchError, retentionSlack } from '../../src/output/retention.ts';
import { ManualClock } from '../helpers/manual-clock.ts';
import { bytesOf, jobDir, readAll, startJob } from './output-helpers.ts';

const KiB = 1024;
const CAP = 256 * KiB;
const LINES = 1_500_000;
// What `seq 1 LINES` prints: deterministic, so the kept tail can be checked byte for byte.
const SEQ = Buffer.from(`${Array.from({ length: LINES }, (_, i) => i + 1).join('\n')}\n`);

async function writeFarPastTheCap(dir: string, monitor: OutputMonitor, jobId: string): Promise<void> {
  const job = await startJob(dir, ['sh', '-c', `seq 1 ${LINES}; seq 1 ${LINES} >&2`]);
  monitor.watch(jobId, dir);
  // A slow follower meanwhile: holes are punched under it, yet it never gets a zero as data.
  const following = checkFollower(monitor, dir, jobId);
  assert.equal(await job.exited, 0);
  await monitor.finish(jobId);
  await following;
}

async function checkFollower(monitor: OutputMonitor, dir: string, jobId: string): Promise<void> {
  let position = 0;
  for await (const batch of followOutput(monitor, dir, jobId, {
    selector: 'stdout',
    cursor: 0,
    batchBytes: 4096,
  })) {
    for (const event of batch) {
      if (event.type === 'truncated') position += event.skippedBytes;
      else {
        assert.ok(event.data.equals(SEQ.subarray(position, position + event.data.length)), `at ${position}`);
        position += event.data.length;
      }
      assert.equal(event.cursor, position);
    }
  }
  assert.equal(position, SEQ.length);
}

/** Reading a stream from 0 gives one truncated marker, then exactly the newest bytes written. */
async function assertKeptTail(dir: string, stream: OutputStream): Promise<number> {
  const [marker, ...rest] = await readAll(dir, stream, 64 * KiB);
  assert.equal(marker?.type, 'truncated');
  assert.equal(marker.stream, stream);
  const skipped = marker.type === 'truncated' ? marker.skippedBytes : 0;
  assert.equal(marker.cursor, skipped);
  assert.ok(rest.every((event) => event.type === 'data'));
  const kept = bytesOf(rest);
  assert.equal(skipped + kept.length, SEQ.length);
  assert.ok(kept.length >= CAP && kept.length <= CAP + retentionSlack(CAP), `kept ${kept.length}`);
  assert.ok(kept.equals(SEQ.subarray(skipped)), `${stream} keeps the tail of what was written`);
  return skipped;
}

test('retention keeps the newest bytes per stream and frees the disk blocks of older ones', async (t) => {
  assert.ok(SEQ.length > 40 * CAP);
  const dir = await jobDir(t);
  const errors: Error[] = [];
  const monitor = new OutputMonitor({ capBytes: CAP, onError: (err) => errors.push(err) });
  t.after(() => monitor.close());
  await writeFarPastTheCap(dir, monitor, 'chatty');
  assert.deepEqual(errors, []);

  for (const stream of ['stdout', 'stderr'] as const) {
    const file = await stat(join(dir, stream));
    assert.equal(file.size, SEQ.length, 'the logical size keeps every cursor valid');
    const onDisk = file.blocks * 512;
    assert.ok(onDisk <= CAP + retentionSlack(CAP) + 4 * KiB, `${stream} uses ${onDisk} bytes of disk`);
    await assertKeptTail(dir, stream);
  }

  // The combined view honours retention the same way: one marker, then only kept bytes.
  const [marker, ...rest] = await readAll(dir, 'all', 100 * KiB);
  assert.equal(marker?.type, 'truncated');
  for (const stream of ['stdout', 'stderr'] as const) {
    const kept = bytesOf(rest, stream);
    assert.ok(kept.equals(SEQ.subarray(SEQ.length - kept.length)), `${stream} in the combined view`);
  }
  const page = await readOutput(dir, { selector: 'all', cursor: 10, limitBytes: 10 });
  assert.equal(page.events[0]?.type, 'truncated');
  assert.equal(
    page.events[0].cursor - 10,
    page.events[0].type === 'truncated' ? page.events[0].skippedBytes : -1,
  );
});

test('without fallocate(1) the view still honours the cap, nothing is lost, and it says so once', async (t) => {
  const dir = await jobDir(t);
  const errors: Error[] = [];
  const monitor = new OutputMonitor({
    capBytes: CAP,
    fallocatePath: '/nonexistent/fallocate',
    onError: (err) => errors.push(err),
  });
  t.after(() => monitor.close());
  await writeFarPastTheCap(dir, monitor, 'no-punch');
  assert.equal(errors.length, 1);
  assert.ok(errors[0] instanceof HolePunchError && errors[0].toolMissing);
  await assertKeptTail(dir, 'stdout');
  await assertKeptTail(dir, 'stderr');
});

test('a punch the filesystem refuses is tried again when the kept window moves, not at each observation, and reported once', async (t) => {
  const [dir, scratch] = [await jobDir(t), await jobDir(t)];
  // A fallocate(1) that counts its runs and fails as on a filesystem without hole punching,
  // until `allow` exists (the failure has passed).
  const [runs, allow, fallocatePath] = ['runs', 'allow', 'fallocate'].map((name) => join(scratch, name));
  const script = [
    '#!/bin/sh',
    `echo run >> '${runs}'`,
    `[ -e '${allow}' ] && exec fallocate "$@"`,
    'echo "fallocate: fallocate failed: Operation not supported" >&2',
    'exit 1',
  ].join('\n');
  await writeFile(fallocatePath!, `${script}\n`, { mode: 0o755 });
  const countRuns = async () => (await readFile(runs!, 'utf8').catch(() => '')).split('\n').length - 1;
  const errors: Error[] = [];
  const monitor = new OutputMonitor({
    capBytes: 4 * KiB,
    clock: new ManualClock(),
    fallocatePath,
    onError: (err) => errors.push(err),
  });
  t.after(() => monitor.close());
  const stdout = join(dir, 'stdout');
  monitor.watch('refused', dir);
  // Past the cap and its slack (64 KiB): the window moves, the punch fails and is reported.
  await appendFile(stdout, Buffer.alloc(100 * KiB, 'a'));
  await monitor.refresh('refused');
  assert.equal(await countRuns(), 1);
  assert.equal(errors.length, 1);
  assert.ok(errors[0] instanceof HolePunchError && !errors[0].toolMissing);
  assert.match(errors[0].message, /Operation not supported/);

  // New bytes that leave the window where it was: nothing to try again (each try is a fork).
  for (let i = 0; i < 5; i++) {
    await appendFile(stdout, 'more\n');
    await monitor.refresh('refused');
  }
  assert.equal(await countRuns(), 1, 'fallocate(1) ran once for a window that did not move');

  // The window moves: tried again, not reported again.
  await appendFile(stdout, Buffer.alloc(100 * KiB, 'b'));
  await monitor.refresh('refused');
  assert.equal(await countRuns(), 2);
  assert.equal(errors.length, 1);

  // Once the failure has passed, the next move frees the blocks.
  await writeFile(allow!, '');
  await appendFile(stdout, Buffer.alloc(100 * KiB, 'c'));
  await monitor.refresh('refused');
  assert.equal(await countRuns(), 3);
  assert.equal(errors.length, 1);
  const file = await stat(stdout);
  assert.ok(
    file.blocks * 512 <= 4 * KiB + retentionSlack(4 * KiB) + 4 * KiB,
    `${file.blocks * 512} bytes on disk`,
  );
});
