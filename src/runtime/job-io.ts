import { constants, lstatSync, type Stats } from 'node:fs';
import {
  chmod,
  type FileHandle,
  lchown,
  lstat,
  mkdir,
  mkdtemp,
  open,
  readdir,
  rm,
  rmdir,
  unlink,
} from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { childPath } from '../core/child-path.ts';
import { type Clock, clockDeadline } from '../core/clock.ts';
import type { JobAccount } from '../core/job.ts';
import type { RemovalReply } from './spawner-client.ts';
import type { SpawnUser } from './spawner-protocol.ts';

/** How long the removal of what a job left in its io directory may take as its account (`removeJobIo`). */
export const IO_REMOVAL_MS = 60_000;

/** The largest result a job may leave at `JOBWORKER_RESULT`: 1 MiB. */
export const RESULT_MAX_BYTES = 1024 * 1024;

/**
 * Errors reading a job's result that pass: no descriptor or memory to spare, an interrupted call,
 * an I/O error of the disk, a lease on the file (`EAGAIN`, which the kernel breaks within
 * `/proc/sys/fs/lease-break-time`). Anything else (a symlink, not a regular file, another owner,
 * too large, not JSON, no permission) is the job's doing and stays its `resultError`: retried, it
 * would keep its end from ever being recorded.
 */
const PASSING_ERRORS: ReadonlySet<string> = new Set(['EMFILE', 'ENFILE', 'ENOMEM', 'EAGAIN', 'EINTR', 'EIO']);

/** Where one job leaves its result and its progress (the environment's `JOBWORKER_RESULT` and `JOBWORKER_PROGRESS`). */
export interface JobIoPaths {
  /** `<ioDir>/<id>`: the job's own directory, owned by its account. */
  readonly dir: string;
  readonly result: string;
  readonly progress: string;
}

/**
 * Removes everything below a directory as an account, in a process that is not the server's: the
 * spawner (`SpawnerClient.removeBelow`), which the server does not have to fork for it.
 */
export interface BelowRemover {
  removeBelow(dir: string, user: SpawnUser, signal?: AbortSignal): Promise<RemovalReply>;
}

/** How `removeJobIo` removes what a job left as its account. */
export interface IoRemoval {
  /** The removal's deadline is set on it (`limitMs`). */
  readonly clock: Clock;
  readonly remover: BelowRemover;
  /** How long the walk as the job's account may take; default `IO_REMOVAL_MS`. */
  readonly limitMs?: number;
  /** Ends the walk at once (the engine closes: the next start's sweep finishes it). */
  readonly signal?: AbortSignal;
}

/**
 * What the server found at a job's `JOBWORKER_RESULT` once it ended: `json` is the job's own text
 * (without the whitespace around it), proven to be one JSON value.
 */
export type ResultRead = { readonly json: string } | { readonly error: string };

/** `ioDir` is normalized (the engine's options are: resolveEngineOptions). */
export function jobIoPaths(ioDir: string, id: string): JobIoPaths {
  const dir = childPath(ioDir, id);
  return { dir, result: `${dir}/result.json`, progress: `${dir}/progress.jsonl` };
}

/**
 * Makes the directory that holds every job's io directory: owned by the server, 0711, so that a
 * job can reach its own directory by name but can neither list the others nor rename, replace or
 * plant anything next to them. One that exists must already be ours, a real directory (not a
 * symlink) that nobody else may write. Resolves with the directory to use: `ioDir`, or, with
 * `elsewhere` and `ioDir` not fit (the default sits in a shared place such as /tmp, under a name
 * anyone can work out, and another account may have made it first), a fresh one beside it whose
 * name nobody could take before (`mkdtemp`), with why `ioDir` was not used.
 */
export async function prepareIoDir(
  ioDir: string,
  options: { elsewhere?: boolean } = {},
): Promise<{ dir: string; notUsed?: string }> {
  // The default is jobworker's by its name: its mode is set as at its making, whatever an earlier
  // start left (made under umask 077 and killed before its chmod, or narrowed by hand).
  const unfit = await unfitIoDir(ioDir, { ours: options.elsewhere });
  if (unfit === undefined) return { dir: ioDir };
  if (!options.elsewhere) throw new Error(unfit);
  // One made so at an earlier start is used again (no other account can make one that is ours),
  // so that jobs adopted at a restart find their paths.
  const parent = dirname(ioDir);
  const prefix = `${basename(ioDir)}-`;
  for (const name of (await readdir(parent)).filter((n) => n.startsWith(prefix)).sort()) {
    const earlier = join(parent, name);
    if ((await unfitIoDir(earlier, { make: false, ours: true })) === undefined)
      return { dir: earlier, notUsed: unfit };
  }
  const dir = await mkdtemp(`${ioDir}-`);
  await chmod(dir, 0o711);
  return { dir, notUsed: unfit };
}

/**
 * Why `ioDir` cannot hold the jobs' io directories, or undefined when it can; made when missing
 * (unless `make` is false: then a missing one is unfit). `ours`: jobworker's own by its name (the
 * default, or one made beside it), whose mode it sets to 0711 as when it makes one.
 */
async function unfitIoDir(
  ioDir: string,
  { make = true, ours = false }: { make?: boolean; ours?: boolean } = {},
): Promise<string | undefined> {
  // A file (or anything else) planted under the name is judged below, not thrown here.
  const made = make ? await mkdir(ioDir, { recursive: true, mode: 0o711 }).catch(() => undefined) : undefined;
  const stats = await lstat(ioDir).catch(() => undefined);
  if (stats === undefined) return `The job io directory ${ioDir} does not exist`;
  if (!isOwnIoDir(stats)) {
    const uid = process.getuid?.() ?? stats.uid;
    return `The job io directory ${ioDir} must be a directory owned by this server's account (uid ${uid}) that no one else may write`;
  }
  // Jobs of other accounts (a root server's) pass through it to their own directories. Only one
  // jobworker made, now or (`ours`) at an earlier start, is opened so (the umask may have narrowed
  // it): the mode of a directory an operator named (`--io-dir /root`, say) is theirs, and opening
  // it would expose what is in it.
  if (made !== undefined || (ours && (stats.mode & 0o777) !== 0o711)) await chmod(ioDir, 0o711);
  else if (process.getuid?.() === 0 && (stats.mode & 0o001) === 0) {
    return `The job io directory ${ioDir} must let other accounts through to their own directories (mode 0711: \`chmod 711 ${ioDir}\`); jobworker does not change the mode of a directory it did not make`;
  }
  return undefined;
}

/**
 * `isOwnIoDir` of `ioDir` as it is now. Synchronous: an `lstat` of a directory whose entry the
 * kernel holds costs less than the round through the thread pool, and the starts of a claimed
 * batch would each queue one there (as `openJobFile` in src/output/ does for the same reason).
 */
function isOwnIoDirNow(ioDir: string): boolean {
  try {
    return isOwnIoDir(lstatSync(ioDir));
  } catch {
    return false;
  }
}

/** A real directory of this server's account that no one else may write. */
function isOwnIoDir(stats: Stats): boolean {
  return stats.isDirectory() && stats.uid === (process.getuid?.() ?? stats.uid) && (stats.mode & 0o022) === 0;
}

/**
 * Checked at each start, not only at the server's: a cleaner of the temp directory may remove it
 * while no job runs (systemd-tmpfiles ages /tmp on many hosts), and another account could then make
 * one under its name, whose owner could swap a job's directory in it for a link. Made again when
 * missing, with the checks of the server's start; else the start fails, saying why.
 */
async function checkIoDirStill(ioDir: string): Promise<void> {
  if (isOwnIoDirNow(ioDir)) return;
  const unfit = await unfitIoDir(ioDir);
  if (unfit !== undefined) throw new Error(`${unfit} (it was removed or replaced while the server ran)`);
}

/**
 * `mkdir` of a job's io directory: true when made, false when it was there already, left by a
 * server that died while starting the job (its claim went back to the queue), and reused.
 */
function makeJobDir(dir: string): Promise<boolean> {
  return mkdir(dir, { mode: 0o700 }).then(
    () => true,
    (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EEXIST') throw err;
      return false;
    },
  );
}

/**
 * Makes a job's io directory, 0700 and owned by the account its processes run as, so that only
 * that job (and the server) may write in it. A server that is not root runs every job as its own
 * account, and keeps the directory.
 */
export async function createJobIo(paths: JobIoPaths, account: JobAccount | null): Promise<void> {
  await checkIoDirStill(dirname(paths.dir));
  const made = await makeJobDir(paths.dir);
  if (!made && !(await lstat(paths.dir)).isDirectory()) throw new Error(`${paths.dir} is not a directory`);
  if (account && process.getuid?.() === 0 && account.uid !== 0) {
    // Not through a link: were the directory swapped for one since the mkdir (its parent is the
    // server's, so only by a bug or another root), a chown would give the link's target away.
    await lchown(paths.dir, account.uid, account.gid);
  }
}

/**
 * The account that owns a left io directory whose job is no longer on record (null: the server's
 * own), for `removeJobIo` to walk it with that account's rights only; undefined when it is gone.
 */
export async function ioDirOwner(dir: string): Promise<JobAccount | null | undefined> {
  const stats = await lstat(dir).catch(() => undefined);
  if (stats === undefined) return undefined;
  if (stats.uid === process.getuid?.()) return null;
  return { name: `uid ${stats.uid}`, uid: stats.uid, gid: stats.gid, groups: [stats.gid], home: '/' };
}

/**
 * Removes a job's io directory, never as root through a path the job could redirect. The
 * directory itself sits in the server's `ioDir`, where the job can neither rename nor replace it,
 * so its result and progress files are unlinked by name (unlink never follows a link in the last
 * component). Anything else the job left (directories of its own) is removed as the job's account
 * (its uid and primary gid, no other group), by the spawner (`removal.remover`): a child of it
 * that becomes the account, gives the directories it walks u+rwx (what the job made read-only to
 * itself) and unlinks everything below, by descriptors, following no link and crossing no mount.
 * Another process of that account could swap a directory of the walk for a link (to /etc, say)
 * between two of its steps, and a walk as root would then unlink through it; as the account, it
 * reaches only what the account itself may change. The server does not fork for it (a fork of its
 * large process, twice per job end, stalled its event loop). The walk ends after `limitMs` on
 * `clock` (a job that mounted something in its directory could make it hang), or at once when
 * `signal` aborts: the spawner kills it, and this resolves once it has ended. Throws when the
 * directory is still there after it, saying what stopped it; it is then left.
 */
export async function removeJobIo(
  paths: JobIoPaths,
  account: JobAccount | null,
  removal: IoRemoval,
): Promise<void> {
  // Most jobs leave it empty: one rmdir, instead of the walk (an lstat and a readdir first).
  if (await removedDir(paths.dir)) return;
  // Everything below goes through the directory's path as root: only while the directory it sits
  // in is still the server's (a cleaner of the temp directory may have removed it, and another
  // account made one under its name, whose entries that account could swap for links).
  if (!isOwnIoDirNow(dirname(paths.dir))) {
    throw new Error(
      `${paths.dir} is left: the directory it is in is not this server's any more (removed or replaced while the server ran)`,
    );
  }
  // Whatever these are (a directory named result.json, say), the walk below has them otherwise.
  await Promise.all([
    unlink(paths.result).catch(() => undefined),
    unlink(paths.progress).catch(() => undefined),
  ]);
  if (await removedDir(paths.dir)) return;
  if (!account || process.getuid?.() !== 0 || account.uid === 0) {
    // Its processes ran as the server's own account (or root): nothing a link could gain them.
    await rm(paths.dir, { recursive: true, force: true });
    return;
  }
  // Its deadline made only here: the removal of every job's empty directory pays for no timer.
  const { clock, remover, limitMs = IO_REMOVAL_MS, signal } = removal;
  const deadline = clockDeadline(clock, limitMs);
  const ends = signal ? AbortSignal.any([deadline.signal, signal]) : deadline.signal;
  let why = '';
  try {
    // Its primary group only, as a process started with its uid and gid has (no supplementary ones).
    const user: SpawnUser = { uid: account.uid, gid: account.gid, groups: [] };
    const reply = await remover.removeBelow(paths.dir, user, ends);
    if (reply.kind === 'failed') why = reply.reason;
  } finally {
    deadline.clear();
  }
  if (!(await removedDir(paths.dir))) {
    throw new Error(
      `Removing the contents of ${paths.dir} as uid ${account.uid} left some${why ? `: ${why}` : ''}`,
    );
  }
}

/** rmdir: true once the directory is gone, false while it holds something. */
async function removedDir(dir: string): Promise<boolean> {
  return rmdir(dir).then(
    () => true,
    (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return true;
      if (err.code === 'ENOTEMPTY' || err.code === 'EEXIST') return false;
      throw err;
    },
  );
}

/**
 * Opens a file the job wrote, as data only: not through a symlink the job planted (O_NOFOLLOW),
 * without blocking on a FIFO (O_NONBLOCK), and only a regular file that the job's account owns
 * (a hard link to someone else's file is refused). Undefined when there is none.
 */
async function openJobFile(path: string, account: JobAccount | null): Promise<FileHandle | undefined> {
  // Most jobs leave no progress and no result, and each job's start and end look for both: a
  // synchronous lstat (microseconds) answers "none" without a trip through the thread pool.
  if (lstatSync(path, { throwIfNoEntry: false }) === undefined) return undefined;
  let handle: FileHandle;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    if (code === 'ELOOP') throw new Error(`${path} is a symbolic link, not a file`);
    throw err;
  }
  try {
    const stats = await handle.stat();
    if (!stats.isFile()) throw new Error(`${path} is not a regular file`);
    const owner = account && process.getuid?.() === 0 ? account.uid : process.getuid?.();
    if (owner !== undefined && stats.uid !== owner) {
      throw new Error(`${path} is not owned by the job's account (uid ${owner})`);
    }
    return handle;
  } catch (err) {
    await handle.close();
    throw err;
  }
}

/**
 * Reads the value a job left at `JOBWORKER_RESULT`: at most `RESULT_MAX_BYTES` + 1 bytes are read,
 * and more, or text that is not one JSON value, is an error to record on the job. An absent or
 * empty file is no result (undefined). Throws on trouble of the host's that passes
 * (`PASSING_ERRORS`: too many open files, say), for the caller to read it again.
 */
export async function readJobResult(
  paths: JobIoPaths,
  account: JobAccount | null,
): Promise<ResultRead | undefined> {
  let handle: FileHandle | undefined;
  try {
    handle = await openJobFile(paths.result, account);
    if (!handle) return undefined;
    const buffer = Buffer.alloc(RESULT_MAX_BYTES + 1);
    let length = 0;
    while (length < buffer.length) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, length);
      if (bytesRead === 0) break;
      length += bytesRead;
    }
    if (length > RESULT_MAX_BYTES) {
      return { error: `the result is larger than ${RESULT_MAX_BYTES} bytes (1 MiB), its limit` };
    }
    // Only JSON's own whitespace is trimmed: text that JSON.parse accepts stays accepted, and the
    // rest (a no-break space, a byte order mark) stays refused.
    const text = trimJsonSpace(buffer.subarray(0, length).toString('utf8'));
    if (text === '') return undefined;
    try {
      // Parsed only to prove it is one JSON value; the job's own text is kept: parsing and writing
      // it again would round an integer above 2^53 and turn `1.0` into `1`.
      JSON.parse(text);
      return { json: text };
    } catch (err) {
      return { error: `the result is not valid JSON: ${(err as Error).message}` };
    }
  } catch (err) {
    // The host's passing trouble is thrown, for the end's read to be tried again (the supervisor
    // does): kept as the job's error, it would throw away the result of a job that succeeded.
    if (PASSING_ERRORS.has((err as NodeJS.ErrnoException).code ?? '')) throw err;
    return { error: `the result could not be read: ${(err as Error).message}` };
  } finally {
    await handle?.close();
  }
}

/**
 * `text` without the whitespace JSON allows around a value (RFC 8259: space, tab, LF, CR). A loop,
 * not a regular expression: one anchored at the end backtracks through every run of spaces inside
 * the text, in time quadratic in the run's length, which a job chooses.
 */
function trimJsonSpace(text: string): string {
  const space = (at: number) => {
    const c = text.charCodeAt(at);
    return c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;
  };
  let start = 0;
  let end = text.length;
  while (start < end && space(start)) start++;
  while (end > start && space(end - 1)) end--;
  return text.slice(start, end);
}

/**
 * Reads what a job appended to its progress file since `offset`: at most its last `maxBytes`
 * (`from` says where the bytes start). A file that shrank (the job truncated it) is read again
 * from its start. Undefined when there is no file.
 */
export async function readProgressBytes(
  paths: JobIoPaths,
  account: JobAccount | null,
  offset: number,
  maxBytes: number,
): Promise<{ readonly bytes: Buffer; readonly from: number } | undefined> {
  const handle = await openJobFile(paths.progress, account);
  if (!handle) return undefined;
  try {
    const { size } = await handle.stat();
    // Only the last line counts: of a long stretch appended since, only its last `maxBytes` are read.
    const from = size < offset ? 0 : Math.max(offset, size - maxBytes);
    const buffer = Buffer.alloc(Math.min(maxBytes, size - from));
    let length = 0;
    while (length < buffer.length) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, from + length);
      if (bytesRead === 0) break;
      length += bytesRead;
    }
    return { bytes: buffer.subarray(0, length), from };
  } finally {
    await handle.close();
  }
}
