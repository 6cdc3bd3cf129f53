import { chmod, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from './atomic-file.ts';
import type { TokenStore } from './token-store.ts';

export const ADMIN_TOKEN_FILE = 'admin.token';
const PURPOSE = 'admin.token';

export interface AdminTokenResult {
  readonly path: string;
  /** True when a new admin token was issued at this start (first start, or the file had gone). */
  readonly created: boolean;
}

/**
 * Makes sure `<dataDir>/admin.token` holds a working admin token, readable by its owner only.
 * On first start, and whenever the file is missing or its token does not work, a new token is
 * issued and written there, and the one written there before is revoked: deleting the file and
 * restarting is how an operator rotates it. The file is written before the hash is stored, so a
 * crash in between leaves a file whose token does not work yet, which the next start replaces.
 */
export async function ensureAdminToken(dataDir: string, tokens: TokenStore): Promise<AdminTokenResult> {
  const path = join(dataDir, ADMIN_TOKEN_FILE);
  const existing = await stat(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  if (existing) {
    const token = (await readFile(path, 'utf8')).trim();
    if (tokens.authenticate(token)?.role === 'admin') {
      if ((existing.mode & 0o077) !== 0) await chmod(path, 0o600);
      return { path, created: false };
    }
  }
  await tokens.replace('admin', 'admin', PURPOSE, (token) => writeFileAtomic(path, `${token}\n`, 0o600));
  return { path, created: true };
}
