import { type Clock, type ClockTimer, pauseOn, steadyMs, systemClock } from '../core/clock.ts';
import { formatDuration } from '../core/format-duration.ts';
import {
  FRAME_KIND,
  FrameDecoder,
  HEARTBEAT_HEADER,
  type OutputFrame,
  SILENT_PERIODS,
} from '../core/output-frames.ts';
import type { ApiClient, OutputFramesAnswer } from './api-client.ts';
import type { ApiJob, OutputView } from './api-types.ts';
import { ApiError, ConnectionError, ProtocolError } from './wire-errors.ts';

/** What a reader of a job's output receives. `cursor` is where to resume after this event. */
export type OutputEvent =
  | {
      readonly type: 'output';
      readonly stream: 'stdout' | 'stderr';
      readonly data: Buffer;
      readonly cursor: string;
    }
  | {
      readonly type: 'truncated';
      readonly stream: string | null;
      readonly skippedBytes: number | null;
      readonly cursor: string;
    }
  | { readonly type: 'end'; readonly job: ApiJob };

export interface ReadOutputOptions {
  readonly view: OutputView;
  /** Keep reading until the job ends (`follow=true`), reconnecting on a dropped connection. */
  readonly follow: boolean;
  /**
   * How long to keep reconnecting while the server cannot be reached (a restart, a proxy cut),
   * counted from the first failure since the last event received. Default 60 s.
   */
  readonly reconnectForMs?: number;
  /** Delay before the first reconnection; doubled each time up to `MAX_BACKOFF_MS`, with jitter. */
  readonly backoffMs?: number;
  readonly onRetry?: (attempt: number, error: Error) => void;
  readonly signal?: AbortSignal;
  /** What sets `reconnectForMs`, named when the reader gives up (default: the CLI's flag). */
  readonly reconnectSetting?: string;
  /**
   * The reader uses each event's `data` before it asks for the next event and keeps no reference
   * to it (it writes it to a file descriptor at once): the data may then be a view of the
   * client's reused read buffer instead of a copy. Default false: every `data` is the reader's own.
   */
  readonly borrowData?: boolean;
  /**
   * The reader's time: the watchdog's timers (see `readOutputEvents`), the pauses between
   * reconnections and how long it has been reconnecting. Default: the system clock.
   */
  readonly clock?: Clock;
}

/** How long a follower keeps reconnecting by default: longer than a server restart plausibly takes. */
export const DEFAULT_RECONNECT_FOR_MS = 60_000;

/** The longest wait between two reconnections: a restarted server is found within a second. */
const MAX_BACKOFF_MS = 1000;

/**
 * How long a connection the server answered must have stayed open for its end to start a new run
 * of failures: longer than a closing server's accept-and-close, and than the longest backoff.
 */
const STAYED_OPEN_MS = 1000;

/**
 * Reads a job's output as binary frames (src/core/output-frames.ts), each frame's data handed
 * on as it arrives (in pieces of a socket read, never joined into a whole frame first). A reader
 * whose connection drops (the server restarted, a proxy cut it) resumes from the cursor just
 * after the last byte it received, mid-frame too, so it sees no gap and no duplicate.
 * It keeps reconnecting, with backoff, for `reconnectForMs` since it last received an event or
 * held a connection open for a while (`STAYED_OPEN_MS`, or half of `reconnectForMs` if shorter),
 * however many attempts that takes: a server that is closing may accept a connection and end it
 * at once, which must not use up the follower's patience faster than time does, and each cut of
 * a quiet job's follow (a proxy's idle timeout, a restart an hour after the last) is an outage of
 * its own, with the whole of `reconnectForMs` again. A follow whose server announces heartbeats
 * (`HEARTBEAT_HEADER`) and then sends nothing for `SILENT_PERIODS` of them is taken for cut
 * too (a proxy or NAT that dropped it without a word) and resumed the same way. Only an answer
 * that the job is gone (404) or that the request itself is wrong (another 4xx) ends it early.
 * The iteration ends after the `end` event: with the final job, or without `follow`, the job as it
 * was once the server had sent everything it had. A stream that ends without it was cut, and is
 * resumed the same way with or without `follow`.
 */
export async function* readOutputEvents(
  client: ApiClient,
  id: string,
  options: ReadOutputOptions,
): AsyncGenerator<OutputEvent> {
  const reconnectForMs = options.reconnectForMs ?? DEFAULT_RECONNECT_FOR_MS;
  const backoffMs = options.backoffMs ?? 100;
  const clock = options.clock ?? systemClock;
  const now = () => steadyMs(clock);
  let cursor: string | null = null;
  let failures = 0;
  /** When the current run of failures began (`steadyMs`), or null while all is well. */
  let failingSince: number | null = null;
  // At least 100 ms: with a tiny --reconnect-for, a server that accepts and closes at once must
  // still use the follower's patience up.
  const stayedOpenMs = Math.min(STAYED_OPEN_MS, Math.max(100, reconnectForMs / 2));
  for (;;) {
    /** When the server answered this attempt (the stream open), or null before. */
    let openedAt: number | null = null;
    try {
      const response = await client.openOutputFrames(id, {
        view: options.view,
        follow: options.follow,
        cursor,
        signal: options.signal,
      });
      openedAt = now();
      const decoder = new FrameDecoder({ splitData: true });
      // Pieces in the client's reused buffer are copied unless the reader takes them borrowed.
      const copy = response.borrowed && options.borrowData !== true;
      const watchdog = options.follow ? Watchdog.for(response, clock) : undefined;
      try {
        for await (const chunk of response.body) {
          if (watchdog) watchdog.heard = true;
          const frames = decoder.push(chunk);
          // The next piece overwrites this one: what the decoder holds for it must not lie in it.
          if (response.borrowed) decoder.detachPending();
          for (const frame of frames) {
            const event = decodeFrame(frame, copy);
            if (event === null) continue;
            if (event.type !== 'end') cursor = event.cursor;
            // Progress: the server is back and serving this job.
            failures = 0;
            failingSince = null;
            // Time the consumer takes with the event is not the server's silence.
            if (watchdog) watchdog.busy = true;
            yield event;
            if (watchdog) watchdog.busy = false;
            if (event.type === 'end') return;
          }
        }
      } catch (error) {
        throw watchdog?.lost() ?? error;
      } finally {
        watchdog?.stop();
      }
      const lost = watchdog?.lost();
      if (lost) throw lost;
      if (decoder.pendingBytes > 0)
        throw new ConnectionError('The output stream was cut in the middle of a frame');
      // Without follow too: the server ends every read it finished with an `end` frame, so a
      // stream without one was cut (a proxy that dropped the connection, a body ended by its
      // close), and what came is not all of it. Resumed from the cursor, as a follow is.
      throw new ConnectionError(
        options.follow
          ? 'The server closed the output stream before the job ended'
          : 'The server closed the output stream before sending all of it',
      );
    } catch (error) {
      if (options.signal?.aborted || !isRetryable(error)) throw error;
      const failedAt = now();
      // The stream had been open a while: the server was back, and this is a new outage.
      if (openedAt !== null && failedAt - openedAt >= stayedOpenMs) {
        failures = 0;
        failingSince = null;
      }
      failures++;
      failingSince ??= failedAt;
      if (failedAt - failingSince >= reconnectForMs) {
        throw new ConnectionError(
          `${(error as Error).message} (gave up after reconnecting for ${formatDuration(failedAt - failingSince)}, ` +
            `${failures} attempts; ${options.reconnectSetting ?? '--reconnect-for'} sets how long)`,
        );
      }
      options.onRetry?.(failures, error as Error);
      const wait = Math.min(backoffMs * 2 ** Math.min(failures - 1, 16), MAX_BACKOFF_MS);
      // Jitter, so that many followers of one restarted server do not all come back at once.
      const jittered = wait * (0.8 + 0.4 * Math.random());
      const left = reconnectForMs - (failedAt - failingSince);
      await pauseOn(clock, Math.max(0, Math.min(jittered, left)), options.signal);
    }
  }
}

/**
 * Ends a follow's connection after `SILENT_PERIODS` of its server's heartbeat period without a
 * byte (counted in whole periods of its own timer: 3 to 4 periods after the last byte): a
 * connection a proxy or NAT dropped without a reset would otherwise wait for the kernel, which
 * gives up on an idle one after hours, if ever. One timer per period, not one per read.
 */
class Watchdog {
  /** Set by the reader on every piece; the timer clears it each period. */
  heard = false;
  /** True while the reader's consumer holds an event: a period that ends then is not silent. */
  busy = false;
  #silent = 0;
  #timer: ClockTimer | undefined;
  #lostAfterMs = 0;
  #lost = false;

  /** A watchdog on `response`, or undefined when its server announced no heartbeats. */
  static for(response: OutputFramesAnswer, clock: Clock): Watchdog | undefined {
    const periodMs = Number(response.headers[HEARTBEAT_HEADER.toLowerCase()]);
    if (!Number.isFinite(periodMs) || periodMs <= 0) return undefined;
    return new Watchdog(response, clock, periodMs);
  }

  private constructor(response: OutputFramesAnswer, clock: Clock, periodMs: number) {
    this.#lostAfterMs = SILENT_PERIODS * periodMs;
    const tick = (): void => {
      this.#silent = this.heard || this.busy ? 0 : this.#silent + 1;
      this.heard = false;
      if (this.#silent >= SILENT_PERIODS) {
        this.#lost = true;
        this.#timer = undefined;
        response.destroy();
        return;
      }
      this.#timer = clock.setTimer(tick, periodMs);
    };
    this.#timer = clock.setTimer(tick, periodMs);
  }

  /** The error to report when the watchdog ended the connection, else undefined. */
  lost(): ConnectionError | undefined {
    if (!this.#lost) return undefined;
    return new ConnectionError(
      `Nothing came from the server for ${formatDuration(this.#lostAfterMs)} or more, not even a ` +
        'heartbeat: the connection was taken for lost',
    );
  }

  stop(): void {
    this.#timer?.clear();
    this.#timer = undefined;
  }
}

function isRetryable(error: unknown): boolean {
  // A server error or a busy server may pass; a 404 (the job is gone) or a bad request will not.
  if (error instanceof ApiError) return error.status >= 500 || error.status === 429;
  if (error instanceof ConnectionError) return true;
  // A body cut mid-stream: `aborted`, ECONNRESET, premature close.
  const code = (error as NodeJS.ErrnoException | null)?.code;
  return (
    code === 'ECONNRESET' ||
    code === 'ECONNABORTED' ||
    code === 'ERR_STREAM_PREMATURE_CLOSE' ||
    (error as Error)?.message === 'aborted'
  );
}

function decodeFrame(frame: OutputFrame, copy: boolean): OutputEvent | null {
  const cursor = String(frame.cursor);
  switch (frame.kind) {
    case FRAME_KIND.stdout:
    case FRAME_KIND.stderr: {
      const stream = frame.kind === FRAME_KIND.stdout ? 'stdout' : 'stderr';
      return { type: 'output', stream, data: copy ? Buffer.from(frame.payload) : frame.payload, cursor };
    }
    case FRAME_KIND.truncated: {
      const body = parseFrameJson(frame, 'truncated');
      return {
        type: 'truncated',
        stream: typeof body.stream === 'string' ? body.stream : null,
        skippedBytes: typeof body.skippedBytes === 'number' ? body.skippedBytes : null,
        cursor,
      };
    }
    case FRAME_KIND.end: {
      const body = parseFrameJson(frame, 'end');
      return {
        type: 'end',
        job: (typeof body.job === 'object' && body.job !== null ? body.job : body) as ApiJob,
      };
    }
    case FRAME_KIND.heartbeat:
      // The connection is alive (the watchdog heard its bytes); nothing to hand on.
      return null;
    default:
      // A frame of a later server: skipped, as the format says.
      return null;
  }
}

function parseFrameJson(frame: OutputFrame, name: string): Record<string, unknown> {
  try {
    const body = JSON.parse(frame.payload.toString('utf8')) as unknown;
    if (typeof body === 'object' && body !== null) return body as Record<string, unknown>;
  } catch {
    // Answered below.
  }
  throw new ProtocolError(`The server sent a malformed ${name} frame`);
}
