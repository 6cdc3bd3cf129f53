import { closeSync, openSync, realpathSync } from 'node:fs';
import { readFile, rm, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { writeFileAtomic } from '../auth/atomic-file.ts';
import { ValidationError } from '../core/errors.ts';
import { isSameProcessAlive } from './process-identity.ts';

/** The file the lock is held on (an empty SQLite database: its lock is a kernel `fcntl` lock). */
export const LOCK_FILE = 'server.lock';

/** Who holds the lock, for the refusal message and for operators: `{"pid": ...}`. Informational only. */
export const HOLDER_FILE = 'server.pid';

export interface DataDirLock {
  release(): Promise<void>;
}

/**
 * Claims a data directory for this process: two servers on one directory would both adopt the
 * same jobs and write the same output indexes. The claim is a kernel lock (`fcntl`, taken through
 * SQLite's `BEGIN IMMEDIATE`, Node's only way to one) held on an open descriptor of `server.lock`
 * for the server's life. Taking it is one atomic step, so two servers starting at the same moment
 * cannot both win; and the kernel drops it when its holder dies, however it dies, so there is no
 * stale lock to judge or take over. A live holder is refused with a `ValidationError` on `dataDir`
 * whose message names `option`, the way the caller chose the directory. An embedded `Worker`
 * takes the same lock: a server and a Worker on one directory would as well.
 */
export function lockDataDir(dataDir: string, option = '--data-dir'): Promise<DataDirLock> {
  return lockDirectory(dataDir, { field: 'dataDir', option });
}

/**
 * Claims the directory of the jobs' io directories (`--io-dir`, or the default one named after
 * the data directory) as `lockDataDir` claims a data directory, with the same two files in it:
 * two servers given one (a copied unit file, or one server's default named to another) would
 * each sweep the other's live result files at their start as left over. The job accounts that
 * pass through it (mode 0711) cannot open either file.
 */
export function lockIoDir(ioDir: string): Promise<DataDirLock> {
  return lockDirectory(ioDir, { field: 'ioDir', option: '--io-dir' });
}

/** Which setting chose the directory: the error's field, and how its message names it. */
interface LockedAs {
  readonly field: 'dataDir' | 'ioDir';
  readonly option: string;
}

async function lockDirectory(dataDir: string, as: LockedAs): Promise<DataDirLock> {
  // By its real path: any spelling of a directory this process holds is the same claim.
  const path = join(realpathSync(dataDir), LOCK_FILE);
  if (heldHere.has(path)) throw heldBy(process.pid, dataDir, as);
  heldHere.add(path);
  try {
    const lock = await claim(path, dataDir, as);
    // Once only: a second release must not free a later claim of the same directory.
    let released: Promise<void> | undefined;
    return {
      release: () => {
        released ??= lock.release().then(() => {
          heldHere.delete(path);
        });
        return released;
      },
    };
  } catch (err) {
    heldHere.delete(path);
    throw err;
  }
}

/**
 * The lock files this process holds or is claiming. A kernel `fcntl` lock belongs to the process,
 * and closing any of its descriptors of the file drops them all: a second claim in this process
 * (an embedded `Worker` opened twice on one directory) must be refused before it opens the file,
 * or its refusal would leave the directory free for another process.
 */
const heldHere = new Set<string>();

/** Takes the kernel lock on `path` (see `lockDataDir`), which this process does not hold yet. */
async function claim(path: string, dataDir: string, as: LockedAs): Promise<DataDirLock> {
  // Created by us with our mode; SQLite would create it with the umask's. Never deleted: a new
  // file in its place would be a second, free lock beside the one a live server holds.
  closeSync(openSync(path, 'a', 0o600));
  const db = new DatabaseSync(path, { timeout: 0 });
  // IMMEDIATE, not EXCLUSIVE: it takes SQLite's RESERVED lock, which one connection at a time may
  // hold, and nothing more. EXCLUSIVE also waits for every SHARED lock to go, so two servers
  // starting together could each hold SHARED, block each other, and both be refused.
  try {
    try {
      db.exec('BEGIN IMMEDIATE');
    } catch (err) {
      if ((err as { errcode?: number }).errcode !== SQLITE_NOTADB) throw err;
      await clearLegacyLock(path, dataDir, as);
      db.exec('BEGIN IMMEDIATE');
    }
  } catch (err) {
    db.close();
    if ((err as { errcode?: number }).errcode !== SQLITE_BUSY) throw err;
    throw heldBy(await readHolderPid(dataDir), dataDir, as);
  }
  const holderFile = join(dataDir, HOLDER_FILE);
  try {
    await writeFileAtomic(holderFile, `${JSON.stringify({ pid: process.pid })}\n`, 0o600);
  } catch (err) {
    db.close();
    throw err;
  }
  let released: Promise<void> | undefined;
  return {
    release: () => {
      released ??= (async () => {
        // The holder file goes first: once the lock is free, the next holder writes its own.
        await rm(holderFile, { force: true });
        db.close();
      })();
      return released;
    },
  };
}

/** SQLite's "database is locked" and "file is not a database". */
const SQLITE_BUSY = 5;
const SQLITE_NOTADB = 26;

/**
 * Earlier versions wrote the holder's identity as JSON into `server.lock` itself. Such a file is
 * emptied (never replaced, see above) once its holder is known to be gone; emptying it twice, or
 * after another server took the kernel lock on it, changes nothing.
 */
async function clearLegacyLock(path: string, dataDir: string, as: LockedAs): Promise<void> {
  let holder: { pid?: unknown; startTicks?: unknown; bootId?: unknown } = {};
  try {
    holder = JSON.parse(await readFile(path, 'utf8')) as typeof holder;
  } catch {
    // torn or foreign: its writer never finished, so no server holds it
  }
  const { pid, startTicks, bootId } = holder;
  if (
    typeof pid === 'number' &&
    typeof startTicks === 'number' &&
    typeof bootId === 'string' &&
    isSameProcessAlive({ pid, startTicks, bootId })
  ) {
    throw heldBy(pid, dataDir, as);
  }
  await truncate(path, 0);
}

/** The refusal of a directory another live process holds (`as`: how the caller named it). */
function heldBy(pid: number | undefined, dataDir: string, as: LockedAs): ValidationError {
  return new ValidationError(
    as.field,
    `Another jobworker server or Worker${pid === undefined ? '' : ` (pid ${pid})`} already uses ` +
      `${dataDir}; stop it first or choose another ${as.option}`,
  );
}

async function readHolderPid(dataDir: string): Promise<number | undefined> {
  try {
    const value = JSON.parse(await readFile(join(dataDir, HOLDER_FILE), 'utf8')) as { pid?: unknown };
    return typeof value.pid === 'number' ? value.pid : undefined;
  } catch {
    return undefined; // not written yet, or being replaced: the message goes without a pid
  }
}
