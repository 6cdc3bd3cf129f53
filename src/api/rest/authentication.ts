import type { FastifyInstance, FastifyRequest } from 'fastify';
import { UnauthenticatedError } from '../../auth/auth-errors.ts';
import type { Authenticator } from '../../auth/authenticator.ts';
import type { Principal } from '../../auth/principal.ts';
import { certificateUserOf } from './client-certificate.ts';

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
  app.addHook('onRequest', async (request) => {
    if ((request.routeOptions.config as PublicRouteConfig).public === true) return;
    const query = request.query as Record<string, unknown> | undefined;
    for (const key of Object.keys(query ?? {})) {
      if (QUERY_CREDENTIALS.has(key.toLowerCase())) {
        throw new UnauthenticatedError(
          `Tokens are not accepted in the query string (\`${key}\`); send the header \`Authorization: Bearer <token>\``,
        );
      }
    }
    // A verified client certificate stands in for a token; a token, when sent, wins.
    const authorization = request.headers.authorization;
    const certificateUser = authorization === undefined ? certificateUserOf(request) : undefined;
    principals.set(
      request,
      certificateUser === undefined
        ? authenticator.authenticate(authorization)
        : authenticator.authenticateUser(certificateUser),
    );
  });
}

/** The caller of an authenticated route. */
export function principalOf(request: FastifyRequest): Principal {
  const principal = principals.get(request);
  if (!principal) throw new Error(`No principal for ${request.method} ${request.url}: is the route public?`);
  return principal;
}
