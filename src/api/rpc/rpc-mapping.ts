/**
 * The one mapping between the proto messages (src/api/rpc/gen) and the service's own types: jobs,
 * queues, users, tokens, audit entries and certificates out; requests in, as the same plain input
 * the REST routes hand the service, so that the service validates both alike and its errors name
 * the same fields (by their JSON names: `timeoutMs`, `pageSize`).
 */
import { create } from '@bufbuild/protobuf';
import { type Timestamp, timestampDate, timestampFromDate } from '@bufbuild/protobuf/wkt';
import type { Role as RoleName } from '../../auth/principal.ts';
import type { IssuedCertificate } from '../../auth/tls/issued-certificates.ts';
import { CursorError, ValidationError } from '../../core/errors.ts';
import { dedupeScopeOf, type Job, type JobIsolation, type JobStatus as StatusName } from '../../core/job.ts';
import type { DrainState } from '../../engine/job-engine.ts';
import type { OutputEvent, OutputSelector } from '../../output/output-types.ts';
import type { JobEventType as EventTypeName, WatchMessage } from '../../service/job-event-feed.ts';
import type { ListJobsRequest, QueueSettingsInput } from '../../service/job-service.ts';
import type { AuditRequest, TokenView } from '../../service/user-service.ts';
import type { QueueState } from '../../store/job-store.ts';
import { MAX_PAGE_SIZE } from '../../store/list-query.ts';
import type { AuditRecord, UserRecord } from '../../store/user-store.ts';
import {
  type AuditEntry,
  AuditEntrySchema,
  type ListAuditEntriesRequest,
} from './gen/jobworker/v1/audit_service_pb.ts';
import { type Certificate, CertificateSchema } from './gen/jobworker/v1/certificate_service_pb.ts';
import {
  type JobIsolation as JobIsolationMessage,
  JobIsolationSchema,
  type Job as JobMessage,
  JobSchema,
  JobStatus,
  WaitingFor,
} from './gen/jobworker/v1/job_pb.ts';
import {
  JobEventType,
  type ListRequest,
  OnDuplicate,
  OutputStream,
  OutputView,
  type StartRequest,
  type StreamOutputResponse,
  StreamOutputResponseSchema,
  type WatchEventsResponse,
  WatchEventsResponseSchema,
} from './gen/jobworker/v1/job_service_pb.ts';
import {
  type DrainState as DrainStateMessage,
  DrainStateSchema,
  type Queue,
  QueueSchema,
  type UpdateQueueRequest,
} from './gen/jobworker/v1/queue_service_pb.ts';
import { type Token, TokenSchema, TokenState } from './gen/jobworker/v1/token_service_pb.ts';
import {
  type CreateUserRequest,
  Role,
  type UpdateUserRequest,
  type User,
  UserSchema,
} from './gen/jobworker/v1/user_service_pb.ts';
import { limitsInput, limitsToProto, startLimitsInput, usageToProto } from './limits-mapping.ts';

const STATUS: Record<StatusName, JobStatus> = {
  queued: JobStatus.QUEUED,
  running: JobStatus.RUNNING,
  paused: JobStatus.PAUSED,
  succeeded: JobStatus.SUCCEEDED,
  failed: JobStatus.FAILED,
  stopped: JobStatus.STOPPED,
  timed_out: JobStatus.TIMED_OUT,
  cancelled: JobStatus.CANCELLED,
  lost: JobStatus.LOST,
};

const ROLE: Record<RoleName, Role> = { admin: Role.ADMIN, user: Role.USER, viewer: Role.VIEWER };

const VIEW: Partial<Record<OutputView, OutputSelector>> = {
  [OutputView.UNSPECIFIED]: 'all',
  [OutputView.COMBINED]: 'all',
  [OutputView.STDOUT]: 'stdout',
  [OutputView.STDERR]: 'stderr',
};

/**
 * The one table of the service's field names (the REST API's, on the left) that a request's
 * proto names otherwise: each field the mapping moves (`startInput`'s `runTime` to `runAt`, its
 * flat `retry.backoff*` into `retry.backoff`, `memorySwapBytes` to `memorySwap`; `pageSize` to
 * `limit`), and `limits.memory`, the name the service's limit checks give the `memoryBytes` it
 * normalizes into `memory`. An error's field is turned back by it, so that a client reads a
 * field its message has (test/api/rpc/rpc-field-names.test.ts walks the refusals of Start).
 */
const FIELD_NAMES: Readonly<Record<string, string>> = {
  runAt: 'runTime',
  limit: 'pageSize',
  'retry.backoff.initialMs': 'retry.backoffInitialMs',
  'retry.backoff.factor': 'retry.backoffFactor',
  'retry.backoff.maxMs': 'retry.backoffMaxMs',
  'limits.memory': 'limits.memoryBytes',
  'limits.memorySwap': 'limits.memorySwapBytes',
};

/**
 * A list's refusal of its page cursor, under the names its RPC gives it (`page_token` in the
 * request, `next_page_token` in the answer): not in FIELD_NAMES, since an output request's
 * `cursor` is a field of its own under that name.
 */
export function pageTokenError(err: unknown): never {
  if (err instanceof ValidationError && err.field === 'cursor') {
    throw new ValidationError(
      'pageToken',
      err.message.replaceAll('`cursor`', '`pageToken`').replaceAll('`nextCursor`', '`nextPageToken`'),
      err.code,
    );
  }
  throw err;
}

/** The name a client knows a field by, from the name the service gave it. */
export function fieldName(field: string): string {
  return FIELD_NAMES[field] ?? field;
}

/** The job as every RPC shows it: the REST API's job JSON, field for field (job-json.ts). */
export function jobToProto(job: Job): JobMessage {
  const { spec } = job;
  return create(JobSchema, {
    id: job.id,
    name: spec.name ?? undefined,
    command: spec.command,
    args: [...spec.args],
    shell: spec.shell,
    cwd: spec.cwd,
    timeoutMs: spec.timeoutMs === null ? undefined : BigInt(spec.timeoutMs),
    labels: { ...spec.labels },
    status: STATUS[job.status],
    exitCode: job.exit?.exitCode ?? undefined,
    signal: job.exit?.signal ?? undefined,
    reason: job.exit?.reason ?? undefined,
    owner: job.owner,
    pid: job.process?.pid ?? undefined,
    createTime: timestampFromDate(job.createdAt),
    startTime: time(job.startedAt),
    finishTime: time(job.finishedAt),
    stopRequestTime: time(job.stop?.at ?? null),
    outputBytes: { stdout: BigInt(job.outputBytes.stdout), stderr: BigInt(job.outputBytes.stderr) },
    queue: spec.queue,
    priority: spec.priority,
    runTime: time(job.runAt),
    after: [...spec.after],
    attempt: job.attempt,
    maxAttempts: spec.retry?.attempts ?? 1,
    retryOf: job.retryOf ?? undefined,
    retriedAs: job.retriedAs ?? undefined,
    dedupeKey: spec.dedupeKey ?? undefined,
    dedupeScope: dedupeScopeOf(job) ?? undefined,
    pauseTime: time(job.pausedAt),
    node: job.node,
    waitingFor: waitingFor(job),
    ...(spec.account
      ? { account: { name: spec.account.name, uid: spec.account.uid, gid: spec.account.gid } }
      : {}),
    limits: limitsToProto(spec.limits),
    ...(job.usage ? { usage: usageToProto(job.usage) } : {}),
    ...(spec.isolation ? { isolation: isolationToProto(spec.isolation) } : {}),
    ...(spec.task ? { task: spec.task.name, params: { ...spec.task.params } } : {}),
    resultError: job.resultError ?? undefined,
    ...(job.progress
      ? {
          progress: {
            done: job.progress.done,
            total: job.progress.total ?? undefined,
            message: job.progress.message ?? undefined,
            reportTime: timestampFromDate(job.progress.at),
          },
        }
      : {}),
    ...(spec.notify ? { notify: { url: spec.notify.url, events: [...spec.notify.events] } } : {}),
  });
}

/** An isolation as the proto's `JobIsolation` (unset fields: the host's). */
function isolationToProto(isolation: JobIsolation): JobIsolationMessage {
  return create(JobIsolationSchema, {
    pid: isolation.pid === true,
    ...(isolation.network ? { network: isolation.network } : {}),
    ...(isolation.mount
      ? {
          mount: {
            privateTmp: isolation.mount.privateTmp === true,
            readOnly: [...(isolation.mount.readOnly ?? [])],
            hide: [...(isolation.mount.hide ?? [])],
          },
        }
      : {}),
    ...(isolation.hostname !== undefined ? { hostname: isolation.hostname } : {}),
  });
}

/** A proto `JobIsolation` as the submission's `isolation` (checked by the service, as REST's). */
function isolationInput(message: JobIsolationMessage): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (message.pid) out.pid = true;
  if (message.network !== undefined) out.network = message.network;
  if (message.mount) {
    const mount: Record<string, unknown> = {};
    if (message.mount.privateTmp) mount.privateTmp = true;
    if (message.mount.readOnly.length > 0) mount.readOnly = message.mount.readOnly;
    if (message.mount.hide.length > 0) mount.hide = message.mount.hide;
    out.mount = mount;
  }
  if (message.hostname !== undefined) out.hostname = message.hostname;
  return out;
}

function waitingFor(job: Job): WaitingFor {
  if (job.status !== 'queued') return WaitingFor.UNSPECIFIED;
  if (job.hold === 'after') return WaitingFor.DEPENDENCIES;
  if (job.hold === 'delay') return WaitingFor.TIME;
  return WaitingFor.QUEUE;
}

/** A start request as the submission the service checks (the body of REST's POST /v1/jobs). */
export function startInput(req: StartRequest): Record<string, unknown> {
  const input: Record<string, unknown> = { command: req.command };
  if (req.args.length > 0) input.args = req.args;
  if (req.shell) input.shell = true;
  if (Object.keys(req.env).length > 0) input.env = req.env;
  if (req.cwd !== undefined) input.cwd = req.cwd;
  if (req.noTimeout) {
    if (req.timeoutMs !== undefined) {
      throw new ValidationError('noTimeout', 'Give `timeoutMs` or `noTimeout`, not both');
    }
    input.timeoutMs = null;
  } else if (req.timeoutMs !== undefined) input.timeoutMs = Number(req.timeoutMs);
  if (req.name !== undefined) input.name = req.name;
  if (Object.keys(req.labels).length > 0) input.labels = req.labels;
  if (req.limits) input.limits = startLimitsInput(req.limits);
  if (req.queue !== undefined) input.queue = req.queue;
  if (req.priority !== undefined) input.priority = req.priority;
  if (req.after.length > 0) input.after = req.after;
  if (req.retry) {
    const backoff: Record<string, number> = {};
    if (req.retry.backoffInitialMs !== undefined) backoff.initialMs = Number(req.retry.backoffInitialMs);
    if (req.retry.backoffFactor !== undefined) backoff.factor = req.retry.backoffFactor;
    if (req.retry.backoffMaxMs !== undefined) backoff.maxMs = Number(req.retry.backoffMaxMs);
    input.retry = { attempts: req.retry.attempts, ...(Object.keys(backoff).length > 0 ? { backoff } : {}) };
  }
  if (req.dedupeKey !== undefined) input.dedupeKey = req.dedupeKey;
  if (req.dedupeScope !== undefined) input.dedupeScope = req.dedupeScope;
  if (req.runTime) input.runAt = isoTime('runTime', req.runTime);
  if (req.delayMs !== undefined) input.delayMs = Number(req.delayMs);
  if (req.onDuplicate === OnDuplicate.REJECT) input.onDuplicate = 'reject';
  else if (req.onDuplicate === OnDuplicate.RETURN) input.onDuplicate = 'return';
  else if (req.onDuplicate !== OnDuplicate.UNSPECIFIED) {
    throw ValidationError.expected(
      'onDuplicate',
      'ON_DUPLICATE_REJECT or ON_DUPLICATE_RETURN',
      req.onDuplicate,
    );
  }
  if (req.runAsRoot) input.runAsRoot = true;
  if (req.isolation) input.isolation = isolationInput(req.isolation);
  if (req.notify) {
    input.notify = {
      url: req.notify.url,
      ...(req.notify.events.length > 0 ? { events: req.notify.events } : {}),
    };
  }
  return input;
}

export function listRequest(req: ListRequest): ListJobsRequest {
  const statuses = req.statuses.map((status, i) => {
    const name = (Object.keys(STATUS) as StatusName[]).find((key) => STATUS[key] === status);
    if (name === undefined) throw ValidationError.expected(`statuses[${i}]`, 'a job status', status);
    return name;
  });
  return {
    ...(statuses.length > 0 ? { status: statuses } : {}),
    ...(req.name !== undefined ? { name: req.name } : {}),
    ...(req.queue !== undefined ? { queue: req.queue } : {}),
    ...(req.text !== undefined ? { text: req.text } : {}),
    // As REST's `owner`: the service lets a `user` list only its own (another name lists none).
    ...(req.owner !== undefined ? { owner: req.owner } : {}),
    ...(req.idPrefix !== undefined ? { idPrefix: req.idPrefix.toLowerCase() } : {}),
    ...(req.label ? { label: { key: req.label.key, value: req.label.value } } : {}),
    ...(req.pageSize !== 0 ? { limit: pageSize(req.pageSize) } : {}),
    ...(req.pageToken !== '' ? { cursor: req.pageToken } : {}),
  };
}

function pageSize(size: number): number {
  if (size < 1 || size > MAX_PAGE_SIZE) {
    throw ValidationError.expected('pageSize', `an integer from 1 to ${MAX_PAGE_SIZE}, or 0 for 50`, size);
  }
  return size;
}

export function outputSelector(view: OutputView): OutputSelector {
  const selector = VIEW[view];
  if (selector === undefined) {
    throw ValidationError.expected(
      'view',
      'OUTPUT_VIEW_COMBINED, OUTPUT_VIEW_STDOUT or OUTPUT_VIEW_STDERR',
      view,
    );
  }
  return selector;
}

/**
 * A cursor as the service takes it: a whole number of bytes. One out of range is a `CursorError`
 * (`OUT_OF_RANGE`, `BAD_CURSOR`), as REST answers it and as docs/api.md maps a bad cursor.
 */
export function outputCursor(cursor: bigint): number {
  if (cursor < 0n || cursor > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new CursorError(`Expected \`cursor\` to be a non-negative integer, got ${cursor}`);
  }
  return Number(cursor);
}

/** Output events as stream messages, one each, in view order. */
export function outputToProto(event: OutputEvent): StreamOutputResponse {
  const stream = event.stream === 'stdout' ? OutputStream.STDOUT : OutputStream.STDERR;
  const cursor = BigInt(event.cursor);
  return create(StreamOutputResponseSchema, {
    event:
      event.type === 'data'
        ? { case: 'data', value: { stream, data: event.data, cursor } }
        : { case: 'truncated', value: { stream, skippedBytes: BigInt(event.skippedBytes), cursor } },
  });
}

export function endToProto(job: Job): StreamOutputResponse {
  return create(StreamOutputResponseSchema, { event: { case: 'end', value: jobToProto(job) } });
}

/** A heartbeat of a quiet follow (`StreamOutputResponse.heartbeat`). */
export function heartbeatToProto(): StreamOutputResponse {
  return create(StreamOutputResponseSchema, { event: { case: 'heartbeat', value: {} } });
}

/** A progress report of a followed job: the job, carrying it. */
export function progressToProto(job: Job): StreamOutputResponse {
  return create(StreamOutputResponseSchema, { event: { case: 'progress', value: jobToProto(job) } });
}

const EVENT_TYPES: Record<EventTypeName, JobEventType> = {
  'job:queued': JobEventType.QUEUED,
  'job:started': JobEventType.STARTED,
  'job:progress': JobEventType.PROGRESS,
  'job:paused': JobEventType.PAUSED,
  'job:resumed': JobEventType.RESUMED,
  'job:finished': JobEventType.FINISHED,
};

/** One message of a watch (`JobService.watchEvents`), as `WatchEvents` sends it. */
export function watchMessageToProto(message: WatchMessage): WatchEventsResponse {
  switch (message.kind) {
    case 'ready':
      return create(WatchEventsResponseSchema, {
        message: { case: 'ready', value: { lastEventId: message.lastEventId } },
      });
    case 'reset':
      return create(WatchEventsResponseSchema, {
        message: { case: 'reset', value: { lastEventId: message.lastEventId, reason: message.reason } },
      });
    case 'heartbeat':
      return create(WatchEventsResponseSchema, { message: { case: 'heartbeat', value: {} } });
    case 'event':
      return create(WatchEventsResponseSchema, {
        message: {
          case: 'event',
          value: {
            id: message.event.id,
            type: EVENT_TYPES[message.event.type],
            job: jobToProto(message.event.job),
          },
        },
      });
  }
}

export function queueToProto(queue: QueueState): Queue {
  return create(QueueSchema, {
    name: queue.name,
    concurrency: queue.concurrency ?? undefined,
    maxWaiting: queue.maxWaiting ?? undefined,
    paused: queue.paused,
    running: queue.running,
    waiting: queue.waiting,
    defaultLimits: limitsToProto(queue.defaultLimits),
    maxLimits: limitsToProto(queue.maxLimits),
  });
}

/** The settings an update names; a `Limit` without a value is "no limit". */
export function queueSettings(req: UpdateQueueRequest): QueueSettingsInput {
  return {
    ...(req.concurrency ? { concurrency: req.concurrency.value ?? null } : {}),
    ...(req.maxWaiting ? { maxWaiting: req.maxWaiting.value ?? null } : {}),
    ...(req.paused !== undefined ? { paused: req.paused } : {}),
    ...(req.defaultLimits ? { defaultLimits: limitsInput(req.defaultLimits) } : {}),
    ...(req.maxLimits ? { maxLimits: limitsInput(req.maxLimits) } : {}),
  };
}

export function drainToProto(state: DrainState): DrainStateMessage {
  return create(DrainStateSchema, { draining: state.draining, running: state.running });
}

export function userToProto(user: UserRecord): User {
  return create(UserSchema, {
    name: user.name,
    role: ROLE[user.role],
    runAs: user.runAs ?? undefined,
    disabled: user.disabled,
    createTime: timestampFromDate(user.createdAt),
    defaultLimits: limitsToProto(user.limits?.defaults ?? {}),
    maxLimits: limitsToProto(user.limits?.maxima ?? {}),
  });
}

/** A role as the service's input: UNSPECIFIED is left out, so that the service says it is missing. */
function roleName(role: Role): string | undefined {
  if (role === Role.UNSPECIFIED) return undefined;
  return (Object.keys(ROLE) as RoleName[]).find((key) => ROLE[key] === role) ?? `ROLE ${role}`;
}

export function createUserInput(req: CreateUserRequest): Record<string, unknown> {
  return {
    name: req.name,
    role: roleName(req.role),
    ...(req.runAs !== undefined ? { runAs: req.runAs } : {}),
    ...(req.reuseName ? { reuseName: true } : {}),
  };
}

/** An empty `run_as` clears it. */
export function updateUserInput(req: UpdateUserRequest): Record<string, unknown> {
  return {
    ...(req.role !== undefined ? { role: roleName(req.role) ?? 'ROLE_UNSPECIFIED' } : {}),
    ...(req.runAs !== undefined ? { runAs: req.runAs === '' ? null : req.runAs } : {}),
    ...(req.disabled !== undefined ? { disabled: req.disabled } : {}),
    ...(req.defaultLimits ? { defaultLimits: limitsInput(req.defaultLimits) } : {}),
    ...(req.maxLimits ? { maxLimits: limitsInput(req.maxLimits) } : {}),
  };
}

const TOKEN_STATE = { active: TokenState.ACTIVE, expired: TokenState.EXPIRED, revoked: TokenState.REVOKED };

export function tokenToProto(token: TokenView): Token {
  return create(TokenSchema, {
    id: token.id,
    user: token.user,
    label: token.label ?? undefined,
    state: TOKEN_STATE[token.state],
    createTime: timestampFromDate(token.createdAt),
    lastUseTime: time(token.lastUsedAt),
    expireTime: time(token.expiresAt),
    revokeTime: time(token.revokedAt),
  });
}

export function auditToProto(entry: AuditRecord): AuditEntry {
  return create(AuditEntrySchema, {
    id: entry.id,
    time: timestampFromDate(entry.at),
    user: entry.user ?? undefined,
    role: entry.role ?? undefined,
    source: entry.source ?? undefined,
    transport: entry.transport ?? undefined,
    action: entry.action,
    target: entry.target ?? undefined,
    result: entry.result,
  });
}

export function auditRequest(req: ListAuditEntriesRequest): AuditRequest {
  return {
    ...(req.user !== undefined ? { user: req.user } : {}),
    ...(req.action !== undefined ? { action: req.action } : {}),
    ...(req.since ? { since: isoTime('since', req.since) } : {}),
    ...(req.until ? { until: isoTime('until', req.until) } : {}),
    ...(req.pageSize !== 0 ? { limit: req.pageSize } : {}),
    ...(req.pageToken !== '' ? { cursor: req.pageToken } : {}),
  };
}

export function certificateToProto(cert: IssuedCertificate): Certificate {
  return create(CertificateSchema, {
    serial: cert.serial,
    user: cert.user,
    issueTime: timestampFromDate(new Date(cert.issuedAt)),
    expireTime: timestampFromDate(new Date(cert.notAfter)),
    revokeTime: cert.revokedAt === null ? undefined : timestampFromDate(new Date(cert.revokedAt)),
  });
}

/** google.protobuf.Timestamp's range (its .proto): 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z. */
const MIN_TIMESTAMP_SECONDS = -62_135_596_800n;
const MAX_TIMESTAMP_SECONDS = 253_402_300_799n;

/**
 * A Timestamp of a request as the ISO 8601 text the service checks (REST's form), or a
 * `ValidationError` on `field`. The binary protocols' decoding does not range-check a Timestamp
 * (JSON's does): one past a Date's range made `toISOString()` throw a RangeError, answered
 * INTERNAL and logged as the server's fault.
 */
function isoTime(field: string, timestamp: Timestamp): string {
  const { seconds, nanos } = timestamp;
  if (
    seconds < MIN_TIMESTAMP_SECONDS ||
    seconds > MAX_TIMESTAMP_SECONDS ||
    nanos < 0 ||
    nanos > 999_999_999
  ) {
    throw ValidationError.expected(
      field,
      'a google.protobuf.Timestamp from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z',
      `seconds ${seconds}, nanos ${nanos}`,
    );
  }
  return timestampDate(timestamp).toISOString();
}

function time(date: Date | null): Timestamp | undefined {
  return date === null ? undefined : timestampFromDate(date);
}
