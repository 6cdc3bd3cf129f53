import { useEffect, useState } from 'preact/hooks';
import { ApiError, getJson, sendJson } from '../api.ts';
import { bytes, commandLine, duration, runTime, time, visible } from '../format.ts';
import { isOlderNews, isUnordered } from '../job-news.ts';
import { live } from '../live.ts';
import { go } from '../router.ts';
import { type OutputView, TerminalView } from '../terminal.tsx';
import type { Job } from '../types.ts';
import { Confirm, ErrorLine, StatusBadge } from '../ui.tsx';

type Action = 'stop' | 'pause' | 'resume' | 'retry' | 'delete';

const ACTION_TEXT: Record<Action, { title: string; button: string; danger?: boolean; body: string }> = {
  stop: {
    title: 'Stop this job?',
    button: 'Stop',
    danger: true,
    body: 'Its whole process tree gets SIGTERM, then SIGKILL after the grace period.',
  },
  pause: {
    title: 'Pause this job?',
    button: 'Pause',
    body: 'Its processes are frozen (cgroup freezer) until resumed.',
  },
  resume: { title: 'Resume this job?', button: 'Resume', body: 'Its processes are thawed and carry on.' },
  retry: {
    title: 'Run this job again?',
    button: 'Run again',
    body: 'A new job with the same command, arguments, shell, directory, queue, priority, timeout, name, labels, webhook, number of attempts (with the default backoff), and limits and isolation as they applied; a task run starts the task again with the same parameters. The environment is never shown, so it is not copied; nor are dependencies, a start time, a dedupe key or running as root.',
  },
  delete: {
    title: 'Delete this job?',
    button: 'Delete',
    danger: true,
    body: 'The job and its output are deleted for good.',
  },
};

export function JobPage({ id }: { id: string }) {
  const [job, setJob] = useState<Job | null>(null);
  const [error, setError] = useState<unknown>();
  const [view, setView] = useState<OutputView>('all');
  const [asking, setAsking] = useState<Action | null>(null);
  const [now, setNow] = useState(Date.now());

  // Answers, action results and events may arrive in any order: news older than what is shown (a
  // job not finished, after its end) is dropped, or the page would show it running for good.
  const showNews = (incoming: Job) =>
    setJob((shown) => (shown !== null && isOlderNews(shown, incoming) ? shown : incoming));

  useEffect(() => {
    let stale = false;
    // The reads of the job on their way, each with the last event heard meanwhile: of the same
    // phase as its answer but another status (a pause, a resume), that event cannot be ordered
    // against the answer, and the job is read again (what it is now replaces both). Each read has
    // its own slot: a reset's read overlapping the first must not clear what the first heard.
    const reads = new Set<{ heard: Job | null }>();
    const fetchJob = (again = true): Promise<void> => {
      const read: { heard: Job | null } = { heard: null };
      reads.add(read);
      return getJson<Job>(`/v1/jobs/${encodeURIComponent(id)}`).then(
        (j) => {
          reads.delete(read);
          if (stale) return;
          showNews(j);
          setError(undefined);
          if (again && read.heard && isUnordered(j, read.heard)) {
            void fetchJob(false);
          }
        },
        (err) => {
          reads.delete(read);
          if (!stale) setError(err);
        },
      );
    };
    void fetchJob();
    const unsubscribe = live.subscribe((event) => {
      if (event.type === 'job' && event.job.id === id) {
        for (const read of reads) read.heard = event.job;
        showNews(event.job);
      }
      if (event.type === 'reset') void fetchJob();
    });
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => {
      stale = true;
      unsubscribe();
      clearInterval(timer);
    };
  }, [id]);

  if (!job) return <section>{error ? <ErrorLine error={error} /> : <p class="muted">Loading…</p>}</section>;

  const act = async (action: Action) => {
    setAsking(null);
    try {
      if (action === 'delete') {
        await sendJson('DELETE', `/v1/jobs/${job.id}`);
        go('jobs');
        return;
      }
      if (action === 'retry') {
        const { path, body } = runAgain(job);
        const again = await sendJson<Job>('POST', path, body);
        go(`jobs/${again.id}`);
        return;
      }
      const changed = await sendJson<Job>(
        'POST',
        `/v1/jobs/${job.id}/${action}`,
        action === 'stop' ? {} : undefined,
      );
      showNews(changed);
      setError(undefined);
    } catch (err) {
      // A stop of a job that had just finished: not an error worth showing as one, but the job as
      // it is (its end may not have reached this page: the live connection may be down).
      if (err instanceof ApiError && err.code === 'ALREADY_FINISHED') {
        if (err.job?.id === job.id) showNews(err.job);
        return;
      }
      setError(err);
    }
  };

  const active = job.status === 'running' || job.status === 'paused' || job.status === 'queued';
  const can: Record<Action, boolean> = {
    stop: active,
    pause: job.status === 'running',
    resume: job.status === 'paused',
    retry: !active,
    delete: !active,
  };
  const timeline: [string, string | null][] = [
    ['created', job.createdAt],
    ['run at', job.runAt],
    ['started', job.startedAt],
    ['paused', job.pausedAt],
    ['stop asked', job.stopRequestedAt],
    ['finished', job.finishedAt],
  ];

  return (
    <section class="job-page">
      <div class="page-head">
        <h1 class="job-title">
          <StatusBadge status={job.status} />{' '}
          <span data-testid="job-name">{job.name === null ? job.id : visible(job.name)}</span>
        </h1>
        <div class="actions">
          {(Object.keys(can) as Action[]).map((action) => (
            <button
              type="button"
              disabled={!can[action]}
              class={ACTION_TEXT[action].danger ? 'danger' : ''}
              data-action={action}
              onClick={() => setAsking(action)}
            >
              {ACTION_TEXT[action].button}
            </button>
          ))}
        </div>
      </div>
      <ErrorLine error={error} />
      <div class="job-grid">
        <dl class="fields">
          <dt>Id</dt>
          <dd class="mono">{job.id}</dd>
          <dt>Command</dt>
          <dd class="mono wrap">
            {commandLine(job)}
            {job.shell ? '  (shell)' : ''}
          </dd>
          <dt>Directory</dt>
          <dd class="mono">{visible(job.cwd)}</dd>
          <dt>Owner</dt>
          <dd>
            {job.owner}
            {job.account ? ` (runs as ${job.account.name})` : ''}
          </dd>
          <dt>Queue</dt>
          <dd>
            <a href={`#/queues`}>{job.queue}</a>, priority {job.priority}
            {job.waitingFor ? `, waiting for ${job.waitingFor}` : ''}
          </dd>
          <dt>Exit</dt>
          <dd>
            {job.exitCode !== null ? `code ${job.exitCode}` : job.signal ? `signal ${job.signal}` : '—'}
            {job.reason ? ` (${visible(job.reason)})` : ''}
          </dd>
          <dt>Duration</dt>
          <dd data-testid="duration">{runTime(job, now)}</dd>
          <dt>Timeout</dt>
          <dd>{job.timeoutMs === null ? 'none' : duration(job.timeoutMs)}</dd>
          <dt>Output</dt>
          <dd>
            stdout {bytes(job.outputBytes.stdout)}, stderr {bytes(job.outputBytes.stderr)}
          </dd>
          <dt>Attempt</dt>
          <dd>
            {job.attempt} of {job.maxAttempts}
            {job.retryOf ? (
              <>
                {' '}
                (retry of <a href={`#/jobs/${job.retryOf}`}>{job.retryOf.slice(0, 8)}</a>)
              </>
            ) : null}
          </dd>
          {job.after.length > 0 ? (
            <>
              <dt>After</dt>
              <dd>
                {job.after.map((a) => (
                  <a href={`#/jobs/${a}`} class="mono">
                    {a.slice(0, 8)}{' '}
                  </a>
                ))}
              </dd>
            </>
          ) : null}
          {Object.keys(job.labels).length > 0 ? (
            <>
              <dt>Labels</dt>
              <dd>
                {Object.entries(job.labels).map(([k, v]) => (
                  <span class="chip">
                    {visible(k)}={visible(v)}
                  </span>
                ))}
              </dd>
            </>
          ) : null}
        </dl>
        <ol class="timeline">
          {timeline
            .filter(([, at]) => at !== null)
            .map(([what, at]) => (
              <li>
                <span class="when">{time(at)}</span> {what}
              </li>
            ))}
        </ol>
      </div>
      <div class="tabs" role="tablist">
        {(['all', 'stdout', 'stderr'] as OutputView[]).map((v) => (
          <button
            type="button"
            role="tab"
            aria-selected={view === v}
            class={view === v ? 'active' : ''}
            onClick={() => setView(v)}
          >
            {v === 'all' ? 'combined' : v}
          </button>
        ))}
      </div>
      <TerminalView job={job} view={view} />
      {asking ? (
        <Confirm
          title={ACTION_TEXT[asking].title}
          action={ACTION_TEXT[asking].button}
          danger={ACTION_TEXT[asking].danger === true}
          onCancel={() => setAsking(null)}
          onConfirm={() => void act(asking)}
        >
          <p>{ACTION_TEXT[asking].body}</p>
        </Confirm>
      ) : null}
    </section>
  );
}

/**
 * The request that runs a job again: a task run starts its task with the same parameters; any
 * other job is submitted with what its JSON shows of its spec. Its limits and isolation are sent
 * as they applied (its queue's or user's defaults included), so the new job keeps them even if
 * those defaults change: left out, a job capped at 64 MiB ran again with no cap.
 */
function runAgain(job: Job): { path: string; body: Record<string, unknown> } {
  if (job.task !== null) {
    return { path: `/v1/tasks/${encodeURIComponent(job.task)}/runs`, body: job.params ?? {} };
  }
  return {
    path: '/v1/jobs',
    body: {
      command: job.command,
      args: job.args,
      shell: job.shell,
      cwd: job.cwd,
      queue: job.queue,
      priority: job.priority,
      timeoutMs: job.timeoutMs,
      labels: job.labels,
      limits: job.limits,
      ...(job.name === null ? {} : { name: job.name }),
      ...(job.maxAttempts > 1 ? { retry: { attempts: job.maxAttempts } } : {}),
      ...(job.isolation === undefined ? {} : { isolation: job.isolation }),
      ...(job.notify === undefined ? {} : { notify: job.notify }),
    },
  };
}
