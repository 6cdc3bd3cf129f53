import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { typedByName } from '../../src/api/rest/log-serializers.ts';
import * as restMethods from '../../src/api/rest/method-not-allowed.ts';
import * as authErrors from '../../src/auth/auth-errors.ts';
import * as coreErrors from '../../src/core/errors.ts';
import { JobworkerError, NotFoundError, ValidationError } from '../../src/core/errors.ts';
import * as serviceErrors from '../../src/service/service-errors.ts';
import { CapacityError } from '../../src/service/service-errors.ts';
import * as taskService from '../../src/service/task-service.ts';
import * as pgErrors from '../../src/store/postgres/pg-storage-error.ts';

const SRC = fileURLToPath(new URL('../../src/', import.meta.url));

/** Every error class declared in src/: a class whose base's name ends in `Error`. */
function errorClasses(): { file: string; name: string; body: string }[] {
  const found: { file: string; name: string; body: string }[] = [];
  for (const entry of readdirSync(SRC, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile() || !entry.name.endsWith('.ts') || entry.name.endsWith('.d.ts')) continue;
    const file = join(entry.parentPath, entry.name);
    const text = readFileSync(file, 'utf8');
    // Generic or not, `extends` on the same line or the next, a base named `...Error` or `Error...`.
    for (const match of text.matchAll(/class (\w+)(?:<[^>]*>)?\s+extends\s+([\w.]*Error\w*)\b[^{]*\{/g)) {
      // The class body up to the next top-level declaration: enough to find its `name`.
      const rest = text.slice(match.index + match[0].length);
      const end = rest.search(/\n(export |class |function |const )/);
      found.push({ file, name: match[1]!, body: end === -1 ? rest : rest.slice(0, end) });
    }
  }
  return found;
}

describe('error names', () => {
  // The server's bundle minifies class names (scripts/bundle-server.ts): a name an error does not
  // set itself would read `Xe` there, in logs and in the task library's results.
  it('every error class in src/ names itself after its class', () => {
    const classes = errorClasses();
    assert.ok(classes.length >= 30, `found ${classes.length} error classes: is the scan still right?`);
    const says = (c: { name: string; body: string }, member: string) =>
      new RegExp(
        `^\\s*(static )?(override )?(readonly )?(this\\.)?${member}(: string)? = '${c.name}';`,
        'm',
      ).test(c.body);
    const unnamed = classes.filter((c) => !says(c, 'errorName') && !says(c, 'name'));
    assert.deepEqual(
      unnamed.map((c) => `${c.file.slice(SRC.length)}: ${c.name}`),
      [],
      "each needs `static override readonly errorName = 'ItsClassName';` (a JobworkerError) or `override name = 'ItsClassName';`",
    );
  });

  it("every JobworkerError class exported by src/ says its own class's name", () => {
    const modules = [coreErrors, serviceErrors, authErrors, restMethods, taskService, pgErrors];
    const classes = modules
      .flatMap((m) => Object.values(m))
      .filter(
        (value): value is typeof JobworkerError =>
          typeof value === 'function' &&
          (value === JobworkerError || value.prototype instanceof JobworkerError),
      );
    assert.ok(classes.length >= 23, `${classes.length} classes`);
    for (const cls of classes) {
      assert.ok(Object.hasOwn(cls, 'errorName'), `${cls.name} has an errorName of its own`);
      assert.equal(cls.errorName, cls.name);
    }
  });

  it("a subclass of a library user's, without an errorName, is named after its own class", () => {
    class QuotaError extends ValidationError {}
    class GoneError extends NotFoundError {}
    assert.equal(new QuotaError('quota', 'over').name, 'QuotaError');
    assert.equal(new GoneError('x').name, 'GoneError');
    assert.match(String(new GoneError('x').stack), /^GoneError: No job with id x/);
  });

  it('the name holds for subclasses of subclasses and through the constructor', () => {
    assert.equal(new NotFoundError('x').name, 'NotFoundError');
    assert.equal(ValidationError.expected('f', 'a number', 'x').name, 'ValidationError');
    assert.equal(new CapacityError('full').name, 'CapacityError');
    assert.match(String(new NotFoundError('x').stack), /^NotFoundError: No job with id x/);
  });

  it("the log's err.type is the error's own name, and the constructor's for a plain Error", () => {
    const serialize = typedByName((err: Error) => ({ type: 'Minified', message: err.message }));
    assert.deepEqual(serialize(new NotFoundError('x')), {
      type: 'NotFoundError',
      message: 'No job with id x',
    });
    assert.deepEqual(serialize(new Error('plain')), { type: 'Minified', message: 'plain' });
    assert.equal(serialize(new TypeError('t')).type, 'TypeError');
    // pg names its server errors `error`: not a class name, pino's type stays.
    assert.equal(serialize(Object.assign(new Error('pg'), { name: 'error' })).type, 'Minified');
  });

  it("retypes the errors of an AggregateError, as pino's own serializer writes them", () => {
    const serialize = typedByName(pino.stdSerializers.err);
    const out = serialize(
      new AggregateError([new NotFoundError('a'), new RangeError('b')], 'both'),
    ) as unknown as {
      type: string;
      aggregateErrors: { type: string }[];
    };
    assert.equal(out.type, 'AggregateError');
    assert.deepEqual(
      out.aggregateErrors.map((e) => e.type),
      ['NotFoundError', 'RangeError'],
    );
  });
});
