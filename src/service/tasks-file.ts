import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { ValidationError } from '../core/errors.ts';
import { parseTaskDefinitions, type TaskDefinition } from '../core/task-definition.ts';
import type { QueueSettings } from '../store/job-store.ts';

/** What a tasks file (`serve --tasks FILE`) defines: tasks by name, and settings of their queues. */
export interface TasksFile {
  readonly path: string;
  readonly tasks: ReadonlyMap<string, TaskDefinition>;
  /** Settings applied to queues when the file is loaded (`queues:`), by queue name. */
  readonly queues: ReadonlyMap<string, Partial<Pick<QueueSettings, 'concurrency' | 'maxWaiting'>>>;
}

const TOP_FIELDS = new Set(['tasks', 'queues']);

/**
 * Reads and checks a tasks file, JSON (`.json`) or YAML (anything else; YAML also reads JSON).
 * Every error is a `ValidationError` whose message starts with the file's path and names the field
 * (`tasks.power_sim.params.a.type`); nothing is half-loaded.
 */
export async function loadTasksFile(path: string): Promise<TasksFile> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new ValidationError('tasks', `${path}: the tasks file cannot be read: ${(err as Error).message}`);
  }
  let data: unknown;
  try {
    // The YAML parser is loaded for a tasks file in YAML only: it is a fair share of the server's
    // code, which every other server would hold for nothing (issue 9, idle memory).
    data = path.endsWith('.json')
      ? JSON.parse(text)
      : (await import('yaml')).parse(text, { prettyErrors: true });
  } catch (err) {
    const kind = path.endsWith('.json') ? 'JSON' : 'YAML';
    throw new ValidationError('tasks', `${path}: not valid ${kind}: ${(err as Error).message}`);
  }
  try {
    return { path, ...parseTasksDocument(data, dirname(path)) };
  } catch (err) {
    if (!(err instanceof ValidationError)) throw err;
    throw new ValidationError(err.field, `${path}: ${err.message}`);
  }
}

/**
 * The checked content of a tasks file: `{tasks: {...}, queues?: {...}}`. A task's relative `cwd`
 * is relative to `baseDir` (the file's directory), so a file and its scripts move together.
 */
export function parseTasksDocument(data: unknown, baseDir: string): Omit<TasksFile, 'path'> {
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw ValidationError.expected('(file)', 'an object with `tasks` (and optionally `queues`)', data);
  }
  const doc = data as Record<string, unknown>;
  for (const key of Object.keys(doc)) {
    if (!TOP_FIELDS.has(key))
      throw new ValidationError(key, `Unknown field \`${key}\`; a tasks file has tasks and queues`);
  }
  const tasks = parseTaskDefinitions(withAbsoluteCwd(doc.tasks ?? {}, baseDir));
  const queues = new Map<string, { concurrency?: number | null; maxWaiting?: number | null }>();
  const rawQueues = doc.queues ?? {};
  if (typeof rawQueues !== 'object' || rawQueues === null || Array.isArray(rawQueues)) {
    throw ValidationError.expected('queues', 'an object of queue settings by name', rawQueues);
  }
  for (const [name, settings] of Object.entries(rawQueues)) {
    const at = `queues.${name}`;
    if (typeof settings !== 'object' || settings === null || Array.isArray(settings)) {
      throw ValidationError.expected(at, 'an object `{concurrency, maxWaiting}`', settings);
    }
    const out: { concurrency?: number | null; maxWaiting?: number | null } = {};
    for (const [key, value] of Object.entries(settings)) {
      if (key !== 'concurrency' && key !== 'maxWaiting') {
        throw new ValidationError(`${at}.${key}`, `Unknown field \`${at}.${key}\``);
      }
      const min = key === 'concurrency' ? 1 : 0;
      if (value !== null && !(Number.isSafeInteger(value) && (value as number) >= min)) {
        throw ValidationError.expected(`${at}.${key}`, `an integer from ${min}, or null for no limit`, value);
      }
      out[key] = value as number | null;
    }
    queues.set(name, out);
  }
  return { tasks, queues };
}

/** The definitions with each relative `cwd` resolved against `baseDir` (anything else as it is). */
function withAbsoluteCwd(tasks: unknown, baseDir: string): unknown {
  if (typeof tasks !== 'object' || tasks === null || Array.isArray(tasks)) return tasks;
  return Object.fromEntries(
    Object.entries(tasks).map(([name, task]) => {
      const cwd = (task as { cwd?: unknown } | null)?.cwd;
      if (typeof cwd !== 'string' || isAbsolute(cwd) || cwd === '') return [name, task];
      return [name, { ...(task as object), cwd: resolve(baseDir, cwd) }];
    }),
  );
}
