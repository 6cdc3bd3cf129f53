import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, describe, it } from 'node:test';
import { runServer } from '../../src/main.ts';
import { HOLDER_FILE, LOCK_FILE, lockDataDir } from '../../src/runtime/data-dir-lock.ts';
import { openApi } from './api-harness.ts';

const RACER = new URL('../fixtures/lock-racer.ts', import.meta.url).pathname;
const scratch = await mkdtemp(join(tmpdir(), 'jw-lock-'));
after(() => rm(scratch, { recursive: true, force: true }));

/** A lock-racer process: `send` a line, `next()` its next answer. */
function racer(): {
  child: ChildProcess;
  send(line: string): void;
  next(): Promise<Record<string, unknown>>;
} {
  const child = spawn(process.execPath, [RACER], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  return {
    child,
    send: (line) => child.stdin!.write(`${line}\n`),
    next: async () => {
      const { value, done } = await lines.next();
      if (done) throw new Error('the racer exited');
      return JSON.parse(value as string) as Record<string, unknown>;
    },
  };
}

describe('one server per data directory', () => {
  it('refuses a second server on a data directory in use, and takes it once the first has closed', async () => {
    const h = await openApi();
    try {
      await assert.rejects(runServer({ listen: '127.0.0.1:0', dataDir: h.dataDir, logLevel: 'silent' }), {
        code: 'VALIDATION_FAILED',
        field: 'dataDir',
        message: new RegExp(`Another jobworker server or Worker \\(pid ${process.pid}\\) already uses`),
      });
      assert.equal((await h.json('/healthz')).status, 200, 'the first server is untouched');
      await h.server.close();
      h.server = await runServer({ listen: '127.0.0.1:0', dataDir: h.dataDir, logLevel: 'silent' });
      assert.equal((await h.json('/healthz')).status, 200);
    } finally {
      await h.destroy();
    }
  });

  it('defect 5: two servers racing for one data directory: exactly one wins, 50 times', async () => {
    const racers = [racer(), racer()];
    try {
      for (const r of racers) assert.deepEqual(await r.next(), { ready: true });
      for (let round = 0; round < 50; round++) {
        const dir = join(scratch, `race-${round}`);
        await mkdir(dir);
        for (const r of racers) r.send(`lock ${dir}`);
        const answers = await Promise.all(racers.map((r) => r.next()));
        const winners = answers.filter((a) => a.locked === true);
        assert.equal(winners.length, 1, `round ${round}: ${JSON.stringify(answers)}`);
        const loser = answers.find((a) => a.locked === false);
        assert.match(String(loser?.message), /Another jobworker server .*already uses/);
        const winner = racers[answers.indexOf(winners[0]!)]!;
        winner.send(`release ${dir}`);
        assert.deepEqual(await winner.next(), { dir, released: true });
      }
    } finally {
      for (const r of racers) r.child.kill('SIGKILL');
    }
  });

  it('a second claim in the holding process is refused without loosening the lock for other processes', async () => {
    // POSIX fcntl locks belong to the process: closing any descriptor of the lock file, as a
    // second claim that opened it would, drops them all, and another process could then take it.
    const dir = join(scratch, 'same-process');
    await mkdir(dir);
    const lock = await lockDataDir(dir);
    const other = racer();
    try {
      assert.deepEqual(await other.next(), { ready: true });
      for (const spelling of [dir, `${dir}/`, join(dir, '.', '..', 'same-process')]) {
        await assert.rejects(lockDataDir(spelling), {
          field: 'dataDir',
          message: new RegExp(`\\(pid ${process.pid}\\) already uses`),
        });
      }
      other.send(`lock ${dir}`);
      const answer = await other.next();
      assert.equal(answer.locked, false, `another process took the lock: ${JSON.stringify(answer)}`);
      await lock.release();
      other.send(`lock ${dir}`);
      assert.equal((await other.next()).locked, true, 'free once released');
    } finally {
      await lock.release();
      other.child.kill('SIGKILL');
    }
  });

  it('defect 5: the lock of a holder that died is free at once, and a lock file of an earlier version is taken over', async () => {
    const dir = join(scratch, 'died');
    await mkdir(dir);
    const holder = racer();
    assert.deepEqual(await holder.next(), { ready: true });
    holder.send(`lock ${dir}`);
    assert.equal((await holder.next()).locked, true);
    const { pid } = JSON.parse(await readFile(join(dir, HOLDER_FILE), 'utf8')) as { pid: number };
    assert.equal(pid, holder.child.pid, 'the holder file names the holder');
    await assert.rejects(runServer({ listen: '127.0.0.1:0', dataDir: dir, logLevel: 'silent' }), {
      message: new RegExp(`\\(pid ${pid}\\) already uses`),
    });
    holder.child.kill('SIGKILL');
    await once(holder.child, 'exit');
    let server = await runServer({ listen: '127.0.0.1:0', dataDir: dir, logLevel: 'silent' });
    await server.close();

    // Earlier versions wrote the holder's identity into server.lock itself; a dead one's is taken over.
    await writeFile(join(dir, LOCK_FILE), JSON.stringify({ pid: process.pid, startTicks: 1, bootId: 'x' }));
    server = await runServer({ listen: '127.0.0.1:0', dataDir: dir, logLevel: 'silent' });
    await server.close();
  });
});
