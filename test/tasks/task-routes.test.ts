import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import Fastify from 'fastify';
import { TaskManager, taskRoutes, ValidationError } from 'jobworker/tasks';
import { ManualClock } from '../helpers/manual-clock.ts';
import { PollingGenTask } from './fixtures/gen-task.ts';

const GEN = new URL('./fixtures/gen-task.ts', import.meta.url);

function integer(params: Record<string, unknown>, field: string): number {
  const value = params[field];
  if (!Number.isInteger(value)) throw ValidationError.expected(field, 'an integer', value);
  return value as number;
}

describe('taskRoutes', () => {
  const clock = new ManualClock();
  const tm = new TaskManager({ clock, threads: 1, pollInitialMs: 100, pollMaxMs: 100 });
  const app = Fastify();
  app.register(
    taskRoutes(tm, {
      tasks: {
        double: (p) => ({ module: GEN, export: 'blockingDouble', args: [integer(p, 'val'), 0] }),
        gen_task: (p) => new PollingGenTask(integer(p, 'val'), 2),
        fail: () => ({ module: GEN, export: 'throwing', args: ['no luck'] }),
      },
    }),
    { prefix: '/v1' },
  );
  after(async () => {
    await app.close();
    await tm.close();
  });

  it('lists the registered types', async () => {
    const res = await app.inject({ method: 'GET', url: '/v1/tasks/types' });
    assert.deepEqual(res.json(), { types: ['double', 'gen_task', 'fail'] });
  });

  it('submits a blocking task and answers its result', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/tasks',
      payload: { type: 'double', params: { val: 21 } },
    });
    assert.equal(res.statusCode, 202);
    const { task } = res.json();
    assert.equal(task.kind, 'blocking');
    await tm.wait(task.id);
    const result = await app.inject({ method: 'GET', url: `/v1/tasks/${task.id}/result` });
    assert.deepEqual(result.json(), { status: 'succeeded', value: 42 });
    const status = await app.inject({ method: 'GET', url: `/v1/tasks/${task.id}` });
    assert.equal(status.json().task.status, 'succeeded');
    assert.match(status.json().task.finishedAt, /^\d{4}-\d\d-\d\dT/);
  });

  it('answers 409 NOT_FINISHED before the result exists, then the value', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/tasks',
      payload: { type: 'gen_task', params: { val: 5 } },
    });
    const id = res.json().task.id as string;
    const early = await app.inject({ method: 'GET', url: `/v1/tasks/${id}/result` });
    assert.equal(early.statusCode, 409);
    assert.equal(early.json().error.code, 'NOT_FINISHED');
    clock.advance(100);
    clock.advance(100);
    const late = await app.inject({ method: 'GET', url: `/v1/tasks/${id}/result` });
    assert.deepEqual(late.json(), { status: 'succeeded', value: 10 });
  });

  it('answers a failed task with its error', async () => {
    const res = await app.inject({ method: 'POST', url: '/v1/tasks', payload: { type: 'fail' } });
    const id = res.json().task.id as string;
    await tm.wait(id);
    const result = await app.inject({ method: 'GET', url: `/v1/tasks/${id}/result` });
    assert.deepEqual(result.json(), { status: 'failed', error: { name: 'RangeError', message: 'no luck' } });
  });

  it('cancels a running task, then answers 409 ALREADY_FINISHED', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/tasks',
      payload: { type: 'gen_task', params: { val: 1 } },
    });
    const id = res.json().task.id as string;
    const cancel = await app.inject({ method: 'POST', url: `/v1/tasks/${id}/cancel` });
    assert.equal(cancel.json().task.status, 'cancelled');
    const again = await app.inject({ method: 'POST', url: `/v1/tasks/${id}/cancel` });
    assert.equal(again.statusCode, 409);
    assert.equal(again.json().error.code, 'ALREADY_FINISHED');
    const list = await app.inject({ method: 'GET', url: '/v1/tasks?status=cancelled' });
    assert.deepEqual(
      list.json().tasks.map((t: { id: string }) => t.id),
      [id],
    );
  });

  it('names the bad field: unknown type, bad parameter, bad status, unknown id', async () => {
    const unknown = await app.inject({ method: 'POST', url: '/v1/tasks', payload: { type: 'nope' } });
    assert.equal(unknown.statusCode, 400);
    assert.deepEqual(unknown.json().error, {
      code: 'VALIDATION_FAILED',
      field: 'type',
      message: 'Expected `type` to be one of double, gen_task, fail, got `nope`',
    });
    const badParam = await app.inject({
      method: 'POST',
      url: '/v1/tasks',
      payload: { type: 'double', params: { val: 'x' } },
    });
    assert.equal(badParam.statusCode, 400);
    assert.equal(badParam.json().error.field, 'val');
    const noType = await app.inject({ method: 'POST', url: '/v1/tasks', payload: {} });
    assert.equal(noType.statusCode, 400);
    assert.equal(noType.json().error.code, 'VALIDATION_FAILED');
    const badStatus = await app.inject({ method: 'GET', url: '/v1/tasks?status=done' });
    assert.equal(badStatus.json().error.field, 'status');
    const missing = await app.inject({ method: 'GET', url: '/v1/tasks/nope' });
    assert.equal(missing.statusCode, 404);
    assert.equal(missing.json().error.message, 'No task with id nope');
  });
});

describe('taskRoutes: a task whose value is not JSON', () => {
  const tm = new TaskManager({ threads: 1, pollInitialMs: 10, pollMaxMs: 10 });
  const app = Fastify();
  app.register(taskRoutes(tm, { tasks: {} }), { prefix: '/v1' });
  after(async () => {
    await app.close();
    await tm.close();
  });

  it('fails naming why, as progress that is not JSON does, and the listing still answers for every task', async () => {
    const ok = tm.submitPolling({ name: 'ok', run() {}, poll: () => ({ done: true, value: 1 }) });
    const blocking = tm.submitBlocking(GEN, 'bigValue');
    const polling = tm.submitPolling({ name: 'big', run() {}, poll: () => ({ done: true, value: 10n }) });
    assert.equal((await tm.wait(ok)).status, 'succeeded');
    for (const id of [blocking, polling]) {
      const done = await tm.wait(id);
      assert.equal(done.status, 'failed');
      assert.equal('value' in done, false);
      assert.deepEqual(done.error, {
        name: 'ValidationError',
        message: 'Expected `value` to be JSON: Do not know how to serialize a BigInt',
      });
    }
    const list = await app.inject({ method: 'GET', url: '/v1/tasks' });
    assert.equal(list.statusCode, 200, list.body);
    assert.deepEqual(
      list.json().tasks.map((t: { id: string; status: string }) => [t.id, t.status]),
      [
        [ok, 'succeeded'],
        [blocking, 'failed'],
        [polling, 'failed'],
      ],
    );
    const one = await app.inject({ method: 'GET', url: `/v1/tasks/${blocking}` });
    assert.equal(one.statusCode, 200, one.body);
    const result = await app.inject({ method: 'GET', url: `/v1/tasks/${polling}/result` });
    assert.equal(result.statusCode, 200, result.body);
    assert.equal(result.json().status, 'failed');
  });
});
