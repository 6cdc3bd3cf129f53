import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply, FastifyRequest, FastifySchema } from 'fastify';
import { loadOnce } from '../../core/load-once.ts';

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
 * every other path still gets the API's own 404 (`index.html` also at `/`; dotfiles are not
 * served). The files are public (they hold no data; every API call they make carries
 * credentials). Not in the OpenAPI document. Without a build, `GET /` says how to make one.
 *
 * Each file is sent by @fastify/send (ETag, Last-Modified, conditional GET, ranges), loaded on the
 * first request for a file: @fastify/static, which registered these routes before, loads glob
 * and the rest of its own dependencies at start, memory an idle server held for nothing (issue 9,
 * `npm run bench -- idle-memory`).
 */
export async function registerDashboard(app: FastifyInstance, root: string): Promise<void> {
  await app.register(async (scope) => {
    // Hidden from the OpenAPI document; public (src/api/rest/authentication.ts).
    const options = { schema: { hide: true } as FastifySchema, config: { public: true } };
    if (!existsSync(`${root}/index.html`)) {
      scope.get('/', options, async (_request, reply) =>
        reply
          .code(404)
          .headers(DASHBOARD_HEADERS)
          .type('text/plain; charset=utf-8')
          .send(`The dashboard is not built (${root}/index.html is missing): run scripts/setup.sh\n`),
      );
      return;
    }
    for (const file of builtFiles(root)) {
      // The path as @fastify/send takes it (URL-encoded, which it decodes), made once.
      const encoded = `/${file.split('/').map(encodeURIComponent).join('/')}`;
      const urls = file === 'index.html' ? ['/', '/index.html'] : [`/${file}`];
      for (const url of urls) {
        scope.get(url, options, (request, reply) => sendBuiltFile(request, reply, root, file, encoded));
      }
    }
  });
}

/**
 * The files of the build, as paths relative to `root` with `/`, without dotfiles or what is in a
 * dot-directory; a symbolic link counts when it leads to a file.
 */
function builtFiles(root: string): string[] {
  return readdirSync(root, { recursive: true, withFileTypes: true })
    .filter((entry) => {
      if (entry.isFile()) return true;
      return entry.isSymbolicLink() && leadsToFile(join(entry.parentPath, entry.name));
    })
    .map((entry) => relative(root, join(entry.parentPath, entry.name)).split(sep).join('/'))
    .filter((file) => !file.split('/').some((part) => part.startsWith('.')))
    .sort();
}

/** True when the link leads to a file; a broken link, a loop or one not to be read is left out. */
function leadsToFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

// Tried again by the next request when it fails, not kept as every request's failure.
const loadSend = loadOnce(() => import('@fastify/send'));

async function sendBuiltFile(
  request: FastifyRequest,
  reply: FastifyReply,
  root: string,
  file: string,
  encoded: string,
): Promise<FastifyReply> {
  const { send } = await loadSend();
  const sent = await send(request.raw, encoded, {
    root,
    index: false,
    dotfiles: 'deny',
    etag: true,
    lastModified: true,
    cacheControl: false,
  });
  // The file went away since the routes were made (a rebuild): as any unknown path.
  if (sent.type === 'error' && sent.statusCode === 404) {
    reply.callNotFound();
    return reply;
  }
  // A server error (an unreadable file) is the app's error; a refusal of this request (416 for a
  // range past the end, 412 for a failed If-Match) is answered as @fastify/send says, headers too.
  if (sent.type === 'error' && sent.statusCode >= 500) throw sent.metadata.error;
  reply.code(sent.statusCode).headers(sent.headers).headers(DASHBOARD_HEADERS);
  if (sent.type !== 'file') {
    // A refusal is not the file: no cache may keep it in the file's place.
    reply.header('Cache-Control', 'no-store');
    return reply.send(sent.stream);
  }
  // 200 and 206 (a 304 has no body, and so no type).
  if (sent.statusCode !== 304 && !reply.hasHeader('content-type')) reply.type('application/octet-stream');
  // Vite names assets by their content: a new build has new names, so they never go stale.
  reply.header(
    'Cache-Control',
    file.startsWith('assets/') ? 'public, max-age=31536000, immutable' : 'no-cache',
  );
  return reply.send(sent.stream);
}
