import assert from 'node:assert/strict';
import { statfsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { test } from 'node:test';
import { defaultIoDir, MIN_IO_TMPFS_BYTES } from '../../src/runtime/default-io-dir.ts';

const TMPFS_MAGIC = 0x01021994;
const EXT4_MAGIC = 0xef53;

async function scratch(t: { after: (fn: () => Promise<void>) => void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'jobworker-iodir-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

test('the io directory goes to /dev/shm when it is a roomy tmpfs, else to the temp directory', async (t) => {
  const tmp = await scratch(t);
  const shm = statfsSync('/dev/shm', { bigint: false });
  const shmIsRoomy = shm.type === TMPFS_MAGIC && shm.bsize * shm.blocks >= MIN_IO_TMPFS_BYTES;
  const dir = defaultIoDir('/var/lib/jobworker', { tmpdir: tmp });
  assert.equal(dirname(dir), shmIsRoomy ? '/dev/shm' : tmp);
  assert.match(basename(dir), /^jobworker-io-[0-9a-f]{16}$/);
  // The same for the same data directory (however it is spelled), another for another.
  assert.equal(defaultIoDir('/var/lib/jobworker/', { tmpdir: tmp }), dir);
  assert.notEqual(defaultIoDir('/var/lib/other', { tmpdir: tmp }), dir);
});

test('a small tmpfs, a disk file system or an unreadable one leaves the io directory in the temp directory', async (t) => {
  const tmp = await scratch(t);
  const fs = (type: number, bytes: number) => () => ({ type, bsize: 4096, blocks: bytes / 4096 });
  const at = (statfs: () => { type: number; bsize: number; blocks: number }) =>
    dirname(defaultIoDir('/data', { tmpdir: tmp, tmpfs: '/fast', statfs }));
  assert.equal(at(fs(TMPFS_MAGIC, MIN_IO_TMPFS_BYTES)), '/fast');
  assert.equal(at(fs(TMPFS_MAGIC, 64 * 1024 * 1024)), tmp, "Docker's default /dev/shm of 64 MiB");
  assert.equal(at(fs(EXT4_MAGIC, 100 * MIN_IO_TMPFS_BYTES)), tmp);
  assert.equal(
    dirname(defaultIoDir('/data', { tmpdir: tmp, tmpfs: join(tmp, 'no-such-dir') })),
    tmp,
    'a tmpfs path that does not exist',
  );
});

test('an io directory an earlier version left in the temp directory with jobs in it stays in use', async (t) => {
  const tmp = await scratch(t);
  const roomy = () => ({ type: TMPFS_MAGIC, bsize: 4096, blocks: MIN_IO_TMPFS_BYTES / 4096 });
  const places = { tmpdir: tmp, tmpfs: '/fast', statfs: roomy };
  const legacy = join(tmp, basename(defaultIoDir('/data', places)));
  // Empty: nothing runs with paths there, so the new place is taken.
  await mkdir(legacy, { recursive: true });
  assert.equal(defaultIoDir('/data', places), join('/fast', basename(legacy)));
  // A job still running from before the upgrade has its directory there: its result is read there.
  await mkdir(join(legacy, '0197a3f0-job'));
  assert.equal(defaultIoDir('/data', places), legacy);
});
