import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { JobAccount } from '../core/job.ts';

/**
 * The host's accounts, read from `/etc/passwd` and `/etc/group` (files only).
 *
 * Node has no getpwnam(3), so NSS sources other than `files` (LDAP, SSSD, systemd-userdb) are not
 * consulted: an account that only they know is "unknown" here. Shelling out to `getent` would
 * reach them, at the cost of a process per lookup on the submit path and a dependency on what
 * `getent` prints; a job account is named by an admin once per user, so an account meant for jobs
 * can be given a files entry. docs/operations.md says so.
 */
export interface OsAccounts {
  /** The account named `name`, with its supplementary groups; undefined when passwd has none. */
  byName(name: string): JobAccount | undefined;
  /** Every uid that passwd names, and every gid that group or passwd names (the pool avoids them). */
  readonly usedUids: ReadonlySet<number>;
  readonly usedGids: ReadonlySet<number>;
}

interface PasswdEntry {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  readonly home: string;
  readonly shell: string;
}

interface GroupEntry {
  readonly gid: number;
  readonly members: readonly string[];
}

/** Reads the two files now (they are small); call again to see later changes. */
export async function readOsAccounts(etc = '/etc'): Promise<OsAccounts> {
  const [passwd, group] = await Promise.all([
    readFile(join(etc, 'passwd'), 'utf8'),
    readFile(join(etc, 'group'), 'utf8').catch(() => ''),
  ]);
  return osAccounts(parsePasswd(passwd), parseGroup(group));
}

function osAccounts(users: readonly PasswdEntry[], groups: readonly GroupEntry[]): OsAccounts {
  const byName = new Map<string, PasswdEntry>();
  // The first entry wins, as getpwnam(3) reads the file.
  for (const user of users) if (!byName.has(user.name)) byName.set(user.name, user);
  return {
    byName(name) {
      const user = byName.get(name);
      if (!user) return undefined;
      const supplementary = groups.filter((g) => g.members.includes(name)).map((g) => g.gid);
      return {
        name: user.name,
        uid: user.uid,
        gid: user.gid,
        groups: [...new Set([user.gid, ...supplementary])],
        home: user.home,
        ...(user.shell === '' ? {} : { shell: user.shell }),
      };
    },
    usedUids: new Set(users.map((u) => u.uid)),
    usedGids: new Set([...groups.map((g) => g.gid), ...users.map((u) => u.gid)]),
  };
}

/** `name:x:uid:gid:gecos:home:shell` lines; malformed lines and NIS `+`/`-` lines are skipped. */
export function parsePasswd(text: string): PasswdEntry[] {
  const entries: PasswdEntry[] = [];
  for (const line of text.split('\n')) {
    const fields = line.split(':');
    if (fields.length < 7) continue;
    const [name = '', , uid = '', gid = '', , home = '', shell = ''] = fields;
    if (name === '' || name.startsWith('+') || name.startsWith('-') || name.startsWith('#')) continue;
    const u = id(uid);
    const g = id(gid);
    if (u === undefined || g === undefined) continue;
    entries.push({ name, uid: u, gid: g, home, shell });
  }
  return entries;
}

/** `name:x:gid:member,member` lines. */
export function parseGroup(text: string): GroupEntry[] {
  const entries: GroupEntry[] = [];
  for (const line of text.split('\n')) {
    const fields = line.split(':');
    if (fields.length < 4) continue;
    const gid = id(fields[2] ?? '');
    if (gid === undefined || (fields[0] ?? '').startsWith('#')) continue;
    entries.push({ gid, members: (fields[3] ?? '').split(',').filter((m) => m !== '') });
  }
  return entries;
}

function id(text: string): number | undefined {
  if (!/^\d{1,10}$/.test(text)) return undefined;
  const n = Number(text);
  return n < 0xffffffff ? n : undefined;
}
