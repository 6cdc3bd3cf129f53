import { JOB_STATUSES } from '../../core/job.ts';
import { SPEC_LIMITS } from '../../core/spec.ts';
import { OUTPUT_SELECTORS } from '../../output/cursor.ts';
import { MAX_GRACE_MS } from '../../service/job-service.ts';
import { MAX_PAGE_SIZE } from '../../store/list-query.ts';

/**
 * JSON schemas of the REST API v1: the routes validate requests and serialize responses with
 * them, and `/v1/openapi.json` is assembled from the same objects. Requests are strict: unknown
 * fields are refused (never silently dropped) and nothing is coerced.
 */

const nullable = (type: string, extra: object = {}) => ({ type: [type, 'null'], ...extra });
const stringMap = { type: 'object', additionalProperties: { type: 'string' } } as const;
const time = (description: string) => nullable('string', { format: 'date-time', description });

export const JOB_SCHEMA = {
  $id: 'Job',
  type: 'object',
  description: 'A job: what it runs, where it is in its life, and how it ended.',
  additionalProperties: false,
  required: [
    'id',
    'name',
    'command',
    'args',
    'shell',
    'cwd',
    'labels',
    'status',
    'exitCode',
    'signal',
    'reason',
    'owner',
    'pid',
    'createdAt',
    'startedAt',
    'finishedAt',
    'stopRequestedAt',
    'outputBytes',
  ],
  properties: {
    id: { type: 'string', description: 'Time-sortable UUIDv7.' },
    name: nullable('string'),
    command: { type: 'string' },
    args: { type: 'array', items: { type: 'string' } },
    shell: { type: 'boolean', description: 'True when `command` is a script run by `/bin/sh -c`.' },
    cwd: { type: 'string' },
    labels: stringMap,
    status: { type: 'string', enum: JOB_STATUSES },
    exitCode: nullable('integer', {
      description: 'Exit code of the main process; null if none (signal, not ended).',
    }),
    signal: nullable('string', { description: 'Signal that killed the main process, e.g. `SIGKILL`.' }),
    reason: nullable('string', { description: 'One human line on how the job ended.' }),
    owner: { type: 'string', description: 'The user who started the job.' },
    pid: nullable('integer', { description: "Pid of the job's wrapper (its process group id)." }),
    createdAt: { type: 'string', format: 'date-time' },
    startedAt: time('When its processes were spawned.'),
    finishedAt: time('When it reached a final status.'),
    stopRequestedAt: time('When a stop (or the timeout) was first requested.'),
    outputBytes: {
      type: 'object',
      additionalProperties: false,
      required: ['stdout', 'stderr'],
      properties: { stdout: { type: 'integer' }, stderr: { type: 'integer' } },
      description: 'Bytes written per stream, including any dropped by retention.',
    },
  },
} as const;

export const ERROR_SCHEMA = {
  $id: 'Error',
  type: 'object',
  description: 'Every error. `job` is present on 409 ALREADY_FINISHED: the job as it is.',
  additionalProperties: false,
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      additionalProperties: false,
      required: ['code', 'message'],
      properties: {
        code: { type: 'string', description: 'Stable code; see docs/errors.md.' },
        message: { type: 'string', description: 'For humans; may be reworded.' },
        field: { type: 'string', description: 'The request field at fault, for bad input.' },
      },
    },
    job: { $ref: 'Job#' },
  },
} as const;

/** Shared schemas, added to Fastify once and referenced as `Job#` and `Error#`. */
export const SHARED_SCHEMAS = [JOB_SCHEMA, ERROR_SCHEMA] as const;

const errorRef = { $ref: 'Error#' } as const;
const jobRef = { $ref: 'Job#' } as const;

/** The error responses a route may give besides 401 (which every route but /healthz may give). */
function errors(...statuses: number[]): Record<string, typeof errorRef> {
  return Object.fromEntries([401, 500, ...statuses].map((status) => [String(status), errorRef]));
}

export const JOB_SPEC_BODY = {
  type: 'object',
  additionalProperties: false,
  required: ['command'],
  properties: {
    command: {
      type: 'string',
      description: 'Program to run (looked up in PATH), or a script for `/bin/sh -c` when `shell` is true.',
    },
    args: {
      type: 'array',
      items: { type: 'string' },
      description: `Arguments, passed as-is (no shell); at most ${SPEC_LIMITS.args}.`,
    },
    shell: { type: 'boolean', description: 'Run `command` with `/bin/sh -c`; `args` become `$1`, `$2`...' },
    env: {
      ...stringMap,
      description: "The job's environment besides PATH, HOME and LANG; the server's own is never inherited.",
    },
    cwd: { type: 'string', description: 'Absolute working directory (default: the server user home).' },
    timeoutMs: nullable('integer', {
      description: 'End the job as `timed_out` after this many ms of running.',
    }),
    name: nullable('string', { description: `A human name, 1 to ${SPEC_LIMITS.nameChars} characters.` }),
    labels: { ...stringMap, description: `At most ${SPEC_LIMITS.labels} key/value labels, for filtering.` },
    limits: {
      type: 'object',
      additionalProperties: false,
      properties: {
        memoryBytes: { type: 'integer', description: 'Hard memory limit (cgroup).' },
        cpuMillis: { type: 'integer', description: 'CPU quota in thousandths of a CPU (cgroup).' },
      },
    },
  },
} as const;

const idParams = {
  type: 'object',
  additionalProperties: false,
  required: ['id'],
  properties: { id: { type: 'string', description: 'The job id.' } },
} as const;

export const CREATE_JOB_SCHEMA = {
  summary: 'Start a job',
  body: JOB_SPEC_BODY,
  response: { 201: jobRef, ...errors(400, 413, 429) },
} as const;

export const LIST_JOBS_SCHEMA = {
  summary: 'List jobs, newest first',
  querystring: {
    type: 'object',
    additionalProperties: false,
    properties: {
      status: {
        type: 'string',
        description: `Comma-separated statuses: ${JOB_STATUSES.join(', ')}.`,
      },
      name: { type: 'string', description: 'Exact job name.' },
      label: { type: 'string', description: 'One label as `key=value`.' },
      limit: {
        type: 'string',
        pattern: '^[0-9]{1,4}$',
        description: `Page size, 1 to ${MAX_PAGE_SIZE} (default 50).`,
      },
      cursor: { type: 'string', description: '`nextCursor` of the previous page.' },
    },
  },
  response: {
    200: {
      type: 'object',
      additionalProperties: false,
      required: ['jobs', 'nextCursor'],
      properties: {
        jobs: { type: 'array', items: jobRef },
        nextCursor: nullable('string', {
          description: 'Pass as `cursor` for the next, older page; null on the last.',
        }),
      },
    },
    ...errors(400),
  },
} as const;

export const GET_JOB_SCHEMA = {
  summary: 'Get a job',
  params: idParams,
  response: { 200: jobRef, ...errors(400, 404) },
} as const;

export const STOP_JOB_SCHEMA = {
  summary: 'Stop a job and every process it started',
  description:
    "SIGTERM to the job's processes, then after `graceMs` kill every one left. 202 with the job (still " +
    '`running`, `stopRequestedAt` set) while it stops; 409 ALREADY_FINISHED, with the job, when it had ' +
    'already finished.',
  params: idParams,
  body: {
    type: ['object', 'null'],
    additionalProperties: false,
    properties: {
      graceMs: {
        type: 'integer',
        description: `Milliseconds between SIGTERM and the kill, 0 to ${MAX_GRACE_MS} (default: the server's).`,
      },
    },
  },
  response: { 202: jobRef, ...errors(400, 404, 409) },
} as const;

export const OUTPUT_SCHEMA = {
  summary: "Read or follow a job's output",
  description:
    'Raw bytes (`application/octet-stream`, chunked) or, with `Accept: text/event-stream`, server-sent ' +
    'events. The start cursor is in the `X-Jobworker-Cursor` header; the end cursor in the ' +
    '`X-Jobworker-Cursor` trailer (raw) or in each event id (SSE). See docs/api.md.',
  params: idParams,
  querystring: {
    type: 'object',
    additionalProperties: false,
    properties: {
      stream: { type: 'string', enum: OUTPUT_SELECTORS, description: 'Which view (default `all`).' },
      cursor: { type: 'string', description: 'Where to start: a byte position in the view (default 0).' },
      follow: {
        type: 'string',
        enum: ['true', 'false'],
        description: 'Stream until the job ends (default false).',
      },
    },
  },
  headers: {
    type: 'object',
    properties: {
      'last-event-id': { type: 'string', description: 'SSE: resume after this event (wins over `cursor`).' },
    },
  },
  response: errors(400, 404, 429),
} as const;

export const RUN_SCHEMA = {
  summary: 'Run a command and wait for it (the original synchronous runner)',
  description:
    'Starts a job (recorded like any other), waits for it to end and answers its combined output as ' +
    '`text/plain`, 200 whatever the exit code: the headers X-Jobworker-Job-Id, X-Jobworker-Status and ' +
    'X-Jobworker-Exit-Code say how it ended.',
  body: JOB_SPEC_BODY,
  response: errors(400, 413, 429),
} as const;

export const HEALTH_SCHEMA = {
  summary: 'Liveness (no authentication)',
  response: {
    200: {
      type: 'object',
      additionalProperties: false,
      required: ['status'],
      properties: { status: { type: 'string', enum: ['ok'] } },
    },
  },
} as const;

export const OPENAPI_SCHEMA = {
  summary: 'This API as an OpenAPI 3.1 document',
  response: errors(),
} as const;
