import { chmod, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from './atomic-file.ts';
import type { UserDirectory } from './user-directory.ts';

export const ADMIN_TOKEN_FILE = 'admin.token';
/** The bootstrap user, whose token the server writes into its data directory. */
export const BOOTSTRAP_ADMIN = 'admin';
const LABEL = 'admin.token';

export interface AdminTokenResult {
  readonly path: string;
  /** True when a new admin token was issued at this start (first start, or the file had gone). */
  readonly created: boolean;
  /** True when the user `admin` is disabled: the file's token authenticates nobody until it is enabled. */
  readonly disabled: boolean;
}

/**
 * Makes sure `<dataDir>/admin.token` holds a working token of the bootstrap user `admin`, readable
 * by its owner only. The user is created with role admin when it does not exist (first start, or
 * after `user rm admin`). Whenever the file is missing or its token does not work (revoked,
 * expired, unknown), a new token is issued and written there, and the earlier `admin.token` tokens
 * are revoked: deleting the file and restarting is how an operator rotates it. A disabled `admin`
 * stays disabled (an admin disabled it on purpose). The file is written before the hash is
 * stored, so a crash in between leaves a file whose token does not work yet, which the next start
 * replaces.
 */
export async function ensureAdminToken(
  dataDir: string,
  accounts: UserDirectory,
  options: { readonly node?: string } = {},
): Promise<AdminTokenResult> {
  // Nodes of a cluster share the users: each keeps a token of its own, labelled with its id, so
  // that one node issuing its file's token never revokes another node's (docs/cluster.md).
  const label = options.node === undefined ? LABEL : `${LABEL}@${options.node}`;
  const path = join(dataDir, ADMIN_TOKEN_FILE);
  if (!accounts.user(BOOTSTRAP_ADMIN)) {
    // Nodes of a cluster starting together race to create it: the loser finds it made.
    await accounts.addUser({ name: BOOTSTRAP_ADMIN, role: 'admin' }).catch(async (err: unknown) => {
      if ((err as { code?: unknown }).code !== 'ALREADY_EXISTS') throw err;
      await accounts.reload();
    });
  }
  const disabled = accounts.user(BOOTSTRAP_ADMIN)?.disabled === true;
  const existing = await stat(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  if (existing) {
    const verdict = accounts.verify((await readFile(path, 'utf8')).trim());
    const works = verdict.ok || (verdict.reason === 'user-disabled' && verdict.user === BOOTSTRAP_ADMIN);
    if (works && (verdict.ok ? verdict.principal.user : verdict.user) === BOOTSTRAP_ADMIN) {
      if ((existing.mode & 0o077) !== 0) await chmod(path, 0o600);
      return { path, created: false, disabled };
    }
  }
  await accounts.issueToken(
    { user: BOOTSTRAP_ADMIN, label },
    { revokeLabelled: true, beforeSave: (token) => writeFileAtomic(path, `${token}\n`, 0o600) },
  );
  return { path, created: true, disabled };
}
