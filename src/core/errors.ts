import type { Job, JobStatus } from './job.ts';

/**
 * Stable error codes. Adapters map them to HTTP and gRPC statuses in one place each;
 * docs/errors.md lists them and a test keeps the two in sync.
 */
export const ERROR_CODES = {
  VALIDATION_FAILED: 'a field of the request is missing, malformed or out of range',
  COMMAND_NOT_FOUND: 'the command is not an executable file, nor found on the job PATH',
  NOT_FOUND: 'no such job, user or token (or not one the caller may see)',
  METHOD_NOT_ALLOWED: 'the path exists but not with this HTTP method; `Allow` lists the methods it has',
  BAD_CURSOR: 'an output cursor that is malformed or past the end of the output',
  ILLEGAL_TRANSITION: 'the job cannot move from its current status to the requested one',
  ALREADY_FINISHED: 'the job had already finished; nothing changed',
  NOT_FINISHED:
    'the job is queued, running or paused: only a finished job can be deleted, or have its result read',
  JOB_FAILED:
    'the job did not succeed, or the result it left could not be kept: there is no result; the message says why',
  IN_USE: 'a queued job waits for this job (`after`): it cannot be deleted until that one starts or ends',
  AMBIGUOUS: 'a job id prefix or name matches more than one job; the message lists them',
  SPAWN_FAILED: 'the operating system refused to start the job',
  CAPACITY_EXHAUSTED: 'the server is at its limit of running jobs or open files',
  QUEUE_FULL: 'the queue already holds its maximum of waiting jobs',
  DUPLICATE: 'a job with the same dedupeKey is queued or running in the same scope (user)',
  FORBIDDEN: 'the caller may not do this (admins only)',
  ACCOUNT_UNAVAILABLE:
    "the job cannot run as its owner's OS account: the account is unknown, or this server cannot switch to it",
  UNAUTHENTICATED: 'no valid credentials were given',
  RATE_LIMITED: 'too many failed authentications from this address; retry after `Retry-After` seconds',
  ALREADY_EXISTS: 'a user with this name already exists',
  LAST_ADMIN: 'the change would leave no enabled admin',
  PAYLOAD_TOO_LARGE: 'the request body is larger than allowed',
  INSUFFICIENT_STORAGE: "the server's disk is full: nothing was created or changed",
  NODE_UNAVAILABLE:
    'the job runs on another node of the cluster, which cannot be reached now; the message names it and its URL',
  STORE_UNAVAILABLE:
    'the store cannot be used now: PostgreSQL cannot be reached or refuses this server, or another process holds the SQLite database locked; the message names it (password hidden)',
  INTERNAL: 'an unexpected server error',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

/**
 * Base of every error jobworker raises on purpose. `code` is stable; `message` is for humans.
 * An error is named after its class. Each class of src/ also says its name (`static override
 * readonly errorName = 'ItsClassName'`): the server's bundle minifies class names
 * (scripts/bundle-server.ts), where `new.target.name` would say `Xe`; test/core/error-names.test.ts
 * checks that none is left out. A subclass without its own `errorName` (a task library user's
 * `MyError` that extends `ValidationError`) is named by its class's name.
 */
export class JobworkerError extends Error {
  static readonly errorName: string = 'JobworkerError';
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.name = Object.hasOwn(new.target, 'errorName')
      ? (new.target as typeof JobworkerError).errorName
      : new.target.name;
  }
}

/** Bad input. `field` is a path into the request (`args[2]`, `env.PATH`). */
export class ValidationError extends JobworkerError {
  static override readonly errorName = 'ValidationError';
  readonly field: string;
  constructor(field: string, message: string, code: ErrorCode = 'VALIDATION_FAILED') {
    super(code, message);
    this.field = field;
  }

  /** "Expected `graceMs` to be a non-negative integer, got `-1`". */
  static expected(field: string, expected: string, received: unknown): ValidationError {
    return new ValidationError(field, `Expected \`${field}\` to be ${expected}, got ${describe(received)}`);
  }
}

export class NotFoundError extends JobworkerError {
  static override readonly errorName = 'NotFoundError';
  readonly id: string;
  constructor(id: string) {
    super('NOT_FOUND', `No job with id ${id}`);
    this.id = id;
  }
}

export class IllegalTransitionError extends JobworkerError {
  static override readonly errorName = 'IllegalTransitionError';
  readonly jobId: string;
  readonly from: JobStatus;
  readonly to: JobStatus;
  constructor(jobId: string, from: JobStatus, to: JobStatus) {
    super('ILLEGAL_TRANSITION', `Job ${jobId} is ${from} and cannot become ${to}`);
    this.jobId = jobId;
    this.from = from;
    this.to = to;
  }
}

/**
 * A node went to record the start of a job it had claimed, and the claim was no longer its own:
 * another node decided it was lost and gave the job back to its queue (docs/cluster.md). Nothing
 * was recorded; the node must end what it spawned.
 */
export class ClaimLostError extends JobworkerError {
  static override readonly errorName = 'ClaimLostError';
  readonly jobId: string;
  constructor(jobId: string, node: string) {
    super(
      'ILLEGAL_TRANSITION',
      `Job ${jobId} is no longer claimed by node ${node}: it went back to its queue`,
    );
    this.jobId = jobId;
  }
}

/** A delete of a job that has not finished: nothing was deleted. */
export class NotFinishedError extends JobworkerError {
  static override readonly errorName = 'NotFinishedError';
  readonly jobId: string;
  readonly status: JobStatus;
  constructor(
    jobId: string,
    status: JobStatus,
    message = `Job ${jobId} is ${status}: only a finished job can be deleted (stop it first)`,
  ) {
    super('NOT_FINISHED', message);
    this.jobId = jobId;
    this.status = status;
  }
}

/** A delete of a finished job that a queued job still waits for (`after`): nothing was deleted. */
export class InUseError extends JobworkerError {
  static override readonly errorName = 'InUseError';
  readonly jobId: string;
  /** The queued jobs waiting for it (those the caller may see: see `others`). */
  readonly dependents: readonly string[];
  /** How many more wait for it that the caller may not see (other users' jobs), not named. */
  readonly others: number;
  constructor(jobId: string, dependents: readonly string[], others = 0) {
    const named =
      dependents.length === 0 ? [] : [`job${dependents.length === 1 ? '' : 's'} ${dependents.join(', ')}`];
    const unnamed = others === 0 ? [] : [`${others} job${others === 1 ? '' : 's'} of other users`];
    const count = dependents.length + others;
    super(
      'IN_USE',
      `Job ${jobId} cannot be deleted: queued ${[...named, ...unnamed].join(' and ')} ` +
        `wait${count === 1 ? 's' : ''} for it`,
    );
    this.jobId = jobId;
    this.dependents = dependents;
    this.others = others;
  }

  /** The same refusal as `who` may read it: only the dependents `visible` says it sees are named. */
  async forCaller(visible: (id: string) => Promise<boolean>): Promise<InUseError> {
    const seen: string[] = [];
    for (const id of this.dependents) if (await visible(id)) seen.push(id);
    return new InUseError(this.jobId, seen, this.others + this.dependents.length - seen.length);
  }
}

/** A submission whose `dedupeKey` a queued or running job already has. Carries that job. */
export class DuplicateJobError extends JobworkerError {
  static override readonly errorName = 'DuplicateJobError';
  readonly job: Job;
  constructor(job: Job) {
    super('DUPLICATE', `Job ${job.id} with dedupeKey ${JSON.stringify(job.spec.dedupeKey)} is ${job.status}`);
    this.job = job;
  }
}

/** A submission to a queue that holds its maximum of waiting jobs; nothing was created. */
export class QueueFullError extends JobworkerError {
  static override readonly errorName = 'QueueFullError';
  readonly queue: string;
  constructor(queue: string, maxWaiting: number) {
    super(
      'QUEUE_FULL',
      `Queue ${queue} already holds its maximum of ${maxWaiting} waiting jobs; try again later`,
    );
    this.queue = queue;
  }
}

/** A user name taken already: nothing was created. */
export class AlreadyExistsError extends JobworkerError {
  static override readonly errorName = 'AlreadyExistsError';
  readonly field: string;
  constructor(field: string, message: string) {
    super('ALREADY_EXISTS', message);
    this.field = field;
  }
}

/** Removing, disabling or demoting the last enabled admin: refused, nothing changed. */
export class LastAdminError extends JobworkerError {
  static override readonly errorName = 'LastAdminError';
  constructor(user: string, what: string) {
    super(
      'LAST_ADMIN',
      `Cannot ${what} ${user}: it is the last enabled admin (add or enable another admin first)`,
    );
  }
}

export class SpawnError extends JobworkerError {
  static override readonly errorName = 'SpawnError';
  constructor(message: string, options?: ErrorOptions) {
    super('SPAWN_FAILED', message, options);
  }
}

/**
 * A write the server could not make because its filesystem is full (SQLite's SQLITE_FULL, or
 * ENOSPC/EDQUOT from the filesystem). Whatever the write belonged to was not done, and left
 * nothing half-done behind; the same request succeeds once space is freed. `cause` is the
 * original error; the message names it.
 */
export class InsufficientStorageError extends JobworkerError {
  static override readonly errorName = 'InsufficientStorageError';
  constructor(message: string, options?: ErrorOptions) {
    super('INSUFFICIENT_STORAGE', message, options);
  }
}

export class CursorError extends JobworkerError {
  static override readonly errorName = 'CursorError';
  readonly field: string;
  constructor(message: string, field = 'cursor') {
    super('BAD_CURSOR', message);
    this.field = field;
  }
}

/** A short, safe rendering of a received value for error messages. */
export function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return '`null`';
  if (typeof value === 'string') {
    const shown = value.length > 60 ? `${value.slice(0, 57)}...` : value;
    return `\`${JSON.stringify(shown).slice(1, -1)}\``;
  }
  if (typeof value === 'number' || typeof value === 'boolean') return `\`${value}\``;
  if (Array.isArray(value)) return 'an array';
  return `a ${typeof value}`;
}
