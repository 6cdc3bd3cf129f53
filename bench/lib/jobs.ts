import type { ApiClient } from './api-client.ts';
import { sleep } from './pool.ts';

/** The fields of the REST job the bench reads. */
export interface JobJson {
  readonly id: string;
  readonly status: string;
  readonly pid: number | null;
  readonly startedAt: string | null;
  readonly outputBytes: { readonly stdout: number; readonly stderr: number };
}

/**
 * POST /v1/jobs; throws unless the answer is 201 with a job that was not refused at start. The
 * answer comes once the job is admitted (normally `queued`): `waitNoneQueued` waits for the starts.
 */
export async function startJob(api: ApiClient, spec: Record<string, unknown>): Promise<JobJson> {
  const { status, body } = await api.json<JobJson>('POST', '/v1/jobs', spec);
  if (status !== 201) throw new Error(`POST /v1/jobs answered ${status}: ${JSON.stringify(body)}`);
  if (body.status === 'failed') throw new Error(`Job ${body.id} failed to start`);
  return body;
}

export async function getJob(api: ApiClient, id: string): Promise<JobJson> {
  const { status, body } = await api.json<JobJson>('GET', `/v1/jobs/${id}`);
  if (status !== 200) throw new Error(`GET /v1/jobs/${id} answered ${status}`);
  return body;
}

/** How many jobs have one of `statuses` (counted by paging the list; fine for thousands). */
export async function countJobs(api: ApiClient, statuses: string): Promise<number> {
  let count = 0;
  let cursor: string | null = null;
  do {
    const query: string = `status=${statuses}&limit=1000${cursor === null ? '' : `&cursor=${cursor}`}`;
    const { body } = await api.json<{ jobs: unknown[]; nextCursor: string | null }>(
      'GET',
      `/v1/jobs?${query}`,
    );
    count += body.jobs.length;
    cursor = body.nextCursor;
  } while (cursor !== null);
  return count;
}

/** Polls every `everyMs` until no job is running or queued. */
export function waitNoneRunning(api: ApiClient, everyMs = 10, timeoutMs = 120_000): Promise<void> {
  return waitNone(api, 'running,queued', everyMs, timeoutMs);
}

/** Polls every `everyMs` until no job is queued: every job submitted so far has started (or ended). */
export function waitNoneQueued(api: ApiClient, everyMs = 10, timeoutMs = 120_000): Promise<void> {
  return waitNone(api, 'queued', everyMs, timeoutMs);
}

async function waitNone(api: ApiClient, statuses: string, everyMs: number, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const { body } = await api.json<{ jobs: unknown[] }>('GET', `/v1/jobs?status=${statuses}&limit=1`);
    if (body.jobs.length === 0) return;
    if (performance.now() > deadline) throw new Error(`Jobs still ${statuses} after ${timeoutMs} ms`);
    await sleep(everyMs);
  }
}
