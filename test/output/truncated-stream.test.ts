import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { appendFile, mkdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import type { BatchSizes } from '../../src/output/batch-sizes.ts';
import { appendObserved } from '../../src/output/index-appender.ts';
import { OutputMonitor, type OutputTruncation, SWEEP_MIN_MS } from '../../src/output/output-monitor.ts';
import type { OutputEvent } from '../../src/output/output-types.ts';
import { readKeptWindow } from '../../src/output/retention.ts';
import { ManualClock } from '../helpers/manual-clock.ts';
import { jobDir, readAll } from './output-helpers.ts';

// A job that reopens its stdout or stderr with O_TRUNC truncates its own output file. Stream files
// are written directly here, as such a job would; the engine-level case with a real job and
// followers is test/engine/engine-truncated-output.test.ts.

const FIRST = 'starting a long step with many details\n';
const AFTER = 'Error: bad input\n';

/** A view as text: each run of one stream's data named once, each lost stretch as `[lost stream N]`. */
function render(events: readonly OutputEvent[]): string {
  let text = '';
  let run: string | undefined;
  for (const e of events) {
    if (e.type === 'truncated') {
      text += `[lost ${e.stream} ${e.skippedBytes}]`;
      run = undefined;
      continue;
    }
    if (run !== e.stream) text += `${e.stream}:`;
    run = e.stream;
    text += e.data.toString();
  }
  return text;
}

test('a file truncated behind its index reads as lost, never as an error, until the monitor records where it restarts', async (t) => {
  const dir = await jobDir(t);
  await writeFile(join(dir, 'stdout'), '');
  await writeFile(join(dir, 'stderr'), FIRST);
  await appendObserved(join(dir, 'combined.idx'), { stdout: 0, stderr: FIRST.length });
  // The job's `echo ... > /dev/stderr`: the file truncated, then written from its start.
  await writeFile(join(dir, 'stderr'), AFTER);

  // Not recorded yet: the combined view does not serve the new bytes as the old ones it indexed.
  assert.equal(render(await readAll(dir, 'all', 7)), `[lost stderr ${FIRST.length}]`);

  const truncations: OutputTruncation[] = [];
  const monitor = new OutputMonitor({
    capBytes: Number.POSITIVE_INFINITY,
    onError: (err) => assert.fail(err),
    onTruncated: (truncation) => truncations.push(truncation),
  });
  t.after(() => monitor.close());
  const sizes = await monitor.finish('truncating', dir);
  const at = FIRST.length;
  assert.deepEqual(truncations, [{ jobId: 'truncating', stream: 'stderr', at, fileBytes: AFTER.length }]);
  assert.deepEqual(sizes, { stdout: 0, stderr: at + AFTER.length });
  assert.deepEqual(await monitor.sizes(dir), sizes);
  assert.deepEqual(await readKeptWindow(dir), {
    stdout: 0,
    stderr: at,
    fileStart: { stdout: 0, stderr: at },
  });

  // Every view agrees: the bytes lost, then what the job wrote after, at any page size.
  for (const page of [1, 5, 64]) {
    assert.equal(render(await readAll(dir, 'stderr', page)), `[lost stderr ${at}]stderr:${AFTER}`);
    const all = await readAll(dir, 'all', page);
    assert.equal(bytesAfterMarker(all), AFTER);
    assert.deepEqual(all[0], { type: 'truncated', stream: 'stderr', skippedBytes: at, cursor: at });
  }
  // A reader that stopped at the old end goes on with what came after.
  assert.equal(render(await readAll(dir, 'stderr', 64, at)), `stderr:${AFTER}`);
  assert.equal(render(await readAll(dir, 'all', 64, at)), `stderr:${AFTER}`);
});

test('a size below what was observed is a truncation only when the file says so now: a stale batch is not one', async (t) => {
  const dir = await jobDir(t);
  await appendFile(join(dir, 'stdout'), 'one\ntwo\n');
  // A past server indexed it: this monitor starts with nothing observed.
  await appendObserved(join(dir, 'combined.idx'), { stdout: 8, stderr: 0 });
  await appendFile(join(dir, 'stderr'), 'e\n');
  const clock = new ManualClock();
  // Sizes read off the event loop a moment ago: stdout's from before its second line.
  const stale: BatchSizes = async (dirs) => dirs.map(() => ({ stdout: 4, stderr: 2 }));
  const truncations: OutputTruncation[] = [];
  const monitor = new OutputMonitor({
    capBytes: 1024 * 1024,
    clock,
    batchSizes: stale,
    onError: (err) => assert.fail(err),
    onTruncated: (truncation) => truncations.push(truncation),
  });
  t.after(() => monitor.close());
  monitor.watch('stale', dir);
  clock.advance(SWEEP_MIN_MS);
  await monitor.swept();

  assert.deepEqual(truncations, []);
  assert.equal(existsSync(join(dir, 'kept.json')), false, 'no restart recorded');
  assert.equal(render(await readAll(dir, 'all', 64)), 'stdout:one\ntwo\nstderr:e\n');
  assert.equal(render(await readAll(dir, 'stdout', 64)), 'stdout:one\ntwo\n');
});

test('a job nobody follows that truncates its file twice has each truncation recorded where its stream had reached', async (t) => {
  const dir = await jobDir(t);
  await mkdir(dir, { recursive: true });
  const clock = new ManualClock();
  const truncations: OutputTruncation[] = [];
  const monitor = new OutputMonitor({
    capBytes: 1024 * 1024,
    clock,
    onError: (err) => assert.fail(err),
    onTruncated: (truncation) => truncations.push(truncation),
  });
  t.after(() => monitor.close());
  monitor.watch('twice', dir);
  await appendFile(join(dir, 'stdout'), 'progress 10%\n');
  await monitor.refresh('twice');
  // Each write shorter than what the file held: a truncation is seen by the file being smaller.
  await writeFile(join(dir, 'stdout'), 'half\n');
  await monitor.refresh('twice');
  await writeFile(join(dir, 'stdout'), 'ok\n');
  await monitor.finish('twice');

  assert.deepEqual(
    truncations.map(({ stream, at, fileBytes }) => ({ stream, at, fileBytes })),
    [
      { stream: 'stdout', at: 13, fileBytes: 5 },
      { stream: 'stdout', at: 18, fileBytes: 3 },
    ],
  );
  assert.equal(render(await readAll(dir, 'stdout', 64)), '[lost stdout 18]stdout:ok\n');
  assert.equal(render(await readAll(dir, 'all', 64)), '[lost stdout 18]stdout:ok\n');
  // A reader that stopped after the first restart's bytes is told of the second loss, then goes on.
  assert.equal(render(await readAll(dir, 'stdout', 64, 13)), '[lost stdout 5]stdout:ok\n');
  assert.deepEqual(await monitor.sizes(dir), { stdout: 21, stderr: 0 });
});

function bytesAfterMarker(events: readonly OutputEvent[]): string {
  return events
    .filter((e) => e.type === 'data')
    .map((e) => e.data.toString())
    .join('');
}

test('retention after a truncation punches the file where the stream maps to it, and keeps its newest bytes readable', async (t) => {
  const dir = await jobDir(t);
  const cap = 64 * 1024;
  const monitor = new OutputMonitor({ capBytes: cap, onError: (err) => assert.fail(err) });
  t.after(() => monitor.close());
  monitor.watch('capped', dir);
  await appendFile(join(dir, 'stdout'), FIRST);
  await monitor.refresh('capped');
  await writeFile(join(dir, 'stdout'), 'x\n');
  await monitor.refresh('capped');
  const tail = randomBytes(300 * 1024);
  await appendFile(join(dir, 'stdout'), tail);
  await monitor.finish('capped');

  const fileStart = FIRST.length;
  const kept = await readKeptWindow(dir);
  assert.equal(kept.fileStart?.stdout, fileStart);
  assert.equal((kept.stdout - fileStart) % 4096, 0, 'the window starts on a block of the file');
  // What the job wrote after the truncation, as it wrote it (not as the file reads after punches).
  const written = Buffer.concat([Buffer.from('x\n'), tail]);
  const events = await readAll(dir, 'stdout', 64 * 1024);
  assert.deepEqual(events[0], {
    type: 'truncated',
    stream: 'stdout',
    skippedBytes: kept.stdout,
    cursor: kept.stdout,
  });
  const data = Buffer.concat(events.flatMap((e) => (e.type === 'data' ? [e.data] : [])));
  assert.ok(data.length >= cap);
  assert.ok(
    data.equals(written.subarray(kept.stdout - fileStart)),
    'the kept bytes, from the file where they lie',
  );
  const { blocks, size } = await stat(join(dir, 'stdout'));
  assert.ok(blocks * 512 < size, `the dropped blocks were freed (${blocks} blocks for ${size} bytes)`);
});
