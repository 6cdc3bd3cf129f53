import assert from 'node:assert/strict';
import { test } from 'node:test';
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
