import { MAX_TEXT_OUTPUT_BYTES } from './job-output-text.ts';

/**
 * Schemas of the original designs' routes (docs/compat.md). Their bodies are those designs' own,
 * errors included, and OpenAPI documents them beside REST v1 under the tag of each design.
 */

const jobWorkerError = (extra: Record<string, unknown> = {}) => ({
  type: 'object',
  description:
    "The Job Worker design's error: the HTTP status and the `X-Jobworker-Error-Code` header carry " +
    'the code of docs/errors.md.',
  additionalProperties: false,
  required: ['status', 'error', ...Object.keys(extra)],
  properties: { status: { type: 'string', enum: ['error'] }, error: { type: 'string' }, ...extra },
});

/** Statuses every authenticated compat route may answer besides its own. */
const errorStatuses = [400, 401, 429, 500, 507];

function jobWorkerErrors(statuses: number[], extra: Record<string, unknown> = {}) {
  const body = jobWorkerError(extra);
  return Object.fromEntries([...new Set([...errorStatuses, ...statuses])].map((s) => [String(s), body]));
}

const jobId = { type: 'string', description: 'The job id.' } as const;

export const JOB_WORKER_HEALTH_SCHEMA = {
  summary: 'Job Worker design: health check (no authentication)',
  response: {
    200: {
      type: 'object',
      additionalProperties: false,
      required: ['status', 'error'],
      properties: { status: { type: 'string', enum: ['success'] }, error: { type: 'null' } },
    },
  },
} as const;

export const JOB_WORKER_START_SCHEMA = {
  summary: 'Job Worker design: start a command',
  description:
    "`command` with `args`, run directly (no shell) in the owner's home. `status` is `running` once the " +
    'job is accepted (it may still wait in its queue: `/status/{jobId}` says), `error` with `jobId` null otherwise.',
  body: {
    type: 'object',
    additionalProperties: false,
    required: ['command'],
    properties: {
      command: { type: 'string', description: 'The program to run.' },
      args: { type: 'array', items: { type: 'string' }, description: 'Its arguments, as they are.' },
    },
  },
  response: {
    200: {
      type: 'object',
      additionalProperties: false,
      required: ['status', 'jobId', 'error'],
      properties: { status: { type: 'string', enum: ['running'] }, jobId, error: { type: 'null' } },
    },
    ...jobWorkerErrors([403, 409, 413], { jobId: { type: 'null' } }),
  },
} as const;

export const JOB_WORKER_STOP_SCHEMA = {
  summary: 'Job Worker design: stop a job and every process it started',
  description:
    'Answers `success` once the stop is recorded (the job is `stopped` when its processes are gone); ' +
    '`error` for an unknown job and for a job that had already finished (409).',
  body: {
    type: 'object',
    additionalProperties: false,
    required: ['jobId'],
    properties: { jobId },
  },
  response: {
    200: {
      type: 'object',
      additionalProperties: false,
      required: ['status', 'error'],
      properties: { status: { type: 'string', enum: ['success'] }, error: { type: 'null' } },
    },
    ...jobWorkerErrors([403, 404, 409, 413]),
  },
} as const;

export const JOB_WORKER_STATUS_SCHEMA = {
  summary: "Job Worker design: a job's status",
  description: "`jobStatus` is jobworker's own status of the job (docs/compat.md maps the design's fields).",
  params: {
    type: 'object',
    additionalProperties: false,
    required: ['jobId'],
    properties: { jobId },
  },
  response: {
    200: {
      type: 'object',
      additionalProperties: false,
      required: ['status', 'error', 'jobStatus'],
      properties: {
        status: { type: 'string', enum: ['success'] },
        error: { type: 'null' },
        jobStatus: { type: 'string' },
      },
    },
    ...jobWorkerErrors([404], { jobStatus: { type: 'null' } }),
  },
} as const;

const workerctlError = {
  type: 'object',
  description:
    "The workerctl design's error: the HTTP status and the `X-Jobworker-Error-Code` header carry the " +
    'code of docs/errors.md.',
  additionalProperties: false,
  required: ['error'],
  properties: { error: { type: 'string' } },
} as const;

export const WORKERCTL_ACTION_SCHEMA = {
  summary: 'workerctl design: start, stop or look at a job (the action in the body)',
  description:
    'The token may come in the body (this route alone), else as on every route. `start` runs ' +
    '`command` with /bin/sh -c and a 60 s timeout; `stop` and `status` take `jobID`. `status` is the ' +
    "design's (created, running, finished, stopped, error; docs/compat.md), `output` the combined " +
    `output as UTF-8 text, its last ${MAX_TEXT_OUTPUT_BYTES / 1024 / 1024} MiB at most.`,
  body: {
    type: 'object',
    additionalProperties: false,
    required: ['action'],
    properties: {
      action: { type: 'string', enum: ['start', 'stop', 'status'] },
      token: { type: 'string', description: 'A bearer token.' },
      command: { type: 'string', description: '`start`: the command line, such as `ls -l`.' },
      jobID: { type: 'string', description: '`stop`, `status`: the job id.' },
    },
  },
  response: {
    200: {
      type: 'object',
      additionalProperties: false,
      required: ['jobID', 'status'],
      properties: {
        jobID: jobId,
        status: { type: 'string', enum: ['created', 'running', 'finished', 'stopped', 'error'] },
        output: { type: 'string' },
      },
    },
    ...Object.fromEntries([...errorStatuses, 403, 404, 409, 413].map((s) => [String(s), workerctlError])),
  },
} as const;

/** The async task manager design's answer about one task (its status, and progress while it runs). */
const taskManagerStatus = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'task', 'status'],
  properties: {
    id: { type: 'string', description: 'The job id of the run.' },
    task: { type: ['string', 'null'], description: 'The task it runs.' },
    status: {
      type: 'string',
      description: 'The job status: queued, running, succeeded, failed, cancelled, ...',
    },
    progress: {
      type: ['object', 'null'],
      properties: {
        done: { type: 'number' },
        total: { type: ['number', 'null'] },
        message: { type: ['string', 'null'] },
      },
    },
  },
} as const;

const idQuery = {
  type: 'object',
  additionalProperties: false,
  required: ['id'],
  properties: { id: { type: 'string', description: 'The id `/start/{task}` answered.' } },
} as const;

/** Errors of the task manager routes: REST v1's (`{"error": {"code", "message"}}`). */
const taskManagerErrors = (...statuses: number[]) =>
  Object.fromEntries(
    [...new Set([...errorStatuses, ...statuses])].map((s) => [String(s), { $ref: 'Error#' }]),
  );

export const TASK_MANAGER_START_SCHEMA = {
  operationId: 'taskManagerStart',
  summary: 'Async task manager design: start a named task, parameters in the query',
  description:
    '`POST /start/power_sim?a=2&b=20`: the query holds the parameters, read as the types the task declares. ' +
    '201 with the run (`queued` until a slot of its queue frees); 429 QUEUE_FULL when its queue is full.',
  params: {
    type: 'object',
    additionalProperties: false,
    required: ['task'],
    properties: { task: { type: 'string', description: 'The task name.' } },
  },
  querystring: { type: 'object', additionalProperties: { type: 'string' } },
  response: { 201: taskManagerStatus, ...taskManagerErrors(403, 404) },
} as const;

export const TASK_MANAGER_CANCEL_SCHEMA = {
  operationId: 'taskManagerCancel',
  summary: 'Async task manager design: cancel a task',
  description:
    'A queued task becomes `cancelled` (and stays known as such); a running one is stopped (`running` until ' +
    'its processes are gone, then `stopped`). 409 ALREADY_FINISHED on a task that had ended. A task retried by its ' +
    '`retry` policy: its latest attempt.',
  querystring: idQuery,
  response: { 200: taskManagerStatus, ...taskManagerErrors(403, 404, 409) },
} as const;

export const TASK_MANAGER_STATUS_SCHEMA = {
  operationId: 'taskManagerStatus',
  summary: 'Async task manager design: the status of a task',
  description: 'Of a task retried by its `retry` policy, its latest attempt (`id` stays the one asked for).',
  querystring: idQuery,
  response: { 200: taskManagerStatus, ...taskManagerErrors(404) },
} as const;

export const TASK_MANAGER_RESULT_SCHEMA = {
  operationId: 'taskManagerResult',
  summary: 'Async task manager design: the result of a task',
  description:
    '200 `{id, task, status: "succeeded", result}`; 409 NOT_FINISHED before it ends; 422 JOB_FAILED when it failed ' +
    '(the message names its exit and the last lines of its stderr). Of a task retried by its `retry` policy, its ' +
    'latest attempt.',
  querystring: idQuery,
  response: {
    200: {
      type: 'object',
      additionalProperties: false,
      required: ['id', 'task', 'status', 'result'],
      properties: {
        id: { type: 'string' },
        task: { type: ['string', 'null'] },
        status: { type: 'string', enum: ['succeeded'] },
        result: { description: 'The value the task wrote to JOBWORKER_RESULT.' },
      },
    },
    ...taskManagerErrors(404, 409, 422),
  },
} as const;
