import assert from 'node:assert/strict';
import { appendFile, mkdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { OutputMonitor } from '../../src/output/output-monitor.ts';
import { readKeptWindow, retentionSlack } from '../../src/output/retention.ts';
import { SPARE_BYTES } from '../../src/output/retention-enforcer.ts';
import { ManualClock } from '../helpers/manual-clock.ts';
import { mountSmallDisk, type SmallDisk } from '../helpers/small-disk.ts';
import { bytesOf, readAll } from './output-helpers.ts';

const KiB = 1024;
const CAP = 64 * KiB;

/** The byte a job writes at `position` of its stdout here: never zero, so a hole cannot pass for it. */
const byteAt = (position: number) => (position % 251) + 1;

/** Appends the bytes due after `from` until the disk is full; resolves with the stream's new size. */
async function writeUntilFull(path: string, from: number, diskBytes: number): Promise<number> {
  const data = Buffer.alloc(diskBytes * 2);
  for (let i = 0; i < data.length; i++) data[i] = byteAt(from + i);
  // One write larger than the disk: the kernel takes what fits, then says ENOSPC.
  await appendFile(path, data).then(
    () => assert.fail('the disk took more than it holds'),
    (err: NodeJS.ErrnoException) => assert.equal(err.code, 'ENOSPC'),
  );
  return (await stat(path)).size;
}

describe('retention on a full disk', () => {
  let disk: SmallDisk;
  before(async () => {
    disk = await mountSmallDisk('4m');
  });
  after(() => disk.destroy());

  it('a job whose output filled the disk has its kept window moved and the disk freed, at the first move and each one after', async () => {
    const dir = join(disk.dir, 'job');
    await mkdir(dir);
    const errors: Error[] = [];
    const spare = join(disk.dir, '.retention-spare');
    const monitor = new OutputMonitor({
      capBytes: CAP,
      clock: new ManualClock(),
      onError: (err) => errors.push(err),
      spareFile: spare,
    });
    try {
      // As the engine does at its start, while the disk has room.
      await monitor.prepareSpare();
      assert.equal((await stat(spare)).blocks * 512, SPARE_BYTES);
      monitor.watch('filler', dir);
      const stdout = join(dir, 'stdout');
      const diskBytes = 4 * 1024 * KiB;
      let size = 0;
      for (let move = 1; move <= 3; move++) {
        // The first time before any observation: the combined index needs its first block too.
        size = await writeUntilFull(stdout, size, diskBytes);
        assert.equal(await disk.freeBlocks(), 0, `full before move ${move}`);
        await monitor.refresh('filler');
        assert.deepEqual(
          errors.map((err) => err.message),
          [],
          `move ${move}`,
        );
        const kept = await readKeptWindow(dir);
        assert.ok(
          kept.stdout >= size - CAP - retentionSlack(CAP),
          `move ${move}: kept from ${kept.stdout} of ${size}`,
        );
        const onDisk = (await stat(stdout)).blocks * 512;
        assert.ok(onDisk <= CAP + retentionSlack(CAP) + 4 * KiB, `move ${move}: ${onDisk} bytes on disk`);
        assert.ok((await disk.freeBlocks()) > 0, `move ${move} freed the disk`);
        // The spare, given back for the first move (kept.json's first block), is there again.
        assert.equal((await stat(spare)).blocks * 512, SPARE_BYTES, `move ${move}: the spare`);

        // What a reader gets: one marker, then exactly the newest bytes (no zero of a hole).
        for (const selector of ['stdout', 'all'] as const) {
          const [marker, ...rest] = await readAll(dir, selector, 64 * KiB);
          assert.equal(marker?.type, 'truncated', selector);
          assert.equal(marker.cursor, kept.stdout, selector);
          const data = bytesOf(rest);
          assert.equal(kept.stdout + data.length, size, selector);
          assert.ok(
            data.every((byte, i) => byte === byteAt(kept.stdout + i)),
            `${selector} after move ${move}: the bytes written there`,
          );
        }
      }
      assert.equal((await stat(join(dir, 'kept.json'))).size, 544, 'rewritten in place, never grown');
    } finally {
      monitor.close();
    }
  });

  it('keeps a spare an earlier server made whole, and leaves none half-made on a disk without room for it', async () => {
    const spare = join(disk.dir, 'spare-kept');
    const monitor = (errors: Error[] = []) =>
      new OutputMonitor({
        capBytes: CAP,
        clock: new ManualClock(),
        onError: (e) => errors.push(e),
        spareFile: spare,
      });
    const first = monitor();
    await first.prepareSpare();
    const made = await stat(spare, { bigint: true });
    first.close();
    // The next server's start: not written again (its blocks given back a moment, for a job to take).
    const second = monitor();
    await second.prepareSpare();
    assert.equal((await stat(spare, { bigint: true })).mtimeNs, made.mtimeNs, 'left as it was');
    second.close();

    // No room for a whole one: what was written of it is given back, not left holding blocks.
    await rm(spare);
    const filler = join(disk.dir, 'filler');
    await writeUntilFull(filler, 0, 4 * 1024 * KiB);
    const errors: Error[] = [];
    const third = monitor(errors);
    try {
      await third.prepareSpare();
      assert.match(errors.map((e) => e.message).join(), /ENOSPC/);
      assert.equal(await stat(spare).catch(() => 'none'), 'none');
    } finally {
      third.close();
      await rm(filler);
    }
  });
});
