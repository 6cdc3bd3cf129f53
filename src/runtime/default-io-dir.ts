import { createHash } from 'node:crypto';
import { readdirSync, statfsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

/** statfs(2)'s `f_type` of a tmpfs. */
const TMPFS_MAGIC = 0x01021994;
/**
 * The least size of a tmpfs that takes the io directories: a job may leave a result of up to
 * 1 MiB there, and a container's /dev/shm is often 64 MiB (Docker's default), which a few dozen
 * tasks would fill.
 */
export const MIN_IO_TMPFS_BYTES = 1024 ** 3;
/** The tmpfs every Linux host mounts (glibc's POSIX shared memory lives there). */
const SHARED_MEMORY_DIR = '/dev/shm';

/** Where `defaultIoDir` looks; tests point it elsewhere. */
export interface IoDirPlaces {
  /** The temp directory. Default `os.tmpdir()`. */
  readonly tmpdir?: string;
  /** The tmpfs to prefer. Default /dev/shm. */
  readonly tmpfs?: string;
  /** statfs(2) of a path. Default `fs.statfsSync`. */
  readonly statfs?: (path: string) => {
    readonly type: number;
    readonly bsize: number;
    readonly blocks: number;
  };
}

/**
 * Where the jobs of the server on `dataDir` get their io directories by default (see
 * `prepareIoDir`): `jobworker-io-<hash of dataDir>`, the same across restarts (an adopted job
 * keeps its paths), in /dev/shm when that is a tmpfs of at least `MIN_IO_TMPFS_BYTES`, else in
 * the temp directory.
 *
 * Why memory rather than disk: every job makes its directory at its start and removes it at its
 * end. On a disk file system that is an inode allocated and freed per job, and ext4 without a
 * journal skips, at each allocation, every inode of the block group freed in the last minutes
 * (`recently_deleted`): at a few hundred jobs a second, each mkdir then cost 0.5-1 ms of kernel
 * time (`perf`: `find_inode_bit`), 1.2 ms of CPU per job in all. On a tmpfs it costs microseconds.
 *
 * A directory left by an earlier version in the temp directory that still holds jobs' directories
 * (jobs that ran on through an upgrade) stays in use, so those jobs' results are found.
 */
export function defaultIoDir(dataDir: string, places: IoDirPlaces = {}): string {
  const name = `jobworker-io-${createHash('sha256').update(resolve(dataDir)).digest('hex').slice(0, 16)}`;
  const inTmp = join(places.tmpdir ?? tmpdir(), name);
  const tmpfs = places.tmpfs ?? SHARED_MEMORY_DIR;
  let roomy = false;
  try {
    const fs = (places.statfs ?? statfsSync)(tmpfs);
    roomy = fs.type === TMPFS_MAGIC && fs.bsize * fs.blocks >= MIN_IO_TMPFS_BYTES;
  } catch {
    // No such directory, or not ours to read: the temp directory it is.
  }
  if (!roomy || hasEntries(inTmp)) return inTmp;
  return join(tmpfs, name);
}

function hasEntries(dir: string): boolean {
  try {
    return readdirSync(dir).length > 0;
  } catch {
    return false;
  }
}
