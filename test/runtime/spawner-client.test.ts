import assert from 'node:assert/strict';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { normalizeSpec } from '../../src/core/spec.ts';
import { readExitRecord } from '../../src/runtime/exit-record.ts';
import { jobSpawnRequest } from '../../src/runtime/job-spawn-request.ts';
import { SpawnerClient } from '../../src/runtime/spawner-client.ts';
import { spawnerPath } from '../../src/runtime/spawner-path.ts';
import { makeFifo } from '../helpers/small-disk.ts';

let root: string;
let spawner: SpawnerClient;
const logged: string[] = [];
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'jw-spawner-'));
  spawner = new SpawnerClient({ path: spawnerPath(), log: (line) => logged.push(line) });
});
after(async () => {
  spawner.close();
  await rm(root, { recursive: true, force: true });
});

async function start(input: object) {
  const dir = await mkdtemp(join(root, 'job-'));
  const spec = normalizeSpec(input, { cwd: dir });
  const reply = await spawner.start(jobSpawnRequest(spec, 'job', dir, []));
  if (reply.kind === 'started') await reply.exited;
  return { dir, reply, record: await readExitRecord(dir) };
}

describe('spawner concurrency', () => {
  it('a wrapper slow to answer holds up no other start: answers come as each is ready', async () => {
    // Wrapper A blocks writing its identity file: a FIFO stands where it writes it first, and its
    // open waits for a reader. The spawner must start B meanwhile, and relay B's answer first.
    const slowDir = await mkdtemp(join(root, 'job-'));
    await makeFifo(join(slowDir, 'process.tmp'));
    const slowSpec = normalizeSpec({ command: 'true' }, { cwd: slowDir });
    let slowAnswered = false;
    const slow = spawner.start(jobSpawnRequest(slowSpec, 'slow', slowDir, [])).then((reply) => {
      slowAnswered = true;
      return reply;
    });
    let identity: string | undefined;
    try {
      const quick = await start({ command: 'true' });
      assert.equal(quick.reply.kind, 'started');
      assert.equal(quick.record?.kind, 'exited', 'B ran to its end');
      assert.equal(slowAnswered, false, 'A is still writing its identity');
    } finally {
      // Reading the FIFO lets A write its identity through it (also when the test failed, so that
      // no wrapper is left blocked); A then answers and its job runs.
      identity = await readFile(join(slowDir, 'process.tmp'), 'utf8');
    }
    assert.match(identity, /^\d+ \d+ \d+ \d+ \S+\n$/);
    const reply = await slow;
    assert.equal(reply.kind, 'started');
    if (reply.kind === 'started') await reply.exited;
    assert.equal((await readExitRecord(slowDir))?.kind, 'exited');
  });
});

describe('spawner failure paths', () => {
  it('a working directory gone before the start: the exact errno is recorded and nothing ran', async () => {
    const { dir, reply, record } = await start({ command: 'touch', args: ['ran'], cwd: '/no/such/dir' });
    assert.equal(reply.kind, 'started');
    assert.deepEqual(record && { ...record, at: undefined }, {
      kind: 'failed',
      stage: 'chdir',
      message: 'No such file or directory',
      at: undefined,
      late: false,
    });
    assert.equal(
      await readFile(join(dir, 'stdout'), 'utf8'),
      '',
      'the wrapper wrote nothing into the output',
    );
  });

  it('a file that is not executable fails with "Permission denied", not "command not found"', async () => {
    const script = join(root, 'not-executable.sh');
    await writeFile(script, '#!/bin/sh\necho ran\n');
    await chmod(script, 0o644);
    const { record } = await start({ command: script });
    assert.equal(
      record?.kind === 'failed' && `${record.stage}: ${record.message}`,
      'exec: Permission denied',
    );
  });

  it('an account the kernel refuses fails at the `user` stage, before the working directory and the exec', async () => {
    const dir = await mkdtemp(join(root, 'job-'));
    const spec = normalizeSpec({ command: 'touch', args: ['ran'] }, { cwd: dir });
    const request = jobSpawnRequest(spec, 'job', dir, []);
    // More supplementary groups than NGROUPS_MAX (65536): setgroups(2) answers EINVAL.
    const groups = Array.from({ length: 65_537 }, (_, i) => 70_000 + i);
    const reply = await spawner.start({ ...request, user: { uid: 61_500, gid: 61_500, groups } });
    assert.equal(reply.kind, 'started');
    if (reply.kind === 'started') await reply.exited;
    const record = await readExitRecord(dir);
    assert.equal(record?.kind === 'failed' && `${record.stage}: ${record.message}`, 'user: Invalid argument');
    await assert.rejects(readFile(join(dir, 'ran')), { code: 'ENOENT' });
  });

  it('a field holding a NUL byte is refused before anything is sent', async () => {
    const dir = await mkdtemp(join(root, 'job-'));
    const spec = normalizeSpec({ command: 'true' }, { cwd: dir });
    const request = jobSpawnRequest(spec, 'job', dir, []);
    const reply = await spawner.start({ ...request, argv: ['true', 'a\0b'] });
    assert.equal(reply.kind, 'refused');
    assert.match(reply.kind === 'refused' ? reply.reason : '', /NUL byte/);
  });

  it('a spawner that cannot be started refuses each request with the reason', async () => {
    const broken = new SpawnerClient({ path: join(root, 'no-such-spawner'), log: () => {} });
    const dir = await mkdtemp(join(root, 'job-'));
    const spec = normalizeSpec({ command: 'true' }, { cwd: dir });
    const replies = await Promise.all([1, 2].map(() => broken.start(jobSpawnRequest(spec, 'job', dir, []))));
    for (const reply of replies) {
      assert.deepEqual(reply, {
        kind: 'refused',
        reason: `could not start the spawner: spawn ${join(root, 'no-such-spawner')} ENOENT`,
      });
    }
    broken.close();
  });
});
