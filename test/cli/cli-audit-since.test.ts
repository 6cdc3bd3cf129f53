import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseSince } from '../../src/cli/commands/audit.ts';

// A zone away from UTC, without summer time since 2019: what "local" means is then visible. Set
// before any time is read; this file runs in a process of its own.
process.env.TZ = 'America/Sao_Paulo';

describe('audit --since', () => {
  it('reads a time as start --at does: without a zone in local time, a day not in the calendar refused', () => {
    assert.equal(parseSince('2026-12-01'), '2026-12-01T03:00:00.000Z', 'local midnight, not UTC');
    assert.equal(parseSince('2026-12-01 10:00'), '2026-12-01T13:00:00.000Z');
    assert.equal(parseSince('2026-12-01T10:00Z'), '2026-12-01T10:00:00.000Z');
    assert.equal(parseSince('2026-12-01T10:00+01:00'), '2026-12-01T09:00:00.000Z');
    for (const bad of ['2026-02-30', 'yesterday', '1733000000', '7w']) {
      assert.throws(
        () => parseSince(bad),
        /Expected an ISO 8601 time .* or a duration such as 1h or 7d/,
        bad,
      );
    }
  });

  it('reads a duration as that long ago', () => {
    const before = Date.now();
    const since = Date.parse(parseSince('7d'));
    assert.ok(since <= before - 7 * 86_400_000 + 1000 && since >= before - 7 * 86_400_000 - 60_000);
  });
});
