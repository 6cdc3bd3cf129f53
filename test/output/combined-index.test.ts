import assert from 'node:assert/strict';
import { appendFile, open, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import type { OutputStream } from '../../src/core/job.ts';
import { CombinedIndex } from '../../src/output/combined-index.ts';
import { SYNC_FILES } from '../../src/output/file-access.ts';
import { encodeRecord, RECORD_BYTES } from '../../src/output/index-record.ts';
import { OutputMonitor } from '../../src/output/output-monitor.ts';
import { readOutput } from '../../src/output/output-reader.ts';
import type { OutputEvent } from '../../src/output/output-types.ts';
import { bytesOf, fixture, jobDir, readAll, startJob, until } from './output-helpers.ts';

const STEPS: [OutputStream, string][] = [
  ['stdout', 'one'],
  ['stderr', 'two'],
  ['stderr', 'three'],
  ['stdout', 'four'],
  ['stderr', 'five'],
  ['stdout', 'six'],
  ['stdout', 'seven'],
  ['stdout', 'eight'],
  ['stderr', 'nine'],
  ['stdout', 'ten'],
];

/** The combined view as (stream, text) runs, for comparing orders. */
function runs(events: readonly OutputEvent[]): [OutputStream, string][] {
  const out: [OutputStream, string][] = [];
  for (const event of events) {
    if (event.type !== 'data') continue;
    const last = out.at(-1);
    if (last?.[0] === event.stream) last[1] += event.data.toString();
    else out.push([event.stream, event.data.toString()]);
  }
  return out;
}

test('the combined view replays the observed order, and resumes from any cursor', async (t) => {
  const dir = await jobDir(t);
  const monitor = new OutputMonitor({ capBytes: 1024 * 1024 });
  t.after(() => monitor.close());
  const job = await startJob(dir, ['sh', fixture('output-alternate.sh')], 'pipe');
  monitor.watch('alternate', dir);
  let total = 0;
  for (const [stream, text] of STEPS) {
    job.child.stdin!.write(`${stream === 'stdout' ? 'out' : 'err'} ${text}\n`);
    total += text.length + 1;
    const expected = total;
    // The next line goes out only once the monitor has observed this one: the test sets the order.
    await until(monitor, 'alternate', async () => {
      const { end } = await readOutput(dir, { selector: 'all', cursor: 0, limitBytes: 1 });
      return end === expected;
    });
  }
  job.child.stdin!.end();
  assert.equal(await job.exited, 0);
  await monitor.finish('alternate');

  const expectedRuns: [OutputStream, string][] = [
    ['stdout', 'one\n'],
    ['stderr', 'two\nthree\n'],
    ['stdout', 'four\n'],
    ['stderr', 'five\n'],
    ['stdout', 'six\nseven\neight\n'],
    ['stderr', 'nine\n'],
    ['stdout', 'ten\n'],
  ];
  assert.deepEqual(runs(await readAll(dir, 'all', 3)), expectedRuns);
  assert.deepEqual(runs(await readAll(dir, 'all', 1000)), expectedRuns);
  // Growth of the stream named last extends its record: one record per run.
  assert.equal((await stat(join(dir, 'combined.idx'))).size, expectedRuns.length * RECORD_BYTES);

  const combined = Buffer.from(expectedRuns.map(([, text]) => text).join(''));
  const streamAt: OutputStream[] = expectedRuns.flatMap(([stream, text]) =>
    Array<OutputStream>(text.length).fill(stream),
  );
  for (let cursor = 0; cursor <= combined.length; cursor++) {
    const rest = await readAll(dir, 'all', 2, cursor);
    assert.deepEqual(bytesOf(rest), combined.subarray(cursor), `from cursor ${cursor}`);
    if (cursor < combined.length) assert.equal(rest[0]?.stream, streamAt[cursor]);
  }
});

test('bytes written while nothing observed are ordered stdout first at the next observation', async (t) => {
  const dir = await jobDir(t);
  const job = await startJob(dir, ['sh', '-c', 'echo late >&2; echo early']);
  await job.exited;
  // Recovery: the job ended while no server ran; sealing it observes once.
  const monitor = new OutputMonitor({ capBytes: 1024 * 1024 });
  await monitor.finish('unwatched', dir);
  assert.deepEqual(runs(await readAll(dir, 'all', 100)), [
    ['stdout', 'early\n'],
    ['stderr', 'late\n'],
  ]);
  await monitor.finish('unwatched', dir);
  assert.equal((await stat(join(dir, 'combined.idx'))).size, 2 * RECORD_BYTES);
});

test('a torn last record left by a crash is ignored, then indexed again in the same place', async (t) => {
  const dir = await jobDir(t);
  const job = await startJob(dir, ['sh', '-c', 'printf abc; printf de >&2']);
  await job.exited;
  const monitor = new OutputMonitor({ capBytes: 1024 });
  await monitor.finish('torn', dir);
  const index = join(dir, 'combined.idx');
  const end = async () => (await readOutput(dir, { selector: 'all', cursor: 0, limitBytes: 1 })).end;
  assert.equal(await end(), 5);

  await appendFile(index, Buffer.alloc(7, 0xff)); // a partial record
  assert.equal(await end(), 5);
  const torn = Buffer.alloc(RECORD_BYTES);
  encodeRecord({ combinedEnd: 100, stream: 'stderr', streamEnd: 2 }, torn, 0);
  const file = await open(index, 'r+');
  await file.write(torn, 0, RECORD_BYTES, RECORD_BYTES);
  await file.close();
  assert.equal(await end(), 3, 'only the consistent records count');

  await monitor.finish('torn', dir);
  assert.equal((await stat(index)).size, 2 * RECORD_BYTES);
  assert.deepEqual(runs(await readAll(dir, 'all', 10)), [
    ['stdout', 'abc'],
    ['stderr', 'de'],
  ]);
});

test('locate and positionAfter find every position, near the end and far from it, as a scan does', async (t) => {
  const dir = await jobDir(t);
  // 1,000 records (three blocks and a part), of lengths 1 to 7, as the monitor writes them: each of
  // the other stream than the one before (a run of one stream is one record, extended in place).
  const records: { stream: OutputStream; combinedEnd: number; streamEnd: number }[] = [];
  const ends = { stdout: 0, stderr: 0 };
  let combined = 0;
  for (let i = 0; i < 1000; i++) {
    const stream: OutputStream = i % 2 === 0 ? 'stdout' : 'stderr';
    const length = 1 + (i % 7);
    combined += length;
    ends[stream] += length;
    records.push({ stream, combinedEnd: combined, streamEnd: ends[stream] });
  }
  for (const count of [0, 1, 2, 3, 255, 256, 257, 1000]) {
    const file = Buffer.alloc(count * RECORD_BYTES);
    for (const [i, record] of records.slice(0, count).entries()) encodeRecord(record, file, i * RECORD_BYTES);
    await writeFile(join(dir, 'combined.idx'), file);
    const index = await CombinedIndex.open(dir, SYNC_FILES);
    try {
      assert.equal(index.count, count);
      for (let position = 0; position < index.end; position++) {
        const expected = records.findIndex((record) => record.combinedEnd > position);
        assert.equal(await index.locate(position), expected, `locate(${position}) of ${count}`);
      }
      for (const stream of ['stdout', 'stderr'] as const) {
        const last = records.slice(0, count).findLast((record) => record.stream === stream)?.streamEnd ?? 0;
        for (let offset = 0; offset <= last + 1; offset++) {
          const at = records.slice(0, count).findIndex((r) => r.stream === stream && r.streamEnd >= offset);
          const expected =
            offset <= 0
              ? 0
              : at === -1
                ? index.end
                : records[at]!.combinedEnd - (records[at]!.streamEnd - offset);
          assert.equal(
            await index.positionAfter(stream, offset),
            expected,
            `positionAfter(${stream}, ${offset}) of ${count}`,
          );
        }
      }
    } finally {
      await index.close();
    }
  }
});
