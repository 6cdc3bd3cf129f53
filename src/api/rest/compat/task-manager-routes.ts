import type { FastifyInstance } from 'fastify';
import type { Job } from '../../../core/job.ts';
import type { TaskService } from '../../../service/task-service.ts';
import { principalOf } from '../authentication.ts';
import {
  TASK_MANAGER_CANCEL_SCHEMA,
  TASK_MANAGER_RESULT_SCHEMA,
  TASK_MANAGER_START_SCHEMA,
  TASK_MANAGER_STATUS_SCHEMA,
} from './compat-schemas.ts';

/**
 * A run as the task manager's routes answer it: `job` is its latest attempt, `id` the one the
 * client holds (the run's first job), which stays its id however often it is retried.
 */
function statusOf(id: string, job: Job) {
  return {
    id,
    task: job.spec.task?.name ?? null,
    status: job.status,
    progress: job.progress
      ? { done: job.progress.done, total: job.progress.total, message: job.progress.message }
      : null,
  };
}

/**
 * The async task manager design's routes (origin 004, docs/tasks.md): `POST /start/{task}?a=2`,
 * `POST /cancel?id=`, `GET /status?id=`, `GET /result?id=`, over named tasks. Its queue of 3
 * running and 10 waiting is the task's queue (`queues:` of the tasks file); ids are job ids, and
 * a cancelled queued task is kept as `cancelled` (that design forgot it). A run retried by its
 * task's `retry` keeps the id it started with: status, cancel and result act on its latest attempt. `/start/` with a JSON
 * body (the Job Worker design's) is another route and keeps working. Errors are REST v1's.
 */
export function registerTaskManagerRoutes(app: FastifyInstance, tasks: TaskService): void {
  app.post('/start/:task', { schema: TASK_MANAGER_START_SCHEMA }, async (request, reply) => {
    const { task } = request.params as { task: string };
    const job = await tasks.run(principalOf(request), task, request.query, { coerce: true });
    return reply.code(201).send(statusOf(job.id, job));
  });

  app.post('/cancel', { schema: TASK_MANAGER_CANCEL_SCHEMA }, async (request) => {
    const { id } = request.query as { id: string };
    return statusOf(id, await tasks.cancel(principalOf(request), id));
  });

  app.get('/status', { schema: TASK_MANAGER_STATUS_SCHEMA }, async (request) => {
    const { id } = request.query as { id: string };
    return statusOf(id, await tasks.status(principalOf(request), id));
  });

  app.get('/result', { schema: TASK_MANAGER_RESULT_SCHEMA }, async (request, reply) => {
    const { id } = request.query as { id: string };
    const { job, json } = await tasks.result(principalOf(request), id);
    const body = `{"id":${JSON.stringify(id)},"task":${JSON.stringify(job.spec.task?.name ?? null)},"status":"succeeded","result":${json}}`;
    return reply.type('application/json; charset=utf-8').send(body);
  });
}
