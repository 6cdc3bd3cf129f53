import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { followAll, type Harness, openHarness, readAll } from '../helpers/engine-harness.ts';

const FIXTURES = new URL('../fixtures/', import.meta.url).pathname;
const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const me = { user: 'tester' };

describe('engine output', () => {
  let h: Harness;
  before(async () => {
    h = await openHarness();
  });
  after(() => h.destroy());

  it('1 MiB of random bytes on each stream reads back byte-identical, each stream on its own', async () => {
    const job = await h.engine.start(
      { command: 'sh', args: ['-c', 'head -c 1048576 /dev/urandom; head -c 1048576 /dev/urandom >&2'] },
      me,
    );
    // Follow while it runs, then read back after it ended: both must equal the files.
    const [out, err] = await Promise.all([
      followAll(h.engine, job.id, 'stdout'),
      followAll(h.engine, job.id, 'stderr'),
    ]);
    const dir = join(h.dataDir, 'jobs', job.id);
    const [fileOut, fileErr] = await Promise.all([
      readFile(join(dir, 'stdout')),
      readFile(join(dir, 'stderr')),
    ]);
    assert.equal(fileOut.length, 1048576);
    assert.equal(fileErr.length, 1048576);
    assert.equal(sha(out.data), sha(fileOut));
    assert.equal(sha(err.data), sha(fileErr));
    assert.notEqual(sha(fileOut), sha(fileErr));
    assert.equal(sha(await readAll(h.engine, job.id, 'stdout')), sha(fileOut));
    assert.equal(sha(await readAll(h.engine, job.id, 'stderr')), sha(fileErr));
    assert.equal(out.end.status, 'succeeded');
    assert.deepEqual(out.end.outputBytes, { stdout: 1048576, stderr: 1048576 });
    // The combined view holds every byte of both streams.
    assert.equal((await readAll(h.engine, job.id, 'all')).length, 2 * 1048576);
  });

  it('three followers from cursor 0 each receive exactly the stream and the final status', async () => {
    const job = await h.engine.start({ command: join(FIXTURES, 'print-for.sh'), args: ['2', '4'] }, me);
    const followers = await Promise.all([1, 2, 3].map(() => followAll(h.engine, job.id, 'stdout')));
    const errFollower = await followAll(h.engine, job.id, 'stderr');
    const dir = join(h.dataDir, 'jobs', job.id);
    const file = await readFile(join(dir, 'stdout'));
    assert.ok(file.length > 100, `the job printed: ${file.length} bytes, ${followers[0]?.end.exit?.reason}`);
    for (const f of followers) {
      assert.equal(sha(f.data), sha(file));
      assert.equal(f.end.status, 'failed');
      assert.equal(f.end.exit?.exitCode, 4);
      assert.equal(f.end.exit?.reason, 'exited with code 4');
    }
    assert.equal(sha(errFollower.data), sha(await readFile(join(dir, 'stderr'))));
  });

  it('keeps disk use within the cap and marks what it dropped', async () => {
    const small = await openHarness({ outputCapBytes: 256 * 1024 });
    try {
      await retention(small);
    } finally {
      await small.destroy();
    }
  });
});

async function retention(h: Harness): Promise<void> {
  {
    // ~6.9 MB of numbered lines, far over the 256 KiB cap; deterministic, so the tail is known.
    const job = await h.engine.start({ command: 'seq', args: ['1', '1000000'] }, me);
    const done = await h.engine.waitFor(job.id);
    assert.equal(done.status, 'succeeded');
    const expected = Buffer.from(Array.from({ length: 1_000_000 }, (_, i) => `${i + 1}\n`).join(''));
    assert.equal(done.outputBytes.stdout, expected.length);
    const file = await stat(join(h.dataDir, 'jobs', job.id, 'stdout'));
    assert.equal(file.size, expected.length, 'the logical size (and every cursor) stays');
    const cap = 256 * 1024;
    assert.ok(
      file.blocks * 512 <= cap + cap / 8 + 64 * 1024 + 4096,
      `disk use ${file.blocks * 512} within the cap`,
    );

    const first = await h.engine.readOutput(job.id, { selector: 'stdout', cursor: 0, limitBytes: 1 << 20 });
    const marker = first.events[0];
    assert.equal(marker?.type, 'truncated');
    const kept = Buffer.concat(first.events.flatMap((e) => (e.type === 'data' ? [e.data] : [])));
    assert.ok(marker?.type === 'truncated' && marker.skippedBytes + kept.length === expected.length);
    assert.ok(
      kept.equals(expected.subarray(expected.length - kept.length)),
      'the kept bytes are the newest ones',
    );
    const followed = await followAll(h.engine, job.id, 'stdout');
    assert.equal(followed.truncated + followed.data.length, expected.length);
  }
}
