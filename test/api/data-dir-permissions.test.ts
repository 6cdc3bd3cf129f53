import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { PassThrough } from 'node:stream';
import { after, describe, it } from 'node:test';
import { runServer } from '../../src/main.ts';

const dirs: string[] = [];
after(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true, maxRetries: 10 });
});

const modeOf = async (path: string) => ((await stat(path)).mode & 0o777).toString(8);

/**
 * Starts a server on `dataDir`, runs `whileUp` (the WAL files exist only while it runs), closes
 * it, and returns its log lines.
 */
async function startAndClose(
  dataDir: string,
  whileUp: () => Promise<void> = async () => {},
): Promise<Record<string, unknown>[]> {
  const lines: Record<string, unknown>[] = [];
  const logStream = new PassThrough();
  logStream.on('data', (chunk: Buffer) => {
    for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) lines.push(JSON.parse(line));
  });
  const server = await runServer({ listen: '127.0.0.1:0', dataDir, logStream });
  try {
    await whileUp();
  } finally {
    await server.close();
  }
  return lines;
}

const OWNER_ONLY_FILES = [
  'jobworker.db',
  'jobworker.db-wal',
  'jobworker.db-shm',
  'admin.token',
  'server.lock',
];

describe('data directory permissions', () => {
  it('defect 9: a 0755 data directory with a 0644 database is made owner-only at start, with a warning naming both', async () => {
    const parent = await mkdtemp(join(tmpdir(), 'jw-perm-'));
    dirs.push(parent);
    const dataDir = join(parent, 'data');
    await mkdir(dataDir, { mode: 0o755 });
    await chmod(dataDir, 0o755);
    // A database of its own (an empty file beside job directories is a lost one: lost-database.ts).
    const database = new DatabaseSync(join(dataDir, 'jobworker.db'));
    database.exec('pragma journal_mode = wal');
    database.close();
    await chmod(join(dataDir, 'jobworker.db'), 0o644);
    // A jobs/ directory made by an earlier version (0755) is walked all the way down.
    const jobDir = join(dataDir, 'jobs', 'some-job');
    await mkdir(jobDir, { recursive: true, mode: 0o755 });
    await chmod(join(dataDir, 'jobs'), 0o755);
    await writeFile(join(jobDir, 'stdout'), 'secret output\n', { mode: 0o644 });

    const lines = await startAndClose(dataDir, async () => {
      assert.equal(await modeOf(dataDir), '700');
      for (const name of OWNER_ONLY_FILES) assert.equal(await modeOf(join(dataDir, name)), '600', name);
      assert.equal(await modeOf(join(dataDir, 'jobs')), '700');
      assert.equal(await modeOf(jobDir), '700');
      assert.equal(await modeOf(join(jobDir, 'stdout')), '600');
    });
    const warnings = lines.filter((line) => line.level === 40);
    assert.equal(warnings.length, 1, JSON.stringify(lines));
    const msg = String(warnings[0]!.msg);
    assert.match(msg, /made owner-only/);
    assert.ok(msg.includes(`${dataDir} (0755)`), msg);
    assert.ok(msg.includes(`${join(dataDir, 'jobworker.db')} (0644)`), msg);
    assert.equal(warnings[0]!.fixed, 5);

    assert.deepEqual(
      (await startAndClose(dataDir)).filter((line) => line.level === 40),
      [],
      'nothing to fix the second time',
    );
  });

  it('defect 9: a new data directory is owner-only from the start, with no warning, whatever the umask', async () => {
    const parent = await mkdtemp(join(tmpdir(), 'jw-perm-'));
    dirs.push(parent);
    const dataDir = join(parent, 'data');
    const umask = process.umask(0o022);
    let lines: Record<string, unknown>[];
    try {
      lines = await startAndClose(dataDir, async () => {
        assert.equal(await modeOf(dataDir), '700');
        for (const name of OWNER_ONLY_FILES) assert.equal(await modeOf(join(dataDir, name)), '600', name);
        assert.equal(await modeOf(join(dataDir, 'jobs')), '700');
      });
    } finally {
      process.umask(umask);
    }
    assert.deepEqual(
      lines.filter((line) => line.level === 40),
      [],
    );
  });
});
