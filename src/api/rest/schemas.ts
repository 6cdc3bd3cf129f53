import { ROLES } from '../../auth/principal.ts';
import { AUDIT_ACTIONS } from '../../core/audit.ts';
import { MAX_GRACE_MS } from '../../core/grace.ts';
import { JOB_STATUSES } from '../../core/job.ts';
import { SPEC_LIMITS } from '../../core/spec.ts';
import { TASK_DEFINITION_SCHEMA, TASK_PARAM_SCHEMA } from '../../core/task-definition.ts';
import { OUTPUT_SELECTORS } from '../../output/cursor.ts';
import { MAX_PAGE_SIZE, MAX_TEXT_CHARS } from '../../store/list-query.ts';
import { NODE_STATES } from '../../store/node-store.ts';
import { NOTIFY_SCHEMA } from './notify-schema.ts';

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

/** A number or text with units: `anyOf`, as Ajv's strict mode allows no other union of types. */
const numberOrText = (number: 'integer' | 'number', description: string) => ({
  anyOf: [{ type: number }, { type: 'string' }],
  description,
});

const sizeInput = (description: string) => ({
  anyOf: [{ type: 'integer' }, { type: 'string' }],
  description: `${description} Bytes, or text with a binary unit: \`256M\`, \`1G\`, \`512Ki\`.`,
});

/**
 * Resource limits as a request writes them (a spec's `limits`, a queue's or a user's
 * `defaultLimits` and `maxLimits`): units allowed, parsed by core/limits.ts (docs/isolation.md).
 */
export const LIMITS_INPUT = {
  type: 'object',
  additionalProperties: false,
  description:
    'cgroup resource limits; a limit this host cannot enforce is refused (400, naming the controller).',
  properties: {
    cpu: numberOrText('number', 'CPU quota in cores (`0.5`, `2`) or millicores (`"500m"`); at least 0.01.'),
    memory: sizeInput('Hard memory limit; the OOM killer ends the job beyond it.'),
    memorySwap: sizeInput('Swap it may use beyond `memory` (default 0 when `memory` is set).'),
    io: {
      type: 'object',
      additionalProperties: false,
      description:
        'Throttles on one block device (by default the one holding `cwd`; a partition counts as its disk), or `{weight}` alone.',
      properties: {
        readBps: sizeInput('Read bytes per second.'),
        writeBps: sizeInput('Written bytes per second.'),
        readIops: numberOrText('integer', 'Read operations per second.'),
        writeIops: numberOrText('integer', 'Write operations per second.'),
        device: { type: 'string', description: 'A block device path, such as `/dev/vda`.' },
        weight: numberOrText('integer', 'Proportional weight, 1 to 10000 (default 100).'),
      },
    },
    pids: numberOrText('integer', 'Most processes and threads at once (`pids.max`).'),
    memoryBytes: { type: 'integer', description: 'API v1 form of `memory`, in bytes.' },
    cpuMillis: { type: 'integer', description: 'API v1 form of `cpu`, in thousandths of a core.' },
  },
} as const;

/** Limits as the API answers them: normalized, in bytes and cores. */
export const LIMITS_OUTPUT = {
  type: 'object',
  additionalProperties: false,
  properties: {
    cpu: { type: 'number', description: 'Cores.' },
    memory: { type: 'integer', description: 'Bytes.' },
    memorySwap: { type: 'integer', description: 'Bytes of swap beyond `memory`.' },
    io: {
      type: 'object',
      additionalProperties: false,
      properties: {
        readBps: { type: 'integer' },
        writeBps: { type: 'integer' },
        readIops: { type: 'integer' },
        writeIops: { type: 'integer' },
        device: { type: 'string' },
        weight: { type: 'integer' },
      },
    },
    pids: { type: 'integer' },
  },
} as const;

const USAGE_SCHEMA = {
  type: ['object', 'null'],
  additionalProperties: false,
  required: [
    'cpuSeconds',
    'cpuThrottledSeconds',
    'memoryPeakBytes',
    'ioReadBytes',
    'ioWriteBytes',
    'oomKills',
    'pidsLimitHits',
  ],
  description:
    "What its processes used, from its cgroups: live while it runs, as recorded once it ended; null before it started. A figure this host's cgroups do not measure is null.",
  properties: {
    cpuSeconds: nullable('number', { description: 'CPU time, user and system.' }),
    cpuThrottledSeconds: nullable('number', { description: 'Time held back by its CPU quota.' }),
    memoryPeakBytes: nullable('integer', { description: 'Most memory held at once.' }),
    ioReadBytes: nullable('integer'),
    ioWriteBytes: nullable('integer'),
    oomKills: { type: 'integer', description: 'Processes the OOM killer ended at its memory limit.' },
    pidsLimitHits: { type: 'integer', description: 'Forks refused at its pids limit.' },
  },
} as const;

/**
 * Namespaces of a job (docs/isolation.md, "Namespaces"): the spec's `isolation`, a queue's or a
 * user's default. src/core/isolation.ts checks the values and names a bad field.
 */
export const ISOLATION_PROPERTY = {
  type: 'object',
  additionalProperties: false,
  properties: {
    pid: { type: 'boolean', description: 'Its own PID namespace: the job sees only its own processes.' },
    network: {
      type: 'string',
      enum: ['none', 'host'],
      description:
        '`none`: its own network namespace with only a loopback; `host` (default): the host network.',
    },
    mount: {
      type: 'object',
      additionalProperties: false,
      properties: {
        privateTmp: { type: 'boolean', description: 'An empty tmpfs of its own on /tmp and /var/tmp.' },
        readOnly: {
          type: 'array',
          items: { type: 'string' },
          description: 'Absolute paths the job can read but not write.',
        },
        hide: {
          type: 'array',
          items: { type: 'string' },
          description: 'Absolute paths whose content the job cannot see (empty directory or file).',
        },
      },
    },
    hostname: { type: 'string', description: 'Its own UTS namespace with this host name.' },
  },
  description:
    'Linux namespaces the job runs in; refused (400, naming the field) when this host cannot create them (`jobworker doctor`).',
} as const;

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
    'node',
    'waitingFor',
    'account',
    'limits',
    'usage',
    'task',
    'params',
    'resultError',
    'progress',
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
    node: {
      type: 'string',
      description:
        "The node that runs it, ran it, or claimed it last (docs/cluster.md); on one machine, the server's host name.",
    },
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
    limits: {
      ...LIMITS_OUTPUT,
      description:
        "Its resource limits: its own, else its queue's, its user's, the server's defaults (docs/isolation.md).",
    },
    usage: USAGE_SCHEMA,
    isolation: {
      ...ISOLATION_PROPERTY,
      description:
        "The namespaces it runs in: its own, else its queue's, user's or the server's default, plus any forced by the server; absent when none.",
    },
    task: nullable('string', {
      description: 'The named task it runs (docs/tasks.md); null for a plain job.',
    }),
    params: {
      type: ['object', 'null'],
      additionalProperties: { type: ['string', 'number', 'boolean'] },
      description: "The task's parameters, defaults filled in; null for a plain job.",
    },
    resultError: nullable('string', {
      description:
        'Why the value it left at JOBWORKER_RESULT was not kept (over 1 MiB, not JSON); null otherwise. ' +
        'The value itself: GET /v1/jobs/{id}/result.',
    }),
    progress: {
      type: ['object', 'null'],
      additionalProperties: false,
      required: ['done', 'total', 'message', 'at'],
      properties: {
        done: { type: 'number' },
        total: nullable('number'),
        message: nullable('string'),
        at: { type: 'string', format: 'date-time', description: 'When the server read it.' },
      },
      description: 'The last valid line it wrote to JOBWORKER_PROGRESS; null for none.',
    },
    notify: NOTIFY_SCHEMA,
  },
} as const;

export const QUEUE_SCHEMA = {
  $id: 'Queue',
  type: 'object',
  description: 'A queue: its settings and what is in it now.',
  additionalProperties: false,
  required: [
    'name',
    'concurrency',
    'maxWaiting',
    'paused',
    'defaultLimits',
    'maxLimits',
    'running',
    'waiting',
  ],
  properties: {
    name: { type: 'string' },
    concurrency: nullable('integer', { description: 'Most jobs running at once; null for no limit.' }),
    maxWaiting: nullable('integer', { description: 'Most jobs waiting; null for no limit.' }),
    paused: { type: 'boolean', description: 'Nothing new starts from a paused queue.' },
    defaultLimits: { ...LIMITS_OUTPUT, description: 'Limits its jobs get where they set none.' },
    maxLimits: { ...LIMITS_OUTPUT, description: 'Limits none of its jobs may exceed.' },
    isolation: {
      type: ['object', 'null'],
      additionalProperties: false,
      properties: ISOLATION_PROPERTY.properties,
      description:
        "The isolation of its jobs whose spec names none; null for none (the user's or the server's).",
    },
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

/** Shared schemas, added to Fastify once and referenced as `Job#` and `Error#` (and `Task#`). */
export const SHARED_SCHEMAS = [
  JOB_SCHEMA,
  QUEUE_SCHEMA,
  ERROR_SCHEMA,
  TASK_PARAM_SCHEMA,
  TASK_DEFINITION_SCHEMA,
] as const;

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
    limits: LIMITS_INPUT,
    isolation: {
      ...ISOLATION_PROPERTY,
      description:
        "Linux namespaces to run in (docs/isolation.md); absent: the queue's, else the user's, else the server's default. 400 naming the field when this host cannot create them.",
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
    notify: NOTIFY_SCHEMA,
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
      defaultLimits: {
        ...LIMITS_INPUT,
        type: ['object', 'null'],
        description: 'Replaces the limits its jobs get where they set none; null or {} clears them.',
      },
      maxLimits: {
        ...LIMITS_INPUT,
        type: ['object', 'null'],
        description:
          'Replaces the limits none of its jobs may exceed (a job over one: 400 naming it); null or {} clears them.',
      },
      isolation: {
        type: ['object', 'null'],
        additionalProperties: false,
        properties: ISOLATION_PROPERTY.properties,
        description: 'The isolation of its jobs whose spec names none; null: none.',
      },
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

/** A node of the cluster (`GET /v1/nodes`; docs/cluster.md). */
const nodeJson = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'url', 'state', 'joinedAt', 'heartbeatAt', 'reason', 'running', 'self'],
  properties: {
    id: { type: 'string', description: 'The node id (`serve --node-id`): what jobs name as their `node`.' },
    url: { type: 'string', description: 'Where the other nodes reach it (`serve --advertise-url`).' },
    state: {
      type: 'string',
      enum: [...NODE_STATES],
      description:
        '`active` claims and runs jobs; `draining` runs what it has and claims nothing; `left` went on purpose; `lost` went silent past the node timeout, and its jobs were decided without it.',
    },
    joinedAt: { type: 'string', format: 'date-time', description: 'When it last joined.' },
    heartbeatAt: { type: 'string', format: 'date-time', description: 'Its last heartbeat.' },
    reason: { type: ['string', 'null'], description: 'Why it is `lost` or `left`.' },
    running: { type: 'integer', description: 'Its jobs running or paused now.' },
    self: { type: 'boolean', description: 'It is the node that answered.' },
  },
} as const;

export const LIST_NODES_SCHEMA = {
  operationId: 'listNodes',
  summary: 'The nodes of the cluster; on SQLite, this server alone (admins and viewers)',
  response: {
    200: {
      type: 'object',
      additionalProperties: false,
      required: ['nodes'],
      properties: { nodes: { type: 'array', items: nodeJson } },
    },
    ...errors(403),
  },
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
      queue: { type: 'string', description: 'Exact queue name.' },
      text: {
        type: 'string',
        minLength: 1,
        maxLength: MAX_TEXT_CHARS,
        description:
          'Jobs whose name or command line (command and args joined by spaces) contains this text, ' +
          `ignoring ASCII case; 1 to ${MAX_TEXT_CHARS} characters, no wildcards.`,
      },
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
    "a prefix of at least 6 characters of an id; or the name of exactly one of the caller's jobs " +
    '(or of the attempts of one job with retries: the newest attempt). ' +
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
    'Server-sent events of every job the caller may see: `job:queued`, `job:started`, `job:progress`, ' +
    '`job:paused`, `job:resumed` and `job:finished`, each with the job (as `GET /v1/jobs/{id}` answers it) as data. The stream starts ' +
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
  required: ['name', 'role', 'runAs', 'disabled', 'createdAt', 'defaultLimits', 'maxLimits'],
  properties: {
    name: { type: 'string' },
    role: { type: 'string', enum: ROLES },
    runAs: nullable('string', { description: 'The OS account its jobs run as; null when none is set.' }),
    disabled: { type: 'boolean', description: 'A disabled user authenticates with nothing.' },
    isolation: {
      type: ['object', 'null'],
      additionalProperties: false,
      properties: ISOLATION_PROPERTY.properties,
      description: 'The isolation of its jobs when neither their spec nor their queue names one; null: none.',
    },
    createdAt: { type: 'string', format: 'date-time' },
    defaultLimits: {
      ...LIMITS_OUTPUT,
      description: 'Limits its jobs get where neither they nor their queue set one.',
    },
    maxLimits: { ...LIMITS_OUTPUT, description: 'Limits none of its jobs may exceed.' },
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
    '201 with the user; 409 ALREADY_EXISTS when the name is taken; 400 VALIDATION_FAILED on `name` when jobs ' +
    'or a pool account of a user of that name, removed since, are left (unless `reuseName`). It has no token ' +
    'yet: `POST /v1/tokens`.',
  body: {
    type: 'object',
    additionalProperties: false,
    required: ['name', 'role'],
    properties: {
      name: { type: 'string', description: '1 to 64 letters, digits, `_`, `.`, `@` or `-`.' },
      role: { type: 'string', description: `One of ${ROLES.join(', ')}.` },
      runAs: nullable('string', { description: 'The OS account its jobs run as.' }),
      reuseName: {
        type: 'boolean',
        description:
          'Give the new user the name of a user removed that left jobs in the history or a pool account: it ' +
          'owns them, and their output. Default false: refused.',
      },
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
      defaultLimits: {
        ...LIMITS_INPUT,
        type: ['object', 'null'],
        description:
          'Replaces the limits its jobs get where neither they nor their queue set one; null or {} clears them.',
      },
      maxLimits: {
        ...LIMITS_INPUT,
        type: ['object', 'null'],
        description: 'Replaces the limits none of its jobs may exceed; null or {} clears them.',
      },
      isolation: {
        type: ['object', 'null'],
        additionalProperties: false,
        properties: ISOLATION_PROPERTY.properties,
        description:
          'The isolation of its jobs when neither their spec nor their queue names one; null: none.',
      },
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

const taskRef = { $ref: 'Task#' } as const;
const taskParams = {
  type: 'object',
  additionalProperties: false,
  required: ['name'],
  properties: { name: { type: 'string', description: 'The task name.' } },
} as const;

export const LIST_TASKS_SCHEMA = {
  operationId: 'listTasks',
  summary: "List the server's named tasks, with their parameter schemas",
  response: {
    200: {
      type: 'object',
      additionalProperties: false,
      required: ['tasks'],
      properties: { tasks: { type: 'array', items: taskRef } },
    },
    ...errors(),
  },
} as const;

export const RELOAD_TASKS_SCHEMA = {
  operationId: 'reloadTasks',
  summary: 'Read the tasks file again (admins only)',
  description:
    "200 with the definitions now in force. 400 VALIDATION_FAILED naming the file and the field when the file doesn't " +
    'check out: the definitions in force are kept. 403 for anyone but an admin.',
  response: {
    200: {
      type: 'object',
      additionalProperties: false,
      required: ['file', 'tasks'],
      properties: { file: { type: 'string' }, tasks: { type: 'array', items: taskRef } },
    },
    ...errors(400, 403),
  },
} as const;

export const RUN_TASK_SCHEMA = {
  operationId: 'runTask',
  summary: 'Start a run of a named task',
  description:
    'The body is the parameters, `{"a": 2, "b": 20}`, checked against the task: a missing, unknown or wrong one ' +
    'is 400 naming `params.<name>`. 201 with the job (its `task` and `params` set). The rules of starting a job ' +
    'apply (viewers may not; 429 QUEUE_FULL when its queue is full). 404 for an unknown task.',
  params: taskParams,
  body: { type: 'object', description: 'Parameter values by name.' },
  response: { 201: jobRef, ...errors(400, 403, 404, 413, 429) },
} as const;

export const JOB_RESULT_SCHEMA = {
  operationId: 'getJobResult',
  summary: 'The JSON value a job left at JOBWORKER_RESULT',
  description:
    '200 with the value itself once the job succeeded (`null` when it wrote none). 409 NOT_FINISHED (naming its ' +
    'status) before it ends. 422 JOB_FAILED when it did not succeed (naming its status, exit and the last lines ' +
    'of its stderr), or its result could not be kept (over 1 MiB, not JSON). A job retried by its `retry` policy ' +
    '(`retriedAs`) answers for its latest attempt. Readable by whoever may read the job.',
  params: idParams,
  responseDescriptions: {
    200: 'The value the job wrote, as it wrote it (any JSON value)',
    409: 'NOT_FINISHED: the job is queued, running or paused',
    422: 'JOB_FAILED: the job did not succeed, or its result was not kept',
  },
  response: { 200: {}, ...errors(400, 404, 409, 422) },
} as const;
