import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifySchema } from 'fastify';

/**
 * The dashboard's Content-Security-Policy (docs/dashboard.md, "Security"). Scripts only from the
 * server's own files (no inline script, no eval); network only to the server itself; no frames,
 * plugins or forms elsewhere. Styles are the one exception: the terminal view (@xterm/xterm's DOM
 * renderer) writes its theme and cell sizes into `<style>` elements and 24-bit colours into
 * `style` attributes, which CSP counts as inline styles. Inline styles cannot run code.
 */
export const DASHBOARD_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "style-src-elem 'self' 'unsafe-inline'",
  "style-src-attr 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "manifest-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/** Headers of every dashboard response. */
export const DASHBOARD_HEADERS: Readonly<Record<string, string>> = {
  'Content-Security-Policy': DASHBOARD_CSP,
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'no-referrer',
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Resource-Policy': 'same-origin',
};

/**
 * Where the built dashboard is: `dist/web` of this checkout, built by scripts/build.sh from web/.
 * Found from the sources (src/api/rest/) and from the emitted JavaScript (dist/src/api/rest/).
 */
export function defaultWebRoot(): string {
  const candidates = ['../../../dist/web', '../../../web'].map((relative) =>
    fileURLToPath(new URL(relative, import.meta.url)),
  );
  return candidates.find((dir) => existsSync(`${dir}/index.html`)) ?? candidates[0]!;
}

/**
 * The dashboard at `/`: the files of `root` (the Vite build), each a route of its own so that
 * every other path still gets the API's own 404. The files are public (they hold no data; every
 * API call they make carries credentials). Not in the OpenAPI document. Without a build, `GET /`
 * says how to make one.
 */
export async function registerDashboard(app: FastifyInstance, root: string): Promise<void> {
  await app.register(async (scope) => {
    scope.addHook('onRoute', (route) => {
      route.config = { ...(route.config ?? {}), public: true, dashboard: true } as typeof route.config;
    });
    if (!existsSync(`${root}/index.html`)) {
      // Hidden from the OpenAPI document, like the built files (@fastify/static hides its routes).
      scope.get('/', { schema: { hide: true } as FastifySchema }, async (_request, reply) =>
        reply
          .code(404)
          .headers(DASHBOARD_HEADERS)
          .type('text/plain; charset=utf-8')
          .send(`The dashboard is not built (${root}/index.html is missing): run scripts/setup.sh\n`),
      );
      return;
    }
    await scope.register(fastifyStatic, {
      root,
      prefix: '/',
      wildcard: false,
      index: 'index.html',
      decorateReply: false,
      cacheControl: false,
      etag: true,
      setHeaders: (res, path) => {
        for (const [name, value] of Object.entries(DASHBOARD_HEADERS)) res.setHeader(name, value);
        // Vite names assets by their content: a new build has new names, so they never go stale.
        res.setHeader(
          'Cache-Control',
          path.includes('/assets/') ? 'public, max-age=31536000, immutable' : 'no-cache',
        );
      },
    });
  });
}
