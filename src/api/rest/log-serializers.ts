/**
 * pino serializers and redaction for the REST server's logs. Requests are logged without their
 * headers, and with every query parameter that could carry a secret replaced, so no token reaches
 * a log even when a client puts one where it does not belong.
 */

import { redactTokens } from '../../auth/token.ts';

const SECRET_PARAMS = /^(token|access_token|api_key|apikey|password|secret)$/i;

/** Paths pino blanks out wherever they appear in a log line. */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
  'authorization',
  'token',
  '*.token',
];

/**
 * The URL with the values of secret-looking query parameters replaced by `[redacted]`, and any
 * token-shaped part of it (a token pasted into a path) too.
 */
export function redactUrl(url: string): string {
  const q = url.indexOf('?');
  if (q === -1) return redactTokens(url);
  const params = url
    .slice(q + 1)
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=');
      const key = eq === -1 ? pair : pair.slice(0, eq);
      let name = key;
      try {
        name = decodeURIComponent(key);
      } catch {}
      return SECRET_PARAMS.test(name) ? `${key}=[redacted]` : pair;
    });
  return redactTokens(`${url.slice(0, q)}?${params.join('&')}`);
}

interface RequestLike {
  readonly method?: string;
  readonly url?: string;
  readonly ip?: string;
  readonly socket?: { readonly remoteAddress?: string };
  readonly id?: unknown;
}

interface ResponseLike {
  readonly statusCode?: number;
}

export const LOG_SERIALIZERS = {
  req(req: RequestLike) {
    return {
      method: req.method,
      url: redactUrl(req.url ?? ''),
      remoteAddress: req.ip ?? req.socket?.remoteAddress,
    };
  },
  res(res: ResponseLike) {
    return { statusCode: res.statusCode };
  },
};

/**
 * An error serializer (pino's) whose `type` is the error's `name` when that is a class name of its
 * own: pino takes the constructor's name, which the server's bundle minifies
 * (scripts/bundle-server.ts); jobworker's errors, Node's and most packages' set `name`. An error
 * named `Error`, or by something that is not a class name (pg's server errors are named `error`),
 * keeps pino's. The errors of an AggregateError (`aggregateErrors`) are typed the same way.
 */
export function typedByName<T extends { type?: string; aggregateErrors?: unknown[] }>(
  serialize: (err: Error) => T,
): (err: Error) => T {
  return (err) => {
    const out = serialize(err);
    retype(out, err);
    if (err instanceof AggregateError && Array.isArray(out?.aggregateErrors)) {
      for (const [i, inner] of out.aggregateErrors.entries()) retype(inner, err.errors[i]);
    }
    return out;
  };
}

const CLASS_NAME = /^[A-Z][\w$]*$/;

function retype(out: unknown, err: unknown): void {
  if (!(err instanceof Error) || typeof out !== 'object' || out === null) return;
  if (err.name !== 'Error' && CLASS_NAME.test(err.name)) (out as { type?: string }).type = err.name;
}
