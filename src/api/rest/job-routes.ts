import type { FastifyInstance } from 'fastify';
import { ValidationError } from '../../core/errors.ts';
import { isFinal, type Job, type JobStatus } from '../../core/job.ts';
import type { JobService, ListJobsRequest } from '../../service/job-service.ts';
import { principalOf } from './authentication.ts';
import { jobToJson } from './job-json.ts';
import {
  CREATE_JOB_SCHEMA,
  DELETE_JOB_SCHEMA,
  GET_JOB_SCHEMA,
  LIST_JOBS_SCHEMA,
  PAUSE_JOB_SCHEMA,
  PRUNE_SCHEMA,
  RESOLVE_JOB_SCHEMA,
  RESUME_JOB_SCHEMA,
  STOP_JOB_SCHEMA,
} from './schemas.ts';

/** The JSON of finished jobs, by the job objects the store hands out (gone with them). */
const finishedJson = new WeakMap<Job, string>();

interface ListQuery {
  status?: string;
  name?: string;
  queue?: string;
  text?: string;
  idPrefix?: string;
  label?: string;
  owner?: string;
  limit?: number;
  cursor?: string;
}

/**
 * POST /v1/jobs, GET /v1/jobs, GET /v1/jobs/resolve, GET and DELETE /v1/jobs/:id,
 * POST /v1/jobs/:id/{stop,pause,resume}, POST /v1/prune.
 */
export function registerJobRoutes(app: FastifyInstance, service: JobService): void {
  app.post('/v1/jobs', { schema: CREATE_JOB_SCHEMA }, async (request, reply) => {
    const { job, created } = await service.submit(principalOf(request), request.body);
    return reply.code(created ? 201 : 200).send(jobToJson(job));
  });

  app.get('/v1/jobs', { schema: LIST_JOBS_SCHEMA }, async (request) => {
    const page = await service.list(principalOf(request), listRequest(request.query as ListQuery));
    return { jobs: page.jobs.map(jobToJson), nextCursor: page.nextCursor };
  });

  // A static segment: it wins over `/v1/jobs/:id`, and `resolve` is never a job id.
  app.get('/v1/jobs/resolve', { schema: RESOLVE_JOB_SCHEMA }, async (request) => {
    const { ref } = request.query as { ref: string };
    return jobToJson(await service.resolve(principalOf(request), ref));
  });

  app.get('/v1/jobs/:id', { schema: GET_JOB_SCHEMA }, async (request, reply) => {
    const { id } = request.params as { id: string };
    const job = await service.get(principalOf(request), id);
    // A finished job is the same object while the store keeps it at hand, and never changes:
    // its JSON is made once (by the route's own serializer) and sent as it is after that.
    let json = finishedJson.get(job);
    if (json === undefined) {
      json = String(reply.serialize(jobToJson(job)));
      if (isFinal(job.status)) finishedJson.set(job, json);
    }
    return reply.type('application/json; charset=utf-8').send(json);
  });

  app.delete('/v1/jobs/:id', { schema: DELETE_JOB_SCHEMA }, async (request) => {
    const { id } = request.params as { id: string };
    return jobToJson(await service.delete(principalOf(request), id));
  });

  app.post('/v1/prune', { schema: PRUNE_SCHEMA }, async (request) => {
    const body = request.body as { olderThanMs?: number } | null | undefined;
    const olderThanMs = body?.olderThanMs;
    const deleted = await service.prune(
      principalOf(request),
      olderThanMs === undefined ? {} : { olderThanMs },
    );
    return { deleted };
  });

  app.post('/v1/jobs/:id/stop', { schema: STOP_JOB_SCHEMA }, async (request, reply) => {
    const { id } = request.params as { id: string };
    const body = request.body as { graceMs?: number } | null | undefined;
    const job = await service.stop(
      principalOf(request),
      id,
      body?.graceMs === undefined ? {} : { graceMs: body.graceMs },
    );
    // 202 while its processes are being stopped; 200 when it was queued and is now cancelled.
    return reply.code(job.status === 'cancelled' ? 200 : 202).send(jobToJson(job));
  });

  app.post('/v1/jobs/:id/pause', { schema: PAUSE_JOB_SCHEMA }, async (request) => {
    const { id } = request.params as { id: string };
    return jobToJson(await service.pause(principalOf(request), id));
  });

  app.post('/v1/jobs/:id/resume', { schema: RESUME_JOB_SCHEMA }, async (request) => {
    const { id } = request.params as { id: string };
    return jobToJson(await service.resume(principalOf(request), id));
  });
}

function listRequest(query: ListQuery): ListJobsRequest {
  const request: {
    status?: JobStatus[];
    name?: string;
    queue?: string;
    text?: string;
    idPrefix?: string;
    label?: { key: string; value: string };
    owner?: string;
    limit?: number;
    cursor?: string;
  } = {};
  if (query.status !== undefined) {
    // Checked against the known statuses by the store, which names the bad one.
    request.status = query.status.split(',').map((s) => s.trim()) as JobStatus[];
  }
  if (query.name !== undefined) request.name = query.name;
  if (query.owner !== undefined) request.owner = query.owner;
  if (query.queue !== undefined) request.queue = query.queue;
  // 1 to MAX_TEXT_CHARS characters: the schema checked it (and the store checks again).
  if (query.text !== undefined) request.text = query.text;
  if (query.idPrefix !== undefined) request.idPrefix = query.idPrefix.toLowerCase();
  if (query.label !== undefined) {
    const eq = query.label.indexOf('=');
    if (eq <= 0) throw ValidationError.expected('label', 'a label as `key=value`', query.label);
    request.label = { key: query.label.slice(0, eq), value: query.label.slice(eq + 1) };
  }
  // An integer from 1 to MAX_PAGE_SIZE: the schema checked it.
  if (query.limit !== undefined) request.limit = query.limit;
  if (query.cursor !== undefined) request.cursor = query.cursor;
  return request;
}
