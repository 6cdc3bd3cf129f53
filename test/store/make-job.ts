import { newJobId } from '../../src/core/ids.ts';
import { isFinal, type Job, type JobSpec, type JobStatus, TIMEOUT_STOPPER } from '../../src/core/job.ts';

export type JobOverrides = Partial<Omit<Job, 'spec'>> & { spec?: Partial<JobSpec> };

/**
 * A valid job in the given status (queued by default): a started status has `startedAt` and a
 * process, a final one `finishedAt` and an exit, `stopped` a stop request. Overrides win.
 */
export function makeJob(overrides: JobOverrides = {}): Job {
  const status: JobStatus = overrides.status ?? 'queued';
  const id = overrides.id ?? newJobId();
  const createdAt = new Date(Date.UTC(2025, 0, 2, 3, 4, 5, 678));
  const started = status !== 'queued' && status !== 'cancelled';
  const startedAt = started ? new Date(createdAt.getTime() + 15) : null;
  const { spec, ...rest } = overrides;
  return {
    id,
    spec: {
      command: 'echo',
      args: ['hello'],
      shell: false,
      env: {},
      cwd: '/tmp',
      timeoutMs: null,
      name: null,
      labels: {},
      limits: {},
      queue: 'default',
      priority: 0,
      after: [],
      retry: null,
      dedupeKey: null,
      dedupeScope: null,
      account: null,
      task: null,
      ...spec,
    },
    status,
    owner: 'alice',
    createdAt,
    startedAt,
    finishedAt: isFinal(status) ? new Date(createdAt.getTime() + 1234) : null,
    stop:
      status === 'stopped' ? { at: new Date(createdAt.getTime() + 999), by: 'alice', graceMs: 5000 } : null,
    stopForced: false,
    process: started
      ? { pid: 4242, startTicks: 987654, bootId: 'boot-1', cgroups: [`/jobworker/${id}`] }
      : null,
    exit: isFinal(status)
      ? { exitCode: status === 'succeeded' ? 0 : null, signal: null, reason: status }
      : null,
    node: 'node-a',
    outputBytes: { stdout: 0, stderr: 0 },
    runAt: null,
    hold: null,
    attempt: 1,
    retryOf: null,
    retriedAs: null,
    pausedAt: status === 'paused' ? new Date(createdAt.getTime() + 500) : null,
    usage: null,
    resultError: null,
    progress: null,
    ...rest,
  };
}

/** A job with every field set to something that a careless store would get wrong. */
export function makeRichJob(): Job {
  const id = newJobId();
  return makeJob({
    id,
    status: 'timed_out',
    owner: 'team-ü/ops',
    spec: {
      command: 'for f in "$@"; do printf %s "$f"; done',
      args: ['', 'two words', 'quote " and \\ backslash', 'ünïcødé ✓', '--flag=1'],
      shell: true,
      env: { PATH: '/usr/bin:/bin', EMPTY: '', MULTI_LINE: 'a\nb\r\nc', UNICODE: '✓' },
      cwd: '/srv/work dir',
      timeoutMs: 60_000,
      name: 'nightly backfill',
      labels: { team: 'data', 'app.kubernetes.io/name': 'backfill', empty: '' },
      limits: { memory: 512 * 1024 * 1024, cpu: 1.5, pids: 100, io: { writeBps: 1048576 } },
    },
    createdAt: new Date(Date.UTC(2025, 5, 30, 23, 59, 59, 1)),
    startedAt: new Date(Date.UTC(2025, 5, 30, 23, 59, 59, 999)),
    finishedAt: new Date(Date.UTC(2025, 6, 1, 0, 1, 0, 7)),
    stop: {
      at: new Date(Date.UTC(2025, 6, 1, 0, 0, 59, 500)),
      by: TIMEOUT_STOPPER,
      graceMs: 10_000,
      alsoBy: 'carol',
    },
    stopForced: true,
    process: {
      pid: 2_147_483_646,
      startTicks: 9_007_199_254_740_991,
      bootId: '5e1b9c1a-0c3f-4a4e-9d39-2f5d1f9a7c11',
      cgroups: ['/sys/fs/cgroup/jobworker/a', '/sys/fs/cgroup/memory/jobworker/a'],
    },
    exit: { exitCode: null, signal: 'SIGKILL', reason: 'killed by SIGKILL after 10 s grace (timed out)' },
    node: 'node-ü-1',
    outputBytes: { stdout: 2 ** 40 + 3, stderr: 17 },
    usage: {
      cpuSeconds: 12.345678,
      cpuThrottledSeconds: 0.25,
      memoryPeakBytes: 2 ** 33,
      ioReadBytes: 0,
      ioWriteBytes: null,
      oomKills: 0,
      pidsLimitHits: 3,
    },
  });
}
