import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SerializerSelector } from '@fastify/fast-json-stringify-compiler';
import Fastify from 'fastify';
import { lazySerializers } from '../../src/api/rest/lazy-serializers.ts';

function app() {
  const fastify = Fastify({ schemaController: { compilersFactory: { buildSerializer: lazySerializers() } } });
  fastify.addSchema({ $id: 'Shared', type: 'object', properties: { kept: { type: 'string' } } });
  fastify.get('/shared', { schema: { response: { 200: { $ref: 'Shared#' } } } }, async () => ({
    kept: 'yes',
    dropped: 'no',
  }));
  // A schema that cannot be compiled: with Fastify's own compiler the server would not start.
  fastify.get('/broken', { schema: { response: { 200: { $ref: 'Missing#' } } } }, async () => ({ a: 1 }));
  return fastify;
}

test('response serializers are compiled on first use, with the shared schemas', async (t) => {
  const fastify = app();
  t.after(() => fastify.close());
  await fastify.ready();
  for (let i = 0; i < 2; i++) {
    const reply = await fastify.inject({ method: 'GET', url: '/shared' });
    assert.equal(reply.statusCode, 200);
    assert.deepEqual(reply.json(), { kept: 'yes' }, 'what the schema does not name is left out');
  }
});

test('a response schema that cannot be compiled fails its own responses, not the start', async (t) => {
  const fastify = app();
  t.after(() => fastify.close());
  await fastify.ready();
  const broken = await fastify.inject({ method: 'GET', url: '/broken' });
  assert.equal(broken.statusCode, 500);
  assert.match(broken.body, /Missing/);
  assert.equal((await fastify.inject({ method: 'GET', url: '/shared' })).statusCode, 200);
});

test("every route schema's responses compile with the shared schemas (what the start no longer checks)", async () => {
  const modules = await Promise.all([
    import('../../src/api/rest/schemas.ts'),
    import('../../src/api/rest/cert-schemas.ts'),
    import('../../src/api/rest/notify-schema.ts'),
    import('../../src/api/rest/webhook-schemas.ts'),
  ]);
  const { SHARED_SCHEMAS, ACCOUNT_SCHEMAS } = modules[0];
  const external = Object.fromEntries([...SHARED_SCHEMAS, ...ACCOUNT_SCHEMAS].map((s) => [s.$id, s]));
  const compile = SerializerSelector()(external);
  let compiled = 0;
  for (const module of modules) {
    for (const [name, value] of Object.entries(module)) {
      const response = (value as { response?: Record<string, unknown> } | null)?.response;
      if (typeof response !== 'object' || response === null) continue;
      for (const [status, schema] of Object.entries(response)) {
        assert.doesNotThrow(
          () => compile({ schema, method: 'GET', url: name, httpStatus: status }),
          `${name} ${status}`,
        );
        compiled++;
      }
    }
  }
  assert.ok(compiled > 50, `only ${compiled} response schemas found`);
});
