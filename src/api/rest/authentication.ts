import type {
  FastifyInstance,
  FastifyRequest,
  onRequestHookHandler,
  preHandlerHookHandler,
  preValidationHookHandler,
} from 'fastify';
import { UnauthenticatedError } from '../../auth/auth-errors.ts';
import type { Authenticator } from '../../auth/authenticator.ts';
import { type Caller, type CallOrigin, TOKENLESS_PRINCIPAL, TOKENLESS_USER } from '../../auth/principal.ts';
import {
  bodyDigestOf,
  type ForwardedCall,
  NODE_HEADERS,
  type NodeCredentials,
  NodeSignatureError,
} from '../../cluster/node-credentials.ts';
import { JobworkerError } from '../../core/errors.ts';
import { isLoopbackHost, namesThisMachine } from '../../core/loopback.ts';
import { certificateHolderOf } from './client-certificate.ts';
import { addRouteHook, prependRouteHook, type RouteSeen } from './route-hooks.ts';

/** Query parameters that look like credentials: refused outright, since URLs end up in logs and histories. */
const QUERY_CREDENTIALS = new Set(['token', 'access_token']);

/**
 * The caller of a request, for a request another node forwarded its signed call (whose body is
 * checked against the signed digest once parsed), and whether the metrics token authenticated it:
 * request decorations under keys no other module holds. A decoration is a slot every request has
 * from its start; a WeakMap entry per request was an ephemeron write and lookup on every request.
 */
const CALLER = Symbol('jobworker.caller');
const FORWARDED = Symbol('jobworker.forwarded');
/** Authenticated by the dedicated metrics token (on `metricsToken` routes only): no principal. */
const METRICS_SCRAPE = Symbol('jobworker.metricsScrape');
interface AuthenticatedRequest extends FastifyRequest {
  [CALLER]: Caller | null;
  [FORWARDED]: ForwardedCall | null;
  [METRICS_SCRAPE]: boolean;
}

/**
 * The routes another node may forward to (docs/cluster.md): what a node cannot answer from the
 * shared store. A signed request to any other route is refused, so that the cluster secret opens
 * no more than forwarding needs.
 */
const FORWARDABLE_ROUTES = new Set([
  'GET /v1/jobs/:id',
  'GET /v1/jobs/:id/output',
  'HEAD /v1/jobs/:id/output',
  'POST /v1/jobs/:id/stop',
  'POST /v1/jobs/:id/pause',
  'POST /v1/jobs/:id/resume',
]);

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

/**
 * Authenticates every request before its route's own hooks, its body and its handler look at it
 * (the 404 handler included), except on routes marked `config: { public: true }`. A token in the
 * query string is refused even when the header is right, so that a client that leaks tokens into
 * URLs finds out at once. The caller carries where the request came from (address and
 * transport), for the service's audit trail. With `tokenless` (`serve --run-without-token`),
 * routes marked `tokenless` answer a local request without credentials as `TOKENLESS_PRINCIPAL`.
 */
export function registerAuthentication(
  app: FastifyInstance,
  authenticator: Authenticator,
  tokenless = false,
  metricsToken?: MetricsTokenCheck,
  nodes?: NodeCredentials,
): void {
  app.decorateRequest(CALLER, null);
  app.decorateRequest(FORWARDED, null);
  app.decorateRequest(METRICS_SCRAPE, false);
  // Each route gets its own hook, made when it is registered; the requests no route matched get
  // the app-wide one, before the not-found handler looks at them. Route hooks run after every
  // app-wide `onRequest` hook, and only routes registered after this get one: buildRestApp calls
  // it before any route. A route without one still fails closed wherever it asks for its caller
  // (`principalOf` throws).
  addRouteHook(app, 'onRequest', (route) =>
    authenticationHook(route ?? {}, authenticator, tokenless, metricsToken, nodes),
  );
  if (nodes !== undefined) registerForwardedBodyCheck(app, authenticator);
  registerStaleCheck(app, authenticator);
}

/**
 * A request is authenticated from its head (`onRequest`), and its body may come long after: one
 * held back until its token was revoked, or its user disabled or demoted, would act with what was
 * taken away (issue a token to an admin no longer one). The routes with a body check their caller
 * again once it has arrived, before their handler. Those without (GET, HEAD) are answered in the
 * same moment as they are authenticated, and pay nothing.
 */
function registerStaleCheck(app: FastifyInstance, authenticator: Authenticator): void {
  const check: preHandlerHookHandler = (request, _reply, done) => {
    const caller = (request as AuthenticatedRequest)[CALLER];
    const stale = caller === null ? undefined : authenticator.staleness(caller);
    if (caller === null || stale === undefined) return done();
    done(
      authenticator.refuse(
        originOf(request),
        `${stale}-while-arriving`,
        stale === 'expired'
          ? 'The token of this request expired while it arrived'
          : 'The credentials of this request were revoked while it arrived',
        caller.tokenId,
        caller.user,
      ),
    );
  };
  app.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    if (methods.some((method) => method !== 'GET' && method !== 'HEAD'))
      prependRouteHook(route, 'preHandler', check);
  });
}

/**
 * The authentication of the requests of one route (`route.url` undefined: of those no route
 * matched). The route's config is read at its first request, so that an `onRoute` hook that runs
 * after this module's (a plugin scope's own) can still change it.
 */
function authenticationHook(
  route: RouteSeen,
  authenticator: Authenticator,
  tokenless: boolean,
  metricsToken: MetricsTokenCheck | undefined,
  nodes: NodeCredentials | undefined,
): onRequestHookHandler {
  const url = route.url;
  let config: PublicRouteConfig | undefined;
  let answersTokenless = false;
  // A callback hook, not an async one: it runs on every request, and has nothing to await.
  return function authenticate(request, _reply, done) {
    if (config === undefined) {
      config = (route.config ?? {}) as PublicRouteConfig;
      answersTokenless = tokenless && config.tokenless === true;
    }
    const slots = request as AuthenticatedRequest;
    const crossSite = crossSiteRefusal(request);
    if (crossSite !== undefined) return done(crossSite);
    if (request.headers[NODE_HEADERS.signature] !== undefined) {
      try {
        slots[CALLER] = authenticateNode(slots, url, authenticator, nodes);
      } catch (err) {
        return done(err as Error);
      }
      return done();
    }
    if (config.public === true || config.tokenInBody === true) return done();
    if (config.metricsToken === true && metricsToken?.matches(request.headers.authorization)) {
      slots[METRICS_SCRAPE] = true;
      return done();
    }
    try {
      const origin = originOf(request);
      // Only a URL with a query has query parameters to look at.
      if (request.url.includes('?')) refuseQueryCredentials(request, authenticator, origin);
      const authorization = request.headers.authorization;
      if (
        answersTokenless &&
        authorization === undefined &&
        certificateHolderOf(request) === undefined &&
        isLoopbackOrigin(origin) &&
        // Over TCP only: no web page reaches the Unix socket, whose clients name any host (`unix`).
        (origin.transport === 'unix' || namesThisMachine(request.host))
      ) {
        // Any local process may call it, every job included: as a principal of its own, never a
        // real user. As one (it was `admin`) it shared that user's dedupe scope (a duplicate key
        // handed over the user's running job and its output), its jobs, account and audit entries.
        slots[CALLER] = authenticator.callerOf(TOKENLESS_PRINCIPAL, origin);
      } else {
        slots[CALLER] = authenticator.authenticateCall(
          authorization,
          () => certificateHolderOf(request),
          origin,
        );
      }
    } catch (err) {
      return done(err as Error);
    }
    done();
  };
}

/**
 * Why a browser's request that changes something came from another site's page, or undefined.
 * A client certificate is an ambient credential: a browser presents it to the server whatever page
 * made the request, and a `fetch` or a beacon without a body needs no preflight, so a page of
 * another site could stop, prune or start jobs as the certificate's holder. A token is not: only a
 * page that holds it can send it. Browsers say where a request comes from, `Sec-Fetch-Site`
 * (every current one), else `Origin`; tools (the CLI, curl, the client library) send neither and
 * are not concerned. Reads (GET, HEAD) change nothing, and no answer is readable across origins
 * (the server sends no CORS headers). `same-site` is refused too: a page of another subdomain.
 */
function crossSiteRefusal(request: FastifyRequest): JobworkerError | undefined {
  const { method, headers } = request;
  if (method === 'GET' || method === 'HEAD') return undefined;
  const site = headers['sec-fetch-site'];
  if (site !== undefined) {
    if (site === 'same-origin' || site === 'none') return undefined;
    return crossSiteError(`Sec-Fetch-Site: ${site}`);
  }
  const origin = headers.origin;
  if (origin === undefined) return undefined;
  let host: string | undefined;
  try {
    host = new URL(origin).host;
  } catch {
    // `null` (a sandboxed page, a redirect) or no URL: no origin this server is.
  }
  // `request.host`: the `Host` header, or HTTP/2's `:authority`.
  return host !== undefined && host === request.host ? undefined : crossSiteError(`Origin: ${origin}`);
}

function crossSiteError(said: string): JobworkerError {
  return new JobworkerError(
    'FORBIDDEN',
    `A request that changes something came from another site's page (${said}): the API takes such requests from its own dashboard and from tools only`,
  );
}

/** Refuses a request that carries a token in its query string, even when its header is right. */
function refuseQueryCredentials(
  request: FastifyRequest,
  authenticator: Authenticator,
  origin: CallOrigin,
): void {
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
}

/**
 * The caller of a request another node forwarded (signed with the cluster secret): the principal
 * it names, without a token, since the forwarding node authenticated and authorised the call. A
 * bad signature is refused like a bad token (counted, audited, logged).
 */
function authenticateNode(
  request: AuthenticatedRequest,
  url: string | undefined,
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
  const route = `${request.method} ${url ?? ''}`;
  if (!FORWARDABLE_ROUTES.has(route)) {
    throw new JobworkerError(
      'FORBIDDEN',
      `A request forwarded by node ${JSON.stringify(call.node)} may not call ${request.method} ${request.url.split('?')[0]}: ` +
        'nodes forward only the live figures, output, stop, pause and resume of jobs',
    );
  }
  // The user as this node knows it too: a node whose directory is behind (a disable, a removal or
  // a new role it has not heard of yet) must not make this one act on what it no longer grants.
  // Not counted as a failed authentication: the forwarding node is not guessing, only late, and a
  // count would shut out every client it forwards for. The client tries again once both agree.
  // A role below the user's here is taken as signed (an admin's call forwarded as `user`, say): it
  // asks for less than this node grants.
  const { user, role } = call.principal;
  // The tokenless principal is no user of any directory: the forwarding node answered a tokenless
  // `/run` (only ever as a `user`) and follows its output here. It opens nothing the cluster secret
  // did not already: a signer may name any user of the directory.
  if (user === TOKENLESS_USER && role === 'user') {
    request[FORWARDED] = call;
    return authenticator.callerOf(TOKENLESS_PRINCIPAL, {
      source: origin.source,
      transport: 'node',
      via: call.node,
    });
  }
  const here = authenticator.knownUser(user);
  if (here === undefined || (here.role !== role && here.role !== 'admin')) {
    throw new UnauthenticatedError(
      `Node ${JSON.stringify(call.node)} forwarded this call as ${role} ${JSON.stringify(user)}, who is ` +
        `${here === undefined ? 'unknown or disabled' : `a ${here.role}`} on this node; try again once the nodes agree`,
    );
  }
  request[FORWARDED] = call;
  const principal = here.role === role ? here : Object.freeze({ ...here, role });
  // Its revision is this node's: a change seen here after this ends what the call opens too.
  return authenticator.callerOf(principal, { source: origin.source, transport: 'node', via: call.node });
}

/**
 * Checks, once the body is parsed, that a forwarded request's body is the one its signature covers
 * (the signature was checked before the body arrived). Bodies of forwarded calls are small JSON
 * objects that `JSON.stringify` writes back byte for byte as the forwarding node sent them. A hook
 * of the forwardable routes only (`FORWARDABLE_ROUTES`, registered after this): a signed request
 * to any other route was refused before its body was read, and the others need no check at all.
 */
function registerForwardedBodyCheck(app: FastifyInstance, authenticator: Authenticator): void {
  const check: preValidationHookHandler = function checkForwardedBody(request, _reply, done) {
    const call = (request as AuthenticatedRequest)[FORWARDED];
    if (call === null) return done();
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
  };
  app.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    if (methods.some((method) => FORWARDABLE_ROUTES.has(`${method} ${route.url}`))) {
      prependRouteHook(route, 'preValidation', check);
    }
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
    caller = authenticator.authenticateTokenCall(token, origin);
  } else {
    caller = authenticator.authenticateCall(
      request.headers.authorization,
      () => certificateHolderOf(request),
      origin,
    );
  }
  (request as AuthenticatedRequest)[CALLER] = caller;
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
  return (request as AuthenticatedRequest)[METRICS_SCRAPE];
}

/** The caller of an authenticated route: its principal and where the request came from. */
export function principalOf(request: FastifyRequest): Caller {
  const caller = (request as AuthenticatedRequest)[CALLER];
  if (!caller) throw new Error(`No principal for ${request.method} ${request.url}: is the route public?`);
  return caller;
}
