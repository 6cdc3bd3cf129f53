import assert from 'node:assert/strict';
import { test } from 'node:test';
import AjvCompiler from '@fastify/ajv-compiler';
import Fastify from 'fastify';
import { lazyValidators, REST_AJV_OPTIONS } from '../../src/api/rest/lazy-validators.ts';

function app() {
  const fastify = Fastify({
    schemaController: { compilersFactory: { buildValidator: lazyValidators() } },
    ajv: { customOptions: REST_AJV_OPTIONS },
  });
  fastify.addSchema({
    $id: 'Named',
    type: 'object',
    required: ['name'],
    additionalProperties: false,
    properties: { name: { type: 'string', minLength: 1 } },
  });
  fastify.post('/named', { schema: { body: { $ref: 'Named#' } } }, async (request) => request.body);
  fastify.get(
    '/query',
    {
      schema: { querystring: { type: 'object', properties: { n: { type: 'string', pattern: '^[0-9]+$' } } } },
    },
    async (request) => request.query,
  );
  // A schema that cannot be compiled: with Fastify's own compiler the server would not start.
  fastify.post('/broken', { schema: { body: { $ref: 'Missing#' } } }, async () => ({ a: 1 }));
  return fastify;
}

test('request validators are compiled on first use, with the shared schemas, and refuse as before', async (t) => {
  const fastify = app();
  t.after(() => fastify.close());
  await fastify.ready();
  for (let i = 0; i < 2; i++) {
    const ok = await fastify.inject({ method: 'POST', url: '/named', payload: { name: 'a' } });
    assert.equal(ok.statusCode, 200);
    assert.deepEqual(ok.json(), { name: 'a' });
    const refused = await fastify.inject({ method: 'POST', url: '/named', payload: { name: '' } });
    assert.equal(refused.statusCode, 400);
    assert.match(refused.json().message, /body\/name must NOT have fewer than 1 characters/);
  }
  const unknown = await fastify.inject({ method: 'POST', url: '/named', payload: { name: 'a', other: 1 } });
  assert.equal(unknown.statusCode, 400);
  assert.match(unknown.json().message, /must NOT have additional properties/);
  assert.equal((await fastify.inject({ method: 'GET', url: '/query?n=12' })).statusCode, 200);
  const query = await fastify.inject({ method: 'GET', url: '/query?n=x' });
  assert.equal(query.statusCode, 400);
  assert.match(query.json().message, /querystring\/n must match pattern/);
});

test('a request schema that cannot be compiled fails its own requests, not the start', async (t) => {
  const fastify = app();
  t.after(() => fastify.close());
  await fastify.ready();
  const broken = await fastify.inject({ method: 'POST', url: '/broken', payload: {} });
  assert.equal(broken.statusCode, 500);
  assert.match(broken.body, /Missing/);
  assert.equal(
    (await fastify.inject({ method: 'POST', url: '/named', payload: { name: 'b' } })).statusCode,
    200,
  );
});

test('a headers schema with a name in upper case is refused at start (Fastify would have lowercased it)', async (t) => {
  const fastify = Fastify({ schemaController: { compilersFactory: { buildValidator: lazyValidators() } } });
  t.after(() => fastify.close());
  fastify.get(
    '/h',
    { schema: { headers: { type: 'object', properties: { 'Last-Event-ID': { type: 'string' } } } } },
    async () => 'ok',
  );
  await assert.rejects(async () => {
    await fastify.ready();
  }, /Expected the header names of \/h's schema in lower case, got `Last-Event-ID`/);
});

test("every route schema's request parts compile with the shared schemas (what the start no longer checks)", async () => {
  const modules = await Promise.all([
    import('../../src/api/rest/schemas.ts'),
    import('../../src/api/rest/cert-schemas.ts'),
    import('../../src/api/rest/notify-schema.ts'),
    import('../../src/api/rest/webhook-schemas.ts'),
  ]);
  const { SHARED_SCHEMAS, ACCOUNT_SCHEMAS } = modules[0];
  const external = Object.fromEntries([...SHARED_SCHEMAS, ...ACCOUNT_SCHEMAS].map((s) => [s.$id, s]));
  const compile = AjvCompiler()(external, { customOptions: REST_AJV_OPTIONS });
  let compiled = 0;
  for (const module of modules) {
    for (const [name, value] of Object.entries(module)) {
      for (const httpPart of ['body', 'querystring', 'params', 'headers'] as const) {
        const schema = (value as Record<string, unknown> | null)?.[httpPart];
        if (typeof schema !== 'object' || schema === null || !('type' in schema || '$ref' in schema))
          continue;
        assert.doesNotThrow(
          () => compile({ schema, method: 'POST', url: name, httpPart }),
          `${name} ${httpPart}`,
        );
        compiled++;
      }
    }
  }
  assert.ok(compiled > 20, `only ${compiled} request schemas found`);
});
