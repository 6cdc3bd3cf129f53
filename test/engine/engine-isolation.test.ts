import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, watch } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { isSameProcessAlive } from '../../src/runtime/process-identity.ts';
import { followAll, type Harness, openHarness, startRunning } from '../helpers/engine-harness.ts';
import { pidAlive, waitForFileText } from '../helpers/wait.ts';

// Real namespaces need root (CAP_SYS_ADMIN); this machine's tests run as root.
const needsRoot = { skip: process.getuid?.() === 0 ? false : 'namespaces need root here' };
const FIXTURES = new URL('../fixtures/', import.meta.url).pathname;
const ISOLATE = { pid: true, network: 'none', mount: { privateTmp: true } };

let h: Harness;
const dirs: string[] = [];
before(async () => {
  h = await openHarness();
});
after(async () => {
  await h.destroy();
  for (const dir of dirs) await rm(dir, { recursive: true, force: true, maxRetries: 10 });
});

const newDir = async (prefix: string) => {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  dirs.push(dir);
  return dir;
};

/** Runs a shell script as a job to its end: its stdout, stderr and the job as it ended. */
async function run(script: string, isolation: object) {
  const job = await h.engine.start({ command: 'sh', args: ['-c', script], isolation }, { user: 'tester' });
  const [out, err] = await Promise.all([
    followAll(h.engine, job.id, 'stdout'),
    followAll(h.engine, job.id, 'stderr'),
  ]);
  return { stdout: out.data.toString(), stderr: err.data.toString(), job: out.end };
}

/** Resolves once a v2 cgroup's `cgroup.events` says `frozen` is `want` (a kernel notification). */
function whenFrozen(cgroup: string, want: boolean): Promise<void> {
  const line = `frozen ${want ? 1 : 0}`;
  return new Promise((resolve) => {
    const watcher = watch(join(cgroup, 'cgroup.events'));
    const check = async () => {
      if ((await readFile(join(cgroup, 'cgroup.events'), 'utf8')).includes(line)) {
        watcher.close();
        resolve();
      }
    };
    watcher.on('change', () => void check());
    void check();
  });
}

describe('isolated jobs: what they see', needsRoot, () => {
  it('with `pid` the job sees only its own tree, under its pid 1', async () => {
    const { stdout, job } = await run('ps ax -o pid=,args=', { pid: true });
    assert.equal(job.status, 'succeeded');
    const rows = stdout
      .trim()
      .split('\n')
      .map((line) => line.trim().split(/\s+/));
    assert.deepEqual(
      rows.map((row) => Number(row[0])),
      [1, 2, 3],
      `only pid 1, the job's shell and ps: ${stdout}`,
    );
    assert.match(rows[0]!.slice(1).join(' '), /^jobworker-init /);
    assert.equal(rows[1]![1], 'sh');
    assert.equal(rows[2]![1], 'ps');
    // The server records the job's host pid, not its pid in the namespace.
    assert.notEqual(job.process?.pid, 2);
  });

  it('with `network: "none"` a connection to the host loopback fails; a host job connects', async () => {
    const server = createServer((socket) => socket.end());
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as { port: number };
    const connect = `require('net').connect(${port}, '127.0.0.1').on('connect', () => { console.log('connected'); process.exit(0); }).on('error', (e) => { console.log(e.code); process.exit(1); })`;
    try {
      const spec = (isolation: object) => ({ command: process.execPath, args: ['-e', connect], isolation });
      const isolated = await h.engine.start(spec({ network: 'none' }), { user: 'tester' });
      const host = await h.engine.start(spec({ network: 'host' }), { user: 'tester' });
      const [iso, open] = await Promise.all([
        followAll(h.engine, isolated.id, 'stdout'),
        followAll(h.engine, host.id, 'stdout'),
      ]);
      assert.equal(open.data.toString(), 'connected\n');
      assert.equal(open.end.status, 'succeeded');
      assert.equal(iso.data.toString(), 'ECONNREFUSED\n', 'its 127.0.0.1 is its own');
      assert.equal(iso.end.status, 'failed');
    } finally {
      server.close();
    }
  });

  it('with `privateTmp` a file written in /tmp is invisible to the host and gone after the job', async () => {
    const name = `jw-private-${process.pid}-${Date.now()}`;
    const job = await startRunning(h.engine, {
      command: 'sh',
      args: ['-c', `echo secret > /tmp/${name} && cat /tmp/${name} && echo ready; exec sleep 600`],
      isolation: { mount: { privateTmp: true } },
    });
    const stdout = await waitForFileText(join(h.dataDir, 'jobs', job.id, 'stdout'), 'ready');
    assert.equal(stdout, 'secret\nready\n');
    assert.equal(existsSync(join('/tmp', name)), false, 'the host does not see it');
    await h.engine.stop(job.id, { user: 'tester' }, { graceMs: 5000 });
    assert.equal((await h.engine.waitFor(job.id)).status, 'stopped');
    const next = await run(`ls -A /tmp /var/tmp; test ! -e /tmp/${name}`, { mount: { privateTmp: true } });
    assert.equal(next.job.status, 'succeeded', 'the next job does not see it either');
    // Nothing but where its own io directory is bound back, when that is below /tmp (the
    // default's place: engine-isolation-boundaries.test.ts).
    const io = h.engine.ioPaths(next.job.id).dir;
    const top = io.startsWith('/tmp/') ? `${io.split('/')[2]}\n` : '';
    assert.equal(next.stdout, `/tmp:\n${top}\n/var/tmp:\n`);
  });

  it('`readOnly` paths refuse writes; the host still writes them', async () => {
    const dir = await newDir('jw-ro-');
    const { stderr, job } = await run(`cat ${dir}/kept; echo no > ${dir}/new`, {
      mount: { readOnly: [dir] },
    });
    assert.equal(job.status, 'failed');
    assert.match(stderr, /Read-only file system/);
    assert.equal(existsSync(join(dir, 'new')), false);
    await writeFile(join(dir, 'host'), 'yes');
  });

  it('`hide` makes a directory empty and a file empty to the job', async () => {
    const dir = await newDir('jw-hide-');
    await mkdir(join(dir, 'secrets'));
    await writeFile(join(dir, 'secrets', 'key'), 'k3y');
    await writeFile(join(dir, 'token'), 't0ken');
    const { stdout, job } = await run(`ls -A ${dir}/secrets; echo "[$(cat ${dir}/token)]"`, {
      mount: { hide: [join(dir, 'secrets'), join(dir, 'token')] },
    });
    assert.equal(job.status, 'succeeded');
    assert.equal(stdout, '[]\n');
    assert.equal(await readFile(join(dir, 'secrets', 'key'), 'utf8'), 'k3y', 'the host still sees it');
  });

  it('`hostname` names the job its own host', async () => {
    const { stdout } = await run('hostname', { hostname: 'job-1234' });
    assert.equal(stdout, 'job-1234\n');
  });

  it('a path of `mount` that does not exist fails the job with a reason naming isolation', async () => {
    const { job } = await run('true', { mount: { readOnly: ['/no/such/path/here'] } });
    assert.equal(job.status, 'failed');
    assert.match(job.exit?.reason ?? '', /could not set up its isolation .*No such file or directory/);
  });
});

describe('isolated jobs: everything jobworker does still works', needsRoot, () => {
  it('output, exit code and a signal death are the command’s own under a pid 1', async () => {
    const exited = await run('echo out; echo err >&2; exit 7', ISOLATE);
    assert.equal(exited.stdout, 'out\n');
    assert.equal(exited.stderr, 'err\n');
    assert.equal(exited.job.exit?.exitCode, 7);
    const killed = await run('kill -USR1 $$', ISOLATE);
    assert.equal(killed.job.status, 'failed');
    assert.equal(killed.job.exit?.signal, 'SIGUSR1');
  });

  it('stop ends the whole tree with SIGTERM sent from outside its namespace (no force needed)', async () => {
    const job = await startRunning(h.engine, {
      command: 'sh',
      args: ['-c', 'sleep 600 & sleep 600 & echo ready; wait'],
      isolation: { pid: true, network: 'none' },
    });
    await waitForFileText(join(h.dataDir, 'jobs', job.id, 'stdout'), 'ready');
    const hostPid = job.process!.pid;
    assert.ok(isSameProcessAlive(job.process!));
    await h.engine.stop(job.id, { user: 'tester' }, { graceMs: 10_000 });
    const done = await h.engine.waitFor(job.id);
    assert.equal(done.status, 'stopped');
    assert.equal(done.stopForced, false, 'SIGTERM reached the job through its namespace');
    assert.equal(await pidAlive(hostPid), false);
  });

  it('stop of a job that ignores SIGTERM (and a setsid escapee) is forced through the cgroup', async () => {
    const dir = await newDir('jw-iso-stubborn-');
    const pidsFile = join(dir, 'pids');
    const job = await startRunning(h.engine, {
      command: join(FIXTURES, 'stubborn-tree.sh'),
      args: [pidsFile],
      isolation: { pid: true },
    });
    await waitForFileText(join(h.dataDir, 'jobs', job.id, 'stdout'), 'ready');
    await h.engine.stop(job.id, { user: 'tester' }, { graceMs: 100 });
    const done = await h.engine.waitFor(job.id);
    assert.equal(done.status, 'stopped');
    if (h.engine.cgroupMode !== 'none') assert.equal(done.stopForced, true);
    assert.equal(await pidAlive(done.process!.pid), false);
    assert.equal(await pidAlive(done.process!.wrapper!.pid), false);
  });

  it('pause freezes and resume thaws an isolated job, which then ends normally', async (t) => {
    const job = await startRunning(h.engine, {
      command: 'sh',
      args: ['-c', 'echo ready; i=0; while [ $i -lt 50 ]; do i=$((i+1)); sleep 0.01; done; echo done'],
      isolation: ISOLATE,
    });
    const cgroup = job.process?.cgroups.find((dir) => existsSync(join(dir, 'cgroup.freeze')));
    if (!cgroup) {
      t.skip('no v2 cgroup with cgroup.freeze on this host');
      return;
    }
    assert.equal((await h.engine.pause(job.id)).status, 'paused');
    await whenFrozen(cgroup, true);
    assert.equal((await h.engine.resume(job.id)).status, 'running');
    await whenFrozen(cgroup, false);
    const end = await followAll(h.engine, job.id, 'stdout');
    assert.equal(end.data.toString(), 'ready\ndone\n');
    assert.equal(end.end.status, 'succeeded');
  });
});

describe('isolated jobs on a host without cgroups', needsRoot, () => {
  it('with `pid`, stop still ends a setsid escapee: the namespace ends with its pid 1', async () => {
    const bare = await openHarness({ cgroups: { mode: 'none' } });
    try {
      const dir = await newDir('jw-iso-nocg-');
      const pidsFile = join(dir, 'pids');
      const job = await startRunning(bare.engine, {
        command: join(FIXTURES, 'stubborn-tree.sh'),
        args: [pidsFile],
        isolation: { pid: true },
      });
      await waitForFileText(join(bare.dataDir, 'jobs', job.id, 'stdout'), 'ready');
      // The escapee's pid as the host sees it: the namespace's pids mean nothing here.
      const escapees = (await readFile(`/proc/${job.process!.pid}/task/${job.process!.pid}/children`, 'utf8'))
        .trim()
        .split(' ')
        .map(Number);
      assert.ok(escapees.length >= 1, 'the setsid escapee is a child of the job process');
      assert.equal(job.process!.cgroups.length, 0, 'no cgroup');
      await bare.engine.stop(job.id, { user: 'tester' }, { graceMs: 100 });
      const done = await bare.engine.waitFor(job.id);
      assert.equal(done.status, 'stopped');
      for (const pid of escapees) assert.equal(await pidAlive(pid), false);
      const all = (await readFile(pidsFile, 'utf8')).trim().split(' ').map(Number);
      assert.equal(all.length, 2);
    } finally {
      await bare.destroy();
    }
  });
});

describe('isolated jobs across a server restart', needsRoot, () => {
  /** Starts a job from a separate engine process, then SIGKILLs that process. */
  async function startThenCrash(dataDir: string, spec: object) {
    const host = spawn(process.execPath, [join(FIXTURES, 'engine-host.ts'), dataDir, JSON.stringify(spec)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const [line] = (await once(createInterface({ input: host.stdout! }), 'line')) as [string];
    const { id } = JSON.parse(line) as { id: string };
    await waitForFileText(join(dataDir, 'jobs', id, 'stdout'), 'ready');
    const exited = once(host, 'exit');
    host.kill('SIGKILL');
    await exited;
    return id;
  }

  it('a SIGKILLed server’s isolated job is adopted: output, stop and exit status still work', async () => {
    const dataDir = await newDir('jw-iso-restart-');
    const go = join(dataDir, 'go');
    // The job waits for the test's go (its data dir is not under a private /tmp here), then exits 4.
    const id = await startThenCrash(dataDir, {
      command: 'sh',
      args: ['-c', `echo ready; while [ ! -e ${go} ]; do sleep 0.01; done; echo bye; exit 4`],
      isolation: { pid: true, network: 'none', hostname: 'job-restart' },
    });
    const again = await openHarness({}, dataDir);
    try {
      const adopted = await again.engine.get(id);
      assert.equal(adopted.status, 'running');
      assert.ok(isSameProcessAlive(adopted.process!), 'the job ran on while no server ran');
      await writeFile(go, '');
      const end = await followAll(again.engine, id, 'stdout');
      assert.equal(end.data.toString(), 'ready\nbye\n');
      assert.equal(end.end.status, 'failed');
      assert.equal(end.end.exit?.exitCode, 4);
    } finally {
      await again.close();
    }
  });

  it('an adopted isolated job can be stopped, whole tree', async () => {
    const dataDir = await newDir('jw-iso-restart-stop-');
    const id = await startThenCrash(dataDir, {
      command: 'sh',
      args: ['-c', 'sleep 600 & echo ready; wait'],
      isolation: ISOLATE,
    });
    const again = await openHarness({}, dataDir);
    try {
      const adopted = await again.engine.get(id);
      assert.equal(adopted.status, 'running');
      await again.engine.stop(id, { user: 'tester' }, { graceMs: 10_000 });
      const done = await again.engine.waitFor(id);
      assert.equal(done.status, 'stopped');
      assert.equal(await pidAlive(adopted.process!.pid), false);
      assert.equal(await pidAlive(adopted.process!.wrapper!.pid), false);
    } finally {
      await again.close();
    }
  });

  it('a cleanly restarted server adopts a running isolated job', async () => {
    const dataDir = await newDir('jw-iso-reopen-');
    const first = await openHarness({}, dataDir);
    const job = await startRunning(first.engine, {
      command: 'sh',
      args: ['-c', 'echo ready; exec sleep 600'],
      isolation: ISOLATE,
    });
    await waitForFileText(join(dataDir, 'jobs', job.id, 'stdout'), 'ready');
    await first.close();
    const again = await openHarness({}, dataDir);
    try {
      assert.equal((await again.engine.get(job.id)).status, 'running');
      await again.engine.stop(job.id, { user: 'tester' }, { graceMs: 10_000 });
      const done = await again.engine.waitFor(job.id);
      assert.equal(done.status, 'stopped');
      assert.equal(done.exit?.signal, 'SIGTERM');
    } finally {
      await again.close();
    }
  });
});
