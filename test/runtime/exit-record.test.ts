import assert from 'node:assert/strict';
import { mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { normalizeSpec } from '../../src/core/spec.ts';
import { parseExitRecord, readExitRecord } from '../../src/runtime/exit-record.ts';
import { jobSpawnRequest } from '../../src/runtime/job-spawn-request.ts';
import { SpawnerClient } from '../../src/runtime/spawner-client.ts';
import { spawnerPath } from '../../src/runtime/spawner-path.ts';
import { makeFifo, mountSmallDisk, type SmallDisk, whenWrapperTriesToRecord } from '../helpers/small-disk.ts';
import { waitForFileText } from '../helpers/wait.ts';

const written = new Date('2026-01-02T03:04:05.000Z');

describe('exit records', () => {
  it('reads every form a wrapper wrote before records carried an end time', () => {
    assert.deepEqual(parseExitRecord('exit 3', written), {
      kind: 'exited',
      code: 3,
      at: written,
      late: false,
    });
    assert.deepEqual(parseExitRecord('signal 9', written), {
      kind: 'signaled',
      signal: 9,
      at: written,
      late: false,
    });
    assert.deepEqual(parseExitRecord('error exec 2 No such file or directory', written), {
      kind: 'failed',
      stage: 'exec',
      message: 'command not found',
      at: written,
      late: false,
    });
    assert.deepEqual(parseExitRecord('notstarted', written), {
      kind: 'notstarted',
      at: written,
      late: false,
    });
    // The shell wrapper's.
    assert.deepEqual(parseExitRecord('137', written), {
      kind: 'status',
      status: 137,
      at: written,
      late: false,
    });
    assert.equal(parseExitRecord('exit', written), undefined);
    assert.equal(parseExitRecord('', written), undefined);
  });

  it('a record written late carries when the job ended, whatever its form', () => {
    const ended = new Date('2026-01-02T03:00:00.123Z');
    const ms = ended.getTime();
    assert.deepEqual(parseExitRecord(`exit 3 @${ms}`, written), {
      kind: 'exited',
      code: 3,
      at: ended,
      late: true,
    });
    assert.deepEqual(parseExitRecord(`signal 15 @${ms}`, written), {
      kind: 'signaled',
      signal: 15,
      at: ended,
      late: true,
    });
    assert.deepEqual(parseExitRecord(`error chdir 2 No such file or directory @${ms}`, written), {
      kind: 'failed',
      stage: 'chdir',
      message: 'No such file or directory',
      at: ended,
      late: true,
    });
    assert.deepEqual(parseExitRecord(`notstarted @${ms}`, written), {
      kind: 'notstarted',
      at: ended,
      late: true,
    });
    assert.equal(parseExitRecord(`@${ms}`, written), undefined, 'a time alone is no record');
  });

  it('reads a record from disk; nothing that is not a whole regular file counts, and none blocks', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'jw-record-'));
    try {
      assert.equal(await readExitRecord(dir), undefined, 'no record yet');
      await writeFile(join(dir, 'exit'), 'exit 3');
      assert.equal(await readExitRecord(dir), undefined, 'not whole: no newline yet');
      await writeFile(join(dir, 'exit'), 'exit 3 @1767323045000\n');
      assert.deepEqual(await readExitRecord(dir), {
        kind: 'exited',
        code: 3,
        at: new Date(1767323045000),
        late: true,
      });
      await rm(join(dir, 'exit'));
      // What a job running as the server's own account could plant: a FIFO would block a read
      // forever, a link would read another file. Neither is a record.
      await makeFifo(join(dir, 'exit'));
      assert.equal(await readExitRecord(dir), undefined, 'a FIFO');
      await rm(join(dir, 'exit'));
      await writeFile(join(dir, 'elsewhere'), 'exit 0\n');
      await symlink(join(dir, 'elsewhere'), join(dir, 'exit'));
      assert.equal(await readExitRecord(dir), undefined, 'a link');
      await rm(join(dir, 'exit'));
      await writeFile(join(dir, 'exit'), `exit 0 ${'x'.repeat(70_000)}\n`);
      assert.equal(await readExitRecord(dir), undefined, 'far longer than any record');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('the wrapper on a full disk', () => {
  let disk: SmallDisk;
  let scratch: string;
  let spawner: SpawnerClient;
  before(async () => {
    disk = await mountSmallDisk('2m');
    scratch = await mkdtemp(join(tmpdir(), 'jw-exit-record-'));
    spawner = new SpawnerClient({ path: spawnerPath(), log: () => {} });
  });
  after(async () => {
    spawner.close();
    await disk.free();
    await disk.destroy();
    await rm(scratch, { recursive: true, force: true });
  });

  it('waits for space to record how the job ended, and records when it really ended', async () => {
    const fifo = join(scratch, 'release');
    await makeFifo(fifo);
    const dir = await mkdtemp(join(disk.dir, 'job-'));
    const spec = normalizeSpec(
      { command: 'sh', args: ['-c', `echo ready; read line < ${fifo}; exit 3`] },
      { cwd: dir },
    );
    const reply = await spawner.start(jobSpawnRequest(spec, 'job', dir, []));
    assert.equal(reply.kind, 'started');
    if (reply.kind !== 'started') return;
    let wrapperEnded = false;
    const exited = reply.exited.then(() => {
      wrapperEnded = true;
    });
    await waitForFileText(join(dir, 'stdout'), 'ready\n');

    await disk.fill();
    let triedAt: Date;
    const releasedAt = new Date();
    try {
      const tried = whenWrapperTriesToRecord(dir);
      await writeFile(fifo, 'go\n');
      await tried;
      triedAt = new Date();
      assert.equal(await readExitRecord(dir), undefined, 'nothing could be written');
      assert.equal(wrapperEnded, false, 'the wrapper did not give up');
    } finally {
      await disk.free();
    }
    await exited;
    const record = await readExitRecord(dir);
    assert.equal(record?.kind === 'exited' && record.code, 3);
    assert.equal(record?.late, true);
    assert.ok(
      releasedAt.getTime() <= record.at.getTime() && record.at <= triedAt!,
      `ended at ${record.at.toISOString()}, between ${releasedAt.toISOString()} and ${triedAt!.toISOString()}`,
    );
  });
});
