import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { FastifyBaseLogger } from 'fastify';
import pino from 'pino';
import { lazyChildLogger } from '../../src/api/rest/request-logger.ts';

function rootAt(level: string) {
  const lines: Record<string, unknown>[] = [];
  const logger = pino(
    { level },
    { write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) },
  );
  return { logger: logger as unknown as FastifyBaseLogger, lines };
}

test('a lazy request logger writes what an eager child writes, bindings and child bindings included', () => {
  const { logger, lines } = rootAt('info');
  const lazy = lazyChildLogger(logger, { reqId: 'req-1' }, {});
  const eager = logger.child({ reqId: 'req-1' }, {});
  lazy.warn({ code: 'X' }, 'careful %s', 'now');
  eager.warn({ code: 'X' }, 'careful %s', 'now');
  lazy.child({ part: 'b' }).error('inner');
  const strip = ({ time: _time, ...rest }: Record<string, unknown>) => rest;
  assert.deepEqual(strip(lines[0] ?? {}), strip(lines[1] ?? {}));
  assert.equal(lines[0]?.msg, 'careful now');
  assert.equal(lines[2]?.reqId, 'req-1');
  assert.equal(lines[2]?.part, 'b');
  assert.deepEqual((lazy as unknown as { bindings(): object }).bindings(), { reqId: 'req-1' });
});

test('a lazy request logger drops disabled levels, reports its level, and can be given its own', () => {
  const { logger, lines } = rootAt('info');
  const lazy = lazyChildLogger(logger, { reqId: 'req-2' }, {});
  lazy.debug('hidden');
  lazy.trace('hidden');
  assert.equal(lines.length, 0);
  assert.equal(lazy.level, 'info');
  lazy.level = 'debug'; // its own level: the root stays at info
  lazy.debug('shown');
  assert.equal(lines.length, 1);
  assert.equal(lines[0]?.reqId, 'req-2');
  assert.equal(logger.level, 'info');
});

test('a child with its own level or serializers (a route option) is made at once, as before', () => {
  const { logger, lines } = rootAt('info');
  const child = lazyChildLogger(logger, { reqId: 'req-3' }, { level: 'debug' });
  child.debug('route at debug');
  assert.equal(lines.length, 1);
  assert.equal(typeof (child as unknown as { bindings?: unknown }).bindings, 'function');
});
