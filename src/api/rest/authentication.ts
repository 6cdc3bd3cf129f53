import type { FastifyInstance, FastifyRequest } from 'fastify';
import { UnauthenticatedError } from '../../auth/auth-errors.ts';
import type { Authenticator } from '../../auth/authenticator.ts';
import type { Principal } from '../../auth/principal.ts';

/** Query parameters that look like credentials: refused outright, since URLs end up in logs and histories. */
const QUERY_CREDENTIALS = new Set(['token', 'access_token']);

const principals = new WeakMap<FastifyRequest, Principal>();

/** Route config flag: the route answers without credentials (`GET /healthz`). */
export interface PublicRouteConfig {
  readonly public?: boolean;
}

/**
 * Authenticates every request before anything else looks at it (the 404 handler included), except
 * on routes marked `config: { public: true }`. A token in the query string is refused even when
 * the header is right, so that a client that leaks tokens into URLs finds out at once.
 */
export function registerAuthentication(app: FastifyInstance, authenticator: Authenticator): void {
  // A callback hook, not an async one: it runs on every request, and has nothing to await.
  app.addHook('onRequest', (request, _reply, done) => {
    if ((request.routeOptions.config as PublicRouteConfig).public === true) return done();
    try {
      const query = request.query as Record<string, unknown> | undefined;
      for (const key of Object.keys(query ?? {})) {
        if (QUERY_CREDENTIALS.has(key.toLowerCase())) {
          throw new UnauthenticatedError(
            `Tokens are not accepted in the query string (\`${key}\`); send the header \`Authorization: Bearer <token>\``,
          );
        }
      }
      principals.set(request, authenticator.authenticate(request.headers.authorization));
    } catch (err) {
      return done(err as Error);
    }
    done();
  });
}

/** The caller of an authenticated route. */
export function principalOf(request: FastifyRequest): Principal {
  const principal = principals.get(request);
  if (!principal) throw new Error(`No principal for ${request.method} ${request.url}: is the route public?`);
  return principal;
}
