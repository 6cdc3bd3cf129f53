import { ValidationError } from './errors.ts';
import type { JobTaskRun } from './job.ts';
import { DEFAULT_QUEUE, normalizeSpec, queueName, SPEC_LIMITS } from './spec.ts';

/**
 * Named tasks (docs/tasks.md, "Named tasks"): a command template with typed parameters, defined by
 * the server's administrator in a file (`serve --tasks FILE`) and run by users with parameter
 * values only. A value reaches the command as one argv element (or part of one), never through a
 * shell, so no value can change what runs.
 *
 * `TASK_DEFINITION_SCHEMA` is the one description of a definition: the API's OpenAPI document
 * shows it (`GET /v1/tasks` answers definitions of this shape), `parseTaskDefinitions` enforces it,
 * and the types below are its TypeScript form.
 */

/** The types a parameter may have. */
export const TASK_PARAM_TYPES = ['integer', 'number', 'string', 'boolean'] as const;
export type TaskParamType = (typeof TASK_PARAM_TYPES)[number];
/** A parameter's value, once validated. */
export type TaskParamValue = string | number | boolean;

/** One parameter: a small subset of JSON Schema. */
export interface TaskParamSchema {
  readonly type: TaskParamType;
  readonly description?: string;
  /** The value of a parameter left out; a parameter without one is required. */
  readonly default?: TaskParamValue;
  /** Bounds of an `integer` or `number`. */
  readonly minimum?: number;
  readonly maximum?: number;
  /** The only values allowed. */
  readonly enum?: readonly TaskParamValue[];
  /** Length bounds and a pattern (a JavaScript regular expression, anchored by you) of a `string`. */
  readonly minLength?: number;
  readonly maxLength?: number;
  readonly pattern?: string;
}

/** A task as defined and listed. */
export interface TaskDefinition {
  /** Its name, the key it is defined under: letters, digits, `.`, `_`, `-`. */
  readonly name: string;
  readonly description: string | null;
  /** The program and its arguments; `{param}` in an element is replaced by that parameter's value. */
  readonly command: readonly string[];
  readonly params: Readonly<Record<string, TaskParamSchema>>;
  /** The queue its runs wait in. */
  readonly queue: string;
  /** Seconds a run may take before it is ended as `timed_out`; null for the server's default. */
  readonly timeout: number | null;
  /** The retry policy of its runs (as a job spec's `retry`); null for none. */
  readonly retry: { readonly attempts: number; readonly backoff?: Record<string, number> } | null;
  /** Extra environment of its runs. */
  readonly env: Readonly<Record<string, string>>;
  /** Absolute working directory of its runs; null for the owner's home. */
  readonly cwd: string | null;
}

/** The JSON Schema of one parameter (OpenAPI `TaskParam`). */
export const TASK_PARAM_SCHEMA = {
  $id: 'TaskParam',
  type: 'object',
  required: ['type'],
  additionalProperties: false,
  properties: {
    type: { type: 'string', enum: TASK_PARAM_TYPES },
    description: { type: 'string' },
    default: { type: ['string', 'number', 'boolean'] },
    minimum: { type: 'number' },
    maximum: { type: 'number' },
    enum: { type: 'array', items: { type: ['string', 'number', 'boolean'] } },
    minLength: { type: 'integer', minimum: 0 },
    maxLength: { type: 'integer', minimum: 0 },
    pattern: { type: 'string' },
  },
} as const;

/** The JSON Schema of a task definition as listed (OpenAPI `Task`). */
export const TASK_DEFINITION_SCHEMA = {
  $id: 'Task',
  type: 'object',
  // `env` is listed to admins only (it may hold secrets): absent for the other roles.
  required: ['name', 'description', 'command', 'params', 'queue', 'timeout', 'retry', 'cwd'],
  additionalProperties: false,
  properties: {
    name: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$' },
    description: { type: ['string', 'null'] },
    command: {
      type: 'array',
      minItems: 1,
      items: { type: 'string' },
      description: 'The program and its arguments; `{param}` is replaced by the value of `param`.',
    },
    params: { type: 'object', additionalProperties: { $ref: 'TaskParam#' } },
    queue: { type: 'string' },
    timeout: { type: ['number', 'null'], description: 'Seconds a run may take; null for no limit.' },
    retry: {
      type: ['object', 'null'],
      properties: { attempts: { type: 'integer' }, backoff: { type: 'object' } },
    },
    env: {
      type: 'object',
      additionalProperties: { type: 'string' },
      description: "Extra environment of the task's runs; listed to admins only (it may hold secrets).",
    },
    cwd: { type: ['string', 'null'] },
  },
} as const;

const TASK_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
const PARAM_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;
const PLACEHOLDER = /\{([^{}]*)\}/g;
const TASK_FIELDS = new Set(Object.keys(TASK_DEFINITION_SCHEMA.properties));
const PARAM_FIELDS = new Set(Object.keys(TASK_PARAM_SCHEMA.properties));

/**
 * Checks the definitions of a tasks file (`tasks:` in it: an object of definitions by name) and
 * returns them by name, or throws a `ValidationError` naming the first bad field as a path
 * (`tasks.power_sim.params.a.type`).
 */
export function parseTaskDefinitions(input: unknown): Map<string, TaskDefinition> {
  if (!isObject(input))
    throw ValidationError.expected('tasks', 'an object of task definitions by name', input);
  const out = new Map<string, TaskDefinition>();
  for (const [name, value] of Object.entries(input)) {
    out.set(name, parseTaskDefinition(name, value, `tasks.${name}`));
  }
  return out;
}

function parseTaskDefinition(name: string, input: unknown, at: string): TaskDefinition {
  if (!TASK_NAME.test(name)) {
    throw ValidationError.expected(at, "a task name: 1 to 63 letters, digits, '.', '_' or '-'", name);
  }
  if (!isObject(input)) throw ValidationError.expected(at, 'an object', input);
  for (const key of Object.keys(input)) {
    if (!TASK_FIELDS.has(key) || key === 'name') {
      throw new ValidationError(`${at}.${key}`, `Unknown field \`${at}.${key}\``);
    }
  }
  const params: Record<string, TaskParamSchema> = {};
  const rawParams = input.params ?? {};
  if (!isObject(rawParams))
    throw ValidationError.expected(`${at}.params`, 'an object of parameters', rawParams);
  for (const [param, schema] of Object.entries(rawParams)) {
    if (!PARAM_NAME.test(param)) {
      throw ValidationError.expected(`${at}.params`, 'parameter names like `delay_seconds`', param);
    }
    params[param] = parseParamSchema(schema, `${at}.params.${param}`);
  }
  const { command } = input;
  if (!Array.isArray(command) || command.length === 0) {
    throw ValidationError.expected(`${at}.command`, 'a non-empty array of strings (the argv)', command);
  }
  command.forEach((arg: unknown, i) => {
    if (typeof arg !== 'string') throw ValidationError.expected(`${at}.command[${i}]`, 'a string', arg);
    for (const [, ref] of arg.matchAll(PLACEHOLDER)) {
      if (ref === undefined || !(ref in params)) {
        throw new ValidationError(
          `${at}.command[${i}]`,
          `\`${at}.command[${i}]\` names {${ref}}, which is not one of its params (${Object.keys(params).join(', ') || 'none'})`,
        );
      }
    }
  });
  if (command[0] === '' || /\{[^{}]*\}/.test(command[0])) {
    throw ValidationError.expected(`${at}.command[0]`, 'a fixed program, with no {param} in it', command[0]);
  }
  const description = optional(input.description, null, (v) => {
    if (typeof v !== 'string') throw ValidationError.expected(`${at}.description`, 'a string', v);
    return v;
  });
  const queue = optional(input.queue, DEFAULT_QUEUE, (v) => queueName(`${at}.queue`, v));
  const timeout = optional(input.timeout, null, (v) => {
    if (v === null) return null;
    if (typeof v !== 'number' || !(v > 0) || v * 1000 > SPEC_LIMITS.timeoutMs) {
      throw ValidationError.expected(`${at}.timeout`, 'a positive number of seconds, or null', v);
    }
    return v;
  });
  const retry = optional(input.retry, null, (v) => {
    if (v === null) return null;
    if (!isObject(v)) throw ValidationError.expected(`${at}.retry`, 'an object `{attempts, backoff?}`', v);
    return v as unknown as TaskDefinition['retry'];
  });
  const env = optional(input.env, {}, (v) => {
    if (!isObject(v) || Object.values(v).some((x) => typeof x !== 'string')) {
      throw ValidationError.expected(`${at}.env`, 'an object of strings', v);
    }
    return v as Record<string, string>;
  });
  const cwd = optional(input.cwd, null, (v) => {
    if (v === null) return null;
    if (typeof v !== 'string' || !v.startsWith('/'))
      throw ValidationError.expected(`${at}.cwd`, 'an absolute path', v);
    return v;
  });
  const task = {
    name,
    description,
    command: [...command] as string[],
    params,
    queue,
    timeout,
    retry,
    env,
    cwd,
  };
  // What becomes the runs' spec (retry, env, cwd) is checked now, by the spec's own rules, so that
  // a bad definition fails its load, not its first run.
  const sample = Object.fromEntries(
    Object.entries(params).map(([p, s]) => [
      p,
      s.default ?? (s.type === 'string' ? 'x' : s.type === 'boolean' ? false : 0),
    ]),
  );
  try {
    normalizeSpec(taskRunSpec(task, sample).spec, { cwd: '/' });
  } catch (err) {
    if (!(err instanceof ValidationError)) throw err;
    const field = err.field === 'timeoutMs' ? 'timeout' : err.field;
    throw new ValidationError(`${at}.${field}`, `In \`${at}\`: ${err.message}`);
  }
  return task;
}

function parseParamSchema(input: unknown, at: string): TaskParamSchema {
  if (!isObject(input)) throw ValidationError.expected(at, 'an object like `{type: "integer"}`', input);
  for (const key of Object.keys(input)) {
    if (!PARAM_FIELDS.has(key)) throw new ValidationError(`${at}.${key}`, `Unknown field \`${at}.${key}\``);
  }
  const { type } = input;
  if (typeof type !== 'string' || !(TASK_PARAM_TYPES as readonly string[]).includes(type)) {
    throw ValidationError.expected(`${at}.type`, `one of ${TASK_PARAM_TYPES.join(', ')}`, type);
  }
  const schema: { -readonly [K in keyof TaskParamSchema]: TaskParamSchema[K] } = {
    type: type as TaskParamType,
  };
  if (input.description !== undefined) {
    if (typeof input.description !== 'string') {
      throw ValidationError.expected(`${at}.description`, 'a string', input.description);
    }
    schema.description = input.description;
  }
  for (const key of ['minimum', 'maximum'] as const) {
    const v = input[key];
    if (v === undefined) continue;
    if (type !== 'integer' && type !== 'number') {
      throw new ValidationError(`${at}.${key}`, `\`${at}.${key}\` applies to an integer or a number only`);
    }
    if (typeof v !== 'number' || !Number.isFinite(v))
      throw ValidationError.expected(`${at}.${key}`, 'a number', v);
    schema[key] = v;
  }
  for (const key of ['minLength', 'maxLength'] as const) {
    const v = input[key];
    if (v === undefined) continue;
    if (type !== 'string')
      throw new ValidationError(`${at}.${key}`, `\`${at}.${key}\` applies to a string only`);
    if (!Number.isSafeInteger(v) || (v as number) < 0) {
      throw ValidationError.expected(`${at}.${key}`, 'an integer from 0', v);
    }
    schema[key] = v as number;
  }
  if (input.pattern !== undefined) {
    if (type !== 'string' || typeof input.pattern !== 'string') {
      throw ValidationError.expected(
        `${at}.pattern`,
        'a regular expression, on a string parameter',
        input.pattern,
      );
    }
    try {
      new RegExp(input.pattern, 'u');
    } catch (err) {
      throw new ValidationError(
        `${at}.pattern`,
        `\`${at}.pattern\` is not a valid regular expression: ${(err as Error).message}`,
      );
    }
    schema.pattern = input.pattern;
  }
  if (input.enum !== undefined) {
    if (!Array.isArray(input.enum) || input.enum.length === 0) {
      throw ValidationError.expected(`${at}.enum`, 'a non-empty array of values', input.enum);
    }
    const partial = { ...schema };
    schema.enum = input.enum.map((v: unknown, i) => checkValue(partial, v, `${at}.enum[${i}]`));
  }
  if (input.default !== undefined) schema.default = checkValue(schema, input.default, `${at}.default`);
  return schema;
}

/**
 * Validates the parameters of a run against its task: every parameter declared (a missing one
 * takes its default, or is an error when it has none), none undeclared, each of its type and
 * within its bounds. With `coerce`, values are text (a URL's query) and are read as their type.
 * Errors name `params.<name>`.
 */
export function validateTaskParams(
  task: TaskDefinition,
  input: unknown,
  options: { coerce?: boolean } = {},
): Record<string, TaskParamValue> {
  const given = input ?? {};
  if (!isObject(given)) throw ValidationError.expected('params', 'an object of parameter values', input);
  for (const name of Object.keys(given)) {
    if (!(name in task.params)) {
      const known = Object.keys(task.params);
      throw new ValidationError(
        `params.${name}`,
        `Unknown parameter \`${name}\` of task ${task.name}; it takes ${known.length > 0 ? known.join(', ') : 'none'}`,
      );
    }
  }
  const out: Record<string, TaskParamValue> = {};
  for (const [name, schema] of Object.entries(task.params)) {
    const raw = given[name];
    if (raw === undefined) {
      if (schema.default === undefined) {
        throw new ValidationError(
          `params.${name}`,
          `Missing parameter \`${name}\` (${schema.type}) of task ${task.name}`,
        );
      }
      out[name] = schema.default;
      continue;
    }
    const value = options.coerce ? coerce(schema, raw, `params.${name}`) : raw;
    out[name] = checkValue(schema, value, `params.${name}`);
  }
  return out;
}

/** The argv of a run: each `{param}` replaced by its value's text, element by element. */
export function taskArgv(task: TaskDefinition, params: Readonly<Record<string, TaskParamValue>>): string[] {
  return task.command.map((arg) => arg.replace(PLACEHOLDER, (_all, name: string) => String(params[name])));
}

/** The job spec (input) of a run, and the task reference recorded on its job. */
export function taskRunSpec(
  task: TaskDefinition,
  params: Readonly<Record<string, TaskParamValue>>,
): { spec: Record<string, unknown>; task: JobTaskRun } {
  const [command, ...args] = taskArgv(task, params);
  return {
    spec: {
      command,
      args,
      name: task.name,
      queue: task.queue,
      labels: { task: task.name },
      env: { ...task.env },
      ...(task.cwd === null ? {} : { cwd: task.cwd }),
      ...(task.timeout === null ? {} : { timeoutMs: Math.round(task.timeout * 1000) }),
      ...(task.retry === null ? {} : { retry: task.retry }),
    },
    task: { name: task.name, params: { ...params } },
  };
}

function coerce(schema: TaskParamSchema, raw: unknown, field: string): unknown {
  if (typeof raw !== 'string') return raw;
  switch (schema.type) {
    case 'integer':
    case 'number':
      return raw.trim() === '' ? raw : Number(raw);
    case 'boolean':
      if (raw === 'true') return true;
      if (raw === 'false') return false;
      throw ValidationError.expected(field, '`true` or `false`', raw);
    default:
      return raw;
  }
}

function checkValue(schema: TaskParamSchema, value: unknown, field: string): TaskParamValue {
  switch (schema.type) {
    case 'integer':
      if (typeof value !== 'number' || !Number.isSafeInteger(value)) {
        throw ValidationError.expected(field, 'an integer', value);
      }
      break;
    case 'number':
      if (typeof value !== 'number' || !Number.isFinite(value)) {
        throw ValidationError.expected(field, 'a number', value);
      }
      break;
    case 'boolean':
      if (typeof value !== 'boolean') throw ValidationError.expected(field, 'a boolean', value);
      break;
    case 'string':
      if (typeof value !== 'string') throw ValidationError.expected(field, 'a string', value);
      if (value.includes('\0')) throw ValidationError.expected(field, 'a string with no NUL byte', value);
      break;
  }
  const v = value as TaskParamValue;
  if (typeof v === 'number') {
    if (schema.minimum !== undefined && v < schema.minimum) {
      throw ValidationError.expected(field, `a value of at least ${schema.minimum}`, v);
    }
    if (schema.maximum !== undefined && v > schema.maximum) {
      throw ValidationError.expected(field, `a value of at most ${schema.maximum}`, v);
    }
  }
  if (typeof v === 'string') {
    if (schema.minLength !== undefined && v.length < schema.minLength) {
      throw ValidationError.expected(field, `at least ${schema.minLength} characters`, v);
    }
    if (schema.maxLength !== undefined && v.length > schema.maxLength) {
      throw ValidationError.expected(field, `at most ${schema.maxLength} characters`, v);
    }
    if (schema.pattern !== undefined && !new RegExp(schema.pattern, 'u').test(v)) {
      throw ValidationError.expected(field, `text matching /${schema.pattern}/`, v);
    }
  }
  if (schema.enum !== undefined && !schema.enum.includes(v)) {
    throw ValidationError.expected(
      field,
      `one of ${schema.enum.map((e) => JSON.stringify(e)).join(', ')}`,
      v,
    );
  }
  return v;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function optional<T>(value: unknown, fallback: T, parse: (value: unknown) => T): T {
  return value === undefined ? fallback : parse(value);
}
