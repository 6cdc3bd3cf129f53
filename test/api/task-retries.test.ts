import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Principal } from '../../src/auth/principal.ts';
import type { Job } from '../../src/core/job.ts';
import type { JobService } from '../../src/service/job-service.ts';
import { TaskService } from '../../src/service/task-service.ts';
import { type Harness, openHarness } from '../helpers/engine-harness.ts';
import { type AppHarness, openApp } from '../helpers/rest-app-harness.ts';

const admin: Principal = { user: 'root', role: 'admin' };

/**
 * `flaky`: its first attempt fails (exit 3); its second, once `{mark}.go` exists, leaves 42 as its
 * result (and runs until stopped while it does not). `{mark}` tells the attempts apart.
 */
const TASKS = {
  tasks: {
    flaky: {
      command: [
        '/bin/sh',
        '-c',
        'if [ ! -e "$1" ]; then touch "$1"; echo first >&2; exit 3; fi; ' +
          'while [ ! -e "$1.go" ]; do sleep 0.02; done; echo 42 > "$JOBWORKER_RESULT"',
        'flaky',
        '{mark}',
      ],
      params: { mark: { type: 'string' } },
      retry: { attempts: 2, backoff: { initialMs: 0 } },
    },
  },
};

interface TaskStatus {
  id: string;
  task: string | null;
  status: string;
}

describe('a named task retried by its `retry`: the id the client holds stands for its latest attempt', () => {
  let h: Harness;
  let a: AppHarness;
  let dir = '';
  let token = '';
  let runs = 0;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'jw-task-retries-'));
    await writeFile(join(dir, 'tasks.json'), JSON.stringify(TASKS));
    h = await openHarness();
    a = await openApp(h, { tasksFile: join(dir, 'tasks.json') });
    token = await a.issue('root', 'admin');
  });
  after(async () => {
    await a.close();
    await h.destroy();
    await rm(dir, { recursive: true, force: true });
  });

  const inject = (method: 'GET' | 'POST', url: string) =>
    a.app.inject({ method, url, headers: { authorization: `Bearer ${token}` } });

  /** Starts a run of `flaky` and waits for its first attempt to fail: its id, its retry's, and its mark. */
  async function failedOnce(): Promise<{ id: string; retry: string; mark: string }> {
    const mark = join(dir, `run-${++runs}`);
    const started = await inject('POST', `/start/flaky?mark=${encodeURIComponent(mark)}`);
    assert.equal(started.statusCode, 201, started.body);
    const id = (started.json() as TaskStatus).id;
    const first = await h.engine.waitFor(id);
    assert.equal(first.status, 'failed');
    assert.ok(first.retriedAs, 'retried');
    return { id, retry: first.retriedAs, mark };
  }

  it('/status and /result of the held id answer for the retry, and its result once it succeeds; GET /v1/jobs/{id}/result too', async () => {
    const { id, retry, mark } = await failedOnce();
    const status = await inject('GET', `/status?id=${id}`);
    assert.equal(status.statusCode, 200);
    assert.equal(status.json().id, id, 'the id the client holds');
    assert.ok(['queued', 'running'].includes(status.json().status), status.body);
    const early = await inject('GET', `/result?id=${id}`);
    assert.equal(early.statusCode, 409, early.body);
    assert.equal(early.json().error.code, 'NOT_FINISHED');
    const earlyV1 = await inject('GET', `/v1/jobs/${id}/result`);
    assert.equal(earlyV1.statusCode, 409, earlyV1.body);

    await writeFile(`${mark}.go`, '');
    assert.equal((await h.engine.waitFor(retry)).status, 'succeeded');
    const result = await inject('GET', `/result?id=${id}`);
    assert.equal(result.statusCode, 200, result.body);
    assert.deepEqual(result.json(), { id, task: 'flaky', status: 'succeeded', result: 42 });
    const v1 = await inject('GET', `/v1/jobs/${id}/result`);
    assert.equal(v1.statusCode, 200, v1.body);
    assert.equal(v1.body, '42');
    assert.equal((await inject('GET', `/status?id=${id}`)).json().status, 'succeeded');
    // The job itself stays the one attempt's record.
    const job = (await inject('GET', `/v1/jobs/${id}`)).json();
    assert.deepEqual([job.status, job.retriedAs], ['failed', retry]);
  });

  it('/cancel of the held id stops the retry; its /status says so', async () => {
    const { id, retry } = await failedOnce();
    const cancel = await inject('POST', `/cancel?id=${id}`);
    assert.equal(cancel.statusCode, 200, cancel.body);
    assert.equal(cancel.json().id, id);
    const ended = await h.engine.waitFor(retry);
    assert.ok(['cancelled', 'stopped'].includes(ended.status), ended.status);
    assert.equal(ended.retriedAs, null);
    assert.equal((await inject('GET', `/status?id=${id}`)).json().status, ended.status);
    const again = await inject('POST', `/cancel?id=${id}`);
    assert.equal(again.statusCode, 409, again.body);
    assert.equal(again.json().error.code, 'ALREADY_FINISHED');
  });

  it('a cancel that reaches an attempt just as it ended and was retried goes on to the retry', async () => {
    const { id, retry } = await failedOnce();
    // The attempt as a read just before its end saw it: running, not retried yet.
    const stale: Job = { ...(await h.engine.get(id)), status: 'running', retriedAs: null };
    let reads = 0;
    const jobs = new Proxy(a.service, {
      get(real, key) {
        if (key === 'latest') {
          return (who: Principal, asked: string) =>
            reads++ === 0 ? Promise.resolve(stale) : real.latest(who, asked);
        }
        const value = Reflect.get(real, key, real) as unknown;
        return typeof value === 'function' ? value.bind(real) : value;
      },
    }) as JobService;
    const tasks = await TaskService.open(jobs, { setQueue: (name) => a.service.queue(name) });
    const stopped = await tasks.cancel(admin, id);
    assert.equal(stopped.id, retry);
    assert.equal(reads, 2, 'read again after the stop found the attempt ended');
    const ended = await h.engine.waitFor(retry);
    assert.ok(['cancelled', 'stopped'].includes(ended.status), ended.status);
  });
});
