import assert from 'node:assert/strict';
import { chmod, chown, copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Job } from '../../src/core/job.ts';
import { followAll, type Harness, openHarness } from '../helpers/engine-harness.ts';
import { waitForFileText } from '../helpers/wait.ts';

// Real namespaces and other accounts need root (CAP_SYS_ADMIN, setuid); this machine's tests run as root.
const needsRoot = { skip: process.getuid?.() === 0 ? false : 'namespaces need root here' };
/** An unprivileged account, as a non-admin's job runs as. */
const NOBODY = { name: 'nobody', uid: 65534, gid: 65534, groups: [65534], home: '/' };

let h: Harness;
let root: string;
/** Below /tmp, as the default (`<tmpdir>/jobworker-io-<hash>`) is where TMPDIR is unset. */
const ioDir = `/tmp/jw-iso-bounds-io-${process.pid}-${Date.now()}`;
before(async () => {
  h = await openHarness({ ioDir });
  root = await mkdtemp(join(tmpdir(), 'jw-iso-bounds-'));
  await chmod(root, 0o755);
});
after(async () => {
  await h.destroy();
  await rm(root, { recursive: true, force: true });
  await rm(ioDir, { recursive: true, force: true });
});

/** Runs a shell script as `nobody` to its end: its stdout and the job as it ended. */
async function runAsNobody(script: string, isolation?: object): Promise<{ stdout: string; job: Job }> {
  const spec = { command: 'sh', args: ['-c', script], cwd: '/', ...(isolation ? { isolation } : {}) };
  const job = await h.engine.start(spec, { user: 'tester', account: NOBODY });
  const out = await followAll(h.engine, job.id, 'stdout');
  return { stdout: out.data.toString(), job: out.end };
}

describe('isolated jobs gain no privileges from setuid programs', needsRoot, () => {
  it('every kind of isolation sets no_new_privs for the job; a job without isolation is unchanged', async () => {
    const hidden = join(root, 'hidden');
    await mkdir(hidden, { recursive: true });
    const kinds: [string, object | undefined][] = [
      ['none', undefined],
      ['hostname', { hostname: 'db01' }],
      ['hide', { mount: { hide: [hidden] } }],
      ['readOnly', { mount: { readOnly: [hidden] } }],
      ['privateTmp', { mount: { privateTmp: true } }],
      ['network', { network: 'none' }],
      ['pid', { pid: true }],
    ];
    const seen = await Promise.all(
      kinds.map(async ([kind, isolation]) => {
        const { stdout } = await runAsNobody('grep NoNewPrivs /proc/self/status', isolation);
        return [kind, stdout.trim()];
      }),
    );
    assert.deepEqual(
      seen,
      kinds.map(([kind]) => [kind, `NoNewPrivs:\t${kind === 'none' ? 0 : 1}`]),
    );
  });

  it('a setuid-root program run by an unprivileged job under a host name of its choosing stays unprivileged', async () => {
    // A copy of id(1), root's and setuid: it prints the effective uid it runs with.
    const bin = join(root, 'bin');
    await mkdir(bin, { recursive: true });
    await chmod(bin, 0o755);
    const id = join(bin, 'id');
    await copyFile('/usr/bin/id', id);
    await chmod(id, 0o4755);
    const plain = await runAsNobody(`${id} -u`);
    assert.equal(plain.stdout, '0\n', 'without isolation the setuid bit works (what sudo relies on)');
    const isolated = await runAsNobody(`${id} -u`, { hostname: 'db01' });
    assert.equal(isolated.job.status, 'succeeded');
    assert.equal(isolated.stdout, '65534\n', 'in a UTS namespace the job named, it does not');
  });
});

describe('a job with a private /tmp still leaves its result and progress', needsRoot, () => {
  it('its io directory is bound back into its /tmp, alone: it writes there, and sees no other job’s', async () => {
    // Another job's io directory exists beside theirs while they run.
    const go = join(root, 'go');
    const other = await h.engine.start(
      { command: 'sh', args: ['-c', `echo ready; while [ ! -e ${go} ]; do sleep 0.02; done`] },
      { user: 'tester' },
    );
    await waitForFileText(join(h.dataDir, 'jobs', other.id, 'stdout'), 'ready');
    const otherIo = h.engine.ioPaths(other.id).dir;
    const privateTmp = { mount: { privateTmp: true } };
    const [unprivileged, rooted] = await Promise.all([
      runAsNobody(
        [
          `echo '{"done": 5, "total": 10}' >> "$JOBWORKER_PROGRESS"`,
          `echo '{"answer": 42}' > "$JOBWORKER_RESULT"`,
          `test -e ${otherIo} && echo "sees ${otherIo}"`,
          'echo written',
        ].join('\n'),
        privateTmp,
      ),
      // As root, the job could list the directory of every job's io directory, were it there.
      (async () => {
        const spec = {
          command: 'sh',
          args: ['-c', 'ls -A "$(dirname "$(dirname "$JOBWORKER_RESULT")")"'],
          isolation: privateTmp,
        };
        const job = await h.engine.start(spec, { user: 'tester' });
        const out = await followAll(h.engine, job.id, 'stdout');
        return { stdout: out.data.toString(), job: out.end };
      })(),
    ]);
    await writeFile(go, '');
    assert.equal(unprivileged.stdout, 'written\n');
    assert.equal(unprivileged.job.status, 'succeeded');
    assert.equal(unprivileged.job.resultError, null);
    assert.equal(await h.engine.result(unprivileged.job.id), '{"answer": 42}');
    assert.equal(unprivileged.job.progress?.done, 5);
    assert.equal(rooted.job.status, 'succeeded');
    assert.equal(rooted.stdout, `${rooted.job.id}\n`, 'only its own io directory');
    await h.engine.waitFor(other.id);
  });
});

describe('an isolated job tells its owner nothing of paths its account cannot reach', needsRoot, () => {
  it('a hidden or read-only path behind a closed directory: the same start and end, there or not', async () => {
    // Only root may search `closed`; the job runs as nobody.
    const closed = join(root, 'closed');
    await mkdir(join(closed, 'there'), { recursive: true });
    await chmod(closed, 0o700);
    const runs = await Promise.all(
      ['hide', 'readOnly'].flatMap((kind) =>
        ['there', 'none'].map(async (name) => {
          const { stdout, job } = await runAsNobody('echo ran', { mount: { [kind]: [join(closed, name)] } });
          return { kind, name, status: job.status, reason: job.exit?.reason, stdout };
        }),
      ),
    );
    for (const run of runs) {
      assert.deepEqual(
        { status: run.status, reason: run.reason, stdout: run.stdout },
        { status: 'succeeded', reason: 'exited with code 0', stdout: 'ran\n' },
        `${run.kind} of ${run.name}`,
      );
    }
  });

  it('still protects a path behind a directory of its own that it may not search yet (chmod u+x opens it)', async () => {
    // Mode bits say `own` is closed to nobody; but it is nobody's, and chmod is the owner's right.
    const own = join(root, 'own');
    await mkdir(join(own, 'data'), { recursive: true });
    await chmod(join(own, 'data'), 0o777);
    await chown(own, 65534, 65534);
    await chmod(own, 0o600);
    const { stdout, job } = await runAsNobody(
      `chmod 700 ${own} && { touch ${join(own, 'data', 'written')} 2>/dev/null && echo written || echo refused; }`,
      { mount: { readOnly: [join(own, 'data')] } },
    );
    assert.equal(job.status, 'succeeded', job.exit?.reason);
    assert.equal(stdout, 'refused\n', 'read-only all the same');
  });

  it('still hides a path it can reach, and fails the start of one that is not there, as the account would see', async () => {
    const open = join(root, 'open');
    await mkdir(open, { recursive: true });
    await chmod(open, 0o755);
    await writeFile(join(open, 'secret'), 'visible');
    const hidden = await runAsNobody(`cat ${join(open, 'secret')} | wc -c`, {
      mount: { hide: [join(open, 'secret')] },
    });
    assert.equal(hidden.stdout.trim(), '0', 'hidden: an empty file');
    const missing = await runAsNobody('echo ran', { mount: { hide: [join(open, 'missing')] } });
    assert.equal(missing.job.status, 'failed');
  });
});
