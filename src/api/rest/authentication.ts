import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Authenticator } from '../../auth/authenticator.ts';
import type { Caller, CallOrigin } from '../../auth/principal.ts';
import {
  bodyDigestOf,
  type ForwardedCall,
  NODE_HEADERS,
  type NodeCredentials,
  NodeSignatureError,
} from '../../cluster/node-credentials.ts';
import { JobworkerError } from '../../core/errors.ts';
import { isLoopbackHost } from '../../core/loopback.ts';
import { certificateUserOf } from './client-certificate.ts';

/** Query parameters that look like credentials: refused outright, since URLs end up in logs and histories. */
const QUERY_CREDENTIALS = new Set(['token', 'access_token']);

const callers = new WeakMap<FastifyRequest, Caller>();
/** Requests forwarded by another node: their body is checked against the signed digest once parsed. */
const forwarded = new WeakMap<FastifyRequest, ForwardedCall>();

/**
 * The routes another node may forward to (docs/cluster.md): what a node cannot answer from the
 * shared store. A signed request to any other route is refused, so that the cluster secret opens
 * no more than forwarding needs.
 */
const FORWARDABLE_ROUTES = new Set([
  'GET /v1/jobs/:id/output',
  'HEAD /v1/jobs/:id/output',
  'POST /v1/jobs/:id/stop',
  'POST /v1/jobs/:id/pause',
  'POST /v1/jobs/:id/resume',
]);
/** Requests authenticated by the dedicated metrics token (on `metricsToken` routes only). */
const metricsScrapes = new WeakSet<FastifyRequest>();

/** Checks the dedicated metrics token (`MetricsToken` fits). */
export interface MetricsTokenCheck {
  matches(authorization: string | undefined): boolean;
}

/** Route config flags read by the authentication hook. */
export interface PublicRouteConfig {
  /** The route answers without credentials (`GET /healthz`). */
  readonly public?: boolean;
  /**
   * The route takes its token from the request body (the workerctl design's `POST /api`): the
   * hook leaves it alone and the handler calls `authenticateWithBody` once the body is parsed.
   */
  readonly tokenInBody?: boolean;
  /** `POST /run`: answered without credentials from loopback when the server runs with `--run-without-token`. */
  readonly tokenless?: boolean;
  /** `GET /metrics`: also answered for the dedicated metrics token (docs/metrics.md), which works nowhere else. */
  readonly metricsToken?: boolean;
}

/** How the hook treats routes marked `tokenless` (docs/compat.md, "The take-home starter"). */
export interface TokenlessOptions {
  /** The user tokenless requests act as (the server's `admin`). */
  readonly user: string;
}

/**
 * Authenticates every request before anything else looks at it (the 404 handler included), except
 * on routes marked `config: { public: true }`. A token in the query string is refused even when
 * the header is right, so that a client that leaks tokens into URLs finds out at once. The caller
 * carries where the request came from (address and transport), for the service's audit trail.
 */
export function registerAuthentication(
  app: FastifyInstance,
  authenticator: Authenticator,
  tokenless?: TokenlessOptions,
  metricsToken?: MetricsTokenCheck,
  nodes?: NodeCredentials,
): void {
  // A callback hook, not an async one: it runs on every request, and has nothing to await.
  app.addHook('onRequest', (request, _reply, done) => {
    const config = request.routeOptions.config as PublicRouteConfig;
    if (request.headers[NODE_HEADERS.signature] !== undefined) {
      try {
        callers.set(request, authenticateNode(request, authenticator, nodes));
      } catch (err) {
        return done(err as Error);
      }
      return done();
    }
    if (config.public === true || config.tokenInBody === true) return done();
    if (config.metricsToken === true && metricsToken?.matches(request.headers.authorization)) {
      metricsScrapes.add(request);
      return done();
    }
    try {
      const origin = originOf(request);
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
      const authorization = request.headers.authorization;
      if (
        tokenless !== undefined &&
        config.tokenless === true &&
        authorization === undefined &&
        certificateUserOf(request) === undefined &&
        isLoopbackOrigin(origin)
      ) {
        // Any local process may call it, every job included: it acts as the user it names but
        // never with an admin's powers (no root, no other user's scope, no admin run-as account).
        const principal = authenticator.authenticateUser(tokenless.user, origin);
        callers.set(request, Object.freeze({ ...principal, role: 'user', runAs: null, ...origin }));
      } else {
        callers.set(
          request,
          authenticator.authenticateCall(
            request.headers.authorization,
            () => certificateUserOf(request),
            origin,
          ),
        );
      }
    } catch (err) {
      return done(err as Error);
    }
    done();
  });
  if (nodes !== undefined) registerForwardedBodyCheck(app, authenticator);
}

/**
 * The caller of a request another node forwarded (signed with the cluster secret): the principal
 * it names, without a token, since the forwarding node authenticated and authorised the call. A
 * bad signature is refused like a bad token (counted, audited, logged).
 */
function authenticateNode(
  request: FastifyRequest,
  authenticator: Authenticator,
  nodes: NodeCredentials | undefined,
): Caller {
  const origin = originOf(request);
  if (nodes === undefined) {
    throw authenticator.refuse(
      origin,
      'node-forwarding-off',
      'This server takes no forwarded requests: it runs without a cluster secret (--cluster-secret-file)',
    );
  }
  let call: ForwardedCall;
  try {
    call = nodes.verify(request.method, request.url, request.headers);
  } catch (err) {
    if (!(err instanceof NodeSignatureError)) throw err;
    throw authenticator.refuse(origin, err.reason, err.message);
  }
  const route = `${request.method} ${request.routeOptions.url ?? ''}`;
  if (!FORWARDABLE_ROUTES.has(route)) {
    throw new JobworkerError(
      'FORBIDDEN',
      `A request forwarded by node ${JSON.stringify(call.node)} may not call ${request.method} ${request.url.split('?')[0]}: ` +
        'nodes forward only the output, stop, pause and resume of jobs',
    );
  }
  forwarded.set(request, call);
  return Object.freeze({ ...call.principal, source: origin.source, transport: 'node', via: call.node });
}

/**
 * Checks, once the body is parsed, that a forwarded request's body is the one its signature covers
 * (the signature was checked before the body arrived). Bodies of forwarded calls are small JSON
 * objects that `JSON.stringify` writes back byte for byte as the forwarding node sent them.
 */
function registerForwardedBodyCheck(app: FastifyInstance, authenticator: Authenticator): void {
  app.addHook('preValidation', (request, _reply, done) => {
    const call = forwarded.get(request);
    if (call === undefined) return done();
    const body = request.body === undefined || request.body === null ? '' : JSON.stringify(request.body);
    if (bodyDigestOf(body) !== call.bodyDigest) {
      return done(
        authenticator.refuse(
          originOf(request),
          'node-body-changed',
          `The body of the request forwarded by node ${JSON.stringify(call.node)} is not the one it signed`,
        ),
      );
    }
    done();
  });
}

/**
 * The caller of a request that carries its token in its body (`tokenInBody` routes): that token
 * when there is one, else the `Authorization` header or the client certificate as on every route.
 * Rate limit, audit and logging of failures are the Authenticator's, as for a header.
 */
export function authenticateWithBody(
  request: FastifyRequest,
  authenticator: Authenticator,
  token: unknown,
): Caller {
  const origin = originOf(request);
  let caller: Caller;
  if (token !== undefined && token !== null) {
    if (typeof token !== 'string' || token === '') {
      throw authenticator.refuse(origin, 'not-a-token', 'Expected `token` to be a token string');
    }
    caller = Object.freeze({ ...authenticator.authenticateToken(token, origin), ...origin });
  } else {
    caller = authenticator.authenticateCall(
      request.headers.authorization,
      () => certificateUserOf(request),
      origin,
    );
  }
  callers.set(request, caller);
  return caller;
}

/** A TCP peer on 127.0.0.0/8 or ::1 (the Unix socket is the data directory owner's own). */
function isLoopbackOrigin(origin: CallOrigin): boolean {
  if (origin.transport === 'unix') return true;
  return origin.source !== null && isLoopbackHost(origin.source);
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

/** True when the request was authenticated by the dedicated metrics token (it has no principal). */
export function isMetricsScrape(request: FastifyRequest): boolean {
  return metricsScrapes.has(request);
}

/** The caller of an authenticated route: its principal and where the request came from. */
export function principalOf(request: FastifyRequest): Caller {
  const caller = callers.get(request);
  if (!caller) throw new Error(`No principal for ${request.method} ${request.url}: is the route public?`);
  return caller;
}
