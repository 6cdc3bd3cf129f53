import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { AuditAction, AuditEntry } from '../../src/core/audit.ts';
import { ValidationError } from '../../src/core/errors.ts';
import type { Logger } from '../../src/core/logger.ts';
import { AUDIT_CLOSE_GRACE_MS, AuditLog } from '../../src/service/audit-log.ts';
import { SqliteJobStore } from '../../src/store/sqlite/sqlite-job-store.ts';
import { ManualClock } from '../helpers/manual-clock.ts';
import { mountSmallDisk, type SmallDisk } from '../helpers/small-disk.ts';

interface Line {
  readonly level: keyof Logger;
  readonly details: Record<string, unknown>;
  readonly msg: string;
}

/** A logger that keeps its lines and tells each one, so a test awaits a line instead of sleeping. */
class CapturedLogger extends EventEmitter<{ line: [Line] }> implements Logger {
  readonly lines: Line[] = [];
  #add(level: keyof Logger, details: object, msg: string): void {
    const line = { level, details: details as Record<string, unknown>, msg };
    this.lines.push(line);
    this.emit('line', line);
  }
  debug = (details: object, msg: string) => this.#add('debug', details, msg);
  info = (details: object, msg: string) => this.#add('info', details, msg);
  warn = (details: object, msg: string) => this.#add('warn', details, msg);
  error = (details: object, msg: string) => this.#add('error', details, msg);

  /** The first line (logged already or to come) whose message matches. */
  async line(match: RegExp): Promise<Line> {
    const found = this.lines.find((l) => match.test(l.msg));
    if (found) return found;
    // One listener for every line to come: lines logged in one turn are each seen.
    return new Promise((resolve) => {
      const listener = (line: Line) => {
        if (!match.test(line.msg)) return;
        this.off('line', listener);
        resolve(line);
      };
      this.on('line', listener);
    });
  }
}

let n = 0;
function entry(action: AuditAction, target = `job-${n + 1}`): AuditEntry {
  n++;
  return {
    at: new Date(Date.UTC(2026, 0, 1, 0, 0, n)),
    user: 'alice',
    role: 'user',
    source: '127.0.0.1',
    transport: 'tcp',
    action,
    target,
    result: 'ok',
  };
}

/**
 * Finding "audit entries dropped for good on a write failure": a real SQLite store on a small
 * tmpfs that the test fills (the store then fails with INSUFFICIENT_STORAGE) and frees.
 */
describe('the audit trail while the store cannot write', () => {
  let disk: SmallDisk;
  let store: SqliteJobStore;
  before(async () => {
    disk = await mountSmallDisk('8m');
    store = await SqliteJobStore.open(join(disk.dir, 'jobworker.db'));
  });
  after(async () => {
    await disk.free();
    await store.close();
    await disk.destroy();
  });

  it('keeps a batch that failed on a full disk, in order, and writes it once space returns, with a backoff on its clock', async () => {
    const clock = new ManualClock();
    const logger = new CapturedLogger();
    const log = new AuditLog(store.users, { clock, logger });
    log.record(entry('job:submit', 'before'));
    await log.flush();

    await disk.fill();
    // A stop carried out while the disk is full: exactly the change whose record matters.
    log.record(entry('job:stop', 'stopped-on-full-disk'));
    const failed = await logger.line(/audit entries could not be written/);
    assert.match(failed.msg, /kept and tried again/);
    assert.equal((failed.details.err as { code?: string }).code, 'INSUFFICIENT_STORAGE');
    await clock.timerSet();
    // Recorded while the store fails: queued behind the kept batch.
    log.record(entry('job:stop', 'stopped-later'));
    // A read does not wait for a store that fails to write; it shows what was written.
    const meanwhile = await log.list({ limit: 10 });
    assert.deepEqual(
      meanwhile.entries.map((e) => e.target),
      ['before'],
    );
    // Still failing: tried again after the first wait, and waits longer before the next.
    clock.advance(100);
    await clock.timerSet();

    await disk.free();
    clock.advance(200);
    await logger.line(/written again/);
    await log.flush();
    const page = await log.list({ limit: 10 });
    assert.deepEqual(
      page.entries.map((e) => e.target),
      ['stopped-later', 'stopped-on-full-disk', 'before'],
    );
    assert.ok(!logger.lines.some((l) => /dropped/.test(l.msg)), 'nothing was dropped');
    await log.close();
  });

  it('holds at most maxPending entries while the store fails, and logs how many it dropped, of when and which actions', async () => {
    const clock = new ManualClock();
    const logger = new CapturedLogger();
    const maxPending = 1000;
    const log = new AuditLog(store.users, { clock, logger, maxPending });
    await disk.fill();
    log.record(entry('job:submit', 'first'));
    await logger.line(/could not be written/);
    await clock.timerSet();
    for (let i = 1; i < maxPending; i++) log.record(entry('job:submit'));
    log.record(entry('job:stop', 'over-1'));
    log.record(entry('job:stop', 'over-2'));
    log.record(entry('user:add', 'over-3'));
    const full = await logger.line(/holds 1000 entries/);
    assert.match(full.msg, /dropped until the store takes writes again/);

    await disk.free();
    clock.advance(100);
    const dropped = await logger.line(/audit entries were dropped/);
    assert.match(dropped.msg, /^3 audit entries were dropped/);
    assert.deepEqual(dropped.details.actions, { 'job:stop': 2, 'user:add': 1 });
    assert.equal(dropped.details.lost, 3);
    assert.equal(typeof dropped.details.from, 'string');
    await log.flush();
    // The oldest were kept; the newest, recorded past the bound, are the ones dropped.
    const stops = await log.list({ limit: 10, action: 'job:stop' });
    assert.ok(
      !stops.entries.some((e) => e.target?.startsWith('over-')),
      'the stops past the bound were not written',
    );
    assert.equal((await log.list({ limit: 1, action: 'user:add' })).entries.length, 0);
    assert.equal((await log.list({ limit: 1, action: 'job:submit' })).entries[0]?.target, `job-${n - 3}`);
    await log.close();
  });

  it('closes within its grace on its clock when the store never takes the entries, and logs what was lost', async () => {
    const clock = new ManualClock();
    const logger = new CapturedLogger();
    const log = new AuditLog(store.users, { clock, logger });
    await disk.fill();
    log.record(entry('job:stop', 'never-written'));
    log.record(entry('job:stop', 'never-written-either'));
    await logger.line(/could not be written/);
    await clock.timerSet();

    let closed = false;
    const closing = log.close().then(() => {
      closed = true;
    });
    // The close tries again at once, and keeps trying: it is not over before its grace.
    clock.advance(AUDIT_CLOSE_GRACE_MS - 1);
    await new Promise(setImmediate);
    assert.equal(closed, false);
    clock.advance(1);
    await closing;
    const lost = await logger.line(/could not be written and were dropped/);
    assert.match(lost.msg, /^2 audit entries .*the server closed before the store took them/);
    assert.deepEqual(lost.details.actions, { 'job:stop': 2 });
    // Closed: an entry recorded now is not retried on a clock nobody moves any more.
    log.record(entry('job:stop', 'after-close'));
    await log.flush();
    assert.ok(logger.lines.some((l) => /^1 audit entries could not be written and were dropped/.test(l.msg)));
    await disk.free();
  });
});

describe('the audit trail on a refusal that will not heal', () => {
  it('drops the batch and logs it, without retrying', async () => {
    // A stub: neither store refuses an audit batch on purpose, so no real one can show this path.
    const logger = new CapturedLogger();
    const clock = new ManualClock();
    let tries = 0;
    const log = new AuditLog(
      {
        appendAudit: async () => {
          tries++;
          throw ValidationError.expected('action', 'a known audit action', 'job:frobnicate');
        },
        listAudit: async () => ({ entries: [], nextCursor: null }),
      },
      { clock, logger },
    );
    log.record(entry('job:stop'));
    await log.flush();
    assert.equal(tries, 1);
    assert.equal(clock.pending, 0);
    const lost = await logger.line(/were dropped/);
    assert.match(lost.msg, /^1 audit entries could not be written and were dropped: the store refused them/);
  });

  it("drops a batch a driver refuses for good (not a store's own error), and writes the next", async () => {
    // PostgreSQL refuses a NUL in text with a raw driver error (22021), which nothing maps: taken
    // for one that may pass, that batch was tried again for ever and every entry behind it waited.
    const logger = new CapturedLogger();
    const clock = new ManualClock();
    const written: AuditEntry[] = [];
    let tries = 0;
    const log = new AuditLog(
      {
        appendAudit: async (batch) => {
          tries++;
          if (tries === 1)
            throw Object.assign(new Error('invalid byte sequence for encoding "UTF8": 0x00'), {
              code: '22021',
            });
          written.push(...batch);
        },
        listAudit: async () => ({ entries: [], nextCursor: null }),
      },
      { clock, logger },
    );
    log.record(entry('job:stop'));
    await log.flush();
    assert.equal(tries, 1);
    log.record(entry('job:pause'));
    await log.flush();
    assert.deepEqual(
      written.map((e) => e.action),
      ['job:pause'],
    );
  });

  it('writes a NUL a caller put in a name as \\u0000, which every store takes', async () => {
    const written: AuditEntry[] = [];
    const log = new AuditLog({
      appendAudit: async (batch) => {
        written.push(...batch);
      },
      listAudit: async () => ({ entries: [], nextCursor: null }),
    });
    log.record({ ...entry('user:remove'), target: 'a\0b' });
    await log.flush();
    assert.equal(written[0]?.target, 'a\\u0000b');
  });
});
