import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { ValidationError } from '../../src/core/errors.ts';
import { readCgroupMounts } from '../../src/runtime/cgroup-mounts.ts';
import { Cgroups } from '../../src/runtime/cgroups.ts';
import { checkIsolation, type HostCapabilities, probeHost } from '../../src/runtime/host-capabilities.ts';
import { reportFeatures } from '../../src/runtime/host-report.ts';
import { runCliInProcess } from '../cli/cli-in-process.ts';
import { type Harness, openHarness } from '../helpers/engine-harness.ts';

const execFileAsync = promisify(execFile);
const root = process.getuid?.() === 0;
const needsRoot = { skip: root ? false : 'probing as another account needs root' };
/** The account a non-root server would run as: what it can and cannot get is probed for real. */
const NOBODY = { uid: 65534, gid: 65534 };
const REPO = new URL('../../', import.meta.url).pathname;

describe('host capabilities', () => {
  let asRoot: HostCapabilities;
  before(async () => {
    asRoot = await probeHost();
  });

  it('reports the cgroup hierarchies this host mounts, and the controllers each offers', () => {
    const mounts = readCgroupMounts();
    assert.equal(asRoot.cgroups.v2Mount, mounts.v2);
    assert.deepEqual(asRoot.cgroups.v1.map((h) => h.controller).sort(), [...mounts.v1.keys()].sort());
    for (const controller of asRoot.controllers) {
      if (controller.via === 'v2')
        assert.ok(asRoot.cgroups.v2Controllers.includes(controller.name) || controller.name === 'freezer');
      if (controller.via === 'v1')
        assert.ok(mounts.v1.has(controller.name === 'io' ? 'blkio' : controller.name));
    }
  });

  it(
    'as root every namespace kind the kernel has can be created, and jobs can run as their owners',
    needsRoot,
    () => {
      for (const kind of ['pid', 'net', 'mnt', 'uts'] as const) {
        assert.equal(asRoot.namespaces[kind].kernel, existsSync(`/proc/self/ns/${kind}`));
        assert.equal(asRoot.namespaces[kind].creatable, asRoot.namespaces[kind].kernel, kind);
      }
      assert.equal(asRoot.runAs.switchAccounts, true);
      assert.doesNotThrow(() =>
        checkIsolation({ pid: true, network: 'none', mount: { privateTmp: true }, hostname: 'x' }, asRoot),
      );
    },
  );

  it(
    'as another account namespaces are missing, and an isolation asking for one is refused naming the field',
    needsRoot,
    async () => {
      const nobody = await probeHost({ as: NOBODY });
      assert.equal(nobody.namespaces.pid.creatable, false);
      assert.match(nobody.namespaces.pid.why ?? '', /needs root/);
      assert.equal(nobody.runAs.switchAccounts, false);
      const refused = (isolation: object, field: string) =>
        assert.throws(
          () => checkIsolation(isolation, nobody),
          (err: unknown) =>
            err instanceof ValidationError &&
            err.field === field &&
            /This host cannot give a job .*needs root/.test(err.message),
        );
      refused({ pid: true }, 'isolation.pid');
      refused({ network: 'none' }, 'isolation.network');
      refused({ hostname: 'job-1' }, 'isolation.hostname');
      refused({ mount: { privateTmp: true } }, 'isolation.mount');
      // Asking for nothing (the host's namespaces) is fine anywhere.
      assert.doesNotThrow(() => checkIsolation({}, nobody));
      const features = reportFeatures(nobody);
      const pid = features.find((f) => f.feature === 'namespace.pid');
      assert.equal(pid?.available, false);
      assert.match(pid?.missing ?? '', /needs root/);
      assert.equal(features.find((f) => f.feature === 'runAs')?.available, false);
    },
  );

  it(
    "reports the jobs' CPU group as the engine makes it: where jobworker may use a cpu controller",
    needsRoot,
    () => {
      const group = reportFeatures(asRoot).find((f) => f.feature === 'cpuGroup');
      const made = new Cgroups().cpuGroupProcs;
      assert.equal(group?.available, made !== undefined, group?.how);
      // v2: the spawner's leaf; v1: jobworker's directory in the cpu hierarchy, named in full.
      if (made)
        assert.ok(
          group?.how.includes(made.includes('/spawner/') ? 'jobworker/spawner' : dirname(made)),
          group?.how,
        );
    },
  );

  it('a spawner that cannot run leaves every namespace missing, saying why', async () => {
    const host = await probeHost({ spawner: '/nonexistent/jobworker-spawner' });
    for (const ns of Object.values(host.namespaces)) {
      assert.equal(ns.creatable, false);
      assert.match(ns.why ?? '', /spawner could not try/);
    }
  });
});

describe('the engine refuses an isolation its host cannot give', needsRoot, () => {
  let h: Harness;
  before(async () => {
    h = await openHarness({ host: await probeHost({ as: NOBODY }) });
  });
  after(() => h.destroy());

  it('400 naming the field and what is missing; nothing is created', async () => {
    await assert.rejects(
      h.engine.start({ command: 'true', isolation: { network: 'none' } }, { user: 'tester' }),
      (err: unknown) =>
        err instanceof ValidationError &&
        err.code === 'VALIDATION_FAILED' &&
        err.field === 'isolation.network' &&
        /network namespace/.test(err.message),
    );
    assert.equal((await h.engine.list({ limit: 10 })).jobs.length, 0);
    // What the host can give still runs.
    const job = await h.engine.start({ command: 'true', isolation: { network: 'host' } }, { user: 'tester' });
    assert.equal((await h.engine.waitFor(job.id)).status, 'succeeded');
  });
});

describe('jobworker doctor', () => {
  it('prints the host and one line per feature, and exits 0 on a working setup', async () => {
    const result = await runCliInProcess(['doctor'], {});
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^account: +uid \d+/m);
    assert.match(result.stdout, /^cgroup v2: /m);
    for (const feature of [
      'stop',
      'pause',
      'cpuGroup',
      'limit.memory',
      'limit.cpu',
      'namespace.pid',
      'namespace.net',
      'runAs',
    ]) {
      assert.match(result.stdout, new RegExp(`^(ok     |MISSING) ${feature.replace('.', '\\.')} `, 'm'));
    }
  });

  it('--json gives the host and the features', async () => {
    const result = await runCliInProcess(['doctor', '--json'], {});
    assert.equal(result.code, 0);
    const report = JSON.parse(result.stdout) as {
      host: HostCapabilities;
      features: { feature: string; available: boolean; missing?: string }[];
      broken?: string;
    };
    assert.equal(report.broken, undefined);
    assert.deepEqual(report.features, reportFeatures(report.host));
    assert.equal(report.host.uid, process.geteuid?.());
  });

  it('run as an account without root it says what is missing, and still exits 0', needsRoot, async () => {
    const { stdout } = await execFileAsync(join(REPO, 'bin/jobworker'), ['doctor'], {
      ...NOBODY,
      cwd: '/',
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
    });
    assert.match(stdout, /^MISSING namespace\.pid +.*\n +missing: not permitted: creating one needs root/m);
    assert.match(stdout, /^MISSING runAs /m);
  });
});
