import type { JobStatus } from '../core/job.ts';

/** A job as REST v1 answers it (times in ISO 8601). */
export interface ApiJob {
  readonly id: string;
  readonly name: string | null;
  readonly command: string;
  readonly args: readonly string[];
  readonly shell: boolean;
  readonly cwd: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly status: JobStatus;
  readonly exitCode: number | null;
  readonly signal: string | null;
  readonly reason: string | null;
  readonly owner: string;
  readonly pid: number | null;
  readonly createdAt: string;
  readonly startedAt: string | null;
  readonly finishedAt: string | null;
  readonly stopRequestedAt: string | null;
  readonly outputBytes: { readonly stdout: number; readonly stderr: number };
}

/** The body of `POST /v1/jobs`. */
export interface CreateJobBody {
  command: string;
  args?: string[];
  shell?: boolean;
  env?: Record<string, string>;
  cwd?: string;
  timeoutMs?: number;
  name?: string;
  labels?: Record<string, string>;
}

export interface JobPage {
  readonly jobs: readonly ApiJob[];
  readonly nextCursor: string | null;
}

export interface ListQuery {
  status?: string;
  name?: string;
  label?: string[];
  limit?: number;
  cursor?: string;
}

/** A view of a job's output: one stream, or both interleaved in the order the server observed. */
export type OutputView = 'stdout' | 'stderr' | 'all';
