import type { RouteOptions } from 'fastify';

type LifecycleHook = 'onRequest' | 'preValidation' | 'onResponse';

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
