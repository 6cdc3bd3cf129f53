import { execFile } from 'node:child_process';
import { existsSync, watch } from 'node:fs';
import { mkdtemp, rm, stat, statfs, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** A small tmpfs of its own (the tests run as root), to fill up and free again. */
export interface SmallDisk {
  /** Where it is mounted. */
  readonly dir: string;
  /**
   * Fills every free block with a filler file; resolves once no block is left, or `leave` blocks
   * (room for one small file, such as a job's exit record, and nothing after it).
   */
  fill(leave?: number): Promise<void>;
  /** Deletes the filler: space returns. */
  free(): Promise<void>;
  /** Free blocks now. */
  freeBlocks(): Promise<number>;
  /** Unmounts (lazily, should a descriptor still be open) and deletes the mount point. */
  destroy(): Promise<void>;
}

export async function mountSmallDisk(size = '4m'): Promise<SmallDisk> {
  const dir = await mkdtemp(join(tmpdir(), 'jw-small-disk-'));
  await run('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0755`, 'tmpfs', dir]);
  const filler = join(dir, 'filler');
  const freeBlocks = async () => (await statfs(dir)).bavail;
  return {
    dir,
    freeBlocks,
    fill: async (leave = 0) => {
      const { bsize, blocks } = await statfs(dir);
      // One write larger than the disk: the kernel takes what fits, then says ENOSPC.
      await writeFile(filler, Buffer.alloc(bsize * blocks)).then(
        () => {
          throw new Error(`${dir} took ${bsize * blocks} bytes without filling up`);
        },
        (err: NodeJS.ErrnoException) => {
          if (err.code !== 'ENOSPC') throw err;
        },
      );
      if (leave > 0) await truncate(filler, (await stat(filler)).size - leave * bsize);
      const left = await freeBlocks();
      if (left !== leave) throw new Error(`${dir} has ${left} free blocks after filling, not ${leave}`);
    },
    free: () => rm(filler, { force: true }),
    destroy: async () => {
      await run('umount', ['-l', dir]);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A named pipe: a job that reads from it waits until the test writes a line. */
export function makeFifo(path: string): Promise<void> {
  return run('mkfifo', [path]).then(() => undefined);
}

/**
 * Resolves once the wrapper of the job in `jobDir` has made a try to write its exit record and
 * that try is over: its temporary file came and went (on a full disk the try failed and the file
 * was removed; had it succeeded, it was renamed to `exit`). The job's main process has ended by
 * then. Waiting for the file to go, not for it to appear, matters: a disk freed between the
 * wrapper's open and its write would let that first try succeed. Listen before releasing the job.
 */
export function whenWrapperTriesToRecord(jobDir: string): Promise<void> {
  const tmp = join(jobDir, 'exit.tmp');
  return new Promise<void>((resolve, reject) => {
    const watcher = watch(jobDir, (_event, name) => {
      if (name !== 'exit.tmp' || existsSync(tmp)) return;
      watcher.close();
      resolve();
    });
    watcher.on('error', reject);
  });
}
