import { type FileHandle, open } from 'node:fs/promises';
import { ValidationError } from '../core/errors.ts';
import type { OutputStream } from '../core/job.ts';
import { CombinedIndex } from './combined-index.ts';
import { assertCursor, OUTPUT_SELECTORS, pastEndError } from './cursor.ts';
import { dropBefore } from './drop-before.ts';
import { isNotFound, outputPaths, readExactly } from './output-files.ts';
import type { OutputEvent, OutputRead, OutputSelector } from './output-types.ts';
import { type KeptWindow, readKeptWindow } from './retention.ts';

export interface ReadOutputOptions {
  readonly selector: OutputSelector;
  /** Position in the selected view to read from; past the view's current end is a `CursorError`. */
  readonly cursor: number;
  /** At most this many bytes of data are returned. */
  readonly limitBytes: number;
}

export type { OutputRead };

// Bounds the work of one read of the combined view when it alternates in tiny stretches.
const MAX_EVENTS = 1024;

/**
 * Reads one page of a view of a job's output from a cursor. Files are opened for this read and
 * closed before it returns: the server holds no descriptor per job between reads. A cursor
 * before the kept window gets one `truncated` event, then the kept bytes.
 */
export async function readOutput(dir: string, options: ReadOutputOptions): Promise<OutputRead> {
  const { selector, cursor, limitBytes } = options;
  if (!OUTPUT_SELECTORS.includes(selector)) {
    throw ValidationError.expected('selector', 'one of stdout, stderr, all', selector);
  }
  assertCursor(cursor);
  if (!Number.isSafeInteger(limitBytes) || limitBytes <= 0) {
    throw ValidationError.expected('limitBytes', 'a positive integer', limitBytes);
  }
  return selector === 'all'
    ? readCombined(dir, cursor, limitBytes)
    : readStream(dir, selector, cursor, limitBytes);
}

async function readStream(
  dir: string,
  stream: OutputStream,
  cursor: number,
  limit: number,
): Promise<OutputRead> {
  const kept = await readKeptWindow(dir);
  const file = await openIfExists(outputPaths(dir)[stream]);
  try {
    const end = file ? (await file.stat()).size : 0;
    if (cursor > end) throw pastEndError(stream, cursor, end);
    let events: OutputEvent[] = [];
    let position = cursor;
    const keptStart = Math.min(kept[stream], end);
    if (position < keptStart) {
      events.push({ type: 'truncated', stream, skippedBytes: keptStart - position, cursor: keptStart });
      position = keptStart;
    }
    const length = Math.min(end - position, limit);
    if (file && length > 0) {
      const data = await readExactly(file, length, position);
      events.push({ type: 'data', stream, data, cursor: position + length });
    }
    // A punch may have raced this read: whatever now lies before the kept window is not data.
    const after = await readKeptWindow(dir);
    if (after[stream] > kept[stream]) events = dropBefore(events, cursor, after[stream], stream);
    return { events, cursor: events.at(-1)?.cursor ?? cursor, end };
  } finally {
    await file?.close();
  }
}

async function readCombined(dir: string, cursor: number, limit: number): Promise<OutputRead> {
  const paths = outputPaths(dir);
  const kept = await readKeptWindow(dir);
  const index = await CombinedIndex.open(dir);
  const files = new Map<OutputStream, FileHandle>();
  try {
    const end = index.end;
    if (cursor > end) throw pastEndError('all', cursor, end);
    let events: OutputEvent[] = [];
    let position = cursor;
    const window = await keptStartOf(index, kept);
    if (position < window.start) {
      const skippedBytes = window.start - position;
      events.push({ type: 'truncated', stream: window.stream, skippedBytes, cursor: window.start });
      position = window.start;
    }
    let remaining = limit;
    let next = position < end ? await index.locate(position) : index.count;
    while (next < index.count && remaining > 0 && events.length < MAX_EVENTS) {
      const entry = await index.entry(next++);
      const length = Math.min(entry.combinedEnd - position, remaining);
      let file = files.get(entry.stream);
      if (!file) {
        file = await open(paths[entry.stream], 'r');
        files.set(entry.stream, file);
      }
      const data = await readExactly(file, length, entry.streamStart + (position - entry.combinedStart));
      position += length;
      remaining -= length;
      events.push({ type: 'data', stream: entry.stream, data, cursor: position });
    }
    const after = await readKeptWindow(dir);
    if (after.stdout > kept.stdout || after.stderr > kept.stderr) {
      const moved = await keptStartOf(index, after);
      events = dropBefore(events, cursor, moved.start, moved.stream);
    }
    return { events, cursor: events.at(-1)?.cursor ?? cursor, end };
  } finally {
    await index.close();
    for (const file of files.values()) await file.close();
  }
}

/**
 * Where the combined view's kept window starts: the first position after which every byte of
 * both streams is still kept, so the view stays one contiguous run after a single marker.
 * Older bytes of the less-dropped stream before it stay readable through that stream's view.
 */
async function keptStartOf(
  index: CombinedIndex,
  kept: KeptWindow,
): Promise<{ start: number; stream: OutputStream }> {
  const stdout = await index.positionAfter('stdout', kept.stdout);
  const stderr = await index.positionAfter('stderr', kept.stderr);
  return stdout >= stderr ? { start: stdout, stream: 'stdout' } : { start: stderr, stream: 'stderr' };
}

async function openIfExists(path: string): Promise<FileHandle | undefined> {
  try {
    return await open(path, 'r');
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}
