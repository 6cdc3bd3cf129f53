import { open, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ValidationError } from '../core/errors.ts';
import { identify, isSameProcessAlive } from './process-identity.ts';

/** The file that says which server uses a data directory. */
export const LOCK_FILE = 'server.lock';

export interface DataDirLock {
  release(): Promise<void>;
}

/**
 * Claims a data directory for this process: two servers on one directory would both adopt the
 * same jobs and write the same output indexes. The lock file names the holder by pid, process
 * start time and boot id, so a lock left by a server that died (even one whose pid was reused)
 * is taken over, and a live holder is refused with a `ValidationError` on `dataDir`.
 */
export async function lockDataDir(dataDir: string): Promise<DataDirLock> {
  const path = join(dataDir, LOCK_FILE);
  const me = identify(process.pid);
  if (!me) throw new Error('Cannot read this process identity from /proc');
  const record = `${JSON.stringify({ pid: process.pid, ...me })}\n`;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const file = await open(path, 'wx', 0o600);
      try {
        await file.writeFile(record);
        await file.sync();
      } finally {
        await file.close();
      }
      return { release: () => rm(path, { force: true }) };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const holder = await readHolder(path);
    if (holder && isSameProcessAlive(holder)) {
      throw new ValidationError(
        'dataDir',
        `Another jobworker server (pid ${holder.pid}) already uses ${dataDir}; stop it first or choose another --data-dir`,
      );
    }
    await rm(path, { force: true }); // stale: its server is gone
  }
  throw new ValidationError('dataDir', `Could not lock ${dataDir}: another server is starting on it`);
}

async function readHolder(
  path: string,
): Promise<{ pid: number; startTicks: number; bootId: string } | undefined> {
  try {
    const value = JSON.parse(await readFile(path, 'utf8')) as {
      pid?: unknown;
      startTicks?: unknown;
      bootId?: unknown;
    };
    if (
      typeof value.pid === 'number' &&
      typeof value.startTicks === 'number' &&
      typeof value.bootId === 'string'
    ) {
      return { pid: value.pid, startTicks: value.startTicks, bootId: value.bootId };
    }
  } catch {
    // unreadable or torn: treated as stale
  }
  return undefined;
}
