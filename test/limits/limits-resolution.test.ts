import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ValidationError } from '../../src/core/errors.ts';
import {
  describeLimits,
  NO_LIMIT_SETTINGS,
  normalizeLimitSettings,
  normalizeLimits,
  parseLimitsList,
  resolveLimits,
} from '../../src/core/limits.ts';
import { decideOutcome } from '../../src/core/outcome.ts';
import { normalizeSpec } from '../../src/core/spec.ts';
import { formatBytes, parseBytes, parseCpu } from '../../src/core/units.ts';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

function refused(run: () => unknown, field: string, message?: RegExp): void {
  assert.throws(run, (err: unknown) => {
    assert.ok(err instanceof ValidationError, String(err));
    assert.equal(err.field, field);
    if (message) assert.match(err.message, message);
    return true;
  });
}

describe('units (core/units.ts)', () => {
  it('reads sizes with binary units, with or without i and B, and plain byte counts', () => {
    assert.equal(parseBytes('f', '256M'), 256 * MiB);
    assert.equal(parseBytes('f', '256Mi'), 256 * MiB);
    assert.equal(parseBytes('f', '64MiB'), 64 * MiB);
    assert.equal(parseBytes('f', '1G'), GiB);
    assert.equal(parseBytes('f', '1.5g'), 1.5 * GiB);
    assert.equal(parseBytes('f', '512Ki'), 512 * 1024);
    assert.equal(parseBytes('f', '0'), 0);
    assert.equal(parseBytes('f', 4096), 4096);
    refused(() => parseBytes('limits.memory', '12 parsecs'), 'limits.memory', /a size like `256M`/);
    refused(() => parseBytes('limits.memory', -1), 'limits.memory');
    refused(() => parseBytes('limits.memory', '0.5'), 'limits.memory', /whole number of bytes/);
  });

  it('reads CPU as cores or millicores, to a thousandth', () => {
    assert.equal(parseCpu('f', 0.5), 0.5);
    assert.equal(parseCpu('f', '500m'), 0.5);
    assert.equal(parseCpu('f', '2'), 2);
    assert.equal(parseCpu('f', '0.2'), 0.2);
    assert.equal(parseCpu('f', 0.12345), 0.123);
    refused(() => parseCpu('limits.cpu', '5m'), 'limits.cpu', /at least 0.01/);
    refused(() => parseCpu('limits.cpu', 'half'), 'limits.cpu', /millicores/);
  });

  it('shows sizes in binary units', () => {
    assert.equal(formatBytes(64 * MiB), '64 MiB');
    assert.equal(formatBytes(GiB), '1 GiB');
    assert.equal(formatBytes(1536 * MiB), '1.5 GiB');
    assert.equal(formatBytes(100), '100 B');
  });
});

describe('limits as written (normalizeLimits, the spec)', () => {
  it('normalizes the documented fields and the API v1 aliases alike', () => {
    assert.deepEqual(
      normalizeLimits('limits', {
        cpu: '500m',
        memory: '256M',
        memorySwap: '0',
        io: { readBps: '10M', writeBps: 1024, readIops: '100', writeIops: 50, device: '/dev/vda' },
        pids: '256',
      }),
      {
        cpu: 0.5,
        memory: 256 * MiB,
        memorySwap: 0,
        io: { readBps: 10 * MiB, writeBps: 1024, readIops: 100, writeIops: 50, device: '/dev/vda' },
        pids: 256,
      },
    );
    assert.deepEqual(normalizeLimits('limits', { memoryBytes: 64 * MiB, cpuMillis: 1500 }), {
      memory: 64 * MiB,
      cpu: 1.5,
    });
    assert.deepEqual(normalizeLimits('limits', { io: { weight: 200 } }), { io: { weight: 200 } });
    const spec = normalizeSpec({ command: 'true', limits: { memory: '1G', cpu: 2 } }, { cwd: '/' });
    assert.deepEqual(spec.limits, { memory: GiB, cpu: 2 });
  });

  it('refuses bad limits naming the field and what was expected', () => {
    refused(() => normalizeLimits('limits', { memory: '100K' }), 'limits.memory', /at least 1 MiB/);
    refused(() => normalizeLimits('limits', { memoryBytes: 5 }), 'limits.memoryBytes');
    refused(() => normalizeLimits('limits', { cpuMillis: 5 }), 'limits.cpuMillis');
    refused(() => normalizeLimits('limits', { pids: 0 }), 'limits.pids', /an integer from 1/);
    refused(() => normalizeLimits('limits', { gpu: 1 }), 'limits.gpu', /Unknown field/);
    refused(
      () => normalizeLimits('limits', { io: { writeBps: '5M', weight: 10 } }),
      'limits.io.weight',
      /not both/,
    );
    refused(() => normalizeLimits('limits', { io: {} }), 'limits.io', /at least one of/);
    refused(() => normalizeLimits('limits', { io: { writeBps: '1M', device: 'vda' } }), 'limits.io.device');
    refused(() => normalizeLimits('limits', { io: { weight: 20000 } }), 'limits.io.weight', /1 to 10000/);
    refused(
      () => normalizeLimits('limits', { memory: '1G', memoryBytes: GiB }),
      'limits.memoryBytes',
      /not both/,
    );
    refused(() => normalizeLimits('limits', { cpu: 1, cpuMillis: 1000 }), 'limits.cpuMillis', /not both/);
    refused(
      () => normalizeSpec({ command: 'true', limits: { memory: 'lots' } }, { cwd: '/' }),
      'limits.memory',
    );
  });

  it('reads the one-line form of serve --default-limits', () => {
    assert.deepEqual(parseLimitsList('defaultLimits', 'memory=1G, cpu=2,pids=512,io.writeBps=10M'), {
      memory: GiB,
      cpu: 2,
      pids: 512,
      io: { writeBps: 10 * MiB },
    });
    assert.deepEqual(parseLimitsList('defaultLimits', ''), {});
    refused(() => parseLimitsList('defaultLimits', 'memory'), 'defaultLimits', /memory=1G/);
    refused(() => parseLimitsList('defaultLimits', 'memory=huge'), 'defaultLimits.memory');
  });

  it('refuses settings whose default is over their maximum', () => {
    refused(
      () => normalizeLimitSettings({ defaultLimits: { memory: '8G' }, maxLimits: { memory: '4G' } }),
      'defaultLimits.memory',
      /at most `maxLimits.memory` \(4 GiB\), got 8 GiB/,
    );
    assert.deepEqual(normalizeLimitSettings({ defaultLimits: null }), { defaults: {} });
    assert.deepEqual(normalizeLimitSettings({}), {});
  });
});

describe('resolving a job limits (own, queue, user, server)', () => {
  const layers = (queue = NO_LIMIT_SETTINGS, user = NO_LIMIT_SETTINGS, server = NO_LIMIT_SETTINGS) => [
    { source: 'queue `batch`', settings: queue },
    { source: 'user `alice`', settings: user },
    { source: 'the server', settings: server },
  ];

  it("takes each limit from the job, else its queue's default, else its user's, else the server's", () => {
    const resolved = resolveLimits(
      { cpu: 0.5 },
      layers(
        { defaults: { memory: GiB }, maxima: {} },
        { defaults: { memory: 2 * GiB, pids: 100, cpu: 4 }, maxima: {} },
        { defaults: { memory: 3 * GiB, pids: 512, io: { writeBps: MiB } }, maxima: {} },
      ),
    );
    assert.deepEqual(resolved, { cpu: 0.5, memory: GiB, pids: 100, io: { writeBps: MiB } });
    assert.deepEqual(resolveLimits({}, layers()), {});
  });

  it('refuses a limit over any maximum, naming the limit, the maximum and whose it is', () => {
    refused(
      () => resolveLimits({ memory: 8 * GiB }, layers({ defaults: {}, maxima: { memory: 4 * GiB } })),
      'limits.memory',
      /at most 4 GiB \(the maximum of queue `batch`\), got 8 GiB/,
    );
    refused(
      () => resolveLimits({ cpu: 3 }, layers(NO_LIMIT_SETTINGS, { defaults: {}, maxima: { cpu: 2 } })),
      'limits.cpu',
      /at most 2 CPUs \(the maximum of user `alice`\), got 3 CPUs/,
    );
    refused(
      () =>
        resolveLimits(
          { io: { writeBps: 20 * MiB } },
          layers(NO_LIMIT_SETTINGS, NO_LIMIT_SETTINGS, {
            defaults: {},
            maxima: { io: { writeBps: 10 * MiB } },
          }),
        ),
      'limits.io.writeBps',
      /at most 10 MiB\/s \(the maximum of the server\)/,
    );
    // A default over another layer's maximum is refused too: the job would run over it.
    refused(
      () =>
        resolveLimits(
          {},
          layers({ defaults: { pids: 1000 }, maxima: {} }, { defaults: {}, maxima: { pids: 100 } }),
        ),
      'limits.pids',
      /at most 100 \(the maximum of user `alice`\), got 1000/,
    );
  });

  it('gives a job that sets no limit where a maximum is set that maximum', () => {
    assert.deepEqual(
      resolveLimits({}, layers({ defaults: {}, maxima: { memory: 4 * GiB, io: { writeBps: MiB } } })),
      { memory: 4 * GiB, io: { writeBps: MiB } },
    );
    // The tighter of two maxima holds.
    assert.deepEqual(
      resolveLimits(
        {},
        layers({ defaults: {}, maxima: { memory: 4 * GiB } }, { defaults: {}, maxima: { memory: 2 * GiB } }),
      ).memory,
      2 * GiB,
      'the tightest maximum fills it in',
    );
    assert.deepEqual(
      resolveLimits({ io: { weight: 50 } }, layers({ defaults: {}, maxima: { io: { writeBps: MiB } } })),
      {
        io: { weight: 50 },
      },
    );
  });

  it('shows limits in one line', () => {
    assert.equal(describeLimits({}), 'none');
    assert.equal(
      describeLimits({ cpu: 0.5, memory: GiB, pids: 10, io: { writeBps: 5 * MiB, device: '/dev/vda' } }),
      'cpu=0.5 CPUs, memory=1 GiB, pids=10, io.writeBps=5 MiB/s, io.device=/dev/vda',
    );
  });
});

describe('the reason of a job that ran into its limits (decideOutcome)', () => {
  const usage = {
    cpuSeconds: 1,
    cpuThrottledSeconds: 0,
    memoryPeakBytes: 64 * MiB,
    ioReadBytes: 0,
    ioWriteBytes: 0,
    oomKills: 1,
    pidsLimitHits: 0,
  };
  const signalName = (n: number) => (n === 9 ? 'SIGKILL' : undefined);

  it('reads `out of memory (limit 64 MiB)` for a main process the OOM killer ended', () => {
    const outcome = decideOutcome({
      record: { kind: 'signaled', signal: 9 },
      command: 'hog',
      signalName,
      limits: { memory: 64 * MiB },
      usage,
    });
    assert.deepEqual(outcome, {
      status: 'failed',
      exit: { exitCode: null, signal: 'SIGKILL', reason: 'out of memory (limit 64 MiB)' },
    });
  });

  it('adds the OOM kills of other processes and refused forks to the reason it had', () => {
    const outcome = decideOutcome({
      record: { kind: 'exited', code: 1 },
      command: 'make',
      signalName,
      limits: { memory: 64 * MiB, pids: 64 },
      usage: { ...usage, oomKills: 2, pidsLimitHits: 1 },
    });
    assert.equal(
      outcome.exit.reason,
      'exited with code 1; out of memory (limit 64 MiB): 2 processes killed; reached its pids limit (64): 1 fork refused',
    );
    assert.equal(outcome.status, 'failed');
    const clean = decideOutcome({
      record: { kind: 'exited', code: 0 },
      command: 'true',
      signalName,
      usage: { ...usage, oomKills: 0 },
    });
    assert.equal(clean.exit.reason, 'exited with code 0');
  });
});
