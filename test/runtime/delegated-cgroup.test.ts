import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { chownSync, existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, it } from 'node:test';
import { readCgroupMounts } from '../../src/runtime/cgroup-mounts.ts';

const FIXTURES = new URL('../fixtures/', import.meta.url).pathname;
const NOBODY = 65534;
const v2 = readCgroupMounts().v2;
const skip =
  process.getuid?.() !== 0
    ? 'making a delegated cgroup needs root'
    : v2 === null
      ? 'no cgroup v2 hierarchy here'
      : false;

describe('a non-root server in a delegated cgroup (systemd Delegate=yes)', { skip }, () => {
  it('moves itself into <cgroup>/server and makes its job cgroups under <cgroup>/jobworker, nowhere else', async () => {
    // What systemd does for a service with Delegate=yes: the service's cgroup, and the files
    // that manage its subtree, belong to the service's user.
    const name = `jw-delegated-${process.pid}`;
    const delegated = join(v2!, name);
    mkdirSync(delegated);
    for (const file of ['', 'cgroup.procs', 'cgroup.subtree_control', 'cgroup.threads']) {
      chownSync(join(delegated, file), NOBODY, NOBODY);
    }
    const child = spawn(process.execPath, [join(FIXTURES, 'delegated-server.ts')], {
      uid: NOBODY,
      gid: NOBODY,
      cwd: '/',
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    try {
      writeFileSync(join(delegated, 'cgroup.procs'), String(child.pid));
      child.stdin!.write('go\n');
      const [line] = (await once(createInterface({ input: child.stdout! }), 'line')) as [string];
      const got = JSON.parse(line) as {
        before: string;
        after: string;
        mode: string;
        dirs: string[];
        cpuGroup?: string;
      };
      assert.equal(got.before, `/${name}`);
      assert.equal(got.after, `/${name}/server`, 'it left its cgroup for a leaf');
      assert.equal(got.mode, 'v2');
      assert.deepEqual(got.dirs, [join(delegated, 'jobworker', 'job-1')], 'only under its own cgroup');
      assert.ok(existsSync(join(delegated, 'jobworker', 'job-1', 'cgroup.kill')));
      // The spawner's CPU group is a leaf of its own beside the jobs, where `cpu` was delegated.
      const cpu = readFileSync(join(delegated, 'cgroup.controllers'), 'utf8').split(/\s+/).includes('cpu');
      assert.equal(got.cpuGroup, cpu ? join(delegated, 'jobworker', 'spawner', 'cgroup.procs') : undefined);
      child.stdin!.write('done\n');
      await once(child, 'exit');
    } finally {
      child.kill('SIGKILL');
      for (const dir of ['jobworker/job-1', 'jobworker/spawner', 'jobworker', 'server', '']) {
        try {
          rmdirSync(join(delegated, dir));
        } catch {
          // gone already
        }
      }
    }
  });
});
