import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type Harness, openHarness } from '../helpers/engine-harness.ts';
import { type AppHarness, openApp } from '../helpers/rest-app-harness.ts';

const WEB_ROOT = new URL('../../dist/web', import.meta.url).pathname;

/** Each registered route (method and path) with the names of its hooks, from Fastify's route tree. */
function routesWithHooks(tree: string): { route: string; hooks: Map<string, string[]> }[] {
  const routes: { route: string; hooks: Map<string, string[]> }[] = [];
  for (const line of tree.split('\n')) {
    const hook = /• \((\w+)\) (\[.*\])$/.exec(line);
    if (hook) {
      routes.at(-1)?.hooks.set(hook[1]!, JSON.parse(hook[2]!) as string[]);
      continue;
    }
    const route = /([^\s│├└─]\S*) \(([A-Z, ]+)\)$/.exec(line);
    if (route) routes.push({ route: `${route[2]} ${route[1]}`, hooks: new Map() });
  }
  return routes;
}

describe('every route has its own authentication and request-count hooks', () => {
  let h: Harness;
  let a: AppHarness;
  before(async () => {
    h = await openHarness();
    // The dashboard's files and the RPC methods too: the OpenAPI document lists neither.
    a = await openApp(h, { webRoot: WEB_ROOT });
  });
  after(async () => {
    await a.close();
    await h.destroy();
  });

  it('lists authenticate() first among onRequest hooks and countRequest() among onResponse ones, once each, on every route', () => {
    const routes = routesWithHooks(a.app.printRoutes({ includeHooks: true, commonPrefix: false }));
    assert.ok(routes.length > 100, `${routes.length} routes in the tree`);
    assert.ok(
      routes.some((r) => r.route.includes('JobService')),
      'the RPC routes are in the tree',
    );
    for (const { route, hooks } of routes) {
      // The app-wide hook for unmatched requests comes first: it returns at once for routed ones.
      assert.deepEqual(hooks.get('onRequest')?.slice(0, 2), ['unmatchedOnly()', 'authenticate()'], route);
      assert.equal(hooks.get('onRequest')?.filter((name) => name === 'authenticate()').length, 1, route);
      assert.equal(hooks.get('onResponse')?.filter((name) => name === 'countRequest()').length, 1, route);
    }
  });
});
