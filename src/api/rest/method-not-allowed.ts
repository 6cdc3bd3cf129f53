import { JobworkerError } from '../../core/errors.ts';

/** A request whose path has routes, none of them for its method: 405 with `Allow`. */
export class MethodNotAllowedError extends JobworkerError {
  static override readonly errorName = 'MethodNotAllowedError';
  /** The methods the path has, for the `Allow` header. */
  readonly allowed: readonly string[];
  constructor(method: string, path: string, allowed: readonly string[]) {
    super('METHOD_NOT_ALLOWED', `Expected the method of ${path} to be ${allowed.join(', ')}, got ${method}`);
    this.allowed = allowed;
  }
}

/**
 * Which methods each registered path answers, so that the not-found handler can tell a wrong
 * method (405) from a wrong path (404). Fastify's router only answers "which route matches this
 * method and URL", so the route patterns are kept here as they are registered (`onRoute`).
 */
export class RouteMethods {
  readonly #routes: { readonly pattern: RegExp; readonly method: string }[] = [];

  add(method: string, url: string): void {
    this.#routes.push({ pattern: patternOf(url), method: method.toUpperCase() });
  }

  /** The methods `path` (no query string) has, in a stable order; empty for an unknown path. */
  allowed(path: string): string[] {
    const methods = new Set<string>();
    for (const route of this.#routes) if (route.pattern.test(path)) methods.add(route.method);
    return [...methods].sort();
  }
}

/** `/v1/jobs/:id/output` → `^/v1/jobs/[^/]+/output$`; `:id(regex)` keeps its regex; `*` is anything. */
function patternOf(url: string): RegExp {
  let source = '';
  for (let i = 0; i < url.length; ) {
    const c = url[i]!;
    if (c === ':' && url[i + 1] !== ':') {
      const name = /^:[A-Za-z0-9_]+/.exec(url.slice(i))?.[0] ?? ':';
      i += name.length;
      if (url[i] === '(') {
        const close = url.indexOf(')', i);
        source += `(?:${url.slice(i + 1, close)})`;
        i = close + 1;
      } else source += '[^/]+';
    } else if (c === '*') {
      source += '.*';
      i++;
    } else {
      source += c === ':' ? ':' : c.replace(/[.+?^${}()|[\]\\]/g, '\\$&');
      i += c === ':' ? 2 : 1;
    }
  }
  return new RegExp(`^${source}$`);
}
