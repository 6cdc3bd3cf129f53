import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, statfs, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ValidationError } from '../../src/core/errors.ts';
import { Cgroups } from '../../src/runtime/cgroups.ts';
import { type ApiHarness, addUserToken, FIXTURES, openApi, readSse } from '../api/api-harness.ts';
import { openHarness } from '../helpers/engine-harness.ts';
import { waitForFileText } from '../helpers/wait.ts';

/**
 * Limits over REST (docs/api.md, docs/isolation.md): as written with units, resolved from the
 * queue's, the user's and the server's defaults and maxima, refused with a 400 naming the field
 * and the maximum or the controller, and shown with the job's usage, live and at its end.
 */

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

interface Json {
  [key: string]: unknown;
}
interface ErrorJson {
  error: { code: string; message: string; field?: string };
}
interface JobBody {
  id: string;
  status: string;
  limits: Record<string, unknown>;
  usage: Record<string, number | null> | null;
  reason: string | null;
}

const hostCgroups = new Cgroups({ name: 'jobworker-limits-test' });
const noCgroups = hostCgroups.mode === 'none' ? 'this host gives jobworker no cgroups' : false;

describe('limits over REST', { skip: noCgroups }, () => {
  let h: ApiHarness;
  let alice = '';
  const asAlice = () => ({ authorization: `Bearer ${alice}` });
  before(async () => {
    h = await openApi(undefined, { defaultLimits: 'pids=512', maxLimits: 'memory=8G' });
    alice = await addUserToken(h, 'alice');
  });
  after(() => h.destroy());

  /** The job once it ended: its output followed to the end, then read. */
  async function finished(id: string): Promise<JobBody> {
    const follow = await h.api(`/v1/jobs/${id}/output?follow=true`);
    await follow.text();
    return (await h.json<JobBody>(`/v1/jobs/${id}`)).body;
  }

  it('takes limits with units, shows them normalized, and the usage once the job ended', async () => {
    const { status, body } = await h.json<JobBody>('/v1/jobs', {
      body: {
        command: 'true',
        cwd: '/tmp',
        limits: { cpu: '500m', memory: '256M', memorySwap: 0, pids: '64' },
      },
    });
    assert.equal(status, 201, JSON.stringify(body));
    assert.deepEqual(body.limits, { cpu: 0.5, memory: 256 * MiB, memorySwap: 0, pids: 64 });
    assert.equal(body.usage, null, 'nothing used before it started');
    const end = await finished(body.id);
    assert.equal(end.status, 'succeeded');
    assert.ok(end.usage, 'usage recorded');
    assert.equal(typeof end.usage.cpuSeconds, 'number');
    assert.equal(end.usage.oomKills, 0);
  });

  it("accepts API v1's memoryBytes and cpuMillis", async () => {
    const { status, body } = await h.json<JobBody>('/v1/jobs', {
      body: { command: 'true', cwd: '/tmp', limits: { memoryBytes: 64 * MiB, cpuMillis: 250 } },
    });
    assert.equal(status, 201, JSON.stringify(body));
    assert.deepEqual(body.limits, { memory: 64 * MiB, cpu: 0.25, pids: 512 });
  });

  it('refuses malformed limits with a 400 naming the field', async () => {
    for (const [limits, field] of [
      [{ memory: 'lots' }, 'limits.memory'],
      [{ cpu: '5m' }, 'limits.cpu'],
      [{ io: { writeBps: '5M', weight: 10 } }, 'limits.io.weight'],
      [{ pids: 0 }, 'limits.pids'],
    ] as const) {
      const res = await h.json<ErrorJson>('/v1/jobs', { body: { command: 'true', cwd: '/tmp', limits } });
      assert.equal(res.status, 400, JSON.stringify(limits));
      assert.equal(res.body.error.field, field, res.body.error.message);
    }
  });

  it("applies the queue's defaults and refuses a job over its maximum, naming it", async () => {
    const set = await h.json<Json>('/v1/queues/batch', {
      method: 'PUT',
      body: { defaultLimits: { memory: '1G', cpu: 1 }, maxLimits: { memory: '4G' } },
    });
    assert.equal(set.status, 200, JSON.stringify(set.body));
    assert.deepEqual(set.body.defaultLimits, { memory: GiB, cpu: 1 });
    assert.deepEqual(set.body.maxLimits, { memory: 4 * GiB });
    const job = await h.json<JobBody>('/v1/jobs', {
      body: { command: 'true', cwd: '/tmp', queue: 'batch', limits: { cpu: 0.5 } },
    });
    assert.equal(job.status, 201);
    assert.deepEqual(job.body.limits, { cpu: 0.5, memory: GiB, pids: 512 });
    const over = await h.json<ErrorJson>('/v1/jobs', {
      body: { command: 'true', cwd: '/tmp', queue: 'batch', limits: { memory: '6G' } },
    });
    assert.equal(over.status, 400);
    assert.equal(over.body.error.field, 'limits.memory');
    assert.match(over.body.error.message, /at most 4 GiB \(the maximum of queue `batch`\), got 6 GiB/);
    const serverMax = await h.json<ErrorJson>('/v1/jobs', {
      body: { command: 'true', cwd: '/tmp', limits: { memory: '16G' } },
    });
    assert.equal(serverMax.status, 400);
    assert.match(serverMax.body.error.message, /at most 8 GiB \(the maximum of the server\)/);
    const badDefault = await h.json<ErrorJson>('/v1/queues/batch', {
      method: 'PUT',
      body: { defaultLimits: { memory: '5G' } },
    });
    assert.equal(badDefault.status, 400);
    assert.equal(badDefault.body.error.field, 'defaultLimits.memory');
    const cleared = await h.json<Json>('/v1/queues/batch', { method: 'PUT', body: { defaultLimits: null } });
    assert.deepEqual([cleared.body.defaultLimits, cleared.body.maxLimits], [{}, { memory: 4 * GiB }]);
  });

  it("applies a user's defaults after the queue's, and its maxima; only admins set them", async () => {
    const denied = await h.json<ErrorJson>('/v1/users/alice', {
      method: 'PATCH',
      body: { maxLimits: { cpu: 1 } },
      headers: asAlice(),
    });
    assert.equal(denied.status, 403);
    const set = await h.json<Json>('/v1/users/alice', {
      method: 'PATCH',
      body: { defaultLimits: { memory: '512M', pids: 100 }, maxLimits: { cpu: 1 } },
    });
    assert.equal(set.status, 200, JSON.stringify(set.body));
    assert.deepEqual(set.body.defaultLimits, { memory: 512 * MiB, pids: 100 });
    assert.deepEqual(set.body.maxLimits, { cpu: 1 });
    await h.json('/v1/queues/small', { method: 'PUT', body: { defaultLimits: { memory: '128M' } } });
    const job = await h.json<JobBody>('/v1/jobs', {
      body: { command: 'true', cwd: '/', queue: 'small' },
      headers: asAlice(),
    });
    assert.equal(job.status, 201, JSON.stringify(job.body));
    // memory from the queue, pids from the user (before the server's 512), cpu the user's maximum.
    assert.deepEqual(job.body.limits, { memory: 128 * MiB, pids: 100, cpu: 1 });
    const over = await h.json<ErrorJson>('/v1/jobs', {
      body: { command: 'true', cwd: '/', limits: { cpu: 2 } },
      headers: asAlice(),
    });
    assert.equal(over.status, 400);
    assert.equal(over.body.error.field, 'limits.cpu');
    assert.match(over.body.error.message, /the maximum of user `alice`/);
    const listed = await h.json<{ users: Json[] }>('/v1/users');
    assert.deepEqual(listed.body.users.find((u) => u.name === 'alice')?.maxLimits, { cpu: 1 });
    // null clears one of the two and keeps the other; a default over the maximum is refused.
    const cleared = await h.json<Json>('/v1/users/alice', { method: 'PATCH', body: { defaultLimits: null } });
    assert.deepEqual([cleared.body.defaultLimits, cleared.body.maxLimits], [{}, { cpu: 1 }]);
    const tooHigh = await h.json<ErrorJson>('/v1/users/alice', {
      method: 'PATCH',
      body: { defaultLimits: { cpu: 2 } },
    });
    assert.equal(tooHigh.status, 400);
    assert.equal(tooHigh.body.error.field, 'defaultLimits.cpu');
  });

  it('refuses IO limits for a directory on no block device, naming the field', async (t) => {
    const shm = await statfs('/dev/shm').catch(() => undefined);
    if (!shm) return t.skip('no /dev/shm here');
    const res = await h.json<ErrorJson>('/v1/jobs', {
      body: { command: 'true', cwd: '/dev/shm', limits: { io: { writeBps: '5M' } } },
    });
    assert.equal(res.status, 400);
    assert.equal(res.body.error.field, 'limits.io');
    assert.match(res.body.error.message, /on no block device/);
    const device = await h.json<ErrorJson>('/v1/jobs', {
      body: { command: 'true', cwd: '/tmp', limits: { io: { writeBps: '5M', device: '/dev/null' } } },
    });
    assert.equal(device.status, 400);
    assert.equal(device.body.error.field, 'limits.io.device');
  });

  it("tells a user nothing of paths its jobs may not reach, through IO limits' checks", async (t) => {
    if (process.getuid?.() !== 0) return t.skip('needs root: a user job runs as its own account then');
    // A directory only root may search, holding one file and one directory.
    const closed = await mkdtemp(join(tmpdir(), 'jw-closed-'));
    try {
      await writeFile(join(closed, 'secret'), 'x');
      await mkdir(join(closed, 'dir'));
      const answer = async (limits: object, cwd = '/tmp') => {
        const res = await h.json<ErrorJson>('/v1/jobs', {
          body: { command: 'true', cwd, limits },
          headers: asAlice(),
        });
        assert.equal(res.status, 400, JSON.stringify(res.body));
        return { field: res.body.error.field, message: res.body.error.message.replaceAll(closed, 'D') };
      };
      // A device named: the same answer for a file there, a directory there and nothing there.
      const device = (path: string) => answer({ io: { writeBps: '5M', device: join(closed, path) } });
      const there = await device('secret');
      assert.equal(there.field, 'limits.io.device');
      assert.deepEqual(await device('dir'), {
        ...there,
        message: there.message.replace('D/secret', 'D/dir'),
      });
      assert.deepEqual(await device('none'), {
        ...there,
        message: there.message.replace('D/secret', 'D/none'),
      });
      // A working directory behind it: the account's answer, before the disk's was looked for.
      const cwd = (path: string) => answer({ io: { writeBps: '5M' } }, join(closed, path));
      const dir = await cwd('dir');
      assert.equal(dir.field, 'cwd');
      assert.match(dir.message, /not searchable/);
      assert.deepEqual(await cwd('none'), { ...dir, message: dir.message.replaceAll('D/dir', 'D/none') });
    } finally {
      await rm(closed, { recursive: true, force: true });
    }
  });

  it('refuses an IO weight where no controller keeps one, naming the controller', async (t) => {
    try {
      hostCgroups.checkLimits({ io: { weight: 100 } }, '/tmp');
      return t.skip('this host keeps IO weights');
    } catch (err) {
      assert.ok(err instanceof ValidationError);
    }
    const res = await h.json<ErrorJson>('/v1/jobs', {
      body: { command: 'true', cwd: '/tmp', limits: { io: { weight: 100 } } },
    });
    assert.equal(res.status, 400);
    assert.equal(res.body.error.field, 'limits.io.weight');
    assert.match(res.body.error.message, /io \(v2\) or blkio \(v1\) cgroup controller/);
  });

  it("shows a running job's usage live on GET", async () => {
    const work = await mkdtemp(join('/tmp', 'jw-live-'));
    // Its start as the server records it: the job may print before that (it runs as soon as it is
    // spawned), and a GET between the two still says `queued`.
    const watching = new AbortController();
    const events = await h.api('/v1/events', {
      headers: { accept: 'text/event-stream' },
      signal: watching.signal,
    });
    try {
      const { body } = await h.json<JobBody>('/v1/jobs', {
        body: {
          command: join(FIXTURES, 'print-for.sh'),
          args: ['600'],
          cwd: work,
          limits: { memory: '64M' },
        },
      });
      await readSse(
        events,
        (event) => event.event === 'job:started' && (JSON.parse(event.data) as { id: string }).id === body.id,
      );
      await waitForFileText(join(h.dataDir, 'jobs', body.id, 'stdout'), 'line 1');
      const live = await h.json<JobBody>(`/v1/jobs/${body.id}`);
      assert.equal(live.body.status, 'running');
      assert.ok(live.body.usage, 'live usage');
      assert.equal(typeof live.body.usage.cpuSeconds, 'number');
      assert.ok((live.body.usage.memoryPeakBytes ?? 0) > 0, 'memory measured');
      await h.json(`/v1/jobs/${body.id}/stop`, { method: 'POST', body: { graceMs: 0 } });
      const end = await finished(body.id);
      assert.equal(end.status, 'stopped');
      assert.ok(end.usage);
    } finally {
      watching.abort();
      await rm(work, { recursive: true, force: true });
    }
  });
});

describe('limits on a host without cgroups', () => {
  it('are refused at submit naming the controller, never ignored', async () => {
    const h = await openHarness({ cgroups: { mode: 'none' } });
    try {
      for (const [limits, field, controller] of [
        [{ memory: '64M' }, 'limits.memory', 'memory'],
        [{ cpu: 1 }, 'limits.cpu', 'cpu'],
        [{ pids: 10 }, 'limits.pids', 'pids'],
        [{ io: { writeBps: '1M' } }, 'limits.io', 'io'],
      ] as const) {
        await assert.rejects(
          h.engine.start({ command: 'true', cwd: '/tmp', limits }, { user: 't' }),
          (err) => {
            assert.ok(err instanceof ValidationError);
            assert.equal(err.field, field);
            assert.match(err.message, new RegExp(`no ${controller} cgroup controller`));
            return true;
          },
        );
      }
      const listed = await h.engine.list({ limit: 10 });
      assert.equal(listed.jobs.length, 0, 'nothing was created');
    } finally {
      await h.destroy();
    }
  });
});
