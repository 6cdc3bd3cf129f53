import { createHash } from 'node:crypto';
import { chmod, chown, lstat, mkdir, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';

/**
 * The part of a pool account's name and home path that comes from its jobworker user name: the name
 * itself when it is a safe file and account name, else `u-` and a hash of it (a user called `..`
 * or `a/b` must not name a path outside the homes directory).
 */
export function accountSlug(user: string): string {
  if (/^[A-Za-z0-9_][A-Za-z0-9._-]{0,31}$/.test(user)) return user;
  return `u-${createHash('sha256').update(user).digest('hex').slice(0, 16)}`;
}

/** The name a pool account goes by (USER, LOGNAME): `jw-<user>`. It has no passwd entry. */
export function poolAccountName(user: string): string {
  return `jw-${accountSlug(user)}`;
}

/** Where the pool account of `user` has its home: `<homesDir>/<user>` (made by `ensurePoolHome`). */
export function poolHomePath(homesDir: string, user: string): string {
  return join(homesDir, accountSlug(user));
}

/**
 * Makes `<homesDir>/<user>` the pool account's home: a directory owned by the uid, mode 0700, so
 * that no other account (another user's pool account included) can read what its jobs keep there.
 * One that exists already must be a directory of the same uid: a home left by another owner is
 * never handed over (a wrong homes directory could otherwise chown someone's real home).
 */
export async function ensurePoolHome(homesDir: string, user: string, uid: number): Promise<string> {
  const home = poolHomePath(homesDir, user);
  try {
    await mkdir(home, { mode: 0o700 });
    await chown(home, uid, uid);
    await chmod(home, 0o700);
    return home;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  const stats = await lstat(home);
  if (!stats.isDirectory() || stats.uid !== uid) {
    throw new Error(
      `${home} exists but is not a directory owned by uid ${uid}, the account of user ${user}: ` +
        'remove it, or give the server a homes directory of its own (--homes-dir)',
    );
  }
  return home;
}

/**
 * Makes the homes directory (0755: each home in it is 0700 and its account's own) and warns when a
 * directory above it keeps other accounts out, which fails the start of every pool job (its home
 * is its default working directory).
 */
export async function prepareHomesDir(homesDir: string, warn?: (message: string) => void): Promise<void> {
  await mkdir(homesDir, { recursive: true, mode: 0o755 });
  const own = (await stat(homesDir)).mode & 0o7777;
  if ((own & 0o005) !== 0o005) await chmod(homesDir, own | 0o755);
  for (let dir = dirname(homesDir); ; dir = dirname(dir)) {
    if (((await stat(dir)).mode & 0o001) === 0) {
      warn?.(
        `${dir} is not searchable by other accounts: jobs of pool accounts cannot reach their homes in ${homesDir}`,
      );
    }
    if (dir === dirname(dir)) break;
  }
}
