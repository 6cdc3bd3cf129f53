import { ROLES } from '../../auth/principal.ts';
import { AUDIT_ACTIONS } from '../../core/audit.ts';
import { JOB_STATUSES } from '../../core/job.ts';
import { SPEC_LIMITS } from '../../core/spec.ts';
import { OUTPUT_SELECTORS } from '../../output/cursor.ts';
import { MAX_GRACE_MS } from '../../service/job-service.ts';
import { MAX_PAGE_SIZE } from '../../store/list-query.ts';

/**
 * JSON schemas of the REST API v1: the routes validate requests and serialize responses with
 * them, and `/v1/openapi.json` is assembled from the same objects. Requests are strict: unknown
 * fields are refused (never silently dropped) and nothing is coerced but the query string's
 * integers and booleans, which arrive as text (query-coercion.ts). Each route's `operationId`
 * names it in the OpenAPI document (and so in generated clients); `responseDescriptions` says
 * what a status means on that route when the general wording would mislead.
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
    'timeoutMs',
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
    'queue',
    'priority',
    'runAt',
    'after',
    'attempt',
    'maxAttempts',
    'retryOf',
    'retriedAs',
    'dedupeKey',
    'dedupeScope',
    'pausedAt',
    'waitingFor',
    'account',
  ],
  properties: {
    id: { type: 'string', description: 'Time-sortable UUIDv7.' },
    name: nullable('string'),
    command: { type: 'string' },
    args: { type: 'array', items: { type: 'string' } },
    shell: { type: 'boolean', description: 'True when `command` is a script run by `/bin/sh -c`.' },
    cwd: { type: 'string' },
    timeoutMs: nullable('integer', {
      description:
        "Ends as `timed_out` after this many ms of running (the server's default when the spec set none).",
    }),
    labels: stringMap,
    status: { type: 'string', enum: JOB_STATUSES },
    exitCode: nullable('integer', {
      description: 'Exit code of the main process; null if none (signal, not ended).',
    }),
    signal: nullable('string', { description: 'Signal that killed the main process, e.g. `SIGKILL`.' }),
    reason: nullable('string', { description: 'One human line on how the job ended.' }),
    owner: { type: 'string', description: 'The user who started the job.' },
    pid: nullable('integer', { description: "Pid of the job's own main process (its process group id)." }),
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
    queue: { type: 'string', description: 'The queue it waits or ran in.' },
    priority: { type: 'integer', description: 'Higher starts first within its queue.' },
    runAt: time('Not started before this time (a delay, or a retry backoff).'),
    after: { type: 'array', items: { type: 'string' }, description: 'Jobs that must succeed first.' },
    attempt: { type: 'integer', description: 'Which run of its retry chain this is, from 1.' },
    maxAttempts: { type: 'integer', description: 'Runs its retry policy allows in all (1: no retry).' },
    retryOf: nullable('string', { description: 'The previous attempt, on a retry.' }),
    retriedAs: nullable('string', { description: 'The next attempt, once this one was retried.' }),
    dedupeKey: nullable('string'),
    dedupeScope: nullable('string', {
      description: 'The user among whose queued or running jobs `dedupeKey` is unique; null without a key.',
    }),
    pausedAt: time('When it was paused, while it is paused.'),
    waitingFor: nullable('string', {
      enum: ['dependencies', 'time', 'queue', null],
      description: 'Why a queued job has not started yet.',
    }),
    account: {
      type: ['object', 'null'],
      additionalProperties: false,
      required: ['name', 'uid', 'gid'],
      properties: {
        name: { type: 'string', description: '`alice`, `root`, or `jw-<user>` for a pool account.' },
        uid: { type: 'integer' },
        gid: { type: 'integer' },
      },
      description:
        "The OS account its processes run as (docs/security.md); null for the server's own account.",
    },
  },
} as const;

export const QUEUE_SCHEMA = {
  $id: 'Queue',
  type: 'object',
  description: 'A queue: its settings and what is in it now.',
  additionalProperties: false,
  required: ['name', 'concurrency', 'maxWaiting', 'paused', 'running', 'waiting'],
  properties: {
    name: { type: 'string' },
    concurrency: nullable('integer', { description: 'Most jobs running at once; null for no limit.' }),
    maxWaiting: nullable('integer', { description: 'Most jobs waiting; null for no limit.' }),
    paused: { type: 'boolean', description: 'Nothing new starts from a paused queue.' },
    running: { type: 'integer', description: 'Jobs holding a slot: running, paused or starting.' },
    waiting: { type: 'integer', description: 'Queued jobs.' },
  },
} as const;

export const ERROR_SCHEMA = {
  $id: 'Error',
  type: 'object',
  description:
    'Every error. `job` is present on 409 ALREADY_FINISHED (the job as it is) and on 409 DUPLICATE ' +
    '(the queued or running job with that dedupeKey).',
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
export const SHARED_SCHEMAS = [JOB_SCHEMA, QUEUE_SCHEMA, ERROR_SCHEMA] as const;

const errorRef = { $ref: 'Error#' } as const;
const jobRef = { $ref: 'Job#' } as const;
const queueRef = { $ref: 'Queue#' } as const;

/**
 * The error responses a route may give besides 401 and 429 (which every route but /healthz may
 * give: bad credentials, and RATE_LIMITED after too many of them), 500, and 507 (a full disk: any
 * route may have something to write, if only a follower's index).
 */
export function errors(...statuses: number[]): Record<string, typeof errorRef> {
  return Object.fromEntries(
    [...new Set([401, 429, 500, 507, ...statuses])].map((status) => [String(status), errorRef]),
  );
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
    cwd: {
      type: 'string',
      description:
        "Absolute working directory (default: the home of the job's account, not the caller's directory). It is entered as that account.",
    },
    timeoutMs: nullable('integer', {
      description:
        "End the job as `timed_out` after this many ms of running (default: the server's `--default-timeout`; null: none).",
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
    queue: { type: 'string', description: 'The queue to wait in (default `default`).' },
    priority: {
      type: 'integer',
      description: `Higher starts first, -${SPEC_LIMITS.priority} to ${SPEC_LIMITS.priority} (default 0).`,
    },
    runAt: { type: 'string', description: 'ISO 8601 time before which it does not start.' },
    delayMs: { type: 'integer', description: 'Milliseconds from now before which it does not start.' },
    after: {
      type: 'array',
      items: { type: 'string' },
      description: `Job ids (at most ${SPEC_LIMITS.after}) that must all succeed first.`,
    },
    retry: {
      type: ['object', 'null'],
      additionalProperties: false,
      required: ['attempts'],
      properties: {
        attempts: { type: 'integer', description: 'Runs in all, the first included.' },
        backoff: {
          type: 'object',
          additionalProperties: false,
          properties: {
            initialMs: { type: 'integer' },
            factor: { type: 'number' },
            maxMs: { type: 'integer' },
          },
        },
      },
      description: 'Run again after `failed` or `timed_out` (docs/queues.md).',
    },
    dedupeKey: nullable('string', {
      description: 'At most one queued or running job per key among the jobs of one user (its scope).',
    }),
    dedupeScope: nullable('string', {
      description: "Admins: dedupe among this user's jobs instead of the caller's own (needs `dedupeKey`).",
    }),
    onDuplicate: {
      type: 'string',
      enum: ['reject', 'return'],
      description:
        '`reject` (409 DUPLICATE, default) or `return` (200 with the existing job); needs `dedupeKey`.',
    },
    runAsRoot: {
      type: 'boolean',
      description:
        "Admins: run as root instead of the admin's own account (docs/security.md); 403 FORBIDDEN for others.",
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
  operationId: 'createJob',
  summary: 'Submit a job to its queue',
  description:
    '201 with the new job as admitted (normally `queued`: the answer comes once it is stored, and it ' +
    'starts a moment later when its queue has a free slot); 200 with the existing job for a duplicate ' +
    '`dedupeKey` with `onDuplicate: "return"`; 409 DUPLICATE with it otherwise; 403 FORBIDDEN for a ' +
    "user naming another user's `dedupeScope` or asking `runAsRoot`; 403 ACCOUNT_UNAVAILABLE when the job " +
    "cannot run as its owner's account; 429 QUEUE_FULL when its queue holds `maxWaiting` jobs.",
  body: JOB_SPEC_BODY,
  responseDescriptions: {
    200: 'A duplicate `dedupeKey` with `onDuplicate: "return"`: the queued or running job that has it',
    409: 'DUPLICATE: a queued or running job in the same scope has this `dedupeKey`; `job` is that job',
  },
  response: { 201: jobRef, 200: jobRef, ...errors(400, 403, 409, 413, 429) },
} as const;

export const PAUSE_JOB_SCHEMA = {
  operationId: 'pauseJob',
  summary: 'Freeze every process of a running job',
  params: idParams,
  responseDescriptions: { 409: 'ILLEGAL_TRANSITION: the job is not in a state this applies to' },
  response: { 200: jobRef, ...errors(400, 404, 409) },
} as const;

export const RESUME_JOB_SCHEMA = {
  operationId: 'resumeJob',
  summary: 'Thaw a paused job',
  params: idParams,
  responseDescriptions: { 409: 'ILLEGAL_TRANSITION: the job is not in a state this applies to' },
  response: { 200: jobRef, ...errors(400, 404, 409) },
} as const;

const queueParams = {
  type: 'object',
  additionalProperties: false,
  required: ['name'],
  properties: { name: { type: 'string', description: 'The queue name.' } },
} as const;

export const LIST_QUEUES_SCHEMA = {
  operationId: 'listQueues',
  summary: 'List queues',
  response: {
    200: {
      type: 'object',
      additionalProperties: false,
      required: ['queues'],
      properties: { queues: { type: 'array', items: queueRef } },
    },
    ...errors(),
  },
} as const;

export const GET_QUEUE_SCHEMA = {
  operationId: 'getQueue',
  summary: 'Get a queue (a queue nobody configured has the defaults)',
  params: queueParams,
  response: { 200: queueRef, ...errors(400) },
} as const;

export const PUT_QUEUE_SCHEMA = {
  operationId: 'setQueue',
  summary: "Change a queue's settings (admins)",
  params: queueParams,
  body: {
    type: 'object',
    additionalProperties: false,
    properties: {
      concurrency: nullable('integer', { description: 'Most jobs running at once, from 1; null: no limit.' }),
      maxWaiting: nullable('integer', { description: 'Most jobs waiting, from 0; null: no limit.' }),
      paused: { type: 'boolean' },
    },
  },
  response: { 200: queueRef, ...errors(400, 403) },
} as const;

export const PAUSE_QUEUE_SCHEMA = {
  operationId: 'pauseQueue',
  summary: 'Pause a queue: nothing new starts from it (admins)',
  params: queueParams,
  response: { 200: queueRef, ...errors(400, 403) },
} as const;

export const RESUME_QUEUE_SCHEMA = {
  operationId: 'resumeQueue',
  summary: 'Resume a paused queue (admins)',
  params: queueParams,
  response: { 200: queueRef, ...errors(400, 403) },
} as const;

const drainState = {
  type: 'object',
  additionalProperties: false,
  required: ['draining', 'running'],
  properties: {
    draining: { type: 'boolean', description: 'True while this server starts no job.' },
    running: { type: 'integer', description: 'Jobs this server runs now.' },
  },
} as const;

export const DRAIN_SCHEMA = {
  operationId: 'drain',
  summary: 'Stop dispatching on this server; with `wait`, answer once no job runs (admins)',
  body: {
    type: ['object', 'null'],
    additionalProperties: false,
    properties: { wait: { type: 'boolean', description: 'Answer once `running` is 0.' } },
  },
  response: { 200: drainState, ...errors(400, 403) },
} as const;

export const DRAIN_STATE_SCHEMA = {
  operationId: 'getDrainState',
  summary: 'Whether this server drains, and how many jobs it runs (admins)',
  response: { 200: drainState, ...errors(403) },
} as const;

export const UNDRAIN_SCHEMA = {
  operationId: 'undrain',
  summary: 'Dispatch again after a drain (admins)',
  response: { 200: drainState, ...errors(403) },
} as const;

export const LIST_JOBS_SCHEMA = {
  operationId: 'listJobs',
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
      idPrefix: {
        type: 'string',
        description: 'Jobs whose id starts with this (lower-case hex digits and dashes).',
      },
      label: { type: 'string', description: 'One label as `key=value`.' },
      owner: {
        type: 'string',
        description: "Jobs of this user (a user sees only its own: another's name lists none).",
      },
      limit: {
        type: 'integer',
        minimum: 1,
        maximum: MAX_PAGE_SIZE,
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
  operationId: 'getJob',
  summary: 'Get a job',
  params: idParams,
  response: { 200: jobRef, ...errors(400, 404) },
} as const;

export const DELETE_JOB_SCHEMA = {
  operationId: 'deleteJob',
  summary: 'Delete a finished job and its output',
  description:
    '200 with the job as it was; afterwards GET answers 404. 409 NOT_FINISHED while it is queued, ' +
    'running or paused (stop it first); 409 IN_USE while a queued job waits for it (`after`). ' +
    "Another user's job answers 404 like an unknown id.",
  params: idParams,
  responseDescriptions: {
    409: 'NOT_FINISHED: the job is queued, running or paused; IN_USE: a queued job waits for it',
  },
  response: { 200: jobRef, ...errors(400, 404, 409) },
} as const;

export const RESOLVE_JOB_SCHEMA = {
  operationId: 'resolveJob',
  summary: 'Find the job a person means',
  description:
    "Resolves `ref` among the jobs the caller may see: a whole id; `last` (the caller's newest job); " +
    "a prefix of at least 6 characters of an id; or the name of exactly one of the caller's jobs. " +
    '404 NOT_FOUND when nothing matches; 409 AMBIGUOUS, listing some of the jobs, when several do.',
  querystring: {
    type: 'object',
    additionalProperties: false,
    required: ['ref'],
    properties: { ref: { type: 'string', description: 'An id, an id prefix, a job name or `last`.' } },
  },
  responseDescriptions: { 409: 'AMBIGUOUS: more than one job matches; the message lists some' },
  response: { 200: jobRef, ...errors(400, 404, 409) },
} as const;

export const PRUNE_SCHEMA = {
  operationId: 'pruneJobs',
  summary: 'Delete finished jobs and their output',
  description:
    'Deletes every finished job that finished more than `olderThanMs` ago (default 0: all of them): ' +
    "every user's for an admin, the caller's own for a user. Queued, running and paused jobs, and " +
    'finished jobs a queued job waits for, are kept.',
  body: {
    type: ['object', 'null'],
    additionalProperties: false,
    properties: {
      olderThanMs: { type: 'integer', description: 'Only jobs that finished at least this long ago (ms).' },
    },
  },
  response: {
    200: {
      type: 'object',
      additionalProperties: false,
      required: ['deleted'],
      properties: { deleted: { type: 'integer', description: 'Jobs deleted.' } },
    },
    ...errors(400),
  },
} as const;

export const STOP_JOB_SCHEMA = {
  operationId: 'stopJob',
  summary: 'Stop a job and every process it started',
  description:
    "SIGTERM to the job's processes, then after `graceMs` kill every one left. 202 with the job (still " +
    '`running`, `stopRequestedAt` set) while it stops; 200 with the job `cancelled` when it was still ' +
    'queued; 409 ALREADY_FINISHED, with the job, when it had already finished.',
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
  responseDescriptions: {
    200: 'The job was still queued: it is now `cancelled`',
    409: 'ALREADY_FINISHED: the job had already finished and nothing changed; `job` is the job as it is',
  },
  response: { 202: jobRef, 200: jobRef, ...errors(400, 404, 409) },
} as const;

export const OUTPUT_SCHEMA = {
  operationId: 'getJobOutput',
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
      follow: { type: 'boolean', description: 'Stream until the job ends (default false).' },
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

export const EVENTS_SCHEMA = {
  operationId: 'watchEvents',
  summary: 'Watch job events (server-sent events)',
  description:
    'Server-sent events of every job the caller may see: `job:queued`, `job:started`, `job:progress` and ' +
    '`job:finished`, each with the job (as `GET /v1/jobs/{id}` answers it) as data. The stream starts ' +
    'with `ready` (resumed: the missed events follow) or `reset` (events were missed: reload). A comment ' +
    'line is a heartbeat. Resume with `Last-Event-ID`. See docs/api.md, "Events".',
  headers: {
    type: 'object',
    properties: {
      'last-event-id': { type: 'string', description: 'Resume after this event.' },
    },
  },
  response: errors(429),
} as const;

export const RUN_SCHEMA = {
  operationId: 'runJob',
  summary: 'Run a command and wait for it (the original synchronous runner)',
  description:
    'Starts a job (recorded like any other), waits for it to end and answers its combined output as ' +
    '`text/plain`, 200 whatever the exit code: the headers X-Jobworker-Job-Id, X-Jobworker-Status and ' +
    'X-Jobworker-Exit-Code say how it ended.',
  body: JOB_SPEC_BODY,
  response: errors(400, 403, 413, 429),
} as const;

export const HEALTH_SCHEMA = {
  operationId: 'getHealth',
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
  operationId: 'getOpenApi',
  summary: 'This API as an OpenAPI 3.1 document',
  response: errors(),
} as const;

export const USER_SCHEMA = {
  $id: 'User',
  type: 'object',
  description: 'A user: its role, the OS account its jobs run as, and whether it may authenticate.',
  additionalProperties: false,
  required: ['name', 'role', 'runAs', 'disabled', 'createdAt'],
  properties: {
    name: { type: 'string' },
    role: { type: 'string', enum: ROLES },
    runAs: nullable('string', { description: 'The OS account its jobs run as; null when none is set.' }),
    disabled: { type: 'boolean', description: 'A disabled user authenticates with nothing.' },
    createdAt: { type: 'string', format: 'date-time' },
  },
} as const;

const tokenProperties = {
  id: { type: 'string', description: 'What `DELETE /v1/tokens/{id}` takes; not the secret.' },
  user: { type: 'string' },
  label: nullable('string', { description: 'What the token is for (`laptop`, `ci`, `admin.token`).' }),
  createdAt: { type: 'string', format: 'date-time' },
  lastUsedAt: time('Last authentication with it (written at most once a minute).'),
  expiresAt: time('When it stops working; null: never.'),
  revokedAt: time('When it was revoked (or its user removed).'),
  state: { type: 'string', enum: ['active', 'expired', 'revoked'] },
} as const;
const tokenRequired = Object.keys(tokenProperties);

export const TOKEN_SCHEMA = {
  $id: 'Token',
  type: 'object',
  description: 'A token as listed: never the secret, which only the answer to its creation carries.',
  additionalProperties: false,
  required: tokenRequired,
  properties: tokenProperties,
} as const;

export const AUDIT_ENTRY_SCHEMA = {
  $id: 'AuditEntry',
  type: 'object',
  description: 'One audited call: who, from where, did what to what, with which result.',
  additionalProperties: false,
  required: ['id', 'at', 'user', 'role', 'source', 'transport', 'action', 'target', 'result'],
  properties: {
    id: { type: 'string' },
    at: { type: 'string', format: 'date-time' },
    user: nullable('string', {
      description: 'The caller; on `auth:fail`, the user of the token when known.',
    }),
    role: nullable('string'),
    source: nullable('string', { description: 'Peer address; `local` for the Unix socket.' }),
    transport: nullable('string', { description: '`tcp`, `unix` or `internal`.' }),
    action: { type: 'string', enum: AUDIT_ACTIONS },
    target: nullable('string', { description: 'A job id, queue, user name or token id.' }),
    result: { type: 'string', description: '`ok`, or the error code the call ended with.' },
  },
} as const;

/** Shared schemas of the user and token routes, added beside `SHARED_SCHEMAS`. */
export const ACCOUNT_SCHEMAS = [USER_SCHEMA, TOKEN_SCHEMA, AUDIT_ENTRY_SCHEMA] as const;

const userRef = { $ref: 'User#' } as const;
const tokenRef = { $ref: 'Token#' } as const;

const userParams = {
  type: 'object',
  additionalProperties: false,
  required: ['name'],
  properties: { name: { type: 'string', description: 'The user name.' } },
} as const;

export const LIST_USERS_SCHEMA = {
  operationId: 'listUsers',
  summary: 'List users (admins)',
  response: {
    200: {
      type: 'object',
      additionalProperties: false,
      required: ['users'],
      properties: { users: { type: 'array', items: userRef } },
    },
    ...errors(403),
  },
} as const;

export const CREATE_USER_SCHEMA = {
  operationId: 'createUser',
  summary: 'Add a user (admins)',
  description:
    '201 with the user; 409 ALREADY_EXISTS when the name is taken. It has no token yet: `POST /v1/tokens`.',
  body: {
    type: 'object',
    additionalProperties: false,
    required: ['name', 'role'],
    properties: {
      name: { type: 'string', description: '1 to 64 letters, digits, `_`, `.`, `@` or `-`.' },
      role: { type: 'string', description: `One of ${ROLES.join(', ')}.` },
      runAs: nullable('string', { description: 'The OS account its jobs run as.' }),
    },
  },
  responseDescriptions: { 409: 'ALREADY_EXISTS: a user with this name exists' },
  response: { 201: userRef, ...errors(400, 403, 409) },
} as const;

export const PATCH_USER_SCHEMA = {
  operationId: 'updateUser',
  summary: "Change a user's role, OS account, or disable/enable it (admins)",
  description:
    'A disabled user authenticates with nothing (its tokens stay, and work again once enabled). ' +
    '409 LAST_ADMIN when the change would leave no enabled admin.',
  params: userParams,
  body: {
    type: 'object',
    additionalProperties: false,
    properties: {
      role: { type: 'string', description: `One of ${ROLES.join(', ')}.` },
      disabled: { type: 'boolean' },
      runAs: nullable('string', { description: 'The OS account its jobs run as; null for none.' }),
    },
  },
  responseDescriptions: { 409: 'LAST_ADMIN: the change would leave no enabled admin' },
  response: { 200: userRef, ...errors(400, 403, 404, 409) },
} as const;

export const DELETE_USER_SCHEMA = {
  operationId: 'deleteUser',
  summary: 'Remove a user and revoke its tokens (admins)',
  description:
    '200 with the user as it was. Its jobs stay in the history (admins see them). 409 LAST_ADMIN for the last enabled admin.',
  params: userParams,
  responseDescriptions: { 409: 'LAST_ADMIN: the change would leave no enabled admin' },
  response: { 200: userRef, ...errors(400, 403, 404, 409) },
} as const;

export const LIST_TOKENS_SCHEMA = {
  operationId: 'listTokens',
  summary: 'List tokens, never their secrets (admins)',
  querystring: {
    type: 'object',
    additionalProperties: false,
    properties: { user: { type: 'string', description: "Only this user's tokens." } },
  },
  response: {
    200: {
      type: 'object',
      additionalProperties: false,
      required: ['tokens'],
      properties: { tokens: { type: 'array', items: tokenRef } },
    },
    ...errors(400, 403),
  },
} as const;

export const CREATE_TOKEN_SCHEMA = {
  operationId: 'createToken',
  summary: 'Issue a token for a user (admins)',
  description: '201 with the token in `token`: the only time it is shown. The server keeps its SHA-256 only.',
  body: {
    type: 'object',
    additionalProperties: false,
    required: ['user'],
    properties: {
      user: { type: 'string', description: 'A known user.' },
      label: nullable('string', { description: 'What it is for, 1 to 100 characters.' }),
      expiresIn: {
        type: 'string',
        description: 'A lifetime such as `30d`, `12h`, `90m`; absent: never expires.',
      },
    },
  },
  response: {
    201: {
      type: 'object',
      additionalProperties: false,
      required: ['token', ...tokenRequired],
      properties: {
        token: { type: 'string', description: 'The bearer token. Shown once.' },
        ...tokenProperties,
      },
    },
    ...errors(400, 403, 404),
  },
} as const;

export const REVOKE_TOKEN_SCHEMA = {
  operationId: 'revokeToken',
  summary: 'Revoke a token (admins): refused from the next request on',
  params: {
    type: 'object',
    additionalProperties: false,
    required: ['id'],
    properties: { id: { type: 'string', description: 'The token id (not the secret).' } },
  },
  response: { 200: tokenRef, ...errors(400, 403, 404) },
} as const;

export const LIST_AUDIT_SCHEMA = {
  operationId: 'listAudit',
  summary: 'The audit trail, newest first (admins)',
  querystring: {
    type: 'object',
    additionalProperties: false,
    properties: {
      user: { type: 'string', description: 'Only calls of this user.' },
      action: { type: 'string', description: `One of ${AUDIT_ACTIONS.join(', ')}.` },
      since: { type: 'string', description: 'ISO 8601: entries at or after this time.' },
      until: { type: 'string', description: 'ISO 8601: entries before this time.' },
      limit: {
        type: 'integer',
        minimum: 1,
        maximum: 1000,
        description: 'Page size, 1 to 1000 (default 50).',
      },
      cursor: { type: 'string', description: '`nextCursor` of the previous page.' },
    },
  },
  response: {
    200: {
      type: 'object',
      additionalProperties: false,
      required: ['entries', 'nextCursor'],
      properties: {
        entries: { type: 'array', items: { $ref: 'AuditEntry#' } },
        nextCursor: nullable('string', { description: 'Pass as `cursor` for the next, older page.' }),
      },
    },
    ...errors(400, 403),
  },
} as const;
