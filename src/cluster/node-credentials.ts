import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { writeFileAtomic } from '../auth/atomic-file.ts';
import { type Principal, ROLES, type Role } from '../auth/principal.ts';
import { type Clock, systemClock } from '../core/clock.ts';

/**
 * How one node of a cluster proves to another that a request it forwards is its own (docs/cluster.md,
 * "Forwarding between nodes"). Every node holds the same cluster secret; a forwarded request
 * carries the principal it acts for, the forwarding node's id, the time and an HMAC-SHA256 over
 * all of these with the method, the path and query, and the body's digest.
 *
 * This is weaker than mutual TLS with node certificates from a cluster CA: anyone who holds the
 * secret can act as any user on any node, and a signed request can be replayed within the
 * tolerance window. It is the mechanism until node certificates exist.
 */

/** The header names of a forwarded request (lower case, as Node presents them). */
export const NODE_HEADERS = {
  /** The forwarding node's id. */
  node: 'x-jobworker-node',
  /** The user the request acts as (already authenticated and authorised by the forwarding node). */
  actAs: 'x-jobworker-act-as',
  /** That user's role: `admin`, `user` or `viewer`. */
  actAsRole: 'x-jobworker-act-as-role',
  /** When the request was signed: Unix time in milliseconds. */
  time: 'x-jobworker-node-time',
  /** Hex SHA-256 of the exact body sent (of nothing, without a body). */
  bodyDigest: 'x-jobworker-node-body-sha256',
  /** `v1=<hex HMAC-SHA256>` over the canonical text (`canonicalText`). */
  signature: 'x-jobworker-node-signature',
} as const;

/** The fewest bytes a cluster secret may have: 256 bits. */
export const MIN_SECRET_BYTES = 32;

/** How far a forwarded request's time may be from the receiver's clock, either way. */
export const DEFAULT_TOLERANCE_MS = 60_000;

/** What a signature covers, besides the secret. */
export interface SignedRequest {
  readonly method: string;
  /** The path with its query string, exactly as sent (`/v1/jobs/ID/output?stream=all`). */
  readonly pathAndQuery: string;
  readonly node: string;
  readonly user: string;
  readonly role: Role;
  readonly timeMs: number;
  readonly bodyDigest: string;
}

/** A forwarded request that passed the check: who it acts as and which node sent it. */
export interface ForwardedCall {
  readonly principal: Principal;
  readonly node: string;
  /** The body digest the signature covers: the body, once parsed, must match it (`bodyDigestOf`). */
  readonly bodyDigest: string;
}

/** Why a forwarded request was refused: `reason` for the log, `message` for the client. */
export class NodeSignatureError extends Error {
  override name = 'NodeSignatureError';
  readonly reason: string;
  constructor(reason: string, message: string) {
    super(message);
    this.reason = reason;
  }
}

export interface NodeCredentialsOptions {
  /** This node's id, sent on the requests it forwards. */
  readonly node: string;
  /** The cluster secret (`loadClusterSecret`). */
  readonly secret: Buffer;
  /** Whose time signs and checks requests. Default: the system clock. */
  readonly clock?: Clock;
  /** Default `DEFAULT_TOLERANCE_MS`. */
  readonly toleranceMs?: number;
}

/** Signs the requests this node forwards, and checks those forwarded to it. */
export class NodeCredentials {
  readonly node: string;
  readonly #secret: Buffer;
  readonly #clock: Clock;
  readonly #toleranceMs: number;

  constructor(options: NodeCredentialsOptions) {
    if (options.secret.length < MIN_SECRET_BYTES) {
      throw new Error(
        `Expected a cluster secret of at least ${MIN_SECRET_BYTES} bytes, got ${options.secret.length}`,
      );
    }
    this.node = options.node;
    this.#secret = options.secret;
    this.#clock = options.clock ?? systemClock;
    this.#toleranceMs = options.toleranceMs ?? DEFAULT_TOLERANCE_MS;
  }

  /** The headers that make a request to a peer act as `who`. */
  sign(method: string, pathAndQuery: string, who: Principal, body = ''): Record<string, string> {
    const signed: SignedRequest = {
      method,
      pathAndQuery,
      node: this.node,
      user: who.user,
      role: who.role,
      timeMs: this.#clock.now().getTime(),
      bodyDigest: bodyDigestOf(body),
    };
    return {
      [NODE_HEADERS.node]: signed.node,
      [NODE_HEADERS.actAs]: signed.user,
      [NODE_HEADERS.actAsRole]: signed.role,
      [NODE_HEADERS.time]: String(signed.timeMs),
      [NODE_HEADERS.bodyDigest]: signed.bodyDigest,
      [NODE_HEADERS.signature]: `v1=${this.#mac(signed).toString('hex')}`,
    };
  }

  /**
   * The call a forwarded request makes, or a `NodeSignatureError` saying why it is refused: a
   * header missing or malformed, a signature that does not match (another secret, or a request
   * changed on the way), or a time outside the tolerance (a stale or replayed request, or clocks
   * apart).
   */
  verify(
    method: string,
    pathAndQuery: string,
    headers: Readonly<Record<string, string | string[] | undefined>>,
  ): ForwardedCall {
    const header = (name: string): string => {
      const value = headers[name];
      if (typeof value !== 'string' || value === '') {
        throw new NodeSignatureError(
          'node-header-missing',
          `A forwarded request must carry the header \`${name}\` (docs/cluster.md)`,
        );
      }
      return value;
    };
    const role = header(NODE_HEADERS.actAsRole);
    if (!(ROLES as readonly string[]).includes(role)) {
      throw new NodeSignatureError(
        'node-role-unknown',
        `Expected \`${NODE_HEADERS.actAsRole}\` to be one of ${ROLES.join(', ')}, got ${JSON.stringify(role)}`,
      );
    }
    const timeText = header(NODE_HEADERS.time);
    const timeMs = Number(timeText);
    if (!/^\d{1,16}$/.test(timeText) || !Number.isSafeInteger(timeMs)) {
      throw new NodeSignatureError(
        'node-time-malformed',
        `Expected \`${NODE_HEADERS.time}\` to be Unix time in milliseconds, got ${JSON.stringify(timeText)}`,
      );
    }
    const signed: SignedRequest = {
      method,
      pathAndQuery,
      node: header(NODE_HEADERS.node),
      user: header(NODE_HEADERS.actAs),
      role: role as Role,
      timeMs,
      bodyDigest: header(NODE_HEADERS.bodyDigest),
    };
    const given = /^v1=([0-9a-f]{64})$/.exec(header(NODE_HEADERS.signature))?.[1];
    const expected = this.#mac(signed);
    if (given === undefined || !timingSafeEqual(Buffer.from(given, 'hex'), expected)) {
      throw new NodeSignatureError(
        'node-signature-invalid',
        `The forwarded request from node ${JSON.stringify(signed.node)} has an invalid signature: ` +
          'its cluster secret differs from this node’s, or the request was changed on the way',
      );
    }
    // Checked after the signature, so that an unsigned request learns nothing about our clock.
    const skew = this.#clock.now().getTime() - timeMs;
    if (Math.abs(skew) > this.#toleranceMs) {
      throw new NodeSignatureError(
        'node-signature-stale',
        `The forwarded request from node ${JSON.stringify(signed.node)} was signed ${Math.round(skew / 1000)} s ` +
          `from this node's time, more than the ${this.#toleranceMs / 1000} s allowed (a replay, or clocks apart: run NTP)`,
      );
    }
    return {
      principal: Object.freeze({ user: signed.user, role: signed.role }),
      node: signed.node,
      bodyDigest: signed.bodyDigest,
    };
  }

  #mac(signed: SignedRequest): Buffer {
    return createHmac('sha256', this.#secret).update(canonicalText(signed)).digest();
  }
}

/**
 * The text a signature covers, one field a line: none of them may hold a newline (a method, a
 * request target, a node id, a user name, a role, digits, hex), so no two requests share one.
 */
export function canonicalText(signed: SignedRequest): string {
  for (const [field, value] of Object.entries(signed)) {
    if (typeof value === 'string' && /[\r\n]/.test(value)) {
      throw new NodeSignatureError('node-field-newline', `A forwarded request's ${field} holds a newline`);
    }
  }
  return [
    'jobworker-node-v1',
    signed.method.toUpperCase(),
    signed.pathAndQuery,
    signed.node,
    signed.user,
    signed.role,
    String(signed.timeMs),
    signed.bodyDigest,
  ].join('\n');
}

/** Hex SHA-256 of a body as sent. */
export function bodyDigestOf(body: string): string {
  return createHash('sha256').update(body, 'utf8').digest('hex');
}

/**
 * Reads the cluster secret: a file of at least `MIN_SECRET_BYTES` random bytes, written as hex
 * (`--cluster-secret-file`). With `create`, a missing file is made with a new secret, owner-only.
 * A file that its group or others may read is refused: the secret lets its holder act as any user.
 */
export async function loadClusterSecret(path: string, options: { create?: boolean } = {}): Promise<Buffer> {
  let mode: number;
  try {
    mode = (await stat(path)).mode;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || options.create !== true) {
      throw new Error(
        `Cannot read the cluster secret file ${path}: ${(err as NodeJS.ErrnoException).code ?? err}` +
          ' (every node of a cluster needs the same one: docs/cluster.md)',
        { cause: err },
      );
    }
    const secret = randomBytes(MIN_SECRET_BYTES);
    await writeFileAtomic(path, `${secret.toString('hex')}\n`, 0o600);
    return secret;
  }
  if ((mode & 0o077) !== 0) {
    throw new Error(
      `The cluster secret file ${path} may be read by its group or others (mode ${(mode & 0o777).toString(8)}); ` +
        `make it owner-only: chmod 600 ${path}`,
    );
  }
  const text = (await readFile(path, 'utf8')).trim();
  if (!/^(?:[0-9a-fA-F]{2})+$/.test(text) || text.length / 2 < MIN_SECRET_BYTES) {
    throw new Error(
      `Expected the cluster secret file ${path} to hold at least ${MIN_SECRET_BYTES} bytes as hex ` +
        `(${MIN_SECRET_BYTES * 2} hex digits, e.g. from \`openssl rand -hex ${MIN_SECRET_BYTES}\`), got ${text.length} characters`,
    );
  }
  return Buffer.from(text, 'hex');
}
