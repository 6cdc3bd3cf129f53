import { readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import type { TokenRecord, UserRecord, UserStore } from '../store/user-store.ts';
import { ROLES, type Role, TOKENLESS_USER } from './principal.ts';

/** Where servers before the user store kept their tokens (hashes only), in the data directory. */
export const TOKENS_FILE = 'tokens.json';
/** What it is renamed to once its tokens are in the store. */
export const IMPORTED_TOKENS_FILE = 'tokens.json.imported';

/** One record of tokens.json (version 1). */
interface LegacyTokenRecord {
  readonly id: string;
  readonly user: string;
  readonly role: Role;
  readonly sha256: string;
  readonly createdAt: string;
  /** `admin.token`, `issued`, or a caller's own word. */
  readonly purpose: string;
}

/**
 * Carries the users and tokens of an older server's `tokens.json` into the store, so that an
 * upgraded server keeps accepting every token it accepted, then renames the file to
 * `tokens.json.imported`. A user gets the role of its records (admin if any was). The import is
 * one transaction that skips what is already stored, so a crash before the rename only repeats it.
 * Resolves with how many tokens were imported (0 when there is no file).
 */
export async function importLegacyTokens(dataDir: string, store: UserStore): Promise<number> {
  const path = join(dataDir, TOKENS_FILE);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw err;
  }
  const records = parseTokenFile(path, text);
  const users = new Map<string, UserRecord>();
  for (const r of records) {
    const known = users.get(r.user);
    const createdAt = new Date(r.createdAt);
    if (!known || (r.role === 'admin' && known.role !== 'admin')) {
      users.set(r.user, {
        name: r.user,
        role: r.role,
        runAs: null,
        disabled: false,
        createdAt: known?.createdAt ?? createdAt,
      });
    }
  }
  const tokens: TokenRecord[] = records.map((r) => ({
    id: r.id,
    user: r.user,
    label: r.purpose === 'issued' ? null : r.purpose,
    sha256: r.sha256,
    createdAt: new Date(r.createdAt),
    lastUsedAt: null,
    expiresAt: null,
    revokedAt: null,
  }));
  await store.importUsers([...users.values()], tokens);
  await rename(path, join(dataDir, IMPORTED_TOKENS_FILE));
  return tokens.length;
}

function parseTokenFile(path: string, text: string): LegacyTokenRecord[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new Error(`${path} is not valid JSON: ${(err as Error).message}`);
  }
  const file = parsed as { version?: unknown; tokens?: unknown } | null;
  if (file?.version !== 1 || !Array.isArray(file.tokens)) {
    throw new Error(`${path} is not a jobworker token file (expected {"version": 1, "tokens": [...]})`);
  }
  for (const t of file.tokens as Partial<LegacyTokenRecord>[]) {
    const ok =
      typeof t?.id === 'string' &&
      typeof t.user === 'string' &&
      t.user !== '' &&
      ROLES.includes(t.role as Role) &&
      typeof t.sha256 === 'string' &&
      /^[0-9a-f]{64}$/.test(t.sha256) &&
      typeof t.createdAt === 'string' &&
      !Number.isNaN(Date.parse(t.createdAt)) &&
      typeof t.purpose === 'string';
    if (!ok)
      throw new Error(`${path} holds a malformed token record: ${JSON.stringify({ ...t, sha256: '...' })}`);
    // The one way into the store that does not go through `checkUserName`: a user of this name
    // would be the tokenless principal, and its token would act as every tokenless `/run`.
    if (t.user === TOKENLESS_USER) {
      throw new Error(
        `${path} holds a token of user ${JSON.stringify(t.user)}, a name jobworker keeps for tokenless POST /run (--run-without-token): remove that record`,
      );
    }
  }
  return file.tokens as LegacyTokenRecord[];
}
