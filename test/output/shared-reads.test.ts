import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { OutputEvent, OutputRead } from '../../src/output/output-types.ts';
import { isSharedBatch, SharedReads } from '../../src/output/shared-reads.ts';

/** A read of `text` at cursor 0 (its events a new array each time). */
function readOf(text: string): OutputRead {
  const data = Buffer.from(text);
  return {
    events: [{ type: 'data', stream: 'stdout', data, cursor: data.length }],
    cursor: data.length,
    end: 0,
  };
}

describe('SharedReads', () => {
  it('gives every reader of one key the same read, its events marked shared', async () => {
    const reads = new SharedReads();
    let started = 0;
    const start = async () => {
      started++;
      return readOf('once\n');
    };
    const [first, second] = await Promise.all([
      reads.get('all 0 65536', start),
      reads.get('all 0 65536', start),
    ]);
    assert.equal(started, 1, 'one read for both');
    assert.equal(first, second);
    assert.equal(isSharedBatch(first!.events), true);
    const other = await reads.get('stdout 0 65536', start);
    assert.equal(started, 2, 'another key reads again');
    assert.notEqual(other.events, first!.events);
  });

  it("does not mark a read it did not hand out (a follower's own)", () => {
    const own: OutputEvent[] = readOf('mine\n').events;
    assert.equal(isSharedBatch(own), false);
  });

  it('drops a failed read, so that the next reader tries again, and marks nothing of it', async () => {
    const reads = new SharedReads();
    const failed = reads.get('all 0 65536', async () => {
      throw new Error('EIO');
    });
    await assert.rejects(failed, /EIO/);
    const again = await reads.get('all 0 65536', async () => readOf('later\n'));
    assert.equal(isSharedBatch(again.events), true);
    assert.equal(again.events.length, 1);
  });

  it('forgets every read at clear(): a reader after a growth reads afresh', async () => {
    const reads = new SharedReads();
    const before = await reads.get('all 0 65536', async () => readOf('a\n'));
    reads.clear();
    const after = await reads.get('all 0 65536', async () => readOf('a\n'));
    assert.notEqual(after, before);
  });
});
