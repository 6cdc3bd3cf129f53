import type { FastifyInstance } from 'fastify';

interface QuerySchema {
  readonly properties?: Readonly<Record<string, { readonly type?: unknown }>>;
}

const INTEGER = /^-?[0-9]{1,15}$/;

/**
 * A query string carries only text, but the schemas type `limit` as an integer and `follow` as a
 * boolean, which is what they are (and what generated clients send). Before validation, a query
 * parameter whose schema says `integer` and whose text is one becomes that number, and `true` or
 * `false` for a `boolean` one becomes that boolean; anything else is left as sent, so the schema
 * refuses it with the field's name ("Expected `limit` to be an integer, got `ten`"). Only the
 * query is coerced: JSON bodies stay strict.
 */
export function registerQueryCoercion(app: FastifyInstance): void {
  app.addHook('preValidation', async (request) => {
    const properties = (request.routeOptions.schema?.querystring as QuerySchema | undefined)?.properties;
    const query = request.query as Record<string, unknown> | undefined;
    if (!properties || !query) return;
    for (const [name, value] of Object.entries(query)) {
      if (typeof value !== 'string') continue;
      const type = properties[name]?.type;
      if (type === 'integer' && INTEGER.test(value)) query[name] = Number(value);
      else if (type === 'boolean' && (value === 'true' || value === 'false')) query[name] = value === 'true';
    }
  });
}
