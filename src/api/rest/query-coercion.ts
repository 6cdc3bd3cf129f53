import type { FastifyInstance, preValidationHookHandler, RouteOptions } from 'fastify';
import { prependRouteHook } from './route-hooks.ts';

interface QuerySchema {
  readonly properties?: Readonly<Record<string, { readonly type?: unknown }>>;
}

type Coercible = ReadonlyMap<string, 'integer' | 'boolean'>;

const INTEGER = /^-?[0-9]{1,15}$/;

/**
 * A query string carries only text, but the schemas type `limit` as an integer and `follow` as a
 * boolean, which is what they are (and what generated clients send). Before validation, a query
 * parameter whose schema says `integer` and whose text is one becomes that number, and `true` or
 * `false` for a `boolean` one becomes that boolean; anything else is left as sent, so the schema
 * refuses it with the field's name ("Expected `limit` to be an integer, got `ten`"). Only the
 * query is coerced: JSON bodies stay strict.
 *
 * The hook goes only on routes whose query schema has such a field, as a callback: an app-wide
 * async hook ran on every request (a `GET /v1/jobs/{id}` included) for nothing. Must be
 * registered before the routes (it is an `onRoute` hook).
 */
export function registerQueryCoercion(app: FastifyInstance): void {
  app.addHook('onRoute', (route: RouteOptions) => {
    const fields = coercibleFields(route.schema?.querystring as QuerySchema | undefined);
    if (fields.size === 0) return;
    const coerce: preValidationHookHandler = (request, _reply, done) => {
      coerceQuery(request.query as Record<string, unknown> | undefined, fields);
      done();
    };
    prependRouteHook(route, 'preValidation', coerce);
  });
}

function coercibleFields(schema: QuerySchema | undefined): Coercible {
  const fields = new Map<string, 'integer' | 'boolean'>();
  for (const [name, property] of Object.entries(schema?.properties ?? {})) {
    if (property.type === 'integer' || property.type === 'boolean') fields.set(name, property.type);
  }
  return fields;
}

function coerceQuery(query: Record<string, unknown> | undefined, fields: Coercible): void {
  if (!query) return;
  for (const [name, type] of fields) {
    const value = query[name];
    if (typeof value !== 'string') continue;
    if (type === 'integer' && INTEGER.test(value)) query[name] = Number(value);
    else if (type === 'boolean' && (value === 'true' || value === 'false')) query[name] = value === 'true';
  }
}
