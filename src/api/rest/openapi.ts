/** A route as registered, for the OpenAPI document (collected by an `onRoute` hook). */
export interface DocumentedRoute {
  readonly method: string;
  readonly url: string;
  readonly schema: RouteSchema;
  readonly isPublic: boolean;
  /** Success responses whose body is not JSON, documented by the route itself. */
  readonly extraResponses?: Readonly<Record<string, unknown>>;
}

export interface RouteSchema {
  /** The operation's name in the document and in generated clients (`createJob`). */
  readonly operationId?: string;
  /** What a status means on this route, where the general wording (`STATUS_TEXT`) would not say. */
  readonly responseDescriptions?: Readonly<Record<string, string>>;
  readonly summary?: string;
  readonly description?: string;
  readonly body?: unknown;
  readonly querystring?: unknown;
  readonly params?: unknown;
  readonly headers?: unknown;
  readonly response?: Readonly<Record<string, unknown>>;
}

interface ObjectSchema {
  readonly properties?: Readonly<Record<string, { readonly description?: string }>>;
  readonly required?: readonly string[];
}

const STATUS_TEXT: Record<string, string> = {
  200: 'OK',
  201: 'Created',
  202: 'Accepted: the stop is recorded and under way',
  400: 'Bad input: `error.field` names the field',
  401: 'No valid credentials',
  403: 'The caller may not do this (see `error.message`)',
  404: 'No such job, user or token (or not one the caller may see)',
  409: 'Conflict with the current state (see `error.code`)',
  413: 'Body larger than 1 MiB',
  429: 'The server is at a limit; retry later',
  500: 'Internal error (details only in the server log)',
  507: "The server's disk is full: nothing was created or changed; retry once space is freed",
};

/**
 * Assembles the OpenAPI 3.1 document from the schemas the routes validate and serialize with, so
 * the two cannot drift apart. Shared schemas referenced as `Job#` become `#/components/schemas/Job`.
 */
export function buildOpenApi(
  routes: readonly DocumentedRoute[],
  shared: readonly { readonly $id: string }[],
  version: string,
): object {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of routes) {
    const path = route.url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
    const { schema } = route;
    const parameters = [
      ...parametersOf(schema.params, 'path'),
      ...parametersOf(schema.querystring, 'query'),
      ...parametersOf(schema.headers, 'header'),
    ];
    const responses: Record<string, unknown> = {};
    for (const [status, body] of Object.entries(schema.response ?? {})) {
      responses[status] = {
        description: schema.responseDescriptions?.[status] ?? STATUS_TEXT[status] ?? status,
        content: { 'application/json': { schema: body } },
      };
    }
    Object.assign(responses, route.extraResponses);
    paths[path] ??= {};
    paths[path][route.method.toLowerCase()] = {
      operationId: schema.operationId ?? operationIdOf(route.method, route.url),
      summary: schema.summary,
      ...(schema.description ? { description: schema.description } : {}),
      ...(route.isPublic ? { security: [] } : {}),
      ...(parameters.length > 0 ? { parameters } : {}),
      ...(schema.body
        ? {
            requestBody: {
              required: !acceptsNull(schema.body),
              content: { 'application/json': { schema: schema.body } },
            },
          }
        : {}),
      responses,
    };
  }
  const schemas = Object.fromEntries(shared.map(({ $id, ...rest }) => [$id, rest]));
  return rewriteRefs({
    openapi: '3.1.0',
    info: {
      title: 'jobworker REST API',
      version,
      description: 'Run commands as durable jobs, follow their output live, stop them. See docs/api.md.',
      license: { name: 'MIT', identifier: 'MIT' },
    },
    // Relative: the server that served this document (its address is the client's choice).
    servers: [{ url: '/', description: 'The jobworker server that served this document' }],
    security: [{ bearer: [] }],
    paths,
    components: {
      schemas,
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: 'A token; never in the query string.' },
      },
    },
  });
}

/**
 * A name for a route whose schema gives none (`GET /v1/jobs/:id/output` → `getV1JobsIdOutput`), so
 * that every operation has one; the routes of the REST API v1 all name theirs.
 */
function operationIdOf(method: string, url: string): string {
  const words = url.split(/[^A-Za-z0-9]+/).filter(Boolean);
  return method.toLowerCase() + words.map((w) => w[0]!.toUpperCase() + w.slice(1)).join('');
}

function parametersOf(schema: unknown, where: 'path' | 'query' | 'header'): object[] {
  const object = schema as ObjectSchema | undefined;
  return Object.entries(object?.properties ?? {}).map(([name, property]) => ({
    name: where === 'header' ? headerName(name) : name,
    in: where,
    required: where === 'path' || (object?.required ?? []).includes(name),
    ...(property.description ? { description: property.description } : {}),
    schema: property,
  }));
}

function acceptsNull(schema: unknown): boolean {
  const type = (schema as { type?: unknown }).type;
  return Array.isArray(type) && type.includes('null');
}

function headerName(lower: string): string {
  return lower
    .replace(/(^|-)([a-z])/g, (_m, dash: string, c: string) => dash + c.toUpperCase())
    .replace('Id', 'ID');
}

function rewriteRefs<T>(value: T): T {
  if (Array.isArray(value)) return value.map(rewriteRefs) as T;
  if (typeof value !== 'object' || value === null) return value;
  const out: Record<string, unknown> = {};
  for (const [key, inner] of Object.entries(value)) {
    out[key] =
      key === '$ref' && typeof inner === 'string' && inner.endsWith('#')
        ? `#/components/schemas/${inner.slice(0, -1)}`
        : rewriteRefs(inner);
  }
  return out as T;
}
