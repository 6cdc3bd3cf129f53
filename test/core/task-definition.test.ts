import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ValidationError } from '../../src/core/errors.ts';
import {
  parseTaskDefinitions,
  type TaskDefinition,
  taskArgv,
  taskRunSpec,
  validateTaskParams,
} from '../../src/core/task-definition.ts';
import { loadTasksFile } from '../../src/service/tasks-file.ts';

const POWER = {
  command: ['/bin/sh', './power_sim.sh', '{a}', '{b}', '--delay={delay_seconds}'],
  params: {
    a: { type: 'integer' },
    b: { type: 'integer', minimum: 0, maximum: 62 },
    delay_seconds: { type: 'number', minimum: 0, default: 5 },
    mode: { type: 'string', enum: ['fast', 'slow'], default: 'fast' },
    loud: { type: 'boolean', default: false },
  },
  queue: 'sims',
  timeout: 1.5,
  retry: { attempts: 2 },
};

const power = (): TaskDefinition => parseTaskDefinitions({ power_sim: POWER }).get('power_sim')!;

/** The `field` of the ValidationError `fn` throws. */
function fieldOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ValidationError, String(err));
    return err.field;
  }
  assert.fail('expected a ValidationError');
}

describe('task definitions', () => {
  it('parse into a definition with defaults filled in', () => {
    const task = power();
    assert.deepEqual(task, {
      name: 'power_sim',
      description: null,
      command: POWER.command,
      params: POWER.params,
      queue: 'sims',
      timeout: 1.5,
      retry: { attempts: 2 },
      env: {},
      cwd: null,
    });
  });

  it('refuse what does not check out, naming the field', () => {
    const bad = (definition: object) => fieldOf(() => parseTaskDefinitions({ t: definition }));
    assert.equal(bad({ ...POWER, params: { a: { type: 'int' } } }), 'tasks.t.params.a.type');
    assert.equal(bad({ ...POWER, command: ['echo', '{nope}'] }), 'tasks.t.command[1]');
    assert.equal(bad({ ...POWER, command: ['{a}'] }), 'tasks.t.command[0]');
    assert.equal(bad({ ...POWER, command: [] }), 'tasks.t.command');
    assert.equal(bad({ ...POWER, queue: 'bad queue' }), 'tasks.t.queue');
    assert.equal(bad({ ...POWER, retry: { attempts: 0 } }), 'tasks.t.retry.attempts');
    assert.equal(bad({ ...POWER, timeout: -1 }), 'tasks.t.timeout');
    assert.equal(bad({ ...POWER, cwd: 'relative' }), 'tasks.t.cwd');
    assert.equal(bad({ ...POWER, comand: [] }), 'tasks.t.comand');
    assert.equal(
      bad({ ...POWER, params: { a: { type: 'string', minimum: 1 } } }),
      'tasks.t.params.a.minimum',
    );
    assert.equal(
      bad({ ...POWER, params: { a: { type: 'integer', default: 'x' } } }),
      'tasks.t.params.a.default',
    );
    assert.equal(
      bad({ ...POWER, params: { a: { type: 'string', pattern: '(' } } }),
      'tasks.t.params.a.pattern',
    );
    assert.equal(
      fieldOf(() => parseTaskDefinitions({ 'bad name': POWER })),
      'tasks.bad name',
    );
  });

  it('check parameters: defaults, types, bounds, enums; unknown and missing ones are named', () => {
    const task = power();
    assert.deepEqual(validateTaskParams(task, { a: 2, b: 20 }), {
      a: 2,
      b: 20,
      delay_seconds: 5,
      mode: 'fast',
      loud: false,
    });
    assert.equal(
      fieldOf(() => validateTaskParams(task, { a: 2.5, b: 1 })),
      'params.a',
    );
    assert.equal(
      fieldOf(() => validateTaskParams(task, { a: '2', b: 1 })),
      'params.a',
    );
    assert.equal(
      fieldOf(() => validateTaskParams(task, { a: 2 })),
      'params.b',
    );
    assert.equal(
      fieldOf(() => validateTaskParams(task, { a: 2, b: 63 })),
      'params.b',
    );
    assert.equal(
      fieldOf(() => validateTaskParams(task, { a: 2, b: 1, mode: 'medium' })),
      'params.mode',
    );
    assert.equal(
      fieldOf(() => validateTaskParams(task, { a: 2, b: 1, extra: 1 })),
      'params.extra',
    );
    assert.equal(
      fieldOf(() => validateTaskParams(task, [1, 2])),
      'params',
    );
  });

  it('coerce query text by the declared types only when asked', () => {
    const task = power();
    const params = validateTaskParams(
      task,
      { a: '2', b: '20', delay_seconds: '0.5', loud: 'true' },
      { coerce: true },
    );
    assert.deepEqual(params, { a: 2, b: 20, delay_seconds: 0.5, mode: 'fast', loud: true });
    assert.equal(
      fieldOf(() => validateTaskParams(task, { a: 'two', b: '1' }, { coerce: true })),
      'params.a',
    );
    assert.equal(
      fieldOf(() => validateTaskParams(task, { a: '', b: '1' }, { coerce: true })),
      'params.a',
    );
    assert.equal(
      fieldOf(() => validateTaskParams(task, { a: '1', b: '1', loud: 'yes' }, { coerce: true })),
      'params.loud',
    );
  });

  it('substitute values into argv elements only, never through a shell', () => {
    const words = parseTaskDefinitions({
      echo: { command: ['echo', '{w}', 'x{w}y'], params: { w: { type: 'string' } } },
    }).get('echo')!;
    assert.deepEqual(taskArgv(words, { w: '$(id); rm -rf / {w}' }), [
      'echo',
      '$(id); rm -rf / {w}',
      'x$(id); rm -rf / {w}y',
    ]);
    const { spec, task } = taskRunSpec(power(), validateTaskParams(power(), { a: 2, b: 3 }));
    assert.deepEqual(spec, {
      command: '/bin/sh',
      args: ['./power_sim.sh', '2', '3', '--delay=5'],
      name: 'power_sim',
      queue: 'sims',
      labels: { task: 'power_sim' },
      env: {},
      timeoutMs: 1500,
      retry: { attempts: 2 },
    });
    assert.deepEqual(task, {
      name: 'power_sim',
      params: { a: 2, b: 3, delay_seconds: 5, mode: 'fast', loud: false },
    });
  });
});

describe('tasks files', () => {
  it('load JSON and YAML, resolve a relative cwd against the file, and name the file in errors', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'jw-tasks-file-'));
    try {
      const json = join(dir, 'tasks.json');
      await writeFile(
        json,
        JSON.stringify({
          queues: { q: { concurrency: 3, maxWaiting: 10 } },
          tasks: { t: { command: ['true'], cwd: 'sub' } },
        }),
      );
      const loaded = await loadTasksFile(json);
      assert.equal(loaded.tasks.get('t')?.cwd, join(dir, 'sub'));
      assert.deepEqual(loaded.queues.get('q'), { concurrency: 3, maxWaiting: 10 });

      const yaml = join(dir, 'tasks.yaml');
      await writeFile(
        yaml,
        'tasks:\n  t:\n    command: [echo, "{x}"]\n    params:\n      x: {type: integer, default: 1}\n',
      );
      assert.deepEqual((await loadTasksFile(yaml)).tasks.get('t')?.params, {
        x: { type: 'integer', default: 1 },
      });

      await writeFile(yaml, 'tasks:\n  t:\n    command: [echo\n');
      await assert.rejects(loadTasksFile(yaml), (err: ValidationError) => {
        assert.match(err.message, new RegExp(`^${yaml}: not valid YAML`));
        return true;
      });
      await writeFile(yaml, 'queues:\n  q: {concurrency: 0}\n');
      await assert.rejects(loadTasksFile(yaml), { field: 'queues.q.concurrency' });
      await writeFile(yaml, 'task: {}\n');
      await assert.rejects(loadTasksFile(yaml), { field: 'task' });
      await assert.rejects(loadTasksFile(join(dir, 'missing.yaml')), /cannot be read/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
