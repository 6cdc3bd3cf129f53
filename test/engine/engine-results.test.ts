import assert from 'node:assert/strict';
import { once } from 'node:events';
import { chown, lstat, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Job } from '../../src/core/job.ts';
import { type Logger, silentLogger } from '../../src/core/logger.ts';
import { resolveEngineOptions } from '../../src/engine/engine-options.ts';
import { RESULT_MAX_BYTES } from '../../src/runtime/job-io.ts';
import { type Harness, openHarness } from '../helpers/engine-harness.ts';

const me = { user: 'tester' };

describe('engine: job results (JOBWORKER_RESULT)', () => {
  let h: Harness;
  before(async () => {
    h = await openHarness();
  });
  after(() => h.destroy());

  const run = async (script: string): Promise<Job> => {
    const job = await h.engine.start({ command: script, shell: true }, me);
    return h.engine.waitFor(job.id);
  };

  it('keeps the JSON value a job wrote as its own text, without the whitespace around it, and removes the job io directory', async () => {
    const done = await run(`printf '\\n {"answer": 42, "list": [1, 2]}\\n\\n' > "$JOBWORKER_RESULT"`);
    assert.equal(done.status, 'succeeded');
    assert.equal(done.resultError, null);
    assert.equal(await h.engine.result(done.id), '{"answer": 42, "list": [1, 2]}');
    await assert.rejects(lstat(h.engine.ioPaths(done.id).dir), { code: 'ENOENT' });
  });

  it('keeps numbers exactly as written: an integer above 2^53 is not rounded, 1.0 stays 1.0', async () => {
    const text = '{"n": 4611686018427387904, "x": 1.0, "id": 12345678901234567890, "e": 1E400}';
    const done = await run(`printf '%s\\n' '${text}' > "$JOBWORKER_RESULT"`);
    assert.equal(done.resultError, null);
    assert.equal(await h.engine.result(done.id), text);
  });

  it('trims only the whitespace JSON allows: a no-break space around the value is text that is not JSON', async () => {
    const done = await run(`printf '\\302\\24042' > "$JOBWORKER_RESULT"`);
    assert.match(done.resultError ?? '', /not valid JSON/);
    assert.equal(await h.engine.result(done.id), undefined);
  });

  it('gives each job its own paths, in a directory only it may write', async () => {
    const done = await run(
      'echo "$JOBWORKER_RESULT $JOBWORKER_PROGRESS"; stat -c %a "$(dirname "$JOBWORKER_RESULT")"',
    );
    const paths = h.engine.ioPaths(done.id);
    const { readOutput } = h.engine;
    const out = await readOutput.call(h.engine, done.id, { selector: 'stdout', cursor: 0, limitBytes: 4096 });
    const text = out.events.map((e) => (e.type === 'data' ? e.data.toString() : '')).join('');
    assert.equal(text, `${paths.result} ${paths.progress}\n700\n`);
  });

  it('a job that writes none has no result and no error', async () => {
    const done = await run('true');
    assert.equal(await h.engine.result(done.id), undefined);
    assert.equal(done.resultError, null);
  });

  it('a result over 1 MiB is an error on the job, not a crash', async () => {
    const done = await run(`head -c ${RESULT_MAX_BYTES + 10} /dev/zero | tr '\\0' 1 > "$JOBWORKER_RESULT"`);
    assert.equal(done.status, 'succeeded');
    assert.match(done.resultError ?? '', /larger than 1048576 bytes/);
    assert.equal(await h.engine.result(done.id), undefined);
  });

  it('text that is not JSON is an error naming why', async () => {
    const done = await run(`printf 'not json' > "$JOBWORKER_RESULT"`);
    assert.match(done.resultError ?? '', /not valid JSON/);
  });

  it('a symlink the job planted is not followed', async () => {
    const secret = join(h.dataDir, 'secret.json');
    await writeFile(secret, '{"secret": true}');
    const done = await run(`ln -s ${secret} "$JOBWORKER_RESULT"`);
    assert.match(done.resultError ?? '', /symbolic link/);
    assert.equal(await h.engine.result(done.id), undefined);
  });

  it('a FIFO is refused without blocking the server', async () => {
    const done = await run('mkfifo "$JOBWORKER_RESULT"');
    assert.match(done.resultError ?? '', /not a regular file/);
  });
});

describe('engine: job progress (JOBWORKER_PROGRESS)', () => {
  let h: Harness;
  before(async () => {
    h = await openHarness();
  });
  after(() => h.destroy());

  it('records the latest valid line and tells listeners as it is written', async () => {
    const go = join(h.dataDir, 'go');
    const script = [
      `echo '{"done": 1, "total": 10}' >> "$JOBWORKER_PROGRESS"`,
      `echo '{"done": 3, "total": 10, "message": "step 3"}' >> "$JOBWORKER_PROGRESS"`,
      `echo 'not json' >> "$JOBWORKER_PROGRESS"`,
      `while [ ! -e ${go} ]; do sleep 0.02; done`,
      `echo '{"done": 10, "total": 10, "message": "done"}' >> "$JOBWORKER_PROGRESS"`,
    ].join('\n');
    const seen: Job[] = [];
    const third = new Promise<Job>((resolve) => {
      const listener = (job: Job) => {
        seen.push(job);
        if (job.progress?.done === 3) {
          h.engine.off('job:progress', listener);
          resolve(job);
        }
      };
      h.engine.on('job:progress', listener);
    });
    const job = await h.engine.start({ command: script, shell: true }, me);
    const reported = await third;
    assert.equal(reported.id, job.id);
    assert.deepEqual(
      { ...reported.progress, at: undefined },
      { done: 3, total: 10, message: 'step 3', at: undefined },
    );
    assert.equal(
      (await h.engine.get(job.id)).progress?.message,
      'step 3',
      'the latest valid line is on the job',
    );
    const last = once(h.engine, 'job:progress');
    await writeFile(go, '');
    const [final] = (await last) as [Job];
    assert.equal(final.progress?.done, 10);
    const done = await h.engine.waitFor(job.id);
    assert.deepEqual(done.progress && { done: done.progress.done, message: done.progress.message }, {
      done: 10,
      message: 'done',
    });
  });

  it('a job that writes progress and ends at once still has it recorded', async () => {
    const job = await h.engine.start(
      { command: `echo '{"done": 5}' > "$JOBWORKER_PROGRESS"`, shell: true },
      me,
    );
    const done = await h.engine.waitFor(job.id);
    assert.deepEqual(done.progress && { done: done.progress.done, total: done.progress.total }, {
      done: 5,
      total: null,
    });
  });
});

describe('engine: a last progress line without a newline', () => {
  let h: Harness;
  before(async () => {
    h = await openHarness();
  });
  after(() => h.destroy());

  it('is recorded with the end of the job: nothing is coming to end it', async () => {
    const job = await h.engine.start(
      { command: `printf '{"done": 5, "total": 5}' > "$JOBWORKER_PROGRESS"`, shell: true },
      me,
    );
    const done = await h.engine.waitFor(job.id);
    assert.deepEqual(done.progress && { done: done.progress.done, total: done.progress.total }, {
      done: 5,
      total: 5,
    });
  });

  it('read while the job ran, it waits for the end (the job may still be writing it), and counts then', async () => {
    const go = join(h.dataDir, 'go-unended');
    // Listening before the start: this is the only job of this engine that reports now.
    const reported = once(h.engine, 'job:progress') as Promise<[Job]>;
    const job = await h.engine.start(
      {
        command: [
          `printf '{"done": 1}\\n{"done": 2}' >> "$JOBWORKER_PROGRESS"`,
          `while [ ! -e ${go} ]; do sleep 0.02; done`,
        ].join('\n'),
        shell: true,
      },
      me,
    );
    // One write: the read that reports its first line read the unended second with it.
    const [first] = await reported;
    assert.equal(first.id, job.id);
    assert.equal(first.progress?.done, 1, 'a line without its newline may be unfinished: not yet');
    await writeFile(go, '');
    const done = await h.engine.waitFor(job.id);
    assert.equal(done.progress?.done, 2);
  });
});

describe('engine: results and progress across a restart, and deletion', () => {
  it('a job adopted by a new engine still leaves its result and progress; deleting the job deletes them', async () => {
    const h = await openHarness();
    const go = join(h.dataDir, 'go');
    const job = await h.engine.start(
      {
        command: [
          `echo '{"done": 1}' >> "$JOBWORKER_PROGRESS"`,
          `while [ ! -e ${go} ]; do sleep 0.02; done`,
          `echo '{"done": 2, "total": 2}' >> "$JOBWORKER_PROGRESS"`,
          `echo '["after", "restart"]' > "$JOBWORKER_RESULT"`,
        ].join('\n'),
        shell: true,
      },
      me,
    );
    await h.engine.untilStarted(job.id);
    await h.close();
    const again = await h.reopen();
    try {
      assert.equal((await again.engine.get(job.id)).status, 'running', 'adopted');
      await writeFile(go, '');
      const done = await again.engine.waitFor(job.id);
      assert.equal(done.status, 'succeeded');
      assert.equal(await again.engine.result(job.id), '["after", "restart"]');
      assert.equal(done.progress?.done, 2);
      await again.engine.delete(job.id);
      assert.equal(await again.engine.result(job.id), undefined, 'gone with its job');
    } finally {
      await again.destroy();
    }
  });
});

describe('engine: a default io directory another account made first', {
  skip: process.getuid?.() === 0 ? false : 'making a directory of another account takes root',
}, () => {
  it('does not stop it from starting: its jobs get a fresh one beside it, and their results', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'jw-engine-'));
    // A local account works out the name (the data directory's hash, in the temp directory) and
    // makes it before the server starts.
    const taken = resolveEngineOptions({ dataDir, store: undefined as never }).ioDir.replace(/\/$/, '');
    await mkdir(taken, { mode: 0o777 });
    await chown(taken, 65534, 65534);
    const warnings: string[] = [];
    const logger: Logger = {
      ...silentLogger,
      warn: (_fields: object, message: string) => {
        warnings.push(message);
      },
    };
    const h = await openHarness({ logger }, dataDir);
    let used = '';
    try {
      const job = await h.engine.start(
        { command: `echo "$JOBWORKER_RESULT"; printf '{"ok": true}' > "$JOBWORKER_RESULT"`, shell: true },
        me,
      );
      const done = await h.engine.waitFor(job.id);
      assert.equal(done.status, 'succeeded', done.exit?.reason ?? '');
      assert.equal(await h.engine.result(done.id), '{"ok": true}');
      used = dirname(dirname(h.engine.ioPaths(done.id).result));
      assert.ok(used.startsWith(`${taken}-`), used);
      assert.ok(
        warnings.some((w) => w.includes(taken) && w.includes(used)),
        warnings.join('\n'),
      );
    } finally {
      await h.destroy();
      await rm(taken, { recursive: true, force: true });
      if (used) await rm(used, { recursive: true, force: true });
    }
  });
});
