import assert from 'node:assert/strict';
import { chmod, copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createClient } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import { JobService } from '../../src/api/rpc/gen/jobworker/v1/job_service_pb.ts';
import { type ApiHarness, addUserToken, type JobJson, openApi, readSse } from './api-harness.ts';

const EXAMPLES = new URL('../../examples/tasks/', import.meta.url).pathname;

interface ErrorJson {
  error: { code: string; message: string; field?: string };
}
type Job = JobJson & {
  queue: string;
  account: { name: string; uid: number; gid: number } | null;
  task: string | null;
  params: Record<string, unknown> | null;
  resultError: string | null;
  progress: { done: number; total: number | null; message: string | null } | null;
};
interface TaskStatus {
  id: string;
  task: string | null;
  status: string;
  progress: { done: number; total: number | null; message: string | null } | null;
}

/** The job once it has ended: its output followed to its end, then the job. */
async function finished(h: ApiHarness, id: string, headers: Record<string, string> = {}): Promise<Job> {
  await (await h.api(`/v1/jobs/${id}/output?follow=true`, { headers })).arrayBuffer();
  const { status, body } = await h.json<Job>(`/v1/jobs/${id}`, { headers });
  assert.equal(status, 200, JSON.stringify(body));
  return body;
}

/** Resolves once a job wrote its first output (so it is running), without waiting for its end. */
async function firstOutput(h: ApiHarness, id: string, headers: Record<string, string>): Promise<void> {
  const controller = new AbortController();
  const res = await h.api(`/v1/jobs/${id}/output?follow=true`, { headers, signal: controller.signal });
  const reader = res.body!.getReader();
  await reader.read();
  controller.abort();
  await reader.cancel().catch(() => undefined);
}

describe('REST API: named tasks, results and the async task manager interface', () => {
  let h: ApiHarness;
  let dir = '';
  let tasksFile = '';
  let alice = '';
  let viewer = '';
  const asAlice = () => ({ authorization: `Bearer ${alice}` });
  before(async () => {
    // A copy of the shipped example, so that the reload tests may change it.
    dir = await mkdtemp(join(tmpdir(), 'jw-tasks-'));
    for (const file of ['tasks.yaml', 'power_sim.sh', 'failing_sim.sh']) {
      await copyFile(join(EXAMPLES, file), join(dir, file));
    }
    // Its jobs run as alice's OS account, which must be able to enter it.
    await chmod(dir, 0o755);
    tasksFile = join(dir, 'tasks.yaml');
    // An environment for power_sim's runs, as a tasks file may give one a secret.
    const text = await readFile(tasksFile, 'utf8');
    await writeFile(
      tasksFile,
      text.replace('    queue: sims\n', '    queue: sims\n    env: { SIM_TOKEN: s3cret }\n'),
    );
    h = await openApi(undefined, { tasks: tasksFile });
    alice = await addUserToken(h, 'alice');
    viewer = await addUserToken(h, 'vera', 'viewer');
  });
  after(async () => {
    await h.destroy();
    await rm(dir, { recursive: true, force: true });
  });

  it('GET /v1/tasks lists the definitions with their parameter schemas', async () => {
    const { status, body } = await h.json<{ tasks: Array<Record<string, unknown>> }>('/v1/tasks', {
      headers: asAlice(),
    });
    assert.equal(status, 200);
    assert.deepEqual(
      body.tasks.map((t) => t.name),
      ['failing_sim', 'power_sim'],
    );
    const power = body.tasks.find((t) => t.name === 'power_sim');
    assert.deepEqual(power?.params, {
      a: { type: 'integer', description: 'the base' },
      b: { type: 'integer', minimum: 0, maximum: 62, description: 'the exponent (steps)' },
      delay_seconds: { type: 'number', minimum: 0, default: 5 },
    });
    assert.equal(power?.queue, 'sims');
    assert.equal(power?.cwd, dir, 'a relative cwd is relative to the tasks file');
  });

  it("GET /v1/tasks shows a task's environment to admins only", async () => {
    const listed = async (headers: Record<string, string>) =>
      (await h.json<{ tasks: Array<Record<string, unknown>> }>('/v1/tasks', { headers })).body.tasks.find(
        (t) => t.name === 'power_sim',
      );
    assert.deepEqual((await listed({}))?.env, { SIM_TOKEN: 's3cret' }, "the admin's");
    for (const headers of [asAlice(), { authorization: `Bearer ${viewer}` }]) {
      const task = await listed(headers);
      assert.equal(task?.name, 'power_sim');
      assert.equal('env' in (task ?? {}), false, JSON.stringify(task));
    }
  });

  it('POST /v1/tasks/{name}/runs starts a job linked to the task; its result and progress come back', async () => {
    const { status, body } = await h.json<Job>('/v1/tasks/power_sim/runs', {
      body: { a: 3, b: 4, delay_seconds: 0 },
      headers: asAlice(),
    });
    assert.equal(status, 201, JSON.stringify(body));
    assert.equal(body.task, 'power_sim');
    assert.deepEqual(body.params, { a: 3, b: 4, delay_seconds: 0 });
    assert.equal(body.owner, 'alice');
    assert.equal(body.queue, 'sims');
    assert.deepEqual([body.command, ...body.args], ['/bin/sh', './power_sim.sh', '3', '4', '0']);
    const done = await finished(h, body.id, asAlice());
    assert.equal(done.status, 'succeeded');
    assert.equal(done.resultError, null);
    assert.deepEqual(done.progress && { done: done.progress.done, total: done.progress.total }, {
      done: 4,
      total: 4,
    });
    // The job ran as alice's own OS account, and wrote its result where only it could.
    assert.notEqual(done.account?.uid, 0);
    const result = await h.api(`/v1/jobs/${body.id}/result`, { headers: asAlice() });
    assert.equal(result.status, 200);
    assert.equal(await result.text(), '81');
    const plain = await h.json<Job>('/v1/jobs', { body: { command: 'true' }, headers: asAlice() });
    assert.equal(plain.body.task, null, 'a plain job has no task');
    assert.equal(plain.body.params, null);
  });

  it("a result's numbers come back exactly as the job wrote them: REST v1 and /result?id= send its own text", async () => {
    // 2^62 is above 2^53: parsed and written again, it came back as 4611686018427388000.
    const run = await h.json<Job>('/v1/tasks/power_sim/runs', {
      body: { a: 2, b: 62, delay_seconds: 0 },
      headers: asAlice(),
    });
    assert.equal((await finished(h, run.body.id, asAlice())).status, 'succeeded');
    const v1 = await h.api(`/v1/jobs/${run.body.id}/result`, { headers: asAlice() });
    assert.equal(v1.status, 200);
    assert.equal(await v1.text(), '4611686018427387904');
    const compat = await h.api(`/result?id=${run.body.id}`, { headers: asAlice() });
    assert.equal(compat.status, 200);
    assert.equal(
      await compat.text(),
      `{"id":"${run.body.id}","task":"power_sim","status":"succeeded","result":4611686018427387904}`,
    );

    const text = '{"n": 4611686018427387904, "x": 1.0, "id": 12345678901234567890}';
    const plain = await h.json<Job>('/v1/jobs', {
      body: { command: '/bin/sh', args: ['-c', `printf '%s\\n' '${text}' > "$JOBWORKER_RESULT"`] },
      headers: asAlice(),
    });
    assert.equal((await finished(h, plain.body.id, asAlice())).status, 'succeeded');
    const raw = await h.api(`/v1/jobs/${plain.body.id}/result`, { headers: asAlice() });
    assert.equal(raw.headers.get('content-type'), 'application/json; charset=utf-8');
    assert.equal(await raw.text(), text);
  });

  it('followers get progress as it is reported: SSE `progress` events, and the RPC stream', async () => {
    // Three steps of 0.2 s: the first report normally comes after the server has begun to watch
    // the job (100 ms after its start: PROGRESS_WATCH_AFTER_MS), so reports stream as written.
    const run = async () =>
      (
        await h.json<Job>('/v1/tasks/power_sim/runs', {
          body: { a: 2, b: 3, delay_seconds: 0.2 },
          headers: asAlice(),
        })
      ).body;
    const sseJob = await run();
    const res = await h.api(`/v1/jobs/${sseJob.id}/output?follow=true`, {
      headers: { ...asAlice(), accept: 'text/event-stream' },
    });
    const events = await readSse(res, (e) => e.event === 'end');
    const reports = events.filter((e) => e.event === 'progress').map((e) => JSON.parse(e.data));
    assert.ok(reports.length > 0, 'at least one progress event while it ran');
    for (const report of reports) {
      assert.equal(report.progress.total, 3);
      assert.match(report.progress.message, /^2\^\d = \d+$/);
    }
    const end = JSON.parse(events.at(-1)!.data) as { job: Job };
    assert.equal(end.job.progress?.done, 3, 'the end carries the last report');

    const ca = await readFile(h.server.caFile!, 'utf8');
    const transport = createConnectTransport({
      baseUrl: h.server.url,
      httpVersion: '1.1',
      nodeOptions: { ca },
      interceptors: [
        (next) => (req) => {
          req.header.set('authorization', `Bearer ${alice}`);
          return next(req);
        },
      ],
    });
    const rpcJob = await run();
    const jobs = createClient(JobService, transport);
    const dones: number[] = [];
    let last: number | undefined;
    for await (const message of jobs.streamOutput({ id: rpcJob.id, follow: true, progress: true })) {
      if (message.event.case === 'progress') dones.push(message.event.value.progress?.done ?? -1);
      if (message.event.case === 'end') {
        last = message.event.value.progress?.done;
        assert.equal(message.event.value.task, 'power_sim');
        assert.deepEqual(message.event.value.params, { a: 2, b: 3, delay_seconds: 0.2 });
      }
    }
    assert.ok(dones.length > 0 && dones.every((d) => d >= 1 && d <= 3), String(dones));
    assert.equal(last, 3);
  });

  it('parameters are checked: a wrong type, a missing one, an unknown one is 400 naming it', async () => {
    const cases: Array<[unknown, string, RegExp]> = [
      [{ a: 'two', b: 3 }, 'params.a', /Expected `params.a` to be an integer, got `two`/],
      [{ a: 2 }, 'params.b', /Missing parameter `b`/],
      [{ a: 2, b: 3, c: 1 }, 'params.c', /Unknown parameter `c`/],
      [{ a: 2, b: 99 }, 'params.b', /at most 62/],
    ];
    for (const [params, field, message] of cases) {
      const { status, body } = await h.json<ErrorJson>('/v1/tasks/power_sim/runs', {
        body: params,
        headers: asAlice(),
      });
      assert.equal(status, 400, JSON.stringify(body));
      assert.equal(body.error.field, field);
      assert.match(body.error.message, message);
    }
    const unknown = await h.json<ErrorJson>('/v1/tasks/nope/runs', { body: {}, headers: asAlice() });
    assert.equal(unknown.status, 404);
    assert.match(
      unknown.body.error.message,
      /No task named "nope"; the server defines failing_sim, power_sim/,
    );
    const byViewer = await h.json<ErrorJson>('/v1/tasks/power_sim/runs', {
      body: { a: 1, b: 1 },
      headers: { authorization: `Bearer ${viewer}` },
    });
    assert.equal(byViewer.status, 403, 'runs follow the rules of starting a job');
    // The role comes first: a viewer learns nothing of which tasks exist.
    const viewerUnknown = await h.json<ErrorJson>('/v1/tasks/nope/runs', {
      body: {},
      headers: { authorization: `Bearer ${viewer}` },
    });
    assert.equal(viewerUnknown.status, 403);
    // Each refusal is in the audit trail, as a refused start.
    const { body } = await h.json<{ entries: { user: string; result: string }[] }>(
      '/v1/audit?action=job:submit&limit=100',
    );
    const refused = body.entries.filter((e) => e.result !== 'ok').map((e) => `${e.user} ${e.result}`);
    for (const expected of ['alice VALIDATION_FAILED', 'alice NOT_FOUND', 'vera FORBIDDEN']) {
      assert.ok(refused.includes(expected), `${expected} in ${refused.join(', ')}`);
    }
  });

  it('GET /v1/jobs/{id}/result: 409 NOT_FINISHED before the end, 422 JOB_FAILED with stderr for a failure', async () => {
    const slow = await h.json<Job>('/v1/tasks/power_sim/runs', {
      body: { a: 2, b: 1, delay_seconds: 30 },
      headers: asAlice(),
    });
    const early = await h.json<ErrorJson>(`/v1/jobs/${slow.body.id}/result`, { headers: asAlice() });
    assert.equal(early.status, 409);
    assert.equal(early.body.error.code, 'NOT_FINISHED');
    assert.match(early.body.error.message, /is (queued|running)/);
    await h.json(`/v1/jobs/${slow.body.id}/stop`, {
      method: 'POST',
      body: { graceMs: 0 },
      headers: asAlice(),
    });

    const failing = await h.json<Job>('/v1/tasks/failing_sim/runs', {
      body: { a: 2, delay_seconds: 0 },
      headers: asAlice(),
    });
    const done = await finished(h, failing.body.id, asAlice());
    assert.equal(done.status, 'failed');
    const result = await h.json<ErrorJson>(`/v1/jobs/${failing.body.id}/result`, { headers: asAlice() });
    assert.equal(result.status, 422);
    assert.equal(result.body.error.code, 'JOB_FAILED');
    assert.match(result.body.error.message, /exited with code 3/);
    assert.match(result.body.error.message, /simulated failure after 3 multiplications \(reached 8\)/);
    const bob = await addUserToken(h, 'bob');
    const other = await h.json<ErrorJson>(`/v1/jobs/${failing.body.id}/result`, {
      headers: { authorization: `Bearer ${bob}` },
    });
    assert.equal(other.status, 404, "another user's job's result answers like an unknown job");
  });

  it("walks the async task manager design's curl session: start, status, result, cancel, a full queue", async () => {
    // $ curl -X POST "http://localhost:8080/start/power_sim?a=2&b=20"   (with short delays here)
    const start = await h.json<TaskStatus>('/start/power_sim?a=2&b=20&delay_seconds=0.01', {
      method: 'POST',
      headers: asAlice(),
    });
    assert.equal(start.status, 201, JSON.stringify(start.body));
    assert.equal(start.body.task, 'power_sim');
    // $ curl -X POST "http://localhost:8080/start/failing?a=2"   (the task is failing_sim)
    const failing = await h.json<TaskStatus>('/start/failing_sim?a=2&delay_seconds=0.01', {
      method: 'POST',
      headers: asAlice(),
    });
    assert.equal(failing.status, 201);
    // $ curl "http://localhost:8080/status?id=1"
    const status = await h.json<TaskStatus>(`/status?id=${start.body.id}`, { headers: asAlice() });
    assert.equal(status.status, 200);
    assert.ok(['queued', 'running', 'succeeded'].includes(status.body.status), status.body.status);
    await finished(h, start.body.id, asAlice());
    await finished(h, failing.body.id, asAlice());
    // $ curl "http://localhost:8080/result?id=7"
    const result = await h.json<Record<string, unknown>>(`/result?id=${start.body.id}`, {
      headers: asAlice(),
    });
    assert.equal(result.status, 200);
    assert.deepEqual(result.body, {
      id: start.body.id,
      task: 'power_sim',
      status: 'succeeded',
      result: 1048576,
    });
    const doneStatus = await h.json<TaskStatus>(`/status?id=${start.body.id}`, { headers: asAlice() });
    assert.deepEqual(doneStatus.body.progress, { done: 20, total: 20, message: '2^20 = 1048576' });
    const failed = await h.json<ErrorJson>(`/result?id=${failing.body.id}`, { headers: asAlice() });
    assert.equal(failed.status, 422);
    assert.match(failed.body.error.message, /simulated failure/);
    const coerced = await h.json<ErrorJson>('/start/power_sim?a=two&b=2', {
      method: 'POST',
      headers: asAlice(),
    });
    assert.equal(coerced.status, 400);
    assert.equal(coerced.body.error.field, 'params.a');

    // 3 running + 10 waiting: the 14th submission is refused with 429.
    const long = '/start/power_sim?a=2&b=3&delay_seconds=60';
    const started: string[] = [];
    for (let i = 0; i < 3; i++) {
      started.push((await h.json<TaskStatus>(long, { method: 'POST', headers: asAlice() })).body.id);
    }
    for (const id of started) await firstOutput(h, id, asAlice());
    const waiting: string[] = [];
    for (let i = 0; i < 10; i++) {
      const queued = await h.json<TaskStatus>(long, { method: 'POST', headers: asAlice() });
      assert.equal(queued.status, 201, JSON.stringify(queued.body));
      assert.equal(queued.body.status, 'queued');
      waiting.push(queued.body.id);
    }
    const refused = await h.json<ErrorJson>(long, { method: 'POST', headers: asAlice() });
    assert.equal(refused.status, 429);
    assert.equal(refused.body.error.code, 'QUEUE_FULL');

    // $ curl -X POST "http://localhost:8080/cancel?id=4": a queued task is kept as cancelled.
    const cancelled = await h.json<TaskStatus>(`/cancel?id=${waiting[0]}`, {
      method: 'POST',
      headers: asAlice(),
    });
    assert.equal(cancelled.status, 200);
    assert.equal(cancelled.body.status, 'cancelled');
    const still = await h.json<TaskStatus>(`/status?id=${waiting[0]}`, { headers: asAlice() });
    assert.equal(still.body.status, 'cancelled', 'never forgotten');
    const noResult = await h.json<ErrorJson>(`/result?id=${waiting[0]}`, { headers: asAlice() });
    assert.equal(noResult.status, 422);
    assert.match(noResult.body.error.message, /cancelled/);

    const stopping = await h.json<TaskStatus>(`/cancel?id=${started[0]}`, {
      method: 'POST',
      headers: asAlice(),
    });
    assert.equal(stopping.status, 200);
    for (const id of [...started.slice(1), ...waiting.slice(1)]) {
      await h.json(`/cancel?id=${id}`, { method: 'POST', headers: asAlice() });
    }
    assert.equal((await finished(h, started[0]!, asAlice())).status, 'stopped');
  });

  it('POST /v1/tasks/reload (admins only) and a bad file keeps the definitions in force', async () => {
    const denied = await h.json<ErrorJson>('/v1/tasks/reload', { method: 'POST', headers: asAlice() });
    assert.equal(denied.status, 403);
    const original = await readFile(tasksFile, 'utf8');
    await writeFile(tasksFile, original.replace('a: { type: integer }', 'a: { type: int }'));
    const bad = await h.json<ErrorJson>('/v1/tasks/reload', { method: 'POST' });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.field, 'tasks.failing_sim.params.a.type');
    assert.ok(bad.body.error.message.startsWith(`${tasksFile}: `), bad.body.error.message);
    const kept = await h.json<{ tasks: Array<{ name: string }> }>('/v1/tasks');
    assert.equal(kept.body.tasks.length, 2);

    await writeFile(
      tasksFile,
      `${original}\n  echo_words:\n    command: [echo, "{words}"]\n    params:\n      words: { type: string }\n`,
    );
    const good = await h.json<{ file: string; tasks: Array<{ name: string }> }>('/v1/tasks/reload', {
      method: 'POST',
    });
    assert.equal(good.status, 200, JSON.stringify(good.body));
    assert.equal(good.body.file, tasksFile);
    assert.deepEqual(
      good.body.tasks.map((t) => t.name),
      ['echo_words', 'failing_sim', 'power_sim'],
    );
    // A value is one argv element: shell syntax in it is only text.
    const run = await h.json<Job>('/v1/tasks/echo_words/runs', { body: { words: '$(id); rm -rf /' } });
    assert.equal(run.status, 201);
    await finished(h, run.body.id);
    const out = await h.api(`/v1/jobs/${run.body.id}/output`);
    assert.equal(await out.text(), '$(id); rm -rf /\n');
    // SIGHUP does what the route does (serve wires it to this).
    await writeFile(tasksFile, original);
    const reloaded = await h.server.reloadTasks();
    assert.equal(reloaded.tasks.length, 2);
  });
});
