import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { typedByName } from '../../src/api/rest/log-serializers.ts';
import { NotFoundError, ValidationError } from '../../src/core/errors.ts';
import { CapacityError } from '../../src/service/service-errors.ts';

const SRC = new URL('../../src/', import.meta.url).pathname;

/** Every error class declared in src/: a class whose base's name ends in `Error`. */
function errorClasses(): { file: string; name: string; body: string }[] {
  const found: { file: string; name: string; body: string }[] = [];
  for (const entry of readdirSync(SRC, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile() || !entry.name.endsWith('.ts') || entry.name.endsWith('.d.ts')) continue;
    const file = join(entry.parentPath, entry.name);
    const text = readFileSync(file, 'utf8');
    for (const match of text.matchAll(/class (\w+) extends (\w*Error)\b[^{]*\{/g)) {
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
    const unnamed = classes.filter(
      (c) => !c.body.includes(`name = '${c.name}'`) && !c.body.includes(`name = "${c.name}"`),
    );
    assert.deepEqual(
      unnamed.map((c) => `${c.file.slice(SRC.length)}: ${c.name}`),
      [],
      "each needs `override name = 'ItsClassName';`",
    );
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
  });
});
