import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ApiJob, ApiQueue, DrainState } from '../../src/client/api-types.ts';
import { ManualClock } from '../helpers/manual-clock.ts';
import { CliProcess, jobworker, jobworkerJson, startTestServer, type TestServer } from './cli-harness.ts';
import { startCliInProcess } from './cli-in-process.ts';

// End to end: the CLI as a process against a real server, for the queues and scheduling of
// docs/queues.md. Each job that must wait is held by a gate file, so no test guesses with a sleep;
// only state the server reaches with no event to await (a retry's next attempt) is polled.

const ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

let t: TestServer;
let scratch: string;
before(async () => {
  t = await startTestServer();
  scratch = await mkdtemp(join(tmpdir(), 'jw-cli-queues-'));
});
after(async () => {
  await jobworker(['undrain'], t.env);
  await t.close();
  await rm(scratch, { recursive: true, force: true });
});

let gates = 0;
/** A job script that prints `up`, then waits until `open()` is called, then prints `done`. */
function gate(): { script: string; open: () => Promise<void> } {
  const file = join(scratch, `gate-${++gates}`);
  return {
    script: `echo up; while [ ! -e '${file}' ]; do sleep 0.02; done; echo done`,
    open: () => writeFile(file, ''),
  };
}

/** Starts a gated job and resolves once it runs (it printed `up`). */
async function startGated(
  extra: string[] = [],
): Promise<{ job: ApiJob; open: () => Promise<void>; end: Promise<unknown> }> {
  const { script, open } = gate();
  const job = await jobworkerJson<ApiJob>(['start', ...extra, '--', 'sh', '-c', script], t.env);
  const follower = new CliProcess(['logs', '-f', job.id], t.env);
  await follower.waitForStdout('up\n');
  return { job, open, end: follower.result() };
}

const status = (id: string) => jobworkerJson<ApiJob>(['status', id], t.env);
/** Runs `logs -f` to the job's end: by then the job has finished. */
const waitForEnd = (id: string) => jobworker(['logs', '-f', id], t.env);

/** Polls the job (straight over HTTP, to be quick) until `test` holds; fails after 15 s. */
async function jobUntil(id: string, test: (job: ApiJob) => boolean, what: string): Promise<ApiJob> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const response = await fetch(new URL(`v1/jobs/${id}`, `${t.server.url}/`), {
      headers: { authorization: `Bearer ${t.token}` },
    });
    const job = (await response.json()) as ApiJob;
    if (response.ok && test(job)) return job;
    if (Date.now() > deadline) throw new Error(`job ${id} never got ${what}: ${JSON.stringify(job)}`);
    await sleep(25);
  }
}

const isFinal = (job: ApiJob) => !['queued', 'running', 'paused'].includes(job.status);

describe('start with scheduling options', () => {
  it('--queue and --priority are on the job, in status and in list', async () => {
    const job = await jobworkerJson<ApiJob>(
      ['start', '--queue', 'e2e-a', '--priority', '-7', '--name', 'queued-one', '--', 'true'],
      t.env,
    );
    assert.equal(job.queue, 'e2e-a');
    assert.equal(job.priority, -7);
    assert.equal(job.attempt, 1);
    assert.equal(job.maxAttempts, 1);
    await waitForEnd(job.id);
    const human = await jobworker(['status', job.id], t.env);
    assert.match(human.stdout, /^Queue +e2e-a, priority -7$/m);
    const plain = await jobworkerJson<ApiJob>(['start', '--', 'true'], t.env);
    assert.equal(plain.queue, 'default');
    assert.equal(plain.priority, 0);
    await waitForEnd(plain.id);
    const list = await jobworker(['list', '--name', 'queued-one'], t.env);
    const [header, row] = list.stdout.split('\n');
    assert.match(header!, /^ID +NAME +STATUS +AGE +DURATION +QUEUE +COMMAND$/);
    assert.match(row!, new RegExp(`^${job.id} +queued-one +succeeded +.* +e2e-a +true$`));
  });

  it('a full queue keeps jobs waiting; the highest priority starts first; stop cancels a queued job', async () => {
    const set = await jobworkerJson<ApiQueue>(['queue', 'set', 'prio', '--concurrency', '1'], t.env);
    assert.deepEqual(set, {
      name: 'prio',
      concurrency: 1,
      maxWaiting: null,
      paused: false,
      defaultLimits: {},
      maxLimits: {},
      isolation: null,
      running: 0,
      waiting: 0,
    });
    const blocker = await startGated(['--queue', 'prio']);
    const low = await jobworkerJson<ApiJob>(['start', '--queue', 'prio', '--priority', '1', 'true'], t.env);
    const high = await jobworkerJson<ApiJob>(['start', '--queue', 'prio', '--priority', '5', 'true'], t.env);
    const doomed = await jobworkerJson<ApiJob>(['start', '--queue', 'prio', '--', 'sleep', '600'], t.env);
    assert.equal(low.status, 'queued');
    assert.equal(low.waitingFor, 'queue');
    const human = await jobworker(['status', low.id], t.env);
    assert.match(human.stdout, /^Waiting for +queue/m);

    const shown = await jobworkerJson<ApiQueue>(['queue', 'show', 'prio'], t.env);
    assert.equal(shown.running, 1);
    assert.equal(shown.waiting, 3);
    const table = await jobworker(['queue', 'list'], t.env);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /^NAME +CONCURRENCY +MAX-WAITING +PAUSED +RUNNING +WAITING$/m);
    assert.match(table.stdout, /^prio +1 +none +no +1 +3$/m);
    const listed = await jobworkerJson<{ queues: ApiQueue[] }>(['queue', 'list'], t.env);
    assert.ok(listed.queues.some((q) => q.name === 'prio' && q.concurrency === 1));

    const stopped = await jobworker(['stop', doomed.id], t.env);
    assert.equal(stopped.code, 0, stopped.stderr);
    assert.equal(stopped.stdout, `cancelled ${doomed.id} before it started\n`);
    const cancelled = await status(doomed.id);
    assert.equal(cancelled.status, 'cancelled');
    assert.equal(cancelled.startedAt, null);
    assert.match(cancelled.reason ?? '', /cancelled by .* before it started/);

    await blocker.open();
    await waitForEnd(low.id);
    const [l, h] = [await status(low.id), await status(high.id)];
    assert.equal(l.status, 'succeeded');
    assert.equal(h.status, 'succeeded');
    assert.ok(h.finishedAt! <= l.startedAt!, 'priority 5 ran, and ended, before priority 1 started');
  });

  it('--after waits for its dependencies and is cancelled when one fails or is cancelled', async () => {
    const first = await startGated();
    const second = await jobworkerJson<ApiJob>(
      ['start', '--after', first.job.id, '--', 'echo', 'next'],
      t.env,
    );
    assert.deepEqual(second.after, [first.job.id]);
    assert.equal(second.status, 'queued');
    assert.equal(second.waitingFor, 'dependencies');
    const human = await jobworker(['status', second.id], t.env);
    assert.match(human.stdout, new RegExp(`^After +${first.job.id}$`, 'm'));
    await first.open();
    const ended = await waitForEnd(second.id);
    assert.equal(ended.stdout, 'next\n');
    const [a, b] = [await status(first.job.id), await status(second.id)];
    assert.equal(b.status, 'succeeded');
    assert.ok(b.startedAt! >= a.finishedAt!);

    const failed = await jobworkerJson<ApiJob>(['start', '--', 'false'], t.env);
    await waitForEnd(failed.id);
    const orphan = await jobworkerJson<ApiJob>(['start', '--after', failed.id, '--', 'true'], t.env);
    const gone = await jobUntil(orphan.id, isFinal, 'a final status');
    assert.equal(gone.status, 'cancelled');
    assert.ok(gone.reason?.includes(failed.id), gone.reason ?? '');

    const later = await jobworkerJson<ApiJob>(['start', '--delay', '1h', '--', 'true'], t.env);
    const waiting = await jobworkerJson<ApiJob>(['start', '--after', later.id, '--', 'true'], t.env);
    assert.equal((await jobworker(['stop', later.id], t.env)).code, 0);
    const cascaded = await jobUntil(waiting.id, isFinal, 'a final status');
    assert.equal(cascaded.status, 'cancelled');
    assert.ok(cascaded.reason?.includes(later.id), cascaded.reason ?? '');
  });

  it('--delay and --at set runAt; the job waits for its time', async () => {
    const before = Date.now();
    const delayed = await jobworkerJson<ApiJob>(['start', '--delay', '1h', '--', 'true'], t.env);
    assert.equal(delayed.status, 'queued');
    assert.equal(delayed.waitingFor, 'time');
    const runAt = Date.parse(delayed.runAt!);
    assert.ok(runAt >= before + 3_600_000 && runAt <= Date.now() + 3_600_000, delayed.runAt!);
    const human = await jobworker(['status', delayed.id], t.env);
    assert.match(human.stdout, /^Not before +in 59m \d\ds \(/m);

    const at = new Date(Date.now() + 2 * 3_600_000);
    at.setUTCMilliseconds(0);
    const timed = await jobworkerJson<ApiJob>(['start', '--at', at.toISOString(), '--', 'true'], t.env);
    assert.equal(timed.runAt, at.toISOString());
    assert.equal(timed.waitingFor, 'time');

    const soon = await jobworkerJson<ApiJob>(['start', '--delay', '300ms', '--', 'true'], t.env);
    const ran = await jobUntil(soon.id, isFinal, 'started and ended after its delay');
    assert.equal(ran.status, 'succeeded');
    assert.ok(Date.parse(ran.startedAt!) >= Date.parse(soon.runAt!));
    for (const id of [delayed.id, timed.id]) assert.equal((await jobworker(['stop', id], t.env)).code, 0);
  });

  it('--retry N makes up to N + 1 attempts, linked both ways', async () => {
    const first = await jobworkerJson<ApiJob>(
      ['start', '--retry', '2', '--retry-backoff', '10ms,1', '--', 'sh', '-c', 'exit 3'],
      t.env,
    );
    assert.equal(first.attempt, 1);
    assert.equal(first.maxAttempts, 3);
    assert.equal(first.retryOf, null);
    const chain = [first.id];
    for (;;) {
      const job = await jobUntil(
        chain.at(-1)!,
        (j) => isFinal(j) && (j.retriedAs !== null || j.attempt === 3),
        'retried',
      );
      if (job.retriedAs === null) break;
      chain.push(job.retriedAs);
    }
    assert.equal(chain.length, 3);
    const attempts = await Promise.all(chain.map(status));
    assert.deepEqual(
      attempts.map((j) => [j.attempt, j.status, j.exitCode, j.retryOf]),
      [
        [1, 'failed', 3, null],
        [2, 'failed', 3, chain[0]],
        [3, 'failed', 3, chain[1]],
      ],
    );
    const human = await jobworker(['status', chain[1]!], t.env);
    assert.match(human.stdout, /^Attempt +2 of 3$/m);
    assert.match(human.stdout, new RegExp(`^Retry of +${chain[0]}$`, 'm'));
    assert.match(human.stdout, new RegExp(`^Retried as +${chain[2]}$`, 'm'));
  });

  it('a job --after a retried job waits for the attempt that succeeds', async () => {
    const counter = join(scratch, 'attempts');
    const script = `n=$(cat '${counter}' 2>/dev/null || echo 0); n=$((n+1)); echo $n > '${counter}'; [ $n -ge 2 ]`;
    const flaky = await jobworkerJson<ApiJob>(
      ['start', '--retry', '3', '--retry-backoff', '10ms', '--', 'sh', '-c', script],
      t.env,
    );
    const next = await jobworkerJson<ApiJob>(['start', '--after', flaky.id, '--', 'true'], t.env);
    const done = await jobUntil(next.id, isFinal, 'a final status');
    assert.equal(done.status, 'succeeded', done.reason ?? '');
    const one = await status(flaky.id);
    assert.equal(one.status, 'failed');
    const two = await jobUntil(one.retriedAs!, isFinal, 'a final status');
    assert.deepEqual([two.attempt, two.status, two.retriedAs], [2, 'succeeded', null]);
  });

  it('--dedupe refuses a second job with the key, or returns the first with --on-duplicate return', async () => {
    const first = await startGated(['--dedupe', 'nightly-backup']);
    const again = await jobworker(['start', '--dedupe', 'nightly-backup', '--', 'true'], t.env);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /^jobworker: .*DUPLICATE.*\n$/);
    assert.ok(again.stderr.includes(first.job.id), again.stderr);
    const returned = await jobworker(
      ['start', '--dedupe', 'nightly-backup', '--on-duplicate', 'return', '--', 'true'],
      t.env,
    );
    assert.equal(returned.code, 0, returned.stderr);
    assert.equal(returned.stdout, `${first.job.id}\n`);
    const human = await jobworker(['status', first.job.id], t.env);
    assert.match(human.stdout, /^Dedupe key +nightly-backup$/m);
    await first.open();
    await first.end;
    const fresh = await jobworkerJson<ApiJob>(['start', '--dedupe', 'nightly-backup', '--', 'true'], t.env);
    assert.match(fresh.id, ID);
    assert.notEqual(fresh.id, first.job.id);
    await waitForEnd(fresh.id);
  });
});

describe('jobworker queue', () => {
  it('pause keeps a queue from starting jobs; resume starts them', async () => {
    const paused = await jobworker(['queue', 'pause', 'pq'], t.env);
    assert.equal(paused.code, 0, paused.stderr);
    assert.equal(paused.stdout, 'paused queue pq\n');
    const job = await jobworkerJson<ApiJob>(['start', '--queue', 'pq', '--', 'echo', 'out'], t.env);
    assert.equal(job.status, 'queued');
    assert.equal(job.waitingFor, 'queue');
    const shown = await jobworker(['queue', 'show', 'pq'], t.env);
    assert.match(shown.stdout, /^Paused +yes/m);
    assert.match(shown.stdout, /^Waiting +1$/m);
    const resumed = await jobworker(['queue', 'resume', 'pq'], t.env);
    assert.equal(resumed.stdout, 'resumed queue pq\n');
    const ended = await waitForEnd(job.id);
    assert.equal(ended.stdout, 'out\n');
    assert.equal((await jobworkerJson<ApiQueue>(['queue', 'show', 'pq'], t.env)).paused, false);
  });

  it('set changes only what it is given; none lifts a limit; max-waiting refuses more', async () => {
    const a = await jobworkerJson<ApiQueue>(
      ['queue', 'set', 'lim', '--concurrency', '2', '--max-waiting', '1', '--paused'],
      t.env,
    );
    assert.deepEqual([a.concurrency, a.maxWaiting, a.paused], [2, 1, true]);
    const waiting = await jobworkerJson<ApiJob>(['start', '--queue', 'lim', '--', 'true'], t.env);
    const refused = await jobworker(['start', '--queue', 'lim', '--', 'true'], t.env);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /^jobworker: .*QUEUE_FULL.*\n$/);
    const b = await jobworkerJson<ApiQueue>(['queue', 'set', 'lim', '--concurrency', 'none'], t.env);
    assert.deepEqual([b.concurrency, b.maxWaiting, b.paused], [null, 1, true]);
    const human = await jobworker(['queue', 'set', 'lim', '--max-waiting', 'none', '--no-paused'], t.env);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /^Max waiting +no limit$/m);
    assert.match(human.stdout, /^Paused +no$/m);
    await waitForEnd(waiting.id);
  });

  it('a queue nobody configured shows the defaults', async () => {
    const q = await jobworkerJson<ApiQueue>(['queue', 'show', 'never-seen'], t.env);
    assert.deepEqual(q, {
      name: 'never-seen',
      concurrency: null,
      maxWaiting: null,
      paused: false,
      defaultLimits: {},
      maxLimits: {},
      isolation: null,
      running: 0,
      waiting: 0,
    });
  });
});

describe('jobworker pause and resume', () => {
  it('freezes a running job and thaws it; anything else is ILLEGAL_TRANSITION', async () => {
    const running = await startGated();
    const paused = await jobworker(['pause', running.job.id], t.env);
    assert.equal(paused.code, 0, paused.stderr);
    assert.equal(paused.stdout, `paused ${running.job.id}\n`);
    const frozen = await status(running.job.id);
    assert.equal(frozen.status, 'paused');
    assert.notEqual(frozen.pausedAt, null);
    const human = await jobworker(['status', running.job.id], t.env);
    assert.match(human.stdout, /^Status +paused \(pid \d+\)$/m);
    assert.match(human.stdout, /^Paused +/m);
    const twice = await jobworker(['pause', running.job.id], t.env);
    assert.equal(twice.code, 1);
    assert.match(twice.stderr, /^jobworker: .*ILLEGAL_TRANSITION.*\n$/);

    const resumed = await jobworkerJson<ApiJob>(['resume', running.job.id], t.env);
    assert.equal(resumed.status, 'running');
    assert.equal(resumed.pausedAt, null);
    const again = await jobworker(['resume', running.job.id], t.env);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /ILLEGAL_TRANSITION/);
    await running.open();
    await running.end;
    const finished = await jobworker(['pause', running.job.id], t.env);
    assert.equal(finished.code, 1);
    assert.match(finished.stderr, /^jobworker: [^\n]*\n$/);
  });

  it('stop of a paused job thaws it so that it gets its SIGTERM', async () => {
    const running = await startGated();
    assert.equal((await jobworker(['pause', running.job.id], t.env)).code, 0);
    const stopped = await jobworker(['stop', running.job.id, '--grace', '10s'], t.env);
    assert.equal(stopped.stdout, `stopping ${running.job.id} (grace 10s)\n`);
    await running.end;
    const end = await status(running.job.id);
    assert.equal(end.status, 'stopped');
    assert.equal(end.signal, 'SIGTERM', end.reason ?? '');
  });
});

describe('queue settings and drain need an admin', () => {
  it('a user token is refused with FORBIDDEN', async () => {
    assert.equal((await jobworker(['user', 'add', 'bob', '--role', 'user'], t.env)).code, 0);
    const created = await jobworker(['token', 'create', '--user', 'bob'], t.env);
    assert.equal(created.code, 0, created.stderr);
    const token = created.stdout.trim();
    const env = { ...t.env, JOBWORKER_TOKEN: token };
    const adminOnly = [
      ['queue', 'set', 'q', '--concurrency', '1'],
      ['queue', 'pause', 'q'],
      ['drain', '--no-wait'],
      ['undrain'],
    ];
    for (const args of adminOnly) {
      const result = await jobworker(args, env);
      assert.equal(result.code, 1, `${args.join(' ')}: ${result.stderr}`);
      assert.match(result.stderr, /^jobworker: .*FORBIDDEN.*\n$/, args.join(' '));
    }
  });
});

describe('jobworker drain and undrain', () => {
  it('drain waits for running jobs, starts nothing new; undrain starts them', async () => {
    const running = await startGated();
    const drain = new CliProcess(['drain'], t.env);
    await drain.waitForStdout('draining: 1 running job\n');
    const state = await jobworkerJson<DrainState>(['drain', '--no-wait'], t.env);
    assert.deepEqual(state, { draining: true, running: 1 });
    const held = await jobworkerJson<ApiJob>(['start', '--', 'echo', 'held'], t.env);
    assert.equal(held.status, 'queued');
    assert.equal(held.waitingFor, 'queue');

    await running.open();
    const drained = await drain.result();
    assert.equal(drained.code, 0, drained.stderr);
    assert.equal(drained.stdout, 'draining: 1 running job\ndrained\n');
    assert.equal((await status(held.id)).status, 'queued', 'still nothing starts');

    const again = await jobworker(['drain'], t.env);
    assert.equal(again.stdout, 'draining: 0 running jobs\ndrained\n');
    const undrained = await jobworker(['undrain'], t.env);
    assert.equal(undrained.code, 0, undrained.stderr);
    assert.equal(undrained.stdout, 'dispatching again\n');
    assert.equal((await waitForEnd(held.id)).stdout, 'held\n');
  });

  it('drain prints the running count as it falls, asking once a second on its clock', async () => {
    const clock = new ManualClock();
    const first = await startGated();
    const second = await startGated();
    try {
      const drain = startCliInProcess(['drain'], t.env, { clock });
      await drain.stdout.includes('draining: 2 running jobs\n');
      await first.open();
      await first.end;
      // The first ask comes when the CLI's clock says a second has passed, not before.
      await clock.timerSet();
      assert.equal(drain.stdout.text, 'draining: 2 running jobs\n');
      clock.advance(1000);
      await drain.stdout.includes('draining: 1 running job\n');
      await second.open();
      const drained = await drain.result;
      assert.equal(drained.code, 0, drained.stderr);
      assert.equal(drained.stdout, 'draining: 2 running jobs\ndraining: 1 running job\ndrained\n');
      assert.equal(clock.pending, 0, 'no pause is left armed once drained');
    } finally {
      await jobworker(['undrain'], t.env);
    }
  });

  it('drain --json prints the final state', async () => {
    try {
      const state = await jobworkerJson<DrainState>(['drain'], t.env);
      assert.deepEqual(state, { draining: true, running: 0 });
    } finally {
      await jobworker(['undrain'], t.env);
    }
  });
});
