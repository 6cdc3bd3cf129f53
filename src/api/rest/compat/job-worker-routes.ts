import type { FastifyInstance } from 'fastify';
import { ValidationError } from '../../../core/errors.ts';
import { isJobId } from '../../../core/ids.ts';
import type { JobService } from '../../../service/job-service.ts';
import { principalOf } from '../authentication.ts';
import { designErrorHandler } from './compat-errors.ts';
import {
  JOB_WORKER_HEALTH_SCHEMA,
  JOB_WORKER_START_SCHEMA,
  JOB_WORKER_STATUS_SCHEMA,
  JOB_WORKER_STOP_SCHEMA,
} from './compat-schemas.ts';

const EXPECTED_ID = 'a job id (a UUIDv7 such as 0190f3a2-7c4e-7d1a-9b2c-3f4e5a6b7c8d)';

/** Each path with and without its trailing slash, as the design's clients write either. */
const bothForms = (path: string) => [path, `${path}/`];

/**
 * The route's schema with an operationId of its own: the two forms of a path are two operations
 * of the OpenAPI document, and ids must be unique. The design's own form gets the plain name:
 * `/health/`, `/start/`, `/stop/` with the slash, `/status/{jobId}` without.
 */
function named<S extends object>(schema: S, id: string, url: string): S & { operationId: string } {
  const designForm = url.endsWith('/') !== url.startsWith('/status/');
  const other = url.endsWith('/') ? 'WithSlash' : 'WithoutSlash';
  return { ...schema, operationId: designForm ? id : `${id}${other}` };
}

/**
 * The Job Worker design's REST paths (docs/compat.md): `GET /health/`, `POST /start/`,
 * `POST /stop/`, `GET /status/{jobId}`, each also without the trailing slash. Errors in that
 * design's shape, `{"status": "error", "error": "..."}` (with `jobId` or `jobStatus` null where its
 * answer has them).
 */
export function registerJobWorkerRoutes(app: FastifyInstance, service: JobService): void {
  for (const url of bothForms('/health')) {
    app.get(
      url,
      { schema: named(JOB_WORKER_HEALTH_SCHEMA, 'jobWorkerHealth', url), config: { public: true } },
      async () => ({
        status: 'success',
        error: null,
      }),
    );
  }

  for (const url of bothForms('/start')) {
    app.post(
      url,
      {
        schema: named(JOB_WORKER_START_SCHEMA, 'jobWorkerStart', url),
        errorHandler: designErrorHandler((error) => ({ status: 'error', jobId: null, error })),
      },
      async (request) => {
        const { command, args } = request.body as { command: string; args?: string[] };
        const job = await service.start(principalOf(request), { command, args: args ?? [] });
        return { status: 'running', jobId: job.id, error: null };
      },
    );
  }

  for (const url of bothForms('/stop')) {
    app.post(
      url,
      {
        schema: named(JOB_WORKER_STOP_SCHEMA, 'jobWorkerStop', url),
        errorHandler: designErrorHandler((error) => ({ status: 'error', error })),
      },
      async (request) => {
        const { jobId } = request.body as { jobId: string };
        await service.stop(principalOf(request), checkJobId(jobId));
        return { status: 'success', error: null };
      },
    );
  }

  for (const url of bothForms('/status/:jobId')) {
    app.get(
      url,
      {
        schema: named(JOB_WORKER_STATUS_SCHEMA, 'jobWorkerStatus', url),
        errorHandler: designErrorHandler((error) => ({ status: 'error', error, jobStatus: null })),
      },
      async (request) => {
        const { jobId } = request.params as { jobId: string };
        const job = await service.get(principalOf(request), checkJobId(jobId));
        return { status: 'success', error: null, jobStatus: job.status };
      },
    );
  }
}

/** The id, or a ValidationError naming the design's own field. */
function checkJobId(id: string): string {
  if (!isJobId(id)) throw ValidationError.expected('jobId', EXPECTED_ID, id);
  return id;
}
