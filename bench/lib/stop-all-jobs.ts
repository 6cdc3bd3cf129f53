import type { ApiClient } from './api-client.ts';
import { runPool, sleep } from './pool.ts';

interface JobSummary {
  readonly id: string;
  readonly pid: number | null;
}

interface JobListPage {
  readonly jobs: JobSummary[];
  readonly nextCursor: string | null;
}

/**
 * Stops every running or queued job through the API (grace 0) and waits until none is left.
 * Jobs that are still alive after `timeoutMs` get SIGKILL on their process group, so a bench
 * never leaves processes behind.
 */
export async function stopAllJobs(api: ApiClient, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let seen: JobSummary[] = [];
  for (;;) {
    const live = await listLive(api);
    if (live.length === 0) return;
    seen = live;
    if (Date.now() > deadline) break;
    await runPool(live.length, 16, async (i) => {
      await api.json('POST', `/v1/jobs/${live[i]!.id}/stop`, { graceMs: 0 });
    });
    await sleep(200);
  }
  for (const job of seen) {
    if (job.pid === null) continue;
    try {
      process.kill(-job.pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  throw new Error(
    `${seen.length} jobs were still running after ${timeoutMs} ms; killed their process groups`,
  );
}

async function listLive(api: ApiClient): Promise<JobSummary[]> {
  const jobs: JobSummary[] = [];
  let cursor: string | null = null;
  do {
    const query: string = `status=running,queued&limit=1000${cursor === null ? '' : `&cursor=${cursor}`}`;
    const { status, body } = await api.json<JobListPage>('GET', `/v1/jobs?${query}`);
    if (status !== 200) throw new Error(`GET /v1/jobs answered ${status}`);
    jobs.push(...body.jobs);
    cursor = body.nextCursor;
  } while (cursor !== null);
  return jobs;
}
