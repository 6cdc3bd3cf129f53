import type { Job, JobStatus } from '../../core/job.ts';

/** A job as the REST API shows it: the one serializer (schema: `JOB_SCHEMA`). */
export interface JobJson {
  id: string;
  name: string | null;
  command: string;
  args: string[];
  shell: boolean;
  cwd: string;
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
}

/** Times in ISO 8601 (UTC), null where absent. The environment is never shown: it may hold secrets. */
export function jobToJson(job: Job): JobJson {
  return {
    id: job.id,
    name: job.spec.name,
    command: job.spec.command,
    args: [...job.spec.args],
    shell: job.spec.shell,
    cwd: job.spec.cwd,
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
  };
}

function iso(date: Date | null): string | null {
  return date === null ? null : date.toISOString();
}
