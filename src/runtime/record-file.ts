import { readFile, stat } from 'node:fs/promises';

/**
 * Reads one of the records a wrapper leaves in a job's directory (its exit record, its identity
 * file) with the time it was written. Both are written by tmp + rename and end with a newline:
 * undefined while the file is missing or not whole yet.
 */
export async function readRecordFile(path: string): Promise<{ line: string; at: Date } | undefined> {
  let text: string;
  let at: Date;
  try {
    [text, at] = await Promise.all([readFile(path, 'utf8'), stat(path).then((s) => s.mtime)]);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  return text.endsWith('\n') ? { line: text.trim(), at } : undefined;
}
