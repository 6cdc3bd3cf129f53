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
