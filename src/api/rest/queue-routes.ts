import type { FastifyInstance } from 'fastify';
import type { JobService, QueueSettingsInput } from '../../service/job-service.ts';
import { principalOf } from './authentication.ts';
import {
  DRAIN_SCHEMA,
  DRAIN_STATE_SCHEMA,
  GET_QUEUE_SCHEMA,
  LIST_QUEUES_SCHEMA,
  PAUSE_QUEUE_SCHEMA,
  PUT_QUEUE_SCHEMA,
  RESUME_QUEUE_SCHEMA,
  UNDRAIN_SCHEMA,
} from './schemas.ts';

/** Queues (GET /v1/queues, GET/PUT /v1/queues/:name, pause, resume) and drain (docs/queues.md). */
export function registerQueueRoutes(app: FastifyInstance, service: JobService): void {
  app.get('/v1/queues', { schema: LIST_QUEUES_SCHEMA }, async () => ({ queues: await service.queues() }));

  app.get('/v1/queues/:name', { schema: GET_QUEUE_SCHEMA }, async (request) => {
    const { name } = request.params as { name: string };
    return service.queue(name);
  });

  app.put('/v1/queues/:name', { schema: PUT_QUEUE_SCHEMA }, async (request) => {
    const { name } = request.params as { name: string };
    return service.setQueue(principalOf(request), name, (request.body ?? {}) as QueueSettingsInput);
  });

  app.post('/v1/queues/:name/pause', { schema: PAUSE_QUEUE_SCHEMA }, async (request) => {
    const { name } = request.params as { name: string };
    return service.setQueue(principalOf(request), name, { paused: true });
  });

  app.post('/v1/queues/:name/resume', { schema: RESUME_QUEUE_SCHEMA }, async (request) => {
    const { name } = request.params as { name: string };
    return service.setQueue(principalOf(request), name, { paused: false });
  });

  app.post('/v1/drain', { schema: DRAIN_SCHEMA }, async (request, reply) => {
    const body = request.body as { wait?: boolean } | null | undefined;
    // A client that goes away ends the wait (the drain itself stays); the response's own close
    // event, not the kept-alive socket's, so that nothing is left listening after the answer.
    const gone = new AbortController();
    reply.raw.once('close', () => gone.abort());
    return service.drain(principalOf(request), { wait: body?.wait === true, signal: gone.signal });
  });

  app.get('/v1/drain', { schema: DRAIN_STATE_SCHEMA }, async (request) =>
    service.drainState(principalOf(request)),
  );

  app.post('/v1/undrain', { schema: UNDRAIN_SCHEMA }, async (request) =>
    service.undrain(principalOf(request)),
  );
}
