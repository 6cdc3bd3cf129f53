import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { describeJob } from '../../src/cli/job-format.ts';
import { describeQueue, queueTable } from '../../src/cli/queue-format.ts';
import {
  collectJobRef,
  parseBackoff,
  parseDedupeKey,
  parsePriority,
  parseQueueName,
  parseRetries,
  parseTime,
  scheduleBody,
} from '../../src/cli/schedule-options.ts';
import { Style } from '../../src/cli/style.ts';
import type { ApiJob, ApiQueue } from '../../src/client/api-types.ts';
import { baseEnv, jobworker } from './cli-harness.ts';

// Option parsing needs no server: these run the CLI against an address where nothing listens.
const NOWHERE = baseEnv({ JOBWORKER_URL: 'http://127.0.0.1:9', JOBWORKER_TOKEN: 'x' });
const A = '0197a000-0000-7000-8000-000000000001';
const B = '0197a000-0000-7000-8000-000000000002';

describe('scheduling option parsers', () => {
  it('queue names: letters, digits, . _ -, 1 to 63, not starting with punctuation', () => {
    for (const good of ['default', 'nightly', 'a', 'v1.2_x-y', '9lives', 'x'.repeat(63)]) {
      assert.equal(parseQueueName(good), good);
    }
    for (const bad of ['', '-x', '.x', 'a/b', 'a b', 'x'.repeat(64), 'é']) {
      assert.throws(() => parseQueueName(bad), /Expected a queue name/, bad);
    }
  });

  it('priorities are integers from -1000 to 1000', () => {
    assert.equal(parsePriority('10'), 10);
    assert.equal(parsePriority('-1000'), -1000);
    assert.equal(parsePriority('+5'), 5);
    for (const bad of ['1001', '-1001', '1.5', 'high', '', '1e2']) {
      assert.throws(() => parsePriority(bad), /Expected an integer from -1000 to 1000/, bad);
    }
  });

  it('--after collects jobs, each once: ids lower-cased, other references as typed', () => {
    assert.deepEqual(collectJobRef(B, collectJobRef(A)), [A, B]);
    assert.deepEqual(collectJobRef(A.toUpperCase()), [A]);
    assert.throws(() => collectJobRef(A, [A]), /given twice/);
    assert.deepEqual(collectJobRef('last', [A]), [A, 'last'], 'resolved on the server by start');
    assert.deepEqual(collectJobRef(' Nightly '), ['Nightly']);
    assert.throws(() => collectJobRef('  '), /Expected a job/);
  });

  it('--retry N counts retries, so up to 99', () => {
    assert.equal(parseRetries('0'), 0);
    assert.equal(parseRetries('99'), 99);
    for (const bad of ['100', '-1', '1.5', 'x']) assert.throws(() => parseRetries(bad), /retries/, bad);
  });

  it('--retry-backoff INITIAL[,FACTOR[,MAX]] sends only what was given', () => {
    assert.deepEqual(parseBackoff('1s,2,5m'), { initialMs: 1000, factor: 2, maxMs: 300_000 });
    assert.deepEqual(parseBackoff('250ms'), { initialMs: 250 });
    assert.deepEqual(parseBackoff('2s,1.5'), { initialMs: 2000, factor: 1.5 });
    assert.deepEqual(parseBackoff('1s,,1m'), { initialMs: 1000, maxMs: 60_000 });
    assert.deepEqual(parseBackoff('10m'), { initialMs: 600_000, maxMs: 600_000 }, 'MAX never below INITIAL');
    for (const bad of ['', 'x', '1s,0.5', '1s,2,500ms', '1s,2,3,4', '1s,x', '8d']) {
      assert.throws(() => parseBackoff(bad), /Expected/, bad);
    }
  });

  it('--dedupe keys are 1 to 200 characters', () => {
    assert.equal(parseDedupeKey('backup'), 'backup');
    assert.throws(() => parseDedupeKey(''), /1 to 200/);
    assert.throws(() => parseDedupeKey('k'.repeat(201)), /1 to 200/);
  });

  it('--at reads ISO 8601, local time without a zone, and refuses days not in the calendar', () => {
    assert.equal(parseTime('2026-12-01T03:00:00Z'), '2026-12-01T03:00:00.000Z');
    assert.equal(parseTime('2026-12-01T03:00:00.25+02:00'), '2026-12-01T01:00:00.250Z');
    assert.equal(parseTime('2026-12-01T03:00-0130'), '2026-12-01T04:30:00.000Z');
    assert.equal(parseTime('2026-12-01 03:00'), new Date(2026, 11, 1, 3, 0).toISOString());
    assert.equal(parseTime('2026-12-01'), new Date(2026, 11, 1).toISOString());
    for (const bad of [
      'tomorrow',
      '2026-02-30',
      '2026-13-01',
      '2026-12-01T24:00',
      '2026-12-01T10',
      '1733000000',
    ]) {
      assert.throws(() => parseTime(bad), /Expected an ISO 8601 time/, bad);
    }
  });

  it('--at refuses a zone offset past 23 hours or 59 minutes, which the server never sees', () => {
    assert.equal(parseTime('2026-12-01T03:00+23:59'), '2026-11-30T03:01:00.000Z');
    assert.equal(parseTime('2026-12-01T03:00-2359'), '2026-12-02T02:59:00.000Z');
    for (const bad of ['+05:99', '+99:00', '-24:00', '+0560']) {
      assert.throws(
        () => parseTime(`2026-12-01T03:00${bad}`),
        {
          message: `Expected a zone offset from -23:59 to +23:59, got "${bad}" in "2026-12-01T03:00${bad}".`,
        },
        bad,
      );
    }
  });
});

describe('scheduleBody', () => {
  it('maps the options to the body fields of POST /v1/jobs', () => {
    assert.deepEqual(scheduleBody({}), {});
    assert.deepEqual(
      scheduleBody({
        queue: 'nightly',
        priority: 10,
        after: [A],
        delay: 300_000,
        retry: 3,
        retryBackoff: { initialMs: 1000, factor: 2 },
        dedupe: 'backup',
        onDuplicate: 'return',
      }),
      {
        queue: 'nightly',
        priority: 10,
        after: [A],
        delayMs: 300_000,
        retry: { attempts: 4, backoff: { initialMs: 1000, factor: 2 } },
        dedupeKey: 'backup',
        onDuplicate: 'return',
      },
    );
    assert.deepEqual(scheduleBody({ retry: 0, at: '2026-12-01T00:00:00.000Z' }), {
      retry: { attempts: 1 },
      runAt: '2026-12-01T00:00:00.000Z',
    });
  });

  it('refuses options that need another', () => {
    assert.throws(() => scheduleBody({ retryBackoff: { initialMs: 1 } }), /--retry-backoff needs --retry/);
    assert.throws(() => scheduleBody({ onDuplicate: 'return' }), /--on-duplicate needs --dedupe/);
  });
});

describe('usage errors of the new options and commands', () => {
  it('exit 2 with one line naming the option, before any request', async () => {
    const cases: [string[], RegExp][] = [
      [['start', '--queue', 'a/b', '--', 'true'], /--queue/],
      [['start', '--priority', '1001', '--', 'true'], /--priority/],
      [['start', '--priority', 'high', '--', 'true'], /--priority/],
      [['start', '--after', ' ', '--', 'true'], /--after/],
      [['start', '--after', A, '--after', A, '--', 'true'], /--after/],
      [['start', '--delay', 'soon', '--', 'true'], /--delay/],
      [['start', '--at', 'tomorrow', '--', 'true'], /--at/],
      [['start', '--at', '2026-12-01T03:00+05:99', '--', 'true'], /--at.*from -23:59 to \+23:59/],
      [['start', '--delay', '5m', '--at', '2026-12-01T00:00Z', '--', 'true'], /--delay.*--at/],
      [['start', '--retry', '100', '--', 'true'], /--retry/],
      [['start', '--retry', '1', '--retry-backoff', '1s,0', '--', 'true'], /--retry-backoff/],
      [['start', '--retry-backoff', '1s', '--', 'true'], /--retry-backoff/],
      [['start', '--dedupe', '', '--', 'true'], /--dedupe/],
      [['start', '--on-duplicate', 'ignore', '--dedupe', 'k', '--', 'true'], /--on-duplicate/],
      [['start', '--on-duplicate', 'return', '--', 'true'], /--on-duplicate/],
      [['queue', 'set', 'q'], /--concurrency/],
      [['queue', 'set', 'q', '--concurrency', '0'], /--concurrency/],
      [['queue', 'set', 'q', '--max-waiting', '-1'], /--max-waiting/],
      [['queue', 'set', 'q', '--concurrency', 'lots'], /--concurrency/],
      [['queue', 'show', 'a/b'], /queue name/],
      [['queue', 'pause'], /missing required argument/],
      [['queue', 'frobnicate'], /unknown command/],
      [['pause'], /missing required argument/],
      [['drain', '--wait', 'x'], /unknown option/],
    ];
    for (const [args, names] of cases) {
      const result = await jobworker(args, NOWHERE);
      const what = `${args.join(' ')}: ${JSON.stringify(result.stderr)}`;
      assert.equal(result.code, 2, what);
      assert.match(result.stderr, /^jobworker: [^\n]*\n$/, what);
      assert.match(result.stderr, names, what);
      assert.equal(result.stdout, '', what);
    }
  });

  it('valid options get as far as the request', async () => {
    const result = await jobworker(
      [
        'start',
        '--queue',
        'q',
        '--priority',
        '-5',
        '--retry',
        '2',
        '--retry-backoff',
        '1s,2,1m',
        '--',
        'true',
      ],
      NOWHERE,
    );
    assert.equal(result.code, 1);
    assert.match(result.stderr, /connection refused/);
  });
});

describe('human output of the queue fields', () => {
  const plain = new Style(false);
  const now = new Date('2026-12-01T12:00:00Z');
  const job = (fields: Partial<ApiJob>): ApiJob => ({
    id: A,
    name: null,
    command: 'true',
    args: [],
    shell: false,
    cwd: '/',
    labels: {},
    status: 'queued',
    exitCode: null,
    signal: null,
    reason: null,
    owner: 'admin',
    pid: null,
    createdAt: '2026-12-01T11:59:00.000Z',
    startedAt: null,
    finishedAt: null,
    stopRequestedAt: null,
    outputBytes: { stdout: 0, stderr: 0 },
    queue: 'default',
    priority: 0,
    runAt: null,
    after: [],
    attempt: 1,
    maxAttempts: 1,
    retryOf: null,
    retriedAs: null,
    dedupeKey: null,
    pausedAt: null,
    node: 'test',
    waitingFor: null,
    ...fields,
  });

  it('status shows queue and priority, why it waits, and no retry lines for a single attempt', () => {
    const text = describeJob(
      job({ queue: 'nightly', priority: 10, waitingFor: 'dependencies', after: [B] }),
      plain,
      now,
    );
    assert.match(text, /^Queue +nightly, priority 10$/m);
    assert.match(text, /^Waiting for +dependencies/m);
    assert.match(text, new RegExp(`^After +${B}$`, 'm'));
    assert.doesNotMatch(text, /Attempt|Retry|Paused|Dedupe/);
    const plainQueue = describeJob(job({}), plain, now);
    assert.match(plainQueue, /^Queue +default$/m);
    assert.doesNotMatch(plainQueue, /Waiting for|After/);
  });

  it('status shows a future start, the attempt and its links, the dedupe key', () => {
    const text = describeJob(
      job({
        runAt: '2026-12-01T12:05:00.000Z',
        waitingFor: 'time',
        attempt: 2,
        maxAttempts: 4,
        retryOf: B,
        dedupeKey: 'backup',
      }),
      plain,
      now,
    );
    assert.match(text, /^Waiting for +time/m);
    assert.match(text, /^Not before +in 5m 00s \(2026-12-01T12:05:00.000Z\)$/m);
    assert.match(text, /^Attempt +2 of 4$/m);
    assert.match(text, new RegExp(`^Retry of +${B}$`, 'm'));
    assert.match(text, /^Dedupe key +backup$/m);
  });

  it('status shows the timeout the job got, and a dedupe scope an admin named', () => {
    const text = describeJob(
      job({ timeoutMs: 60_000, dedupeKey: 'backup', dedupeScope: 'alice' }),
      plain,
      now,
    );
    assert.match(text, /^Timeout +1m 00s$/m);
    assert.match(text, /^Dedupe key +backup \(among alice's jobs\)$/m);
    const own = describeJob(job({ timeoutMs: null, dedupeKey: 'backup', dedupeScope: 'admin' }), plain, now);
    assert.match(own, /^Dedupe key +backup$/m, "the owner's own scope goes without saying");
    assert.doesNotMatch(own, /Timeout/);
  });

  it('status of a paused job shows its pid and since when', () => {
    const text = describeJob(
      job({
        status: 'paused',
        pid: 42,
        startedAt: '2026-12-01T11:59:30.000Z',
        pausedAt: '2026-12-01T11:59:50.000Z',
        retriedAs: B,
      }),
      plain,
      now,
    );
    assert.match(text, /^Status +paused \(pid 42\)$/m);
    assert.match(text, /^Paused +10s ago/m);
    assert.match(text, new RegExp(`^Retried as +${B}$`, 'm'));
    assert.doesNotMatch(text, /Waiting for/);
  });

  it('paused is coloured', () => {
    assert.equal(new Style(true).status('paused'), '\x1b[35mpaused\x1b[0m');
  });

  it('queue list is a table, queue show one line per setting', () => {
    const queues: ApiQueue[] = [
      { name: 'default', concurrency: null, maxWaiting: null, paused: false, running: 2, waiting: 0 },
      { name: 'nightly', concurrency: 3, maxWaiting: 100, paused: true, running: 0, waiting: 7 },
    ];
    assert.deepEqual(queueTable(queues).split('\n'), [
      'NAME     CONCURRENCY  MAX-WAITING  PAUSED  RUNNING  WAITING',
      'default  none         none         no      2        0',
      'nightly  3            100          yes     0        7',
      '',
    ]);
    const text = describeQueue(queues[1]!, plain);
    assert.match(text, /^Concurrency +3$/m);
    assert.match(text, /^Max waiting +100$/m);
    assert.match(text, /^Paused +yes/m);
    assert.match(text, /^Waiting +7$/m);
    assert.match(describeQueue(queues[0]!, plain), /^Concurrency +no limit$/m);
  });
});
