import type { FastifyInstance } from 'fastify';
import type { TaskService } from '../../service/task-service.ts';
import { principalOf } from './authentication.ts';
import { jobToJson } from './job-json.ts';
import { JOB_RESULT_SCHEMA, LIST_TASKS_SCHEMA, RELOAD_TASKS_SCHEMA, RUN_TASK_SCHEMA } from './schemas.ts';

/**
 * Named tasks (docs/tasks.md): GET /v1/tasks, POST /v1/tasks/reload, POST /v1/tasks/:name/runs,
 * and GET /v1/jobs/:id/result (any job's result, a task's or not).
 */
export function registerTaskRoutes(app: FastifyInstance, tasks: TaskService): void {
  app.get('/v1/tasks', { schema: LIST_TASKS_SCHEMA }, async (request) => ({
    tasks: tasks.listFor(principalOf(request)),
  }));

  // A static segment: it wins over `/v1/tasks/:name/...`.
  app.post('/v1/tasks/reload', { schema: RELOAD_TASKS_SCHEMA }, async (request) => {
    const loaded = await tasks.reload(principalOf(request));
    return { file: loaded.file, tasks: loaded.tasks };
  });

  app.post('/v1/tasks/:name/runs', { schema: RUN_TASK_SCHEMA }, async (request, reply) => {
    const { name } = request.params as { name: string };
    const job = await tasks.run(principalOf(request), name, request.body ?? {});
    return reply.code(201).send(jobToJson(job));
  });

  app.get('/v1/jobs/:id/result', { schema: JOB_RESULT_SCHEMA }, async (request, reply) => {
    const { id } = request.params as { id: string };
    const { json } = await tasks.result(principalOf(request), id);
    // The job's own text, proven JSON when it was stored: sent as it is, since parsing and writing
    // it again would round its integers above 2^53.
    return reply.type('application/json; charset=utf-8').send(json);
  });
}
