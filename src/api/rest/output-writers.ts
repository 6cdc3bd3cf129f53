import type { ServerResponse } from 'node:http';
import type { Clock, ClockTimer } from '../../core/clock.ts';
import type { Job, OutputStream } from '../../core/job.ts';
import {
  FRAME_KIND,
  frameHeader,
  HEARTBEAT_HEADER,
  jsonFrame,
  MAX_FRAME_PAYLOAD,
  OUTPUT_FRAMES_TYPE,
} from '../../core/output-frames.ts';
import type { FollowEvent } from '../../engine/job-engine.ts';
import { formatCursor } from '../../output/cursor.ts';
import type { OutputEvent, OutputSpan } from '../../output/output-types.ts';
import { isSharedBatch } from '../../output/shared-reads.ts';
import type { SpansEvent } from '../../service/job-service.ts';
import { DirectChunks, writeThroughNode } from './direct-chunks.ts';
import { jobToJson } from './job-json.ts';
import type { FileSender } from './send-file.ts';

/** What the output writers are given: a view's batches. */
export type OutputRouteEvent = FollowEvent | SpansEvent;

/** A follow's heartbeats: sent every `ms` (on `clock`) while the writer waits for a quiet job. */
export interface WriterHeartbeat {
  readonly clock: Clock;
  readonly ms: number;
}

/**
 * A writer's heartbeats: at each tick of `ms` that finds the writer waiting for its next event,
 * none having come since the last tick, `beat` writes one (so the first comes one to two periods
 * after the last output, then one every period while the job stays quiet). Kept by the writer
 * itself rather than mixed into its events: every follower of a busy job passes every batch
 * through its loop, and a layer that waits for each batch beside a timer (a generator, a race)
 * cost 1,000 SSE followers a tenth of a core and a fifth more latency at p99 (`npm run bench --
 * fan-out`, in turn with and without it). Here a batch costs two assignments.
 */
class Pulse {
  readonly #o: WriterHeartbeat;
  readonly #beat: () => Promise<void>;
  #waiting = false;
  #heard = true;
  #timer: ClockTimer | undefined;

  constructor(options: WriterHeartbeat, beat: () => Promise<void>) {
    this.#o = options;
    this.#beat = beat;
    this.#timer = options.clock.setTimer(this.#tick, options.ms);
  }

  readonly #tick = (): void => {
    // Not waiting: the writer is at work on an event (a slow client's write), no silence.
    if (this.#waiting && !this.#heard) void this.#beat().catch(() => undefined);
    this.#heard = false;
    this.#timer = this.#o.clock.setTimer(this.#tick, this.#o.ms);
  };

  /** `events`, marking the writer waiting whenever it asks for the next one. */
  paced<E>(events: AsyncGenerator<E>): AsyncIterable<E> {
    const iterator: AsyncIterator<E> = {
      next: () => {
        this.#waiting = true;
        return events.next();
      },
      return: (value?: unknown) => events.return(value as never),
    };
    return { [Symbol.asyncIterator]: () => iterator };
  }

  /** The writer got an event: at work on it until it asks for the next. */
  busy(): void {
    this.#waiting = false;
    this.#heard = true;
  }

  stop(): void {
    this.#timer?.clear();
    this.#timer = undefined;
  }
}

/** Headers and trailers of the output routes. */
export const OUTPUT_HEADERS = {
  jobId: 'X-Jobworker-Job-Id',
  /** Header: where this response starts. Trailer (raw): where it ended, to resume from. */
  cursor: 'X-Jobworker-Cursor',
  /**
   * Header: the view's end when the response started (its length so far), so that a client can
   * read only the tail of a long output: a HEAD tells it, then a read from end minus the tail.
   */
  end: 'X-Jobworker-End',
  /** Trailer (raw): bytes of the view skipped because retention had freed them. */
  truncatedBytes: 'X-Jobworker-Truncated-Bytes',
  /** Trailer (raw): the job's status, present only when the response reached its end. */
  status: 'X-Jobworker-Status',
  exitCode: 'X-Jobworker-Exit-Code',
  /** Header of a follow as frames or events: the period of its heartbeats (`HEARTBEAT_HEADER`). */
  heartbeatMs: HEARTBEAT_HEADER,
} as const;

const NO_BUFFERING = {
  'X-Accel-Buffering': 'no',
  'X-Content-Type-Options': 'nosniff',
};

export interface RawOptions {
  readonly jobId: string;
  readonly cursor: number;
  readonly contentType: string;
  /** Send the end cursor and status as HTTP trailers (needs chunked encoding: HTTP/1.1). */
  readonly trailers: boolean;
  readonly headers?: Readonly<Record<string, string>>;
  /** Aborted when the client goes away. */
  readonly signal: AbortSignal;
  /** Sends `spans` events' bytes from their files (required when the stream may yield them). */
  readonly sender?: FileSender;
}

export interface StreamSummary {
  readonly bytes: number;
  readonly cursor: number;
  /** The job at the end; undefined when the stream was cut short (client gone, server closing). */
  readonly end: Job | undefined;
  /** Of `bytes`, those the kernel copied from the output files (sendfile), not through memory. */
  readonly fromFiles?: number;
}

/**
 * Writes the raw bytes of a view as they come, one chunk per batch. The start cursor goes in a
 * header; the end cursor, the truncation count and (when the stream reached its end) the job's
 * status and exit code go in trailers. Waits for the socket to drain, so a slow client only
 * slows its own follow.
 */
export async function writeRaw(
  res: ServerResponse,
  events: AsyncGenerator<OutputRouteEvent>,
  options: RawOptions,
): Promise<StreamSummary> {
  const { cursor: start, trailers } = options;
  res.writeHead(200, {
    'Content-Type': options.contentType,
    'Cache-Control': 'no-store',
    ...NO_BUFFERING,
    ...options.headers,
    [OUTPUT_HEADERS.jobId]: options.jobId,
    [OUTPUT_HEADERS.cursor]: formatCursor(start),
    ...(trailers
      ? {
          Trailer: [
            OUTPUT_HEADERS.cursor,
            OUTPUT_HEADERS.truncatedBytes,
            OUTPUT_HEADERS.status,
            OUTPUT_HEADERS.exitCode,
          ].join(', '),
        }
      : {}),
  });
  res.flushHeaders();
  // Not for a body sent partly from files: the sender writes to the socket itself.
  const direct = options.sender ? undefined : DirectChunks.for(res);
  let cursor = start;
  let bytes = 0;
  let truncated = 0;
  let end: Job | undefined;
  for await (const event of events) {
    if (event.type === 'progress') continue; // raw output carries bytes only
    if (event.type === 'end') {
      end = event.job;
      continue;
    }
    if (event.type === 'spans') {
      for (const span of event.spans) {
        if (span.type === 'truncated') truncated += span.skippedBytes;
        else if (await sendSpan(res, options.sender, undefined, span)) bytes += span.length;
        else break;
        cursor = span.cursor;
      }
      continue;
    }
    const chunks: Buffer[] = [];
    for (const e of event.events) {
      if (e.type === 'data') chunks.push(e.data);
      else truncated += e.skippedBytes;
      cursor = e.cursor;
    }
    // A follow's batch (no pooled page) goes straight to the socket, framed once for every
    // follower that shares its read (the same events array); a pooled page through Node, which
    // tells when it is done with it.
    if (direct && !event.release) {
      for (const chunk of chunks) bytes += chunk.length;
      await direct.write(chunks, options.signal, event.events);
      continue;
    }
    const chunk = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
    bytes += chunk.length;
    // A copy made by concat frees the page at once; the page itself only once it was written.
    if (chunk.length === 0 || chunk !== chunks[0]) event.release?.();
    if (chunk.length > 0)
      await write(res, chunk, options.signal, chunk === chunks[0] ? event.release : undefined);
  }
  if (trailers && !res.destroyed) {
    const values: Record<string, string> = {
      [OUTPUT_HEADERS.cursor]: formatCursor(cursor),
      [OUTPUT_HEADERS.truncatedBytes]: String(truncated),
    };
    if (end) values[OUTPUT_HEADERS.status] = end.status;
    if (end?.exit?.exitCode != null) values[OUTPUT_HEADERS.exitCode] = String(end.exit.exitCode);
    res.addTrailers(values);
  }
  res.end();
  return { bytes, cursor, end, fromFiles: options.sender?.kernelBytes ?? 0 };
}

export interface FramesOptions {
  readonly jobId: string;
  readonly cursor: number;
  readonly signal: AbortSignal;
  /** A follow's heartbeats (see `Pulse`); absent: none. */
  readonly heartbeat?: WriterHeartbeat;
  readonly headers?: Readonly<Record<string, string>>;
  /** Sends `spans` events' bytes from their files (required when the stream may yield them). */
  readonly sender?: FileSender;
}

/**
 * Writes a view as binary frames (src/core/output-frames.ts): the bytes as they are, each run
 * tagged with its stream and the cursor after it, then an `end` frame with the job. As cheap to
 * read as raw bytes, yet the `all` view keeps stdout and stderr apart: the CLI reads output so.
 */
export async function writeFrames(
  res: ServerResponse,
  events: AsyncGenerator<OutputRouteEvent>,
  options: FramesOptions,
): Promise<StreamSummary> {
  res.writeHead(200, {
    'Content-Type': OUTPUT_FRAMES_TYPE,
    'Cache-Control': 'no-store',
    ...NO_BUFFERING,
    ...options.headers,
    [OUTPUT_HEADERS.jobId]: options.jobId,
    [OUTPUT_HEADERS.cursor]: formatCursor(options.cursor),
  });
  res.flushHeaders();
  const direct = options.sender ? undefined : DirectChunks.for(res);
  let cursor = options.cursor;
  let bytes = 0;
  let end: Job | undefined;
  const pulse =
    options.heartbeat &&
    new Pulse(options.heartbeat, () =>
      write(res, frameHeader(FRAME_KIND.heartbeat, cursor, 0), options.signal),
    );
  try {
    for await (const event of pulse ? pulse.paced(events) : events) {
      pulse?.busy();
      if (event.type === 'end') {
        end = event.job;
        await write(res, jsonFrame(FRAME_KIND.end, cursor, { job: jobToJson(event.job) }), options.signal);
        // The last frame: nothing (not a heartbeat) may follow it.
        break;
      }
      // Frames carry bytes; progress is asked for by server-sent events (or read from the job).
      if (event.type === 'progress') continue;
      if (event.type === 'spans') {
        for (const span of event.spans) {
          if (span.type === 'data') {
            // A frame carries at most MAX_FRAME_PAYLOAD bytes (what a reader accepts): a longer
            // span goes as several, each with the cursor after its own last byte.
            for (let done = 0; done < span.length; ) {
              const length = Math.min(span.length - done, MAX_FRAME_PAYLOAD);
              const end = span.cursor - span.length + done + length;
              const header = frameHeader(FRAME_KIND[span.stream], end, length);
              const part = { ...span, position: span.position + done, length, cursor: end };
              if (!(await sendSpan(res, options.sender, header, part))) break;
              done += length;
              bytes += length;
              cursor = end;
            }
            if (res.destroyed) break;
          } else {
            const body = { stream: span.stream, skippedBytes: span.skippedBytes };
            await write(res, jsonFrame(FRAME_KIND.truncated, span.cursor, body), options.signal);
            cursor = span.cursor;
          }
        }
        continue;
      }
      const frames = framesOf(event.events, !event.release);
      bytes += frames.bytes;
      cursor = frames.cursor ?? cursor;
      const parts = frames.made;
      // A follow's batch goes straight to the socket as one chunk, framed once for every follower
      // that shares its read (see writeRaw).
      if (direct && !event.release) {
        await direct.write(parts, options.signal, parts);
        continue;
      }
      // Headers and payloads written in turn: the payloads are not copied into one buffer. The
      // page goes back once the last part written from it has gone to the socket.
      for (const [i, part] of parts.entries()) {
        await write(res, part, options.signal, i === parts.length - 1 ? event.release : undefined);
      }
      if (parts.length === 0) event.release?.();
    }
  } finally {
    pulse?.stop();
  }
  res.end();
  return { bytes, cursor, end, fromFiles: options.sender?.kernelBytes ?? 0 };
}

/**
 * What a writer made of a batch (`made`: frames' parts, events' text), its data bytes, and the
 * cursor after it.
 */
interface Batch<T> {
  readonly made: T;
  readonly bytes: number;
  /** Undefined for a batch without events. */
  readonly cursor: number | undefined;
}

/**
 * What a writer makes of a batch, its events merged (`coalesce`) and handed in turn to `add`,
 * starting from `initial()`. Made once for a shared read (`shared`): the followers of one job at
 * one position get the same events array (`SharedReads`), and a thousand of them would each make
 * the same again; kept in `kept` for as long as that array lives.
 */
function batchOf<T>(
  kept: WeakMap<readonly OutputEvent[], Batch<T>>,
  events: readonly OutputEvent[],
  shared: boolean,
  initial: () => T,
  add: (made: T, event: OutputEvent) => T,
): Batch<T> {
  let batch = shared ? kept.get(events) : undefined;
  if (batch) return batch;
  let made = initial();
  let bytes = 0;
  let cursor: number | undefined;
  for (const e of coalesce(events)) {
    cursor = e.cursor;
    if (e.type === 'data') bytes += e.data.length;
    made = add(made, e);
  }
  batch = { made, bytes, cursor };
  if (shared) kept.set(events, batch);
  return batch;
}

/**
 * The frames of each followed batch (`batchOf`): the parts to write in order. A pooled page's
 * batch is never kept: its page is reused once released.
 */
const framesByBatch = new WeakMap<readonly OutputEvent[], Batch<Buffer[]>>();

function framesOf(events: readonly OutputEvent[], shared: boolean): Batch<Buffer[]> {
  return batchOf(
    framesByBatch,
    events,
    shared,
    (): Buffer[] => [],
    (parts, e) => {
      if (e.type === 'data') parts.push(frameHeader(FRAME_KIND[e.stream], e.cursor, e.data.length), e.data);
      else
        parts.push(
          jsonFrame(FRAME_KIND.truncated, e.cursor, { stream: e.stream, skippedBytes: e.skippedBytes }),
        );
      return parts;
    },
  );
}

/**
 * The SSE `retry:` sent first on every event stream: an EventSource cut short (server restart,
 * network) reconnects after this many ms, with `Last-Event-ID`; once it has seen `end`, that
 * reconnect is answered 204 and it stops.
 */
export const SSE_RETRY_MS = 2000;

/**
 * Ends the id of the `end` event (`1234.end`): a client reconnecting with it has seen the end and
 * is answered 204, while one whose last id is the bare end cursor still gets the `end` event.
 */
export const END_ID_SUFFIX = '.end';

export interface SseOptions {
  readonly jobId: string;
  readonly cursor: number;
  readonly headers?: Readonly<Record<string, string>>;
  readonly signal: AbortSignal;
  /** A follow's heartbeats (see `Pulse`); absent: none. */
  readonly heartbeat?: WriterHeartbeat;
}

/**
 * Writes a view as server-sent events: `output` (base64 bytes of one stream), `truncated`, and a
 * last `end` carrying the job. Each event's `id` is the cursor just after it (`end`'s with
 * `END_ID_SUFFIX`), so a client that reconnects with `Last-Event-ID` resumes with no gap and no
 * duplicate. Adjacent bytes of one
 * stream in a batch go out as one event, and a whole batch as one write.
 */
export async function writeSse(
  res: ServerResponse,
  events: AsyncGenerator<OutputRouteEvent>,
  options: SseOptions,
): Promise<StreamSummary> {
  res.writeHead(200, {
    'Content-Type': 'text/event-stream; charset=utf-8',
    'Cache-Control': 'no-cache, no-transform',
    ...NO_BUFFERING,
    [OUTPUT_HEADERS.jobId]: options.jobId,
    [OUTPUT_HEADERS.cursor]: formatCursor(options.cursor),
    ...options.headers,
  });
  // Goes out with the headers: how long a client waits before it reconnects after a cut. A block
  // with no `data` dispatches no event.
  res.write(`retry: ${SSE_RETRY_MS}\n\n`);
  // Output events, the stream's bulk, go straight to the socket (see writeRaw); `end` and
  // `progress` through Node.
  const direct = DirectChunks.for(res);
  let cursor = options.cursor;
  let bytes = 0;
  let end: Job | undefined;
  // A comment: no event for an EventSource, and no `id` that would move its Last-Event-ID.
  const pulse =
    options.heartbeat && new Pulse(options.heartbeat, () => write(res, ': heartbeat\n\n', options.signal));
  try {
    for await (const event of pulse ? pulse.paced(events) : events) {
      pulse?.busy();
      if (event.type === 'end') {
        end = event.job;
        const data = JSON.stringify({ job: jobToJson(event.job), cursor: formatCursor(cursor) });
        await write(res, sseEvent('end', `${formatCursor(cursor)}${END_ID_SUFFIX}`, data), options.signal);
        // The last event: nothing (not a heartbeat) may follow it.
        break;
      }
      if (event.type === 'progress') {
        // Its id is the cursor so far: a client reconnecting after it resumes where its output was.
        const data = JSON.stringify({
          progress: jobToJson(event.job).progress,
          cursor: formatCursor(cursor),
        });
        await write(res, sseEvent('progress', formatCursor(cursor), data), options.signal);
        continue;
      }
      // Events carry base64 text, made from bytes in memory: such a stream is opened without spans.
      if (event.type === 'spans') throw new Error('An event stream cannot send file spans');
      // Kept for other followers only when they may get the same read: the text of a follower's
      // own read (a finished job's, to its end) would be held for no one.
      const shared = !event.release && isSharedBatch(event.events);
      const batch = sseOf(event.events, shared);
      bytes += batch.bytes;
      cursor = batch.cursor ?? cursor;
      // The text holds its own copy (base64) of the bytes.
      event.release?.();
      if (batch.made === '') continue;
      // A shared read's chunk is encoded once for all its followers: `DirectChunks` keeps it by the
      // batch made of that read.
      if (direct) await direct.writeText(batch.made, options.signal, shared ? batch : undefined);
      else await write(res, batch.made, options.signal);
    }
  } finally {
    pulse?.stop();
  }
  res.end();
  return { bytes, cursor, end };
}

/**
 * The events of each followed batch (`batchOf`), as `framesByBatch` keeps frames: their text, its
 * bytes as base64. Only a shared read's batch is kept (`isSharedBatch`): the text is a copy of its
 * bytes and more, and a batch no other follower gets (a pooled page, a finished job's output read
 * to its end) would hold it until the collector found the batch dead: 50 event streams reading a
 * finished job's 20 MB each (`follower-churn`) peaked at 375-453 MB of server RSS in four runs
 * with every batch kept, 243-266 MB in four of five without (docs/performance-history.md, twenty-third pass).
 */
const sseByBatch = new WeakMap<readonly OutputEvent[], Batch<string>>();

function sseOf(events: readonly OutputEvent[], shared: boolean): Batch<string> {
  return batchOf(
    sseByBatch,
    events,
    shared,
    () => '',
    (text, e) => {
      if (e.type === 'data')
        return text + sseEvent('output', formatCursor(e.cursor), outputJson(e.stream, e.data, e.cursor));
      const data = { stream: e.stream, skippedBytes: e.skippedBytes, cursor: formatCursor(e.cursor) };
      return text + sseEvent('truncated', formatCursor(e.cursor), JSON.stringify(data));
    },
  );
}

/**
 * An `output` event's data: what `JSON.stringify({ stream, data: base64, cursor })` gives, built by
 * concatenation, as base64, a stream name and a decimal cursor need no escaping. The base64 text,
 * most of an event, is then not copied again (V8 joins the parts without copying them until the
 * socket write), which saves the collector most of its work on a busy event stream.
 */
export function outputJson(stream: OutputStream, data: Buffer, cursor: number): string {
  return `{"stream":"${stream}","data":"${data.toString('base64')}","cursor":"${formatCursor(cursor)}"}`;
}

function sseEvent(name: string, id: string, data: string): string {
  return `event: ${name}\nid: ${id}\ndata: ${data}\n\n`;
}

/** Merges adjacent data events of the same stream. */
function coalesce(events: readonly OutputEvent[]): OutputEvent[] {
  const out: OutputEvent[] = [];
  let pending: Buffer[] = [];
  let last: Extract<OutputEvent, { type: 'data' }> | undefined;
  const flush = () => {
    if (last) out.push({ ...last, data: pending.length === 1 ? pending[0]! : Buffer.concat(pending) });
    last = undefined;
    pending = [];
  };
  for (const e of events) {
    if (e.type === 'data' && last && last.stream === e.stream) {
      pending.push(e.data);
      last = e;
      continue;
    }
    flush();
    if (e.type === 'data') {
      last = e;
      pending = [e.data];
    } else out.push(e);
  }
  flush();
  return out;
}

/**
 * Sends one data span (after `prefix`) from its file; true when it went out, false when the client
 * was gone. Throws when the copy failed otherwise, which breaks the response.
 */
async function sendSpan(
  res: ServerResponse,
  sender: FileSender | undefined,
  prefix: Buffer | undefined,
  span: Extract<OutputSpan, { type: 'data' }>,
): Promise<boolean> {
  if (!sender) throw new Error('A stream of file spans needs a FileSender');
  if (res.destroyed) return false;
  if (await sender.send(prefix, span.fd, span.position, span.length)) return true;
  // The client is gone, and Node may not know yet: closing now ends the read (its signal) at once.
  res.destroy();
  return false;
}

/**
 * Writes a chunk, then waits for the socket to drain if it is full (or for the client to leave).
 * Given `written`, the chunk lies in a pooled page: `written` is called once the socket is done
 * with it (sent to the kernel, or the write failed), and the wait is for that, so that no more
 * than one page per response waits in the socket's queue.
 */
async function write(
  res: ServerResponse,
  chunk: Buffer | string,
  signal: AbortSignal,
  written?: () => void,
): Promise<void> {
  if (res.destroyed) {
    written?.();
    return;
  }
  if (!written) return writeThroughNode(res, chunk, signal);
  const { promise, resolve } = Promise.withResolvers<void>();
  // Only the write's callback gives the page back: while the write is queued the socket still
  // reads it, even after the client left (a write cut short calls back with its error).
  res.write(chunk, () => {
    written();
    resolve();
  });
  if (signal.aborted) return;
  const left = (): void => resolve();
  signal.addEventListener('abort', left, { once: true });
  await promise;
  signal.removeEventListener('abort', left);
}
