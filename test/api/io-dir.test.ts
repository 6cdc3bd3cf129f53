import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { readServerConfig } from '../../src/config.ts';
import { ValidationError } from '../../src/core/errors.ts';
import { resolveEngineOptions } from '../../src/engine/engine-options.ts';
import { runServer } from '../../src/main.ts';
import { LOCK_FILE } from '../../src/runtime/data-dir-lock.ts';
import { openApi, startJob } from './api-harness.ts';

describe('serve --io-dir', () => {
  const dirs: string[] = [];
  after(() => Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true }))));

  it("makes each job's io directory where it says, and a result left there is the job's", async () => {
    const parent = await mkdtemp(join(tmpdir(), 'jw-iodir-'));
    dirs.push(parent);
    const ioDir = join(parent, 'io');
    const h = await openApi(undefined, { ioDir });
    try {
      const made = await stat(ioDir);
      assert.deepEqual([made.isDirectory(), made.mode & 0o7777], [true, 0o711], 'made at the start, 0711');
      const job = await startJob(h, {
        command: 'sh',
        args: ['-c', 'printf %s "$JOBWORKER_RESULT"; printf \'{"rows":3}\' > "$JOBWORKER_RESULT"'],
      });
      const printed = await (await h.api(`/v1/jobs/${job.id}/output?follow=true`)).text();
      assert.equal(printed, join(ioDir, job.id, 'result.json'));
      const result = await h.json<unknown>(`/v1/jobs/${job.id}/result`);
      assert.deepEqual([result.status, result.body], [200, { rows: 3 }]);
    } finally {
      await h.destroy();
    }
  });

  it('refuses a second server given the io directory of a running one, and lets it have it once that one closed', async () => {
    const parent = await mkdtemp(join(tmpdir(), 'jw-iodir-'));
    dirs.push(parent);
    const ioDir = join(parent, 'io');
    const otherData = join(parent, 'other-data');
    const h = await openApi(undefined, { ioDir });
    try {
      const second = {
        listen: '127.0.0.1:0',
        dataDir: otherData,
        insecureHttp: true,
        logLevel: 'silent' as const,
      };
      // A server that starts all the same is closed at once: the test fails, and does not hang.
      const refused = await runServer({ ...second, ioDir }).then(
        (server) => server.close(),
        (err: unknown) => err,
      );
      assert.ok(refused instanceof ValidationError, 'refused');
      assert.equal(refused.field, 'ioDir');
      assert.match(
        refused.message,
        new RegExp(
          `^Another jobworker server or Worker \\(pid ${process.pid}\\) already uses ${ioDir}; stop it first or choose another --io-dir`,
        ),
      );
      // Refused whole: its data directory is free again.
      await (await runServer(second)).close();
      // Its lock files are the server's alone, and the sweep of left io directories leaves them.
      const lock = await stat(join(ioDir, LOCK_FILE));
      assert.equal(lock.mode & 0o777, 0o600);
      await h.server.close();
      const taken = await runServer({ ...second, ioDir });
      try {
        assert.equal(
          (await stat(join(ioDir, LOCK_FILE))).ino,
          lock.ino,
          'the same lock file, never replaced',
        );
      } finally {
        await taken.close();
      }
    } finally {
      await h.destroy();
    }
  });

  it('refuses a server given the default io directory of a running one', async () => {
    const h = await openApi();
    try {
      const theirs = resolveEngineOptions({ dataDir: h.dataDir, store: undefined as never }).ioDir.replace(
        /\/$/,
        '',
      );
      const dataDir = await mkdtemp(join(tmpdir(), 'jw-iodir-'));
      dirs.push(dataDir);
      const refused = await runServer({
        listen: '127.0.0.1:0',
        dataDir,
        insecureHttp: true,
        ioDir: theirs,
      }).then(
        (server) => server.close(),
        (err: unknown) => err,
      );
      assert.ok(refused instanceof ValidationError, 'refused');
      assert.deepEqual([refused.field, refused.message.includes(`already uses ${theirs};`)], ['ioDir', true]);
    } finally {
      await h.destroy();
    }
  });

  it('is read from JOBWORKER_IO_DIR, and unset (or empty) leaves the default', () => {
    assert.equal(readServerConfig({ JOBWORKER_IO_DIR: '/srv/jobworker-io' }).ioDir, '/srv/jobworker-io');
    assert.equal(readServerConfig({}).ioDir, undefined);
    assert.equal(readServerConfig({ JOBWORKER_IO_DIR: '' }).ioDir, undefined);
  });

  it('refuses one inside the data directory, which job accounts cannot enter', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'jw-iodir-data-'));
    dirs.push(dataDir);
    await assert.rejects(
      runServer({ listen: '127.0.0.1:0', dataDir, insecureHttp: true, ioDir: join(dataDir, 'io') }),
      (err: Error & { field?: string }) =>
        err.field === 'ioDir' && err.message.includes('outside the data directory'),
    );
    // A name that starts with `..` is still inside it; so is the data directory itself. An empty
    // path (the working directory, once resolved) is no directory at all.
    for (const ioDir of [join(dataDir, '..io'), dataDir, '']) {
      await assert.rejects(runServer({ listen: '127.0.0.1:0', dataDir, insecureHttp: true, ioDir }), {
        field: 'ioDir',
      });
    }
  });
});
