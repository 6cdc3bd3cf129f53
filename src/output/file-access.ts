import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { type KeptWindow, readKeptWindow, readKeptWindowSync } from './retention.ts';
import { type IndexFile, SyncFile } from './sync-file.ts';

/** An output file open for reading: a `FileHandle`, or a `SyncFile`. */
export interface ReadableFile extends IndexFile {
  /** The descriptor, for a consumer that has the kernel copy the file's bytes (`OutputReader.spans`). */
  readonly fd: number;
  close(): Promise<void>;
}

/** How a reader opens a job's files and reads its kept window. */
export interface FileAccess {
  open(path: string): Promise<ReadableFile>;
  keptWindow(dir: string): Promise<KeptWindow>;
}

/** Through libuv's thread pool: bulk reads (catch-up pages) that must not hold the event loop. */
export const ASYNC_FILES: FileAccess = {
  open: (path) => open(path, 'r'),
  keptWindow: readKeptWindow,
};

/**
 * Synchronous calls behind the same promises: for the live tail of a running job read by a client
 * that does not follow it (a followed one's goes through its held files, `HeldFiles`), a few KiB of
 * page-cached bytes each time, where each call takes microseconds and a trip through the thread
 * pool would cost a reader tens to hundreds of them (and queue behind every other file call).
 */
export const SYNC_FILES: FileAccess = {
  open: async (path) => SyncFile.open(path, constants.O_RDONLY),
  keptWindow: async (dir) => readKeptWindowSync(dir),
};
