import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Authenticator } from '../../auth/authenticator.ts';
import type { Caller, CallOrigin } from '../../auth/principal.ts';
import { certificateUserOf } from './client-certificate.ts';

/** Query parameters that look like credentials: refused outright, since URLs end up in logs and histories. */
const QUERY_CREDENTIALS = new Set(['token', 'access_token']);

const callers = new WeakMap<FastifyRequest, Caller>();

/** Route config flag: the route answers without credentials (`GET /healthz`). */
export interface PublicRouteConfig {
  readonly public?: boolean;
}

/**
 * Authenticates every request before anything else looks at it (the 404 handler included), except
 * on routes marked `config: { public: true }`. A token in the query string is refused even when
 * the header is right, so that a client that leaks tokens into URLs finds out at once. The caller
 * carries where the request came from (address and transport), for the service's audit trail.
 */
export function registerAuthentication(app: FastifyInstance, authenticator: Authenticator): void {
  app.addHook('onRequest', async (request) => {
    if ((request.routeOptions.config as PublicRouteConfig).public === true) return;
    const origin = originOf(request);
    authenticator.checkRate(origin);
    const query = request.query as Record<string, unknown> | undefined;
    for (const key of Object.keys(query ?? {})) {
      if (QUERY_CREDENTIALS.has(key.toLowerCase())) {
        throw authenticator.refuse(
          origin,
          'token-in-query',
          `Tokens are not accepted in the query string (\`${key}\`); send the header \`Authorization: Bearer <token>\``,
        );
      }
    }
    // A verified client certificate stands in for a token; a token, when sent, wins.
    const authorization = request.headers.authorization;
    const certificateUser = authorization === undefined ? certificateUserOf(request) : undefined;
    const principal =
      certificateUser === undefined
        ? authenticator.authenticate(authorization, origin)
        : authenticator.authenticateUser(certificateUser, origin);
    callers.set(request, Object.freeze({ ...principal, ...origin }));
  });
}

/**
 * Where a request came from: its peer address over TCP; `local` over the server's Unix socket,
 * whose connections have no remote address (only the data directory's owner can reach it).
 */
export function originOf(request: FastifyRequest): CallOrigin {
  const address = request.raw.socket?.remoteAddress;
  if (address === undefined) return { source: 'local', transport: 'unix' };
  return { source: request.ip ?? address, transport: 'tcp' };
}

/** The caller of an authenticated route: its principal and where the request came from. */
export function principalOf(request: FastifyRequest): Caller {
  const caller = callers.get(request);
  if (!caller) throw new Error(`No principal for ${request.method} ${request.url}: is the route public?`);
  return caller;
}
