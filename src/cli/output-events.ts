import { setTimeout as delay } from 'node:timers/promises';
import type { ApiClient } from './api-client.ts';
import type { ApiJob, OutputView } from './api-types.ts';
import { ApiError, CliError, ConnectionError } from './errors.ts';
import { SseParser } from './sse-parser.ts';

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
  /** Reconnections in a row before giving up. */
  readonly retries?: number;
  /** Delay before the first reconnection; doubled each time, up to 5 s. */
  readonly backoffMs?: number;
  readonly onRetry?: (attempt: number, error: Error) => void;
  readonly signal?: AbortSignal;
}

/**
 * Reads a job's output as server-sent events. A follower whose connection drops (the server
 * restarted, a proxy cut it) resumes from the last event id, so it sees no gap and no duplicate.
 * The iteration ends after the `end` event (with the final job) or, without `follow`, when the
 * server has sent everything it has.
 */
export async function* readOutputEvents(
  client: ApiClient,
  id: string,
  options: ReadOutputOptions,
): AsyncGenerator<OutputEvent> {
  const retries = options.retries ?? 6;
  const backoffMs = options.backoffMs ?? 200;
  let lastEventId: string | null = null;
  let failures = 0;
  for (;;) {
    try {
      const response = await client.openOutputEvents(id, {
        view: options.view,
        follow: options.follow,
        lastEventId,
        signal: options.signal,
      });
      response.setEncoding('utf8');
      const parser = new SseParser();
      for await (const text of response) {
        failures = 0;
        for (const sse of parser.push(text as string)) {
          if (sse.id !== null) lastEventId = sse.id;
          const event = decodeEvent(sse.event, sse.data, sse.id);
          if (event === null) continue;
          yield event;
          if (event.type === 'end') return;
        }
      }
      if (!options.follow) return;
      throw new ConnectionError('The server closed the output stream before the job ended');
    } catch (error) {
      if (options.signal?.aborted || !isRetryable(error)) throw error;
      failures++;
      if (failures > retries) {
        throw new CliError(`${(error as Error).message} (gave up after ${retries} reconnections)`);
      }
      options.onRetry?.(failures, error as Error);
      await delay(Math.min(backoffMs * 2 ** (failures - 1), 5000), undefined, { signal: options.signal });
    }
  }
}

function isRetryable(error: unknown): boolean {
  if (error instanceof ApiError) return error.status === 502 || error.status === 503 || error.status === 504;
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

function decodeEvent(name: string, data: string, id: string | null): OutputEvent | null {
  if (name !== 'output' && name !== 'truncated' && name !== 'end') return null;
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(data) as Record<string, unknown>;
  } catch {
    throw new CliError(`The server sent a malformed ${name} event`);
  }
  if (name === 'end') {
    const job = (typeof body.job === 'object' && body.job !== null ? body.job : body) as ApiJob;
    return { type: 'end', job };
  }
  const cursor =
    typeof body.cursor === 'string' || typeof body.cursor === 'number' ? String(body.cursor) : (id ?? '');
  if (name === 'truncated') {
    return {
      type: 'truncated',
      stream: typeof body.stream === 'string' ? body.stream : null,
      skippedBytes: typeof body.skippedBytes === 'number' ? body.skippedBytes : null,
      cursor,
    };
  }
  const stream = body.stream === 'stderr' ? 'stderr' : 'stdout';
  const data64 = typeof body.data === 'string' ? body.data : '';
  return { type: 'output', stream, data: Buffer.from(data64, 'base64'), cursor };
}
