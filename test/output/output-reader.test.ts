import assert from 'node:assert/strict';
import { readSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { followOutput } from '../../src/output/output-follower.ts';
import { OutputMonitor } from '../../src/output/output-monitor.ts';
import { OutputReader, readOutput } from '../../src/output/output-reader.ts';
import { bytesOf, collect, jobDir, readAll, sha256, startJob } from './output-helpers.ts';

const MiB = 1024 * 1024;

test('1 MiB of random bytes per stream reads back exactly, by pages and by following', async (t) => {
  const dir = await jobDir(t);
  const monitor = new OutputMonitor({ capBytes: 64 * MiB, onError: (err) => assert.fail(err) });
  t.after(() => monitor.close());
  const job = await startJob(dir, [
    'sh',
    '-c',
    `head -c ${MiB} /dev/urandom; head -c ${MiB} /dev/urandom >&2`,
  ]);
  monitor.watch('random', dir);
  const followers = (['stdout', 'stderr', 'all'] as const).map((selector) =>
    collect(followOutput(monitor, dir, 'random', { selector, cursor: 0, batchBytes: 16 * 1024 })),
  );
  assert.equal(await job.exited, 0);
  await monitor.finish('random');
  const [followedOut, followedErr, followedAll] = await Promise.all(followers);

  const stdout = await readFile(join(dir, 'stdout'));
  const stderr = await readFile(join(dir, 'stderr'));
  assert.equal(stdout.length, MiB);
  assert.equal(stderr.length, MiB);
  assert.deepEqual(await monitor.sizes(dir), { stdout: MiB, stderr: MiB });

  // Odd page sizes so that pages never line up with the writer's chunks.
  assert.equal(sha256(bytesOf(await readAll(dir, 'stdout', 4093))), sha256(stdout));
  assert.equal(sha256(bytesOf(await readAll(dir, 'stderr', 7919))), sha256(stderr));
  const all = await readAll(dir, 'all', 5003);
  assert.equal(sha256(bytesOf(all, 'stdout')), sha256(stdout));
  assert.equal(sha256(bytesOf(all, 'stderr')), sha256(stderr));

  assert.equal(sha256(bytesOf(followedOut!)), sha256(stdout));
  assert.equal(sha256(bytesOf(followedErr!)), sha256(stderr));
  assert.equal(sha256(bytesOf(followedAll!, 'stdout')), sha256(stdout));
  assert.equal(sha256(bytesOf(followedAll!, 'stderr')), sha256(stderr));
  // Written one stream after the other, so the combined view is stdout then stderr.
  assert.equal(sha256(bytesOf(followedAll!)), sha256(Buffer.concat([stdout, stderr])));
});

test('a page reports where it ends and where the view ends', async (t) => {
  const dir = await jobDir(t);
  const job = await startJob(dir, ['sh', '-c', 'printf hello; printf oops >&2']);
  await job.exited;
  const monitor = new OutputMonitor({ capBytes: MiB });
  await monitor.finish('done', dir);

  const first = await readOutput(dir, { selector: 'stdout', cursor: 1, limitBytes: 3 });
  assert.deepEqual(first.events, [{ type: 'data', stream: 'stdout', data: Buffer.from('ell'), cursor: 4 }]);
  assert.equal(first.cursor, 4);
  assert.equal(first.end, 5);
  const atEnd = await readOutput(dir, { selector: 'stderr', cursor: 4, limitBytes: 10 });
  assert.deepEqual(atEnd, { events: [], cursor: 4, end: 4 });
  const all = await readOutput(dir, { selector: 'all', cursor: 3, limitBytes: 4 });
  assert.deepEqual(all.events, [
    { type: 'data', stream: 'stdout', data: Buffer.from('lo'), cursor: 5 },
    { type: 'data', stream: 'stderr', data: Buffer.from('oo'), cursor: 7 },
  ]);
  assert.equal(all.end, 9);
});

test('a job directory without output reads as empty', async (t) => {
  const dir = await jobDir(t);
  for (const selector of ['stdout', 'stderr', 'all'] as const) {
    assert.deepEqual(await readOutput(dir, { selector, cursor: 0, limitBytes: 10 }), {
      events: [],
      cursor: 0,
      end: 0,
    });
  }
});

test('spans of a sealed reader name where the bytes of a read lie; an unsealed reader gives none', async (t) => {
  const dir = await jobDir(t);
  const job = await startJob(dir, ['sh', '-c', 'printf hello; printf oops >&2; printf world']);
  await job.exited;
  const monitor = new OutputMonitor({ capBytes: MiB });
  // Observed after the end: the combined view is stdout then stderr, in two stretches.
  await monitor.finish('done', dir);

  const live = await OutputReader.open(dir, 'all');
  t.after(() => live.close());
  assert.equal(live.sealed, false);
  await assert.rejects(live.spans(0, 10), /Only a sealed reader/);

  const reader = await OutputReader.open(dir, 'all', { sealed: true });
  t.after(() => reader.close());
  const read = await reader.read(2, 20);
  const spans = await reader.spans(2, 20);
  assert.equal(spans.end, read.end);
  assert.equal(spans.cursor, read.cursor);
  // Each data span, read from its descriptor at its position, is the data event `read` gave.
  assert.equal(spans.spans.length, read.events.length);
  for (const [i, span] of spans.spans.entries()) {
    const event = read.events[i]!;
    assert.equal(span.type, 'data');
    assert.equal(event.type, 'data');
    if (span.type !== 'data' || event.type !== 'data') continue;
    assert.equal(span.stream, event.stream);
    assert.equal(span.cursor, event.cursor);
    const bytes = Buffer.alloc(span.length);
    assert.equal(readSync(span.fd, bytes, 0, span.length, span.position), span.length);
    assert.deepEqual(bytes, event.data);
  }
  assert.deepEqual(
    read.events.map((e) => (e.type === 'data' ? `${e.stream}:${e.data}` : e.type)),
    ['stdout:lloworld', 'stderr:oops'],
  );
  await assert.rejects(reader.spans(read.end + 1, 10), /cursor/i);
});
