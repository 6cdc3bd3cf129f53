import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from './atomic-file.ts';
import type { Principal, Role } from './principal.ts';
import { ROLES } from './principal.ts';
import { generateToken, hashToken } from './token.ts';

/** One issued token, as stored: never the token itself, only its SHA-256. */
export interface TokenRecord {
  readonly id: string;
  readonly user: string;
  readonly role: Role;
  readonly sha256: string;
  readonly createdAt: string;
  /** What the token is for: `admin.token` for the one the server writes into its data directory. */
  readonly purpose: string;
}

interface TokenFile {
  readonly version: 1;
  readonly tokens: TokenRecord[];
}

export const TOKENS_FILE = 'tokens.json';

/**
 * The users' tokens, kept in `<dataDir>/tokens.json` (mode 0600) and held in memory.
 *
 * A JSON file rather than a table in the job database: tokens change a handful of times in a
 * server's life, the file is replaced atomically on each change, and it keeps authentication
 * independent of the job store's schema and migrations (the same auth works over any store).
 * One server per data directory writes it; it is read at start.
 */
export class TokenStore {
  readonly #path: string;
  #tokens: TokenRecord[];
  /**
   * The principal of each stored SHA-256: authentication is one hash and one lookup instead of a
   * comparison with every record. Rebuilt in the same step as `#tokens`, so a revoked token is
   * refused from the next request on. Looked up by hash, never by token, so the lookup's timing
   * says nothing about how much of a wrong token was right.
   */
  #byHash: Map<string, Principal>;

  private constructor(path: string, tokens: TokenRecord[]) {
    this.#path = path;
    this.#tokens = tokens;
    this.#byHash = indexByHash(tokens);
  }

  static async open(dataDir: string): Promise<TokenStore> {
    const path = join(dataDir, TOKENS_FILE);
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new TokenStore(path, []);
      throw err;
    }
    return new TokenStore(path, parseTokenFile(path, text));
  }

  /** The principal a bearer token stands for, or undefined. */
  authenticate(token: string): Principal | undefined {
    return this.#byHash.get(hashToken(token));
  }

  /** The user of any token record named `name` (until users have a store of their own). */
  principalOfUser(name: string): Principal | undefined {
    const record = this.#tokens.find((t) => t.user === name);
    return record === undefined ? undefined : Object.freeze({ user: record.user, role: record.role });
  }

  /** Issues a token and persists its hash. The returned token is the only copy there will ever be. */
  async issue(user: string, role: Role, purpose = 'issued'): Promise<{ token: string; record: TokenRecord }> {
    return this.#issue(user, role, purpose, []);
  }

  /**
   * Issues a token for `purpose` and revokes every earlier one for the same purpose, in one write.
   * `beforeSave` gets the new token before its hash is persisted (to hand it out first).
   */
  async replace(
    user: string,
    role: Role,
    purpose: string,
    beforeSave?: (token: string) => Promise<void>,
  ): Promise<{ token: string; record: TokenRecord }> {
    const revoked = this.#tokens.filter((t) => t.purpose === purpose);
    return this.#issue(user, role, purpose, revoked, beforeSave);
  }

  list(): readonly TokenRecord[] {
    return this.#tokens;
  }

  async #issue(
    user: string,
    role: Role,
    purpose: string,
    revoked: readonly TokenRecord[],
    beforeSave?: (token: string) => Promise<void>,
  ): Promise<{ token: string; record: TokenRecord }> {
    const token = generateToken();
    await beforeSave?.(token);
    const record: TokenRecord = {
      id: randomUUID(),
      user,
      role,
      sha256: hashToken(token),
      createdAt: new Date().toISOString(),
      purpose,
    };
    const tokens = [...this.#tokens.filter((t) => !revoked.includes(t)), record];
    const file: TokenFile = { version: 1, tokens };
    await writeFileAtomic(this.#path, `${JSON.stringify(file, null, 2)}\n`, 0o600);
    this.#tokens = tokens;
    this.#byHash = indexByHash(tokens);
    return { token, record };
  }
}

function indexByHash(tokens: readonly TokenRecord[]): Map<string, Principal> {
  const index = new Map<string, Principal>();
  // The first record of a hash wins, as the linear search did (two records never share one in practice).
  for (const t of tokens) {
    if (!index.has(t.sha256)) index.set(t.sha256, Object.freeze({ user: t.user, role: t.role }));
  }
  return index;
}

function parseTokenFile(path: string, text: string): TokenRecord[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new Error(`${path} is not valid JSON: ${(err as Error).message}`);
  }
  const file = parsed as Partial<TokenFile> | null;
  if (file?.version !== 1 || !Array.isArray(file.tokens)) {
    throw new Error(`${path} is not a jobworker token file (expected {"version": 1, "tokens": [...]})`);
  }
  for (const t of file.tokens) {
    const ok =
      typeof t?.user === 'string' &&
      ROLES.includes(t.role) &&
      typeof t.sha256 === 'string' &&
      /^[0-9a-f]{64}$/.test(t.sha256) &&
      typeof t.purpose === 'string';
    if (!ok)
      throw new Error(`${path} holds a malformed token record: ${JSON.stringify({ ...t, sha256: '...' })}`);
  }
  return file.tokens;
}
