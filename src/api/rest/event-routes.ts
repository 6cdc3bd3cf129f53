import type { FastifyInstance } from 'fastify';
import { JobworkerError } from '../../core/errors.ts';
import type { WatchMessage } from '../../service/job-event-feed.ts';
import type { JobService } from '../../service/job-service.ts';
import { principalOf } from './authentication.ts';
import { cutWhenEnded } from './ended-for-caller.ts';
import { jobToJson } from './job-json.ts';
import { EVENTS_SCHEMA } from './schemas.ts';

/** What the route needs of a response: Node's HTTP/1.1 and HTTP/2 compat responses both fit. */
interface EventSink {
  write(chunk: string): boolean;
  on(event: 'drain', listener: () => void): unknown;
  off(event: 'drain', listener: () => void): unknown;
}

/** GET /v1/events: job events as server-sent events (docs/api.md, "Events"). */
export function registerEventRoutes(app: FastifyInstance, service: JobService): void {
  app.get(
    '/v1/events',
    {
      schema: EVENTS_SCHEMA,
      config: {
        openapi: {
          200: {
            description:
              'Server-sent events `ready`, `reset`, `job:queued`, `job:started`, `job:progress`, `job:paused`, `job:resumed`, `job:finished`.',
            content: { 'text/event-stream': { schema: { type: 'string' } } },
          },
        },
      },
    },
    async (request, reply) => {
      const who = principalOf(request);
      const header = request.headers['last-event-id'];
      const gone = new AbortController();
      reply.raw.once('close', () => gone.abort());
      // HEAD: the same checks and headers, no stream.
      const head = request.method === 'HEAD';
      const messages = await service.watchEvents(who, {
        lastEventId: typeof header === 'string' && header !== '' ? header : undefined,
        signal: gone.signal,
      });
      const stopCutting = cutWhenEnded(reply.raw, messages.ended);
      // Given back on every path from here (a throw before the loop included): the watch holds a
      // slot and a listener on the server's shutdown until then.
      try {
        reply.hijack();
        reply.raw.writeHead(200, {
          'Content-Type': 'text/event-stream; charset=utf-8',
          'Cache-Control': 'no-store',
          // Proxies that buffer (nginx) would hold the events back.
          'X-Accel-Buffering': 'no',
        });
        if (head) {
          reply.raw.end();
          return;
        }
        const sink = reply.raw as unknown as EventSink;
        try {
          for await (const message of messages) {
            // A slow client holds the next message back (its backlog is the service's, bounded).
            if (!sink.write(frame(message))) await drained(sink, gone.signal);
            if (gone.signal.aborted) break;
          }
        } catch (err) {
          // Ended because the caller's credentials changed (JobService.endStreamsOf): no fault here.
          if (err instanceof JobworkerError && err.code === 'UNAUTHENTICATED')
            request.log.info({ err }, 'event stream ended: credentials changed');
          else request.log.error({ err }, 'event stream failed');
          reply.raw.destroy();
          return;
        }
        if (!gone.signal.aborted) reply.raw.end();
      } finally {
        stopCutting();
        await messages.return(undefined);
      }
    },
  );
}

/** Resolves once the response can take more, or the client has gone; leaves no listener behind. */
function drained(sink: EventSink, gone: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      sink.off('drain', done);
      gone.removeEventListener('abort', done);
      resolve();
    };
    sink.on('drain', done);
    gone.addEventListener('abort', done, { once: true });
    if (gone.aborted) done();
  });
}

/** One message as an SSE frame; data is one line of JSON, so no payload can forge a field. */
export function frame(message: WatchMessage): string {
  switch (message.kind) {
    case 'heartbeat':
      return ': heartbeat\n\n';
    case 'ready':
      return `id: ${message.lastEventId}\nevent: ready\ndata: ${JSON.stringify({ lastEventId: message.lastEventId })}\n\n`;
    case 'reset':
      return `id: ${message.lastEventId}\nevent: reset\ndata: ${JSON.stringify({ lastEventId: message.lastEventId, reason: message.reason })}\n\n`;
    case 'event':
      return `id: ${message.event.id}\nevent: ${message.event.type}\ndata: ${JSON.stringify(jobToJson(message.event.job))}\n\n`;
  }
}
