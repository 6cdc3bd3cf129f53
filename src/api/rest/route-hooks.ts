import type { FastifyInstance, onRequestHookHandler, onResponseHookHandler, RouteOptions } from 'fastify';

type LifecycleHook = 'onRequest' | 'preValidation' | 'preHandler' | 'onResponse';

/** What a route hook is made from: the route's options (config and URL), as registered. */
export interface RouteSeen {
  readonly url?: string;
  readonly config?: unknown;
}

/**
 * Puts `hook` first among the route's own `name` hooks (which run after the app-wide ones), from
 * an `onRoute` hook. A hook made per route knows its route: reading the route's URL or config per
 * request through `request.routeOptions` builds a 12-field object every time.
 * The array is replaced, never changed in place: Fastify copied the options for the route's
 * HEAD twin before the `onRoute` hooks ran, and that twin gets its own hook when its turn comes.
 */
export function prependRouteHook<H>(route: RouteOptions, name: LifecycleHook, hook: H): void {
  const own = route[name] as H | H[] | undefined;
  const hooks = own === undefined ? [hook] : [hook, ...(Array.isArray(own) ? own : [own])];
  (route as unknown as Record<LifecycleHook, H[]>)[name] = hooks;
}

/**
 * A hook on every request, made per route: each route registered from now on gets its own, made
 * by `make` with its options, and the requests no route matched (the not-found and method-not-
 * allowed answers, `request.is404`) get the one `make` makes for no route (`undefined`), through
 * an app-wide hook that returns at once for the others. Call it before registering the routes.
 */
export function addRouteHook(
  app: FastifyInstance,
  name: 'onRequest',
  make: (route: RouteSeen | undefined) => onRequestHookHandler,
): void;
export function addRouteHook(
  app: FastifyInstance,
  name: 'onResponse',
  make: (route: RouteSeen | undefined) => onResponseHookHandler,
): void;
export function addRouteHook(
  app: FastifyInstance,
  name: 'onRequest' | 'onResponse',
  make: (route: RouteSeen | undefined) => onRequestHookHandler | onResponseHookHandler,
): void {
  app.addHook('onRoute', (route) => prependRouteHook(route, name, make(route)));
  const unmatched = make(undefined) as onRequestHookHandler;
  app.addHook(name as 'onRequest', function unmatchedOnly(request, reply, done) {
    if (request.is404) return unmatched.call(this, request, reply, done);
    done();
  });
}
