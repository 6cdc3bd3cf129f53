import assert from 'node:assert/strict';
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { type DroppedLines, LogDestination } from '../../src/log-destination.ts';
import { mountSmallDisk } from '../helpers/small-disk.ts';

/** A sink that may hold its callbacks back, as a stream whose reader stopped reading does. */
class Sink extends Writable {
  held: (() => void)[] = [];
  hold = false;
  text = '';
  override _write(chunk: Buffer, _encoding: string, callback: (err?: Error | null) => void): void {
    const done = () => {
      this.text += chunk.toString('utf8');
      callback();
    };
    if (this.hold) this.held.push(done);
    else done();
  }
}

const flushed = (destination: LogDestination) =>
  new Promise<void>((resolve) => destination.flush(() => resolve()));

describe('LogDestination', () => {
  it('defect 15: on a full disk drops and counts lines, ends a line cut short, reports the count once a write succeeds, never waits', async () => {
    const disk = await mountSmallDisk('1m');
    const path = join(disk.dir, 'server.log');
    const file = await open(path, 'a');
    try {
      const reports: DroppedLines[] = [];
      const destination = new LogDestination(file.fd, { onRecovered: (dropped) => reports.push(dropped) });
      const line = (n: number) => `${JSON.stringify({ n, msg: 'y'.repeat(200) })}\n`;
      destination.write(line(1));
      await flushed(destination);
      await disk.fill();
      // The log file's last block still takes part of a line or two; the rest is refused.
      for (let n = 2; n <= 60; n++) destination.write(line(n));
      await flushed(destination); // resolves although not everything could be written
      const { written, dropped } = destination.counts;
      assert.equal(written + dropped, 60);
      assert.ok(dropped > 0, 'lines were dropped');
      assert.deepEqual(reports, [], 'nothing reported while nothing can be written');

      await disk.free();
      destination.write(line(61));
      await flushed(destination);
      assert.deepEqual(reports, [{ lines: dropped, cause: 'ENOSPC: no space left on device, write' }]);
      const lines = (await readFile(path, 'utf8')).split('\n');
      assert.equal(lines.pop(), '', 'the file ends with a whole line');
      const sent = new Set(Array.from({ length: 61 }, (_, i) => line(i + 1).trimEnd()));
      const whole = lines.filter((text) => sent.has(text));
      assert.equal(whole.length, written + 1, 'every line counted as written is there, whole');
      assert.ok(lines.length - whole.length <= 1, 'at most one line was cut short, and it was ended');
      assert.equal(lines.at(-1), line(61).trimEnd());
    } finally {
      await file.close();
      await disk.destroy();
    }
  });

  it('defect 15: a target that stops taking lines holds at most maxPendingBytes of them and drops the rest', async () => {
    const sink = new Sink();
    sink.hold = true;
    const reports: DroppedLines[] = [];
    const line = `${JSON.stringify({ msg: 'x'.repeat(90) })}\n`; // 101 bytes
    const destination = new LogDestination(sink, {
      maxPendingBytes: 1000,
      onRecovered: (dropped) => reports.push(dropped),
    });
    for (let i = 0; i < 100; i++) destination.write(line);
    // The first line is being written; nine more fit the backlog; the other 90 are dropped.
    assert.deepEqual(destination.counts, { written: 0, dropped: 90 });

    sink.hold = false;
    for (const release of sink.held.splice(0)) release();
    await flushed(destination);
    for (const release of sink.held.splice(0)) release();
    await flushed(destination);
    assert.deepEqual(destination.counts, { written: 10, dropped: 90 });
    assert.equal(sink.text, line.repeat(10));
    assert.equal(reports[0]?.lines, 90);
    assert.match(reports[0]?.cause ?? '', /more than 1000 bytes of log lines were waiting/);
  });
});
