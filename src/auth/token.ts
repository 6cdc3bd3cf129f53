import { hash, randomBytes } from 'node:crypto';

/** Random bytes in a token: 256 bits, twice the 128 the security model asks for. */
export const TOKEN_BYTES = 32;

/** Recognizable in logs and secret scanners; not part of the secret. */
export const TOKEN_PREFIX = 'jw_';

/** A new bearer token: the prefix, then 32 random bytes in base64url. Shown once, never stored. */
export function generateToken(): string {
  return TOKEN_PREFIX + randomBytes(TOKEN_BYTES).toString('base64url');
}

/**
 * What is stored instead of a token: its SHA-256, in hex. Every authenticated request hashes its
 * token: the one-shot `crypto.hash` makes no Hash object for it.
 */
export function hashToken(token: string): string {
  return hash('sha256', token, 'hex');
}

/** Anything shaped like a token: the prefix and at least 16 base64url characters. */
const TOKEN_SHAPED = /jw_[A-Za-z0-9_-]{16,}/g;

/**
 * `text` with every token-shaped part replaced by `jw_[redacted]`. Error messages and logged URLs
 * go through it, so that a token a client put where it does not belong (a user name, a path, a
 * field it echoes back) reaches neither the answer nor the log.
 */
export function redactTokens(text: string): string {
  return text.includes(TOKEN_PREFIX) ? text.replace(TOKEN_SHAPED, `${TOKEN_PREFIX}[redacted]`) : text;
}
