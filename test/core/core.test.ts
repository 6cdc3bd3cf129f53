import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { nextAttempt } from '../../src/core/attempts.ts';
import { ERROR_CODES, IllegalTransitionError, ValidationError } from '../../src/core/errors.ts';
import { isJobId, jobIdTime, newJobId } from '../../src/core/ids.ts';
import { JOB_STATUSES, TIMEOUT_STOPPER } from '../../src/core/job.ts';
import { isLoopbackHost } from '../../src/core/loopback.ts';
import { decideOutcome } from '../../src/core/outcome.ts';
import { normalizeSpec } from '../../src/core/spec.ts';
import { assertTransition, canTransition, TRANSITIONS } from '../../src/core/states.ts';
import { normalizeSubmission } from '../../src/core/submission.ts';
import { signalName } from '../../src/runtime/signals.ts';
import { makeJob } from '../store/make-job.ts';

describe('job ids', () => {
  it('are UUIDv7, unique and sorted in creation order even within one millisecond', () => {
    const ids = Array.from({ length: 5000 }, () => newJobId(1_700_000_000_000));
    assert.ok(ids.every(isJobId));
    assert.equal(new Set(ids).size, ids.length);
    assert.deepEqual([...ids].sort(), ids);
    assert.equal(jobIdTime(newJobId(1_800_000_000_000)).getTime(), 1_800_000_000_000);
  });

  it('carry fresh random bits in every id, across refills of the random pool', () => {
    // One id a millisecond: the counter starts at random each time and the tail is random.
    const ids = Array.from({ length: 2000 }, (_, i) => newJobId(1_900_000_000_000 + i));
    const tails = new Set(ids.map((id) => id.slice(19)));
    assert.equal(tails.size, ids.length);
    const counters = new Set(ids.map((id) => id.slice(15, 18)));
    assert.ok(counters.size > 100, `only ${counters.size} distinct counter starts`);
  });
});

describe('states', () => {
  it('allows exactly the documented moves', () => {
    assert.ok(canTransition('queued', 'running'));
    assert.ok(canTransition('running', 'stopped'));
    assert.ok(canTransition('queued', 'cancelled'));
    assert.ok(!canTransition('succeeded', 'running'));
    assert.ok(!canTransition('queued', 'succeeded'));
    for (const status of JOB_STATUSES) assert.ok(status in TRANSITIONS);
  });
  it('an illegal move names the current status', () => {
    assert.throws(
      () => assertTransition('j1', 'failed', 'running'),
      (err: unknown) => {
        assert.ok(err instanceof IllegalTransitionError);
        assert.equal(err.from, 'failed');
        assert.equal(err.code, 'ILLEGAL_TRANSITION');
        assert.match(err.message, /is failed and cannot become running/);
        return true;
      },
    );
  });
});

describe('spec validation', () => {
  const check = (input: unknown) => normalizeSpec(input, { cwd: '/tmp' });
  const fails = (input: unknown, field: string, message?: RegExp) =>
    assert.throws(
      () => check(input),
      (err: unknown) => {
        assert.ok(err instanceof ValidationError, String(err));
        assert.equal(err.field, field);
        if (message) assert.match(err.message, message);
        return true;
      },
    );

  it('fills defaults', () => {
    assert.deepEqual(check({ command: 'ls' }), {
      command: 'ls',
      args: [],
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
    });
    assert.deepEqual(check({ command: 'ls', retry: { attempts: 3 } }).retry, {
      attempts: 3,
      backoff: { initialMs: 1000, factor: 2, maxMs: 300_000 },
    });
    assert.equal(
      check({ command: 'ls', retry: { attempts: 2, backoff: { initialMs: 600_000 } } }).retry?.backoff.maxMs,
      600_000,
      'a first wait longer than the default maximum is its own maximum',
    );
  });
  it('names the field and what was expected', () => {
    fails({ command: '' }, 'command', /non-empty/);
    fails({ command: '   ' }, 'command');
    fails({}, 'command', /a string, got nothing/);
    fails({ command: 'ls', args: ['ok', 'bad\0arg'] }, 'args[1]', /NUL/);
    fails({ command: 'ls', args: 'nope' }, 'args');
    fails({ command: 'ls', env: { 'BAD-NAME': 'x' } }, 'env.BAD-NAME');
    fails({ command: 'ls', env: { OK: 3 } }, 'env.OK', /a string/);
    fails({ command: 'ls', cwd: 'relative' }, 'cwd', /absolute/);
    fails({ command: 'ls', cwd: '/a\0b' }, 'cwd', /NUL/);
    fails({ command: 'ls', timeoutMs: -1 }, 'timeoutMs', /got `-1`/);
    fails({ command: 'ls', timeoutMs: 1.5 }, 'timeoutMs');
    fails({ command: 'ls', labels: { 'a b': 'x' } }, 'labels.a b');
    fails({ command: 'ls', queue: '' }, 'queue', /queue name/);
    fails({ command: 'ls', priority: 2000 }, 'priority', /-1000 to 1000/);
    fails({ command: 'ls', after: 'x' }, 'after');
    fails(
      { command: 'ls', retry: { attempts: 2, backoff: { maxMs: 10, initialMs: 20 } } },
      'retry.backoff.maxMs',
    );
    fails({ command: 'ls', retry: { attempts: 2, extra: 1 } }, 'retry.extra', /Unknown field/);
    fails({ command: 'ls', dedupeKey: '' }, 'dedupeKey');
    fails({ command: 'ls', limits: { memoryBytes: 5 } }, 'limits.memoryBytes');
    fails({ command: 'ls', extra: 1 }, 'extra', /Unknown field/);
    fails({ command: 'ls', args: Array(5000).fill('x') }, 'args', /at most 4096/);
    fails('ls', 'spec');
    fails({ command: 'ls', runAsRoot: 'yes' }, 'runAsRoot', /a boolean/);
  });
});

describe('outcome', () => {
  const base = { command: 'job', signalName };
  it('an exit code is reported as is', () => {
    assert.deepEqual(decideOutcome({ ...base, record: { kind: 'status', status: 0 } }), {
      status: 'succeeded',
      exit: { exitCode: 0, signal: null, reason: 'exited with code 0' },
    });
    assert.equal(
      decideOutcome({ ...base, record: { kind: 'status', status: 3 } }).exit.reason,
      'exited with code 3',
    );
  });
  it('a failure to switch accounts or to enter the cwd names the account and the directory', () => {
    const failed = (stage: 'user' | 'chdir', message: string) =>
      decideOutcome({
        ...base,
        cwd: '/srv/x',
        account: 'jw-alice',
        record: { kind: 'failed', stage, message },
      }).exit.reason;
    assert.equal(
      failed('user', 'Invalid argument'),
      'could not switch to its account jw-alice: Invalid argument',
    );
    assert.equal(
      failed('chdir', 'Permission denied'),
      'could not enter its working directory /srv/x as jw-alice: Permission denied',
    );
  });
  it('death by signal, a forced stop, a timeout, a missing command', () => {
    assert.deepEqual(decideOutcome({ ...base, record: { kind: 'status', status: 137 } }).exit, {
      exitCode: null,
      signal: 'SIGKILL',
      reason: 'killed by SIGKILL',
    });
    const forced = decideOutcome({ ...base, stopBy: 'alice', forcedAfterMs: 10_000 });
    assert.equal(forced.status, 'stopped');
    assert.equal(forced.exit.reason, 'stopped by alice: killed by SIGKILL after 10 s grace');
    const timedOut = decideOutcome({
      ...base,
      stopBy: TIMEOUT_STOPPER,
      timeoutMs: 5000,
      record: { kind: 'status', status: 143 },
    });
    assert.equal(timedOut.status, 'timed_out');
    assert.equal(timedOut.exit.reason, 'timed out after 5 s: killed by SIGTERM');
    // A user may be named `timeout`: their stop is a stop, not the job's timeout.
    const byUser = decideOutcome({
      ...base,
      stopBy: 'timeout',
      timeoutMs: 5000,
      record: { kind: 'status', status: 143 },
    });
    assert.equal(byUser.status, 'stopped');
    assert.equal(byUser.exit.reason, 'stopped by timeout: killed by SIGTERM');
    assert.equal(
      decideOutcome({ ...base, record: { kind: 'notfound' } }).exit.reason,
      'command not found: job',
    );
    assert.equal(decideOutcome({ ...base, stopBy: 'bob', record: { kind: 'notstarted' } }).status, 'stopped');
  });
  it('never makes up an exit code: no record means lost', () => {
    const lost = decideOutcome(base);
    assert.equal(lost.status, 'lost');
    assert.equal(lost.exit.exitCode, null);
  });
});

describe('error catalogue', () => {
  it('every code is documented in docs/errors.md', async () => {
    const { readFile } = await import('node:fs/promises');
    const doc = await readFile(new URL('../../docs/errors.md', import.meta.url), 'utf8');
    for (const code of Object.keys(ERROR_CODES))
      assert.match(doc, new RegExp(`\\b${code}\\b`), `${code} missing from docs`);
  });
});

describe('submission and attempts', () => {
  const now = new Date('2026-12-02T10:00:00Z');
  it('turns delayMs and runAt into a start time; one in the past is no delay', () => {
    const at = (input: object) =>
      normalizeSubmission({ command: 'ls', ...input }, { cwd: '/tmp', now }).runAt;
    assert.equal(at({})?.toISOString(), undefined);
    assert.equal(at({ delayMs: 60_000 })?.toISOString(), '2026-12-02T10:01:00.000Z');
    assert.equal(at({ runAt: '2026-12-02T12:00:00+01:00' })?.toISOString(), '2026-12-02T11:00:00.000Z');
    assert.equal(at({ runAt: '2026-12-01T00:00:00Z' }), null);
    assert.throws(() => at({ runAt: '2026-12-02' }), { field: 'runAt' });
    assert.throws(() => at({ runAt: '2028-12-02T00:00:00Z' }), { field: 'runAt', message: /a year/ });
    assert.throws(() => at({ delayMs: 1.5 }), { field: 'delayMs' });
  });
  it('defect 19: input that is accepted but wrong: lone surrogates, impossible dates, a lone onDuplicate', () => {
    const submit = (input: object) => normalizeSubmission({ command: 'ls', ...input }, { cwd: '/tmp', now });
    const refused = (input: object, field: string, message: RegExp) =>
      assert.throws(
        () => submit(input),
        (err: unknown) => {
          assert.ok(err instanceof ValidationError, String(err));
          assert.equal(err.field, field);
          assert.match(err.message, message);
          return true;
        },
      );
    // A lone surrogate has no UTF-8 form: the process would get EF BF BD instead of what was stored.
    const utf8 = /not valid UTF-8/;
    refused({ command: 'ls\ud800' }, 'command', utf8);
    refused({ args: ['ok', 'a\udc00b'] }, 'args[1]', /lone surrogate \\udc00 at index 1: not valid UTF-8/);
    refused({ env: { A: '\ud800' } }, 'env.A', utf8);
    refused({ env: { 'A\ud800': 'x' } }, 'env', /the keys of `env`.*not valid UTF-8/);
    refused({ cwd: '/tmp/\udbff' }, 'cwd', utf8);
    refused({ name: 'n\ud800' }, 'name', utf8);
    refused({ labels: { team: '\udfff' } }, 'labels.team', utf8);
    refused({ labels: { 't\ud800': 'x' } }, 'labels', utf8);
    refused({ dedupeKey: 'k\ud800' }, 'dedupeKey', utf8);
    assert.deepEqual(submit({ args: ['pair \ud83d\ude00 ok'] }).spec.args, ['pair 😀 ok'], 'a pair is fine');
    // Date.parse rolls these over (2027-02-30 is March 2): each part is checked against the calendar.
    refused(
      { runAt: '2027-02-30T00:00:00Z' },
      'runAt',
      /February 2027 has 28 days.*got `2027-02-30T00:00:00Z`/,
    );
    refused({ runAt: '2027-04-31T00:00:00Z' }, 'runAt', /April 2027 has 30 days/);
    refused({ runAt: '2027-13-01T00:00:00Z' }, 'runAt', /no month 13/);
    refused({ runAt: '2027-01-01T24:00:00Z' }, 'runAt', /hours go to 23/);
    refused({ runAt: '2027-01-01T10:60:00Z' }, 'runAt', /minutes and seconds to 59/);
    refused({ runAt: '2027-01-01T10:00:00+24:00' }, 'runAt', /zone offset/);
    assert.equal(submit({ runAt: '2024-02-29T00:00:00Z' }).runAt, null, 'a leap day is a day (a past one)');
    assert.equal(submit({ runAt: '2027-02-28T23:59:59Z' }).runAt?.toISOString(), '2027-02-28T23:59:59.000Z');
    // Without a key there is never a duplicate: the option would silently mean nothing.
    refused({ onDuplicate: 'return' }, 'onDuplicate', /only with a `dedupeKey`/);
    refused({ onDuplicate: 'reject', dedupeKey: null }, 'onDuplicate', /only with a `dedupeKey`/);
    refused({ dedupeScope: 'bob' }, 'dedupeScope', /only with a `dedupeKey`/);
    assert.equal(submit({ dedupeKey: 'k', onDuplicate: 'return' }).onDuplicate, 'return');
  });
  it('a server default timeout fills only a spec that sets none', () => {
    const timeout = (input: object) =>
      normalizeSubmission({ command: 'ls', ...input }, { cwd: '/tmp', now, timeoutMs: 60_000 }).spec
        .timeoutMs;
    assert.equal(timeout({}), 60_000);
    assert.equal(timeout({ timeoutMs: 5000 }), 5000);
    assert.equal(timeout({ timeoutMs: null }), null, 'an explicit null asks for no timeout');
  });
  it('retries failed and timed-out runs with backoff, never stopped ones, and stops at the last attempt', () => {
    const job = makeJob({
      status: 'running',
      spec: { retry: { attempts: 3, backoff: { initialMs: 100, factor: 10, maxMs: 500 } } },
    });
    const second = nextAttempt(job, 'failed', now, 'id-2');
    assert.deepEqual(
      [second?.attempt, second?.retryOf, second?.status, second?.runAt?.getTime()],
      [2, job.id, 'queued', now.getTime() + 100],
    );
    const third = nextAttempt({ ...job, attempt: 2 }, 'timed_out', now, 'id-3');
    assert.equal(third?.runAt?.getTime(), now.getTime() + 500, 'capped at maxMs');
    assert.equal(nextAttempt({ ...job, attempt: 3 }, 'failed', now, 'x'), null);
    assert.equal(nextAttempt(job, 'stopped', now, 'x'), null);
    // The stop its timeout made is not a user's: the timed-out run is retried. A user's stop is
    // never retried, whatever the run ended as.
    const timeoutStop = { at: now, by: TIMEOUT_STOPPER, graceMs: 0 };
    assert.equal(nextAttempt({ ...job, stop: timeoutStop }, 'timed_out', now, 'id-t')?.attempt, 2);
    assert.equal(nextAttempt({ ...job, stop: { ...timeoutStop, by: 'timeout' } }, 'failed', now, 'x'), null);
    assert.equal(nextAttempt(job, 'succeeded', now, 'x'), null);
  });
});

describe('isLoopbackHost', () => {
  it('knows loopback in every spelling, and nothing else', () => {
    for (const host of [
      'localhost',
      'a.localhost',
      '127.0.0.1',
      '127.9.8.7',
      '::1',
      '[::1]',
      '0:0:0:0:0:0:0:1',
      '::ffff:127.0.0.1',
    ]) {
      assert.ok(isLoopbackHost(host), host);
    }
    for (const host of [
      '10.0.0.1',
      'example.com',
      '::2',
      '1::1',
      '::ffff:10.0.0.1',
      '0.0.0.0',
      '::',
      'localhost.example.com',
    ]) {
      assert.ok(!isLoopbackHost(host), host);
    }
  });
});
