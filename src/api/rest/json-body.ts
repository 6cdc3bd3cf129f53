import { isUtf8 } from 'node:buffer';
import { ValidationError } from '../../core/errors.ts';

/**
 * `__proto__` spelled in any mix of plain and `\u`-escaped characters: only a body that may hold
 * one pays for the key-by-key parse.
 */
const MAYBE_PROTO =
  /"(?:_|\\u005[Ff])(?:_|\\u005[Ff])(?:p|\\u0070)(?:r|\\u0072)(?:o|\\u006[Ff])(?:t|\\u0074)(?:o|\\u006[Ff])(?:_|\\u005[Ff])(?:_|\\u005[Ff])"/;

/**
 * Parses a JSON request body, or throws a `ValidationError` on `body` that says what is wrong with
 * it: empty, bytes that are not UTF-8 (a decoder would silently turn them into U+FFFD, so the job
 * would get other bytes than were sent), text that is not JSON, or a `__proto__` key (refused:
 * merged into an object, it would replace that object's prototype).
 */
export function parseJsonBody(body: Buffer): unknown {
  if (body.length === 0) {
    throw new ValidationError('body', 'The request body is empty but its Content-Type says JSON');
  }
  if (!isUtf8(body)) {
    throw new ValidationError('body', 'The request body is not valid UTF-8: send JSON text encoded in UTF-8');
  }
  const text = body.toString('utf8');
  let proto = false;
  let value: unknown;
  try {
    value = MAYBE_PROTO.test(text)
      ? JSON.parse(text, (key, found: unknown) => {
          if (key === '__proto__') proto = true;
          return found;
        })
      : JSON.parse(text);
  } catch (err) {
    // Only the position: V8's message quotes the body, which may hold secrets (env values), and
    // this message is logged.
    const position = /at position (\d+)/.exec((err as Error).message)?.[1];
    const where = position === undefined ? '' : ` (at character ${position})`;
    throw new ValidationError('body', `The request body is not valid JSON${where}`);
  }
  if (proto) {
    throw new ValidationError(
      'body',
      'Expected no `__proto__` key in the request body, got one: no field has that name, and it is ' +
        "refused wherever it comes because it could replace an object's prototype",
    );
  }
  return value;
}
