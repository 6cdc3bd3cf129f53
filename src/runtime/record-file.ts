import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';

/** More than any record a wrapper writes (a line of words and numbers). */
const MAX_RECORD_BYTES = 64 * 1024;

/**
 * Reads one of the records a wrapper leaves in a job's directory (its exit record, its identity
 * file) with the time it was written. Both are written by tmp + rename and end with a newline:
 * undefined while the file is missing or not whole yet, and for anything that is not a regular
 * file (a link or a FIFO a job planted where the server runs jobs as its own account).
 *
 * Read synchronously: a record is a few bytes in the server's own data directory, and every job's
 * end reads one. A read through the thread pool (open, fstat, read, close and a stat: five trips,
 * each costing the event loop tens of µs on a small VM and queueing behind every other file
 * operation) cost more than the syscalls themselves, which take microseconds. O_NONBLOCK keeps an
 * open of a FIFO from blocking; O_NOFOLLOW refuses a link.
 */
export async function readRecordFile(path: string): Promise<{ line: string; at: Date } | undefined> {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ELOOP') return undefined;
    throw err;
  }
  try {
    const stats = fstatSync(fd);
    if (!stats.isFile() || stats.size > MAX_RECORD_BYTES) return undefined;
    const buffer = Buffer.allocUnsafe(stats.size);
    let length = 0;
    while (length < buffer.length) {
      const read = readSync(fd, buffer, length, buffer.length - length, length);
      if (read === 0) break;
      length += read;
    }
    const text = buffer.toString('utf8', 0, length);
    return text.endsWith('\n') ? { line: text.trim(), at: stats.mtime } : undefined;
  } finally {
    closeSync(fd);
  }
}
