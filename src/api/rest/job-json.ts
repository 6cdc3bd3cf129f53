import {
  dedupeScopeOf,
  type Job,
  type JobIsolation,
  type JobLimits,
  type JobStatus,
  type JobUsage,
} from '../../core/job.ts';

/** A job as the REST API shows it: the one serializer (schema: `JOB_SCHEMA`). */
export interface JobJson {
  id: string;
  name: string | null;
  command: string;
  args: string[];
  shell: boolean;
  cwd: string;
  /** The spec's timeout, or the server's default when the spec set none; null for none. */
  timeoutMs: number | null;
  labels: Record<string, string>;
  status: JobStatus;
  exitCode: number | null;
  signal: string | null;
  reason: string | null;
  owner: string;
  pid: number | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  stopRequestedAt: string | null;
  outputBytes: { stdout: number; stderr: number };
  queue: string;
  priority: number;
  runAt: string | null;
  after: string[];
  attempt: number;
  maxAttempts: number;
  retryOf: string | null;
  retriedAs: string | null;
  dedupeKey: string | null;
  /** The user among whose queued or running jobs `dedupeKey` is unique; null without a key. */
  dedupeScope: string | null;
  pausedAt: string | null;
  /** The node that runs it, or ran it, or claimed it last (docs/cluster.md): the host name on one machine. */
  node: string;
  waitingFor: WaitingFor | null;
  /** The OS account its processes run as; null for the server's own. */
  account: { name: string; uid: number; gid: number } | null;
  /** Its resource limits as they apply (normalized: bytes, cores). */
  limits: JobLimits;
  usage: JobUsage | null;
  /** The namespaces it runs in (docs/isolation.md); absent when none. */
  isolation?: JobIsolation;
  /** The named task it runs; null for a plain job. */
  task: string | null;
  /** The task's parameters; null for a plain job. */
  params: Record<string, string | number | boolean> | null;
  /** Why its result was not kept; null otherwise. */
  resultError: string | null;
  /** Its latest progress; null for none. */
  progress: { done: number; total: number | null; message: string | null; at: string } | null;
  /** The job's own webhook (docs/webhooks.md); absent when it has none. */
  notify?: { url: string; events: string[] };
}

/** Why a queued job has not started: see docs/queues.md. */
export type WaitingFor = 'dependencies' | 'time' | 'queue';

/** Times in ISO 8601 (UTC), null where absent. The environment is never shown: it may hold secrets. */
export function jobToJson(job: Job): JobJson {
  return {
    id: job.id,
    name: job.spec.name,
    command: job.spec.command,
    args: [...job.spec.args],
    shell: job.spec.shell,
    cwd: job.spec.cwd,
    timeoutMs: job.spec.timeoutMs,
    labels: { ...job.spec.labels },
    status: job.status,
    exitCode: job.exit?.exitCode ?? null,
    signal: job.exit?.signal ?? null,
    reason: job.exit?.reason ?? null,
    owner: job.owner,
    pid: job.process?.pid ?? null,
    createdAt: job.createdAt.toISOString(),
    startedAt: iso(job.startedAt),
    finishedAt: iso(job.finishedAt),
    stopRequestedAt: iso(job.stop?.at ?? null),
    outputBytes: { stdout: job.outputBytes.stdout, stderr: job.outputBytes.stderr },
    queue: job.spec.queue,
    priority: job.spec.priority,
    runAt: iso(job.runAt),
    after: [...job.spec.after],
    attempt: job.attempt,
    maxAttempts: job.spec.retry?.attempts ?? 1,
    retryOf: job.retryOf,
    retriedAs: job.retriedAs,
    dedupeKey: job.spec.dedupeKey,
    dedupeScope: dedupeScopeOf(job),
    pausedAt: iso(job.pausedAt),
    node: job.node,
    waitingFor: waitingFor(job),
    account: job.spec.account
      ? { name: job.spec.account.name, uid: job.spec.account.uid, gid: job.spec.account.gid }
      : null,
    limits: job.spec.limits,
    usage: job.usage,
    ...(job.spec.isolation ? { isolation: job.spec.isolation } : {}),
    task: job.spec.task?.name ?? null,
    params: job.spec.task ? { ...job.spec.task.params } : null,
    resultError: job.resultError,
    progress: job.progress ? { ...job.progress, at: job.progress.at.toISOString() } : null,
    ...(job.spec.notify ? { notify: { url: job.spec.notify.url, events: [...job.spec.notify.events] } } : {}),
  };
}

function waitingFor(job: Job): WaitingFor | null {
  if (job.status !== 'queued') return null;
  if (job.hold === 'after') return 'dependencies';
  if (job.hold === 'delay') return 'time';
  return 'queue';
}

function iso(date: Date | null): string | null {
  return date === null ? null : date.toISOString();
}
