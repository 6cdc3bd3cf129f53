import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { CursorError, JobworkerError } from '../../core/errors.ts';
import { isFinal } from '../../core/job.ts';
import { OUTPUT_FRAMES_TYPE } from '../../core/output-frames.ts';
import { parseCursor } from '../../output/cursor.ts';
import type { OutputSelector } from '../../output/output-types.ts';
import type { JobService } from '../../service/job-service.ts';
import { principalOf } from './authentication.ts';
import { cutWhenEnded } from './ended-for-caller.ts';
import {
  END_ID_SUFFIX,
  OUTPUT_HEADERS,
  type OutputRouteEvent,
  type StreamSummary,
  writeFrames,
  writeRaw,
  writeSse,
} from './output-writers.ts';
import { OUTPUT_SCHEMA, RUN_SCHEMA } from './schemas.ts';
import { FileSender, type SendFileAddon } from './send-file.ts';

interface OutputQuery {
  stream?: OutputSelector;
  cursor?: string;
  follow?: boolean;
}

export interface OutputRouteOptions {
  /** Where `POST /run` runs a command that names no `cwd` (the starter's form). */
  readonly runCwd?: string;
  /**
   * The send-file addon: a finished job's output read over a plain socket goes from its files to
   * the client inside the kernel. Without it, through the server's pooled pages.
   */
  readonly sendFile?: SendFileAddon;
}

/** GET /v1/jobs/:id/output (raw or SSE) and POST /run, the two routes that stream a job's output. */
export function registerOutputRoutes(
  app: FastifyInstance,
  service: JobService,
  options: OutputRouteOptions = {},
): void {
  const { runCwd, sendFile } = options;
  app.get(
    '/v1/jobs/:id/output',
    {
      schema: OUTPUT_SCHEMA,
      config: {
        openapi: {
          200: {
            description:
              'The bytes of the view as they come (raw), or server-sent events `output`, `truncated` and `end`.',
            headers: {
              [OUTPUT_HEADERS.cursor]: {
                description: 'Cursor of the first byte of this response.',
                schema: { type: 'string' },
              },
              [OUTPUT_HEADERS.jobId]: { schema: { type: 'string' } },
              [OUTPUT_HEADERS.end]: {
                description: "The view's end when the response started: its length so far.",
                schema: { type: 'string' },
              },
              [OUTPUT_HEADERS.heartbeatMs]: {
                description:
                  'A follow as server-sent events or frames only: the period of its heartbeats (an SSE comment, a frame of kind 5), which come one to two periods after the last output, then every period while the job stays quiet.',
                schema: { type: 'string' },
              },
            },
            content: {
              'application/octet-stream': { schema: { type: 'string', format: 'binary' } },
              'text/event-stream': { schema: { type: 'string' } },
              [OUTPUT_FRAMES_TYPE]: {
                schema: {
                  type: 'string',
                  format: 'binary',
                  description: 'Binary frames, each a run of one stream with its cursor (docs/output.md).',
                },
              },
            },
          },
        },
      },
    },
    async (request, reply) => {
      const who = principalOf(request);
      const { id } = request.params as { id: string };
      const query = request.query as OutputQuery;
      const head = request.method === 'HEAD';
      const sse = wantsEventStream(request);
      const lastEventId = request.headers['last-event-id'];
      // An EventSource reconnecting sends Last-Event-ID with the URL it first used: the header wins.
      const reconnect = sse && typeof lastEventId === 'string' ? parseLastEventId(lastEventId) : undefined;
      const [cursorText, field] = reconnect ? [reconnect.cursor, 'Last-Event-ID'] : [query.cursor, 'cursor'];
      // HEAD reads nothing, so it never follows; what it answers is decided as for GET.
      const follow = query.follow === true && !head;
      const signal = untilClosed(reply);
      // A finished job's bytes go from its files to the socket inside the kernel where they can
      // (a plain socket; not SSE, whose events are base64); its descriptor goes back once done.
      const sender = sse || head || follow ? undefined : FileSender.for(reply.raw, sendFile);
      /** The service's stream, under whatever wraps it (its first event put back, heartbeats). */
      let opened: AsyncGenerator<OutputRouteEvent> | undefined;
      let ended: AbortSignal | undefined;
      let stopCutting = (): void => undefined;
      try {
        let cursor = 0;
        let events: AsyncGenerator<OutputRouteEvent>;
        let end = 0;
        try {
          cursor = cursorText === undefined ? 0 : parseCursor(cursorText);
          // A client that has seen the `end` of a finished job has everything there will ever be,
          // unless it asks for bytes before it (the stream was cut, or `end` came early).
          const mayBeSpent = reconnect?.sawEnd === true && isFinal((await service.get(who, id)).status);
          const stream = await service.openOutput(who, id, {
            selector: query.stream ?? 'all',
            cursor,
            follow,
            signal,
            // An event stream also tells of the job's progress (`progress` events: docs/tasks.md),
            // first of all; not to a client that has seen `end`, which had it then, and which
            // must be answered 204 when `end` is all there is for it.
            progress: sse && !mayBeSpent,
            spans: sender !== undefined,
          });
          end = stream.end;
          opened = stream;
          ended = stream.ended;
          stopCutting = cutWhenEnded(reply.raw, ended);
          events = stream;
          if (mayBeSpent) {
            const first = await events.next();
            if (first.done || first.value.type === 'end') {
              await events.return(undefined);
              // The SSE specification's "stop reconnecting": a 200 would only repeat what the client
              // has, and its EventSource would come back for it again every few seconds, forever.
              return reply
                .code(204)
                .headers({ 'Cache-Control': 'no-store', [OUTPUT_HEADERS.jobId]: id })
                .send();
            }
            events = prepend(first.value, events);
          }
        } catch (err) {
          throw err instanceof CursorError && field !== 'cursor' ? renamedCursorError(err, field) : err;
        }
        if (head) {
          // HEAD: the same checks, status and headers as GET, and not one byte read.
          await events.return(undefined);
          events = (async function* () {})();
        }
        const frames = !sse && wantsFrames(request);
        const mode = head ? 'head' : sse ? 'sse' : frames ? 'frames' : 'raw';
        // A follow sends nothing while its job is quiet: frames and events can carry heartbeats
        // meanwhile, so that its client can tell a quiet job from a dead connection.
        const beats = follow && (sse || frames);
        const heartbeat = beats ? { heartbeat: { clock: service.clock, ms: service.heartbeatMs } } : {};
        const beatHeader: Record<string, string> = beats
          ? { [OUTPUT_HEADERS.heartbeatMs]: String(service.heartbeatMs) }
          : {};
        await streamResponse(request, reply, mode, signal, ended, () =>
          sse
            ? writeSse(reply.raw, events, {
                jobId: id,
                cursor,
                signal,
                headers: { [OUTPUT_HEADERS.end]: String(end), ...beatHeader },
                ...heartbeat,
              })
            : frames && !head
              ? writeFrames(reply.raw, events, {
                  jobId: id,
                  cursor,
                  signal,
                  headers: { [OUTPUT_HEADERS.end]: String(end), ...beatHeader },
                  sender,
                  ...heartbeat,
                })
              : writeRaw(reply.raw, events, {
                  jobId: id,
                  cursor,
                  headers: { [OUTPUT_HEADERS.end]: String(end) },
                  contentType: frames ? OUTPUT_FRAMES_TYPE : 'application/octet-stream',
                  // Node refuses a `Trailer` header without a chunked body, which HEAD has not.
                  trailers: request.raw.httpVersion !== '1.0' && !head,
                  signal,
                  sender,
                }),
        );
      } finally {
        stopCutting();
        sender?.close();
        // A writer that failed before its first read leaves a wrapper (the first event put back)
        // unstarted, and an unstarted generator closes without its `finally`: the service's
        // stream (its follower slot) is closed here. Not awaited: a finished stream's close does
        // nothing, and a pending read of it ends with the request's signal.
        if (opened !== undefined) void opened.return(undefined).catch(() => {});
      }
    },
  );

  app.post(
    '/run',
    {
      schema: RUN_SCHEMA,
      config: {
        tokenless: true,
        openapi: {
          200: {
            description: "The job's combined output once it ended, whatever its exit code.",
            headers: {
              [OUTPUT_HEADERS.jobId]: { schema: { type: 'string' } },
              [OUTPUT_HEADERS.status]: {
                description: 'The job status (`running` if the server was closing).',
                schema: { type: 'string' },
              },
              [OUTPUT_HEADERS.exitCode]: {
                description: 'Absent when there is none.',
                schema: { type: 'string' },
              },
              [OUTPUT_HEADERS.truncatedBytes]: {
                description:
                  'How many of its first bytes the output cap dropped before the body (0: none): the body is the rest.',
                schema: { type: 'string' },
              },
            },
            content: { 'text/plain': { schema: { type: 'string' } } },
          },
        },
      },
    },
    async (request, reply) => {
      const who = principalOf(request);
      const signal = untilClosed(reply);
      // The starter's `{"command": "cat", "args": ["README.md"]}` names a file relative to the server's directory.
      const body = request.body as Record<string, unknown>;
      const spec = runCwd !== undefined && body.cwd === undefined ? { ...body, cwd: runCwd } : body;
      const job = await service.run(who, spec, signal);
      const sender = FileSender.for(reply.raw, sendFile);
      let ended: AbortSignal | undefined;
      let stopCutting = (): void => undefined;
      try {
        const events = await service.openOutput(who, job.id, {
          selector: 'all',
          cursor: 0,
          follow: false,
          signal,
          spans: sender !== undefined,
        });
        ended = events.ended;
        stopCutting = cutWhenEnded(reply.raw, ended);
        // The job has ended: its kept window no longer moves, so what retention dropped is known
        // before the body (the view's one marker comes first) and goes in a header, not a trailer.
        const { dropped, body } = await droppedBefore(events);
        const headers: Record<string, string> = {
          [OUTPUT_HEADERS.status]: job.status,
          [OUTPUT_HEADERS.truncatedBytes]: String(dropped),
        };
        if (job.exit?.exitCode != null) headers[OUTPUT_HEADERS.exitCode] = String(job.exit.exitCode);
        await streamResponse(request, reply, 'run', signal, ended, () =>
          writeRaw(reply.raw, body, {
            jobId: job.id,
            cursor: 0,
            contentType: 'text/plain; charset=utf-8',
            trailers: false,
            headers,
            signal,
            sender,
          }),
        );
      } finally {
        stopCutting();
        sender?.close();
      }
    },
  );
}

/** `Last-Event-ID`: a cursor, or the `end` event's id (its cursor and `END_ID_SUFFIX`). */
function parseLastEventId(text: string): { cursor: string; sawEnd: boolean } {
  return text.endsWith(END_ID_SUFFIX)
    ? { cursor: text.slice(0, -END_ID_SUFFIX.length), sawEnd: true }
    : { cursor: text, sawEnd: false };
}

/**
 * The bytes dropped before a view read from cursor 0, from its first output event (the view's
 * marker, if any, comes first), and the view with that event put back in front.
 */
async function droppedBefore(
  events: AsyncGenerator<OutputRouteEvent>,
): Promise<{ dropped: number; body: AsyncGenerator<OutputRouteEvent> }> {
  const first = await events.next();
  if (first.done) return { dropped: 0, body: events };
  const event = first.value;
  let marker: { type: string; skippedBytes?: number } | undefined;
  if (event.type === 'spans') marker = event.spans[0];
  else if (event.type === 'output') marker = event.events[0];
  const dropped = marker?.type === 'truncated' ? (marker.skippedBytes ?? 0) : 0;
  return { dropped, body: prepend(event, events) };
}

async function* prepend<E>(first: E, rest: AsyncGenerator<E>): AsyncGenerator<E> {
  try {
    yield first;
    yield* rest;
  } finally {
    await rest.return(undefined);
  }
}

function wantsEventStream(request: FastifyRequest): boolean {
  return (request.headers.accept ?? '').toLowerCase().includes('text/event-stream');
}

function wantsFrames(request: FastifyRequest): boolean {
  return (request.headers.accept ?? '').toLowerCase().includes(OUTPUT_FRAMES_TYPE);
}

function renamedCursorError(err: CursorError, field: string): CursorError {
  return new CursorError(err.message.replace('`cursor`', `\`${field}\``), field);
}

/** Aborted as soon as the response closes: the client went away, or the response is complete. */
function untilClosed(reply: FastifyReply): AbortSignal {
  const controller = new AbortController();
  reply.raw.once('close', () => controller.abort());
  return controller.signal;
}

/**
 * Takes the response over from Fastify and streams it. Once the status line is out an error can
 * no longer be answered as JSON: it is logged and the connection cut, so the client sees an
 * incomplete stream (no trailers, no `end` event) and resumes from its last cursor.
 */
async function streamResponse(
  request: FastifyRequest,
  reply: FastifyReply,
  mode: string,
  signal: AbortSignal,
  ended: AbortSignal | undefined,
  write: () => Promise<StreamSummary>,
): Promise<void> {
  reply.hijack();
  const started = Date.now();
  try {
    const summary = await write();
    request.log.info(
      {
        res: { statusCode: 200 },
        mode,
        bytes: summary.bytes,
        // Copied by the kernel from the output files (sendfile) rather than through memory.
        ...(summary.fromFiles ? { fromFiles: summary.fromFiles } : {}),
        cursor: summary.cursor,
        ended: summary.end
          ? summary.end.status
          : ended?.aborted
            ? 'ended-for-caller'
            : signal.aborted
              ? 'client-gone'
              : 'cut-short',
        responseTime: Date.now() - started,
      },
      'stream completed',
    );
  } catch (err) {
    // Ended because the caller's credentials changed (JobService.endStreamsOf): no fault here.
    if (err instanceof JobworkerError && err.code === 'UNAUTHENTICATED')
      request.log.info({ err, mode }, 'stream ended: credentials changed');
    else request.log.error({ err, mode }, 'stream failed');
    reply.raw.destroy();
  }
}
