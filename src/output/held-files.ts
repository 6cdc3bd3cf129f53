import { constants } from 'node:fs';
import type { OutputBytes, OutputStream } from '../core/job.ts';
import type { FileAccess, ReadableFile } from './file-access.ts';
import {
  appendRecords,
  type IndexEnd,
  type Observation,
  openIndexForAppend,
  readIndexEnd,
} from './index-appender.ts';
import { isNotFound, type OutputPaths, outputPaths, sizesInStatOrder } from './output-files.ts';
import { type KeptWindow, readKeptWindowSync } from './retention.ts';
import { SyncFile } from './sync-file.ts';

/**
 * The files of a followed job, held open from its first follower to its last, for the work that
 * each of its writes causes: the monitor's observation (the streams' sizes, the index's append)
 * and its followers' shared read of the new bytes. Opened for each of them instead, they cost
 * nine more system calls per write on the event loop (an open and close of the index and of the
 * stream, stats by path, the index's tail read again, two stats of `kept.json`): a quarter of
 * the server's CPU per line while it followed a job that wrote a line every millisecond (`npm run
 * bench -- follow-latency`, CHANGELOG). A job nobody follows holds nothing.
 *
 * Up to three descriptors: the two streams (read-only) and the index (read-write: the monitor is
 * its only writer, so where it ends is kept here, and not read again before each append). The
 * kept window is the retention enforcer's, which writes `kept.json`, else read from it once: only
 * the monitor moves it, and it moves it in memory once the file says so, before any punch.
 *
 * A user leases the files for each piece of work (`lease`): a `close` while one is out (the last
 * follower leaving between two steps of a read) closes them when it is returned, so that a
 * descriptor can never be closed, and its number reused by another file, under a read.
 */
export class HeldFiles {
  readonly #dir: string;
  readonly #paths: OutputPaths;
  readonly #enforcerKept: () => KeptWindow | undefined;
  readonly #streams = new Map<OutputStream, SyncFile>();
  #index: SyncFile | undefined;
  /** Where the index ends, as this holder last read or wrote it; undefined: read it again. */
  #indexEnd: IndexEnd | undefined;
  #keptOnDisk: KeptWindow | undefined;
  /** Descriptors let go of (an index whose append failed), closed once no lease is out. */
  readonly #retired: SyncFile[] = [];
  #leases = 0;
  #closed = false;

  /** How reads of the live tail open and read files: through the held ones. */
  readonly files: FileAccess;

  /** `enforcerKept`: the kept window as the job's retention enforcer last persisted it, if it did. */
  constructor(dir: string, enforcerKept: () => KeptWindow | undefined) {
    this.#dir = dir;
    this.#paths = outputPaths(dir);
    this.#enforcerKept = enforcerKept;
    this.files = {
      open: async (path) => this.#openForRead(path),
      keptWindow: async () => this.#kept(),
    };
  }

  /** Whether `close` was called (its descriptors go once every lease is returned). */
  get closed(): boolean {
    return this.#closed;
  }

  /** Takes a lease for one piece of work; the returned function gives it back (once). */
  lease(): () => void {
    if (this.#closed) throw new Error(`The held files of ${this.#dir} are closed`);
    this.#leases++;
    let returned = false;
    return () => {
      if (returned) return;
      returned = true;
      this.#leases--;
      if (this.#leases > 0) return;
      if (this.#closed) this.#closeAll();
      else this.#closeRetired();
    };
  }

  /**
   * Both streams' sizes, in `STAT_ORDER`, from the held descriptors: as `readOutputSizesSync`
   * reads them (a stream file that is not there yet counts 0), without a path lookup.
   */
  sizes(): OutputBytes {
    return sizesInStatOrder((stream) => this.#stream(stream)?.size() ?? 0);
  }

  /** `appendObserved` through the held index: opened (and its end read) once, then only written. */
  async append(sizes: OutputBytes): Promise<Observation> {
    try {
      this.#index ??= openIndexForAppend(this.#paths.combinedIndex, sizes);
      if (!this.#index) return { grew: false, observed: { stdout: 0, stderr: 0 } };
      this.#indexEnd ??= await readIndexEnd(this.#index);
      const { observation, end } = await appendRecords(this.#index, this.#indexEnd, sizes);
      this.#indexEnd = end;
      return observation;
    } catch (err) {
      // A write that failed part-way may have left a torn record: the next append opens the index
      // again (a descriptor that failed, on a network filesystem say, may keep failing) and reads
      // its end, which drops that record. The old descriptor goes once nothing holds a lease.
      if (this.#index) this.#retired.push(this.#index);
      this.#index = undefined;
      this.#indexEnd = undefined;
      if (this.#leases === 0) this.#closeRetired();
      throw err;
    }
  }

  /** Closes the descriptors now, or when the last lease is returned. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#leases === 0) this.#closeAll();
  }

  #closeAll(): void {
    this.#retired.push(...this.#streams.values(), ...(this.#index ? [this.#index] : []));
    this.#streams.clear();
    this.#index = undefined;
    this.#indexEnd = undefined;
    this.#closeRetired();
  }

  #closeRetired(): void {
    if (this.#retired.length === 0) return;
    const files = this.#retired.splice(0);
    // A close that fails (EIO from a network filesystem) has released the descriptor all the same.
    for (const file of files) void file.close().catch(() => undefined);
  }

  /** A stream's held descriptor, opened the first time its file is there; none while it is not. */
  #stream(stream: OutputStream): SyncFile | undefined {
    try {
      return this.#openStream(stream);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /** A stream's held descriptor; throws as `open` does when its file is not there. */
  #openStream(stream: OutputStream): SyncFile {
    let file = this.#streams.get(stream);
    if (!file) {
      file = SyncFile.open(this.#paths[stream], constants.O_RDONLY);
      this.#streams.set(stream, file);
    }
    return file;
  }

  #openForRead(path: string): ReadableFile {
    // Closing but leased: the read under way goes on (what it opens is closed with the rest).
    if (this.#closed && this.#leases === 0) throw new Error(`The held files of ${this.#dir} are closed`);
    if (path === this.#paths.stdout) return borrowed(this.#openStream('stdout'));
    if (path === this.#paths.stderr) return borrowed(this.#openStream('stderr'));
    if (path === this.#paths.combinedIndex) {
      // Never created by a reader: a job that printed nothing has none (an empty index).
      this.#index ??= SyncFile.open(path, constants.O_RDWR);
      return borrowed(this.#index);
    }
    // A reader opens only a job's streams and its index (`kept.json` comes from `keptWindow`).
    throw new Error(`${path} is none of the output files of ${this.#dir} that HeldFiles holds`);
  }

  #kept(): KeptWindow {
    const kept = this.#enforcerKept();
    if (kept) return kept;
    this.#keptOnDisk ??= readKeptWindowSync(this.#dir);
    return this.#keptOnDisk;
  }
}

/** A held file as a reader sees it: its close leaves it open (the holder closes it). */
function borrowed(file: SyncFile): ReadableFile {
  return {
    fd: file.fd,
    stat: () => file.stat(),
    read: (buffer, offset, length, position) => file.read(buffer, offset, length, position),
    close: async () => {},
  };
}
