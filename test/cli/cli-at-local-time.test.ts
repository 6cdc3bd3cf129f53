import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseSince } from '../../src/cli/commands/audit.ts';
import { parseTime } from '../../src/cli/schedule-options.ts';
import { baseEnv } from './cli-harness.ts';
import { runCliInProcess } from './cli-in-process.ts';

// A zone with summer time: on 2026-03-29 its clocks go from 02:00 to 03:00, and on 2026-10-25 from
// 03:00 back to 02:00. Set before any time is
// read; this file runs in a process of its own.
process.env.TZ = 'Europe/Berlin';

// Option parsing needs no server: the CLI runs against an address where nothing listens.
const NOWHERE = baseEnv({ JOBWORKER_URL: 'http://127.0.0.1:9', JOBWORKER_TOKEN: 'x' });

describe('start --at in local time across a daylight saving change', () => {
  it('reads the times around the gap in the offset in force then', () => {
    assert.equal(parseTime('2026-03-29 01:59'), '2026-03-29T00:59:00.000Z', 'winter time, +01:00');
    assert.equal(parseTime('2026-03-29 03:00'), '2026-03-29T01:00:00.000Z', 'summer time, +02:00');
    assert.equal(parseTime('2026-03-29T02:30+01:00'), '2026-03-29T01:30:00.000Z', 'with its offset');
  });

  it('refuses a time the clocks skip instead of moving it an hour', async () => {
    for (const skipped of ['2026-03-29 02:00', '2026-03-29T02:30', '2026-03-29 02:59:59']) {
      assert.throws(() => parseTime(skipped), /Expected a local time that exists.*Europe\/Berlin/, skipped);
    }
    assert.throws(() => parseSince('2026-03-29 02:30'), /Expected an ISO 8601 time/);
    const result = await runCliInProcess(['start', '--at', '2026-03-29 02:30', '--', 'true'], NOWHERE);
    assert.equal(result.code, 2, result.stderr);
    assert.match(
      result.stderr,
      /^jobworker: option '--at <time>' argument '2026-03-29 02:30' is invalid\. Expected a local time that exists, got "2026-03-29 02:30": the clocks of Europe\/Berlin skip it[^\n]*\n$/,
    );
    assert.equal(result.stdout, '');
  });

  it('refuses a time the clocks go through twice, naming the offset of each', async () => {
    assert.equal(
      parseTime('2026-10-25 01:59'),
      '2026-10-24T23:59:00.000Z',
      'summer time, before the hour repeats',
    );
    assert.equal(parseTime('2026-10-25 03:00'), '2026-10-25T02:00:00.000Z', 'winter time, after it');
    assert.equal(parseTime('2026-10-25T02:30+02:00'), '2026-10-25T00:30:00.000Z', 'the first, by its offset');
    assert.equal(
      parseTime('2026-10-25T02:30+01:00'),
      '2026-10-25T01:30:00.000Z',
      'the second, by its offset',
    );
    for (const twice of ['2026-10-25 02:00', '2026-10-25T02:30', '2026-10-25 02:59:59']) {
      assert.throws(() => parseTime(twice), /Expected a local time that comes once.*Europe\/Berlin/, twice);
    }
    const result = await runCliInProcess(['start', '--at', '2026-10-25 02:30', '--', 'true'], NOWHERE);
    assert.equal(result.code, 2, result.stderr);
    assert.match(
      result.stderr,
      /^jobworker: option '--at <time>' argument '2026-10-25 02:30' is invalid\. Expected a local time that comes once, got "2026-10-25 02:30": the clocks of Europe\/Berlin go through it twice \(daylight saving time ends\)\. Give it with its zone offset: 2026-10-25T02:30\+02:00 for the first, 2026-10-25T02:30\+01:00 for the second\.\n$/,
    );
    assert.equal(result.stdout, '');
  });

  it('reads times in a zone without daylight saving as they are', () => {
    // A day on which Berlin changes: the check for a repeated hour must not see one elsewhere.
    process.env.TZ = 'Asia/Tokyo';
    try {
      assert.equal(parseTime('2026-10-25 02:30'), '2026-10-24T17:30:00.000Z');
    } finally {
      process.env.TZ = 'Europe/Berlin';
    }
  });
});
