import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ASYNC_FILES, SYNC_FILES } from '../../src/output/file-access.ts';
import { OutputMonitor } from '../../src/output/output-monitor.ts';
import { OutputReader } from '../../src/output/output-reader.ts';
import type { OutputEvent, OutputSelector } from '../../src/output/output-types.ts';
import { bytesOf, jobDir, readAll, startJob } from './output-helpers.ts';

// Both streams in short alternating runs, so the combined view has many index records.
const INTERLEAVED = 'i=0; while [ $i -lt 3000 ]; do i=$((i + 1)); echo "out $i"; echo "err $i" >&2; done';

/** Pages through a view with one reused page, copying each page's events before the next read. */
async function readWithPage(
  dir: string,
  selector: OutputSelector,
  pageBytes: number,
  synchronous: boolean,
): Promise<OutputEvent[]> {
  const reader = await OutputReader.open(dir, selector, { files: synchronous ? SYNC_FILES : ASYNC_FILES });
  const page = Buffer.alloc(pageBytes);
  const events: OutputEvent[] = [];
  try {
    let cursor = 0;
    for (;;) {
      const read = await reader.read(cursor, pageBytes, page);
      if (read.events.length === 0) return events;
      for (const e of read.events) {
        if (e.type === 'data') assert.equal(e.data.buffer, page.buffer, 'the bytes lie in the page');
        events.push(e.type === 'data' ? { ...e, data: Buffer.from(e.data) } : e);
      }
      cursor = read.cursor;
    }
  } finally {
    await reader.close();
  }
}

test('reads into a reused page, synchronous or not, give exactly the bytes of a plain read', async (t) => {
  const dir = await jobDir(t);
  const monitor = new OutputMonitor({ capBytes: 64 * 1024 * 1024, onError: (err) => assert.fail(err) });
  t.after(() => monitor.close());
  const job = await startJob(dir, ['sh', '-c', INTERLEAVED]);
  monitor.watch('mixed', dir);
  // Observed while it runs, so that the combined view alternates between the streams.
  const follower = monitor.subscribe('mixed', () => {});
  assert.equal(await job.exited, 0);
  await monitor.finish('mixed');
  follower?.();
  for (const selector of ['stdout', 'stderr', 'all'] as const) {
    const plain = await readAll(dir, selector, 1000);
    for (const synchronous of [false, true]) {
      const pooled = await readWithPage(dir, selector, 1000, synchronous);
      assert.ok(bytesOf(pooled).equals(bytesOf(plain)), `${selector}, synchronous: ${synchronous}`);
      assert.deepEqual(
        pooled.map((e) => [e.type, e.cursor]),
        plain.map((e) => [e.type, e.cursor]),
      );
    }
  }
});

test('a page smaller than the limit is refused before any read', async (t) => {
  const dir = await jobDir(t);
  const job = await startJob(dir, ['sh', '-c', 'echo hello']);
  await job.exited;
  const reader = await OutputReader.open(dir, 'stdout');
  t.after(() => reader.close());
  await assert.rejects(reader.read(0, 100, Buffer.alloc(10)), /A page of 10 bytes cannot hold 100/);
});

test('a synchronous open of a missing file is a rejection, not a throw', async () => {
  await assert.rejects(SYNC_FILES.open('/nonexistent/jobworker/stdout'), { code: 'ENOENT' });
  assert.deepEqual(await SYNC_FILES.keptWindow('/nonexistent/jobworker'), { stdout: 0, stderr: 0 });
});

test('a sealed reader of a job whose output was trimmed reads what a plain read does', async (t) => {
  const dir = await jobDir(t);
  const monitor = new OutputMonitor({ capBytes: 64 * 1024, onError: (err) => assert.fail(err) });
  t.after(() => monitor.close());
  const job = await startJob(dir, ['seq', '1', '200000']);
  monitor.watch('trimmed', dir);
  assert.equal(await job.exited, 0);
  await monitor.finish('trimmed');
  for (const selector of ['stdout', 'all'] as const) {
    const plain = await readAll(dir, selector, 4096);
    assert.equal(plain[0]?.type, 'truncated', 'retention dropped the start');
    const reader = await OutputReader.open(dir, selector, { sealed: true });
    const events: OutputEvent[] = [];
    try {
      for (let cursor = 0; ; ) {
        const read = await reader.read(cursor, 4096);
        if (read.events.length === 0) break;
        events.push(...read.events);
        cursor = read.cursor;
      }
    } finally {
      await reader.close();
    }
    assert.deepEqual(events, plain, selector);
  }
});
