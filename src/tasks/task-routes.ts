import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { toErrorResponse } from '../api/rest/error-mapping.ts';
import { JobworkerError, ValidationError } from '../core/errors.ts';
import type { TaskManager } from './task-manager.ts';
import type { BlockingSpec, PollingTask, TaskInfo, TaskStatus } from './task-types.ts';

/**
 * Makes one task of a registered type from the parameters a client sent. Throw a
 * `ValidationError` for bad parameters: the client gets 400 naming the field.
 */
export type TaskFactory = (params: Record<string, unknown>) => BlockingSpec | PollingTask;

export interface TaskRoutesOptions {
  /** The task types clients may submit, by name. */
  readonly tasks: Readonly<Record<string, TaskFactory>>;
}

const STATUSES: readonly TaskStatus[] = ['queued', 'running', 'succeeded', 'failed', 'cancelled'];

const submitBody = {
  type: 'object',
  required: ['type'],
  additionalProperties: false,
  properties: {
    type: { type: 'string', minLength: 1 },
    params: { type: 'object', additionalProperties: true },
  },
} as const;

/**
 * The task manager over HTTP, as a Fastify plugin: register it with the prefix you like.
 *
 * - `GET  /tasks/types`: the registered type names
 * - `POST /tasks` `{type, params}`: submit one (202, the task)
 * - `GET  /tasks[?status=]`, `GET /tasks/:id`: status
 * - `GET  /tasks/:id/result`: the value or error once finished, 409 `NOT_FINISHED` before
 * - `POST /tasks/:id/cancel`: cancel a queued or running task
 */
export function taskRoutes(tm: TaskManager, options: TaskRoutesOptions): FastifyPluginAsync {
  const types = new Map(Object.entries(options.tasks));
  return async (app: FastifyInstance) => {
    app.setErrorHandler((err, request, reply) => {
      const answer = toErrorResponse(err, request);
      if (answer.unexpected) request.log.error({ err }, 'task route failed');
      return reply.code(answer.status).headers(answer.headers).send(answer.body);
    });

    app.get('/tasks/types', async () => ({ types: [...types.keys()] }));

    app.post<{ Body: { type: string; params?: Record<string, unknown> } }>(
      '/tasks',
      { schema: { body: submitBody } },
      async (request, reply) => {
        const factory = types.get(request.body.type);
        if (!factory) {
          throw ValidationError.expected('type', `one of ${[...types.keys()].join(', ')}`, request.body.type);
        }
        const made = factory(request.body.params ?? {});
        const id = 'module' in made ? tm.submitBlockingSpec(made) : tm.submitPolling(made);
        return reply.code(202).send({ task: toJson(found(tm, id)) });
      },
    );

    app.get<{ Querystring: { status?: string } }>('/tasks', async (request) => {
      const status = request.query.status;
      if (status !== undefined && !(STATUSES as readonly string[]).includes(status)) {
        throw ValidationError.expected('status', `one of ${STATUSES.join(', ')}`, status);
      }
      const filter = status === undefined ? {} : { status: status as TaskStatus };
      return { tasks: tm.list(filter).map(toJson) };
    });

    app.get<{ Params: { id: string } }>('/tasks/:id', async (request) => ({
      task: toJson(found(tm, request.params.id)),
    }));

    app.get<{ Params: { id: string } }>('/tasks/:id/result', async (request) => {
      const task = found(tm, request.params.id);
      if (task.status === 'succeeded') return { status: task.status, value: task.value ?? null };
      if (task.status === 'failed' || task.status === 'cancelled')
        return { status: task.status, error: task.error };
      throw new JobworkerError('NOT_FINISHED', `Task ${task.id} is ${task.status}: it has no result yet`);
    });

    app.post<{ Params: { id: string } }>('/tasks/:id/cancel', async (request) => ({
      task: toJson(tm.cancel(request.params.id)),
    }));
  };
}

function found(tm: TaskManager, id: string): TaskInfo {
  const task = tm.get(id);
  if (!task) throw new JobworkerError('NOT_FOUND', `No task with id ${id}`);
  return task;
}

/** Dates as ISO strings; everything else is plain data already. */
function toJson(task: TaskInfo): Record<string, unknown> {
  return {
    ...task,
    submittedAt: task.submittedAt.toISOString(),
    startedAt: task.startedAt?.toISOString(),
    finishedAt: task.finishedAt?.toISOString(),
  };
}
