import { closeSync, fstatSync, ftruncateSync, openSync, readSync, writeSync } from 'node:fs';

/**
 * The part of a `FileHandle` the combined index's tail code uses: a structural seam, so that the
 * index can be read through a `FileHandle` (readers) or a `SyncFile` (the monitor's writer).
 */
export interface IndexFile {
  stat(): Promise<{ size: number }>;
  read(buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
}

/**
 * A file opened with synchronous calls behind a promise-shaped API. The monitor's observation of a
 * followed job touches a few bytes of small, page-cached files (the index tail, the stream sizes):
 * each call takes microseconds, while a trip through libuv's thread pool costs tens to hundreds of
 * microseconds of latency and queues behind every other file operation of the server, which is what
 * a follower waits for. Only for such small metadata work: output data is read asynchronously.
 */
export class SyncFile implements IndexFile {
  readonly #fd: number;
  #closed = false;

  private constructor(fd: number) {
    this.#fd = fd;
  }

  get fd(): number {
    return this.#fd;
  }

  static open(path: string, flags: number, mode?: number): SyncFile {
    return new SyncFile(openSync(path, flags, mode));
  }

  /** The file's size now, synchronously. */
  size(): number {
    return fstatSync(this.#fd).size;
  }

  stat(): Promise<{ size: number }> {
    return settle(() => ({ size: this.size() }));
  }

  read(buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesRead: number }> {
    return settle(() => ({ bytesRead: readSync(this.#fd, buffer, offset, length, position) }));
  }

  write(buffer: Buffer, offset: number, length: number, position: number): Promise<void> {
    return settle(() => {
      let written = 0;
      while (written < length) {
        written += writeSync(this.#fd, buffer, offset + written, length - written, position + written);
      }
    });
  }

  truncate(length: number): Promise<void> {
    return settle(() => ftruncateSync(this.#fd, length));
  }

  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    return settle(() => closeSync(this.#fd));
  }
}

function settle<T>(call: () => T): Promise<T> {
  try {
    return Promise.resolve(call());
  } catch (err) {
    return Promise.reject(err);
  }
}
