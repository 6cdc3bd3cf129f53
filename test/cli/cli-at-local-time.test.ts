import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseSince } from '../../src/cli/commands/audit.ts';
import { parseTime } from '../../src/cli/schedule-options.ts';
import { baseEnv } from './cli-harness.ts';
import { runCliInProcess } from './cli-in-process.ts';

// A zone with summer time: on 2026-03-29 its clocks go from 02:00 to 03:00. Set before any time is
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
});
