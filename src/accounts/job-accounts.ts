import { statSync } from 'node:fs';
import { homedir, userInfo } from 'node:os';
import { join } from 'node:path';
import type { Principal, Role } from '../auth/principal.ts';
import { JobworkerError, ValidationError } from '../core/errors.ts';
import type { JobAccount, PendingAccount } from '../core/job.ts';
import type { PoolAllocations } from '../core/pool-uids.ts';
import { ensurePoolHome, poolAccountName, poolHomePath, prepareHomesDir } from './account-home.ts';
import { type OsAccounts, readOsAccounts } from './os-accounts.ts';
import { UidPool } from './uid-pool.ts';

/** What the server is, for the choice of a job's account. */
export interface ServerIdentity {
  /** The server runs as root, so it can switch a job to any account. */
  readonly root: boolean;
  /** The server's own account name, for messages. */
  readonly account: string;
  /** `--single-account`: a non-root server runs `user` jobs as its own account too. */
  readonly singleAccount: boolean;
  /** The account of admins that have no run-as of their own (`--admin-run-as`); else the pool. */
  readonly adminRunAs?: string | undefined;
}

/**
 * Whose account a job runs as, before any lookup:
 * - `server`: the server's own (a non-root server cannot switch);
 * - `named`: a passwd account: the user's configured run-as, the admins' default, or `root`;
 * - `pool`: the user's account from the server's pool.
 */
export type AccountChoice =
  | { readonly kind: 'server' }
  | { readonly kind: 'named'; readonly name: string }
  | { readonly kind: 'pool' };

/**
 * The rules of docs/security.md ("What a job can reach"), pure so that each is tested on its own.
 * Only an admin may ask for root; a server that is not root runs every job as itself and so
 * refuses `user` jobs (their owner would reach everything the server can) unless started with
 * `--single-account`.
 */
export function chooseAccount(who: Principal, runAsRoot: boolean, server: ServerIdentity): AccountChoice {
  const admin = who.role === 'admin';
  if (runAsRoot && !admin) {
    throw new ValidationError('runAsRoot', 'Only an admin may run a job as root (`runAsRoot`)', 'FORBIDDEN');
  }
  if (!server.root) {
    // `--admin-run-as` is a choice among accounts, which only a root server has.
    const runAs = who.runAs ?? undefined;
    if (!admin && !server.singleAccount) {
      throw new JobworkerError(
        'ACCOUNT_UNAVAILABLE',
        `This server runs as \`${server.account}\`, not root, so it cannot run a job as its owner's account: ` +
          `a job of user ${who.user} would run as ${server.account} and reach all the server can. Run the server ` +
          `as root, or start it with --single-account to accept that every job runs as ${server.account}`,
      );
    }
    if (runAsRoot) {
      throw new ValidationError(
        'runAsRoot',
        `This server runs as \`${server.account}\`, not root: it cannot run a job as root`,
        'ACCOUNT_UNAVAILABLE',
      );
    }
    if (runAs !== undefined && runAs !== server.account) {
      throw new JobworkerError(
        'ACCOUNT_UNAVAILABLE',
        `User ${who.user} runs jobs as \`${runAs}\`, but this server runs as \`${server.account}\`, not root, ` +
          'and cannot switch to another account: run the server as root',
      );
    }
    return { kind: 'server' };
  }
  const runAs = who.runAs ?? (admin ? server.adminRunAs : undefined) ?? undefined;
  if (runAsRoot) return { kind: 'named', name: 'root' };
  if (runAs !== undefined) return { kind: 'named', name: runAs };
  return { kind: 'pool' };
}

export interface JobAccountsOptions {
  /** Where the pool's allocations are kept (`accounts.json`). */
  readonly dataDir: string;
  /** Where pool accounts' homes are made (`<homesDir>/<user>`); outside the data directory. */
  readonly homesDir: string;
  readonly singleAccount?: boolean;
  readonly adminRunAs?: string | undefined;
  /** The directory of `passwd` and `group`; tests point elsewhere. Default `/etc`. */
  readonly etc?: string;
  /** Told when a directory above the homes directory keeps other accounts out. */
  readonly onHomesWarning?: (message: string) => void;
  /**
   * Where pool uids are kept when not in `<dataDir>/accounts.json`: the store a cluster's nodes
   * share (`PgPoolAccounts`), so that a user's uid is one on every node.
   */
  readonly pool?: PoolAllocations;
}

/**
 * Picks and resolves the OS account of each submitted job (the service calls it): a configured
 * account from passwd, root for an admin who asked, or a pool account with its home; the server's
 * own account when it cannot switch. passwd and group are read again only when they changed.
 */
export class JobAccounts {
  readonly #options: JobAccountsOptions;
  readonly #server: ServerIdentity;
  readonly #pool: PoolAllocations;
  /** Pool homes known to exist with the right owner, by user and uid (`<uid>:<user>`). */
  readonly #homes = new Map<string, string>();
  /** The homes directory, made on the first pool account (a server without one makes nothing). */
  #homesDir: Promise<void> | undefined;
  #os: { accounts: OsAccounts; stamp: string } | undefined;
  /** passwd's and group's paths, joined once (#osAccounts runs at every admission). */
  #files: { readonly passwd: string; readonly group: string } | undefined;

  private constructor(options: JobAccountsOptions, pool: PoolAllocations) {
    this.#options = options;
    this.#pool = pool;
    this.#server = {
      root: process.getuid?.() === 0,
      account: serverAccount().name,
      singleAccount: options.singleAccount === true,
      adminRunAs: options.adminRunAs,
    };
  }

  static async open(options: JobAccountsOptions): Promise<JobAccounts> {
    return new JobAccounts(options, options.pool ?? (await UidPool.open(options.dataDir)));
  }

  /** What the server is, as the rules see it. */
  get server(): ServerIdentity {
    return this.#server;
  }

  /**
   * The account a job of `who` runs as; `ValidationError` or `ACCOUNT_UNAVAILABLE` when none may.
   * A pool account the pool has not given yet comes pending: the engine makes it (allocates its
   * uid, makes its home) only for a submission whose spec passed its checks.
   */
  async accountFor(who: Principal, runAsRoot: boolean): Promise<JobAccount | PendingAccount> {
    const choice = chooseAccount(who, runAsRoot, this.#server);
    if (choice.kind === 'server') return serverAccount();
    if (choice.kind === 'named') return this.#named(who, choice.name);
    const user = who.user;
    if ((this.#pool.uidOf(user) ?? (await this.#pool.find(user))) !== undefined)
      return this.#poolAccount(user);
    return {
      name: poolAccountName(user),
      home: poolHomePath(this.#options.homesDir, user),
      make: () => this.#poolAccount(user),
    };
  }

  /**
   * Whether the pool gave `user` an account. Its uid and home are kept after the user is removed:
   * a new user of the same name would be given them (`UserService`'s `usedBefore`).
   */
  async hasPoolAccount(user: string): Promise<boolean> {
    return (await this.#pool.find(user)) !== undefined;
  }

  /**
   * Checks, on the node about to run a job, that the account it was admitted with (on whichever
   * node of a cluster took it) is the same account here: a job never runs as a uid this host gives
   * someone else. A pool account's uid must be the one the pool gives its owner (a job admitted
   * by a node that gave uids from a file of its own, before the cluster kept them, may carry one
   * the pool gives another user) and name no passwd or group entry here, and its home is made here
   * when missing; a named account must be in this host's passwd with the same uid and
   * gid; the server's own account must be this server's. Throws, saying what differs, otherwise.
   */
  async checkOnThisHost(owner: string, account: JobAccount | null): Promise<void> {
    const self = serverAccount();
    if (account === null || (account.uid === self.uid && account.name === self.name)) return;
    if (!this.#server.root) {
      throw new JobworkerError(
        'ACCOUNT_UNAVAILABLE',
        `The job runs as \`${account.name}\` (uid ${account.uid}), but this node runs as \`${self.name}\`, not root, and cannot switch to it`,
      );
    }
    const os = await this.#osAccounts();
    if (account.name === poolAccountName(owner)) {
      const pooled = await this.#pool.find(owner);
      if (pooled !== account.uid) {
        throw new JobworkerError(
          'ACCOUNT_UNAVAILABLE',
          `The job runs as the pool account of user ${owner} with uid ${account.uid}, but the pool gives user ${owner} ` +
            (pooled === undefined ? 'no uid' : `uid ${pooled}`) +
            ' (a uid a node gave from its own accounts.json before the cluster kept them: docs/cluster.md, "Job accounts"); start the job again',
        );
      }
      if (os.usedUids.has(account.uid) || os.usedGids.has(account.uid)) {
        throw new JobworkerError(
          'ACCOUNT_UNAVAILABLE',
          `The pool account of user ${owner} has uid ${account.uid}, which this host's passwd or group gives to an account of its own`,
        );
      }
      await this.#home(owner, account.uid);
      return;
    }
    const here = os.byName(account.name);
    if (here === undefined || here.uid !== account.uid || here.gid !== account.gid) {
      throw new JobworkerError(
        'ACCOUNT_UNAVAILABLE',
        `The job runs as \`${account.name}\` (uid ${account.uid}, gid ${account.gid}), which this host's passwd ` +
          (here === undefined ? 'does not name' : `gives uid ${here.uid}, gid ${here.gid}`) +
          ': give the account the same ids on every node',
      );
    }
  }

  /**
   * Refuses, when an admin configures it, a run-as account this server could never run a user's
   * jobs as: one not in /etc/passwd, root for a role other than admin, or any other account than
   * its own on a server that is not root. The same rules hold again at each submit (passwd changes).
   */
  async checkRunAs(name: string, role: Role): Promise<void> {
    if (!this.#server.root) {
      if (name !== this.#server.account) {
        throw new ValidationError(
          'runAs',
          `This server runs as \`${this.#server.account}\`, not root, so it cannot run jobs as \`${name}\`: run the server as root`,
          'ACCOUNT_UNAVAILABLE',
        );
      }
      return;
    }
    const account = (await this.#osAccounts()).byName(name);
    if (!account) {
      throw ValidationError.expected(
        'runAs',
        'an account in /etc/passwd (jobworker reads accounts from /etc/passwd only)',
        name,
      );
    }
    if (account.uid === 0 && role !== 'admin') {
      throw new ValidationError(
        'runAs',
        `Only an admin may run jobs as \`${name}\` (uid 0); this user's role is ${role}`,
        'FORBIDDEN',
      );
    }
  }

  async #named(who: Principal, name: string): Promise<JobAccount> {
    const account = (await this.#osAccounts()).byName(name);
    if (!account) {
      throw new JobworkerError(
        'ACCOUNT_UNAVAILABLE',
        `The account \`${name}\` that jobs of user ${who.user} run as is not in /etc/passwd ` +
          '(jobworker reads accounts from /etc/passwd only, not from other NSS sources)',
      );
    }
    if (account.uid === 0 && who.role !== 'admin') {
      throw new JobworkerError(
        'ACCOUNT_UNAVAILABLE',
        `User ${who.user} is configured to run jobs as \`${name}\` (uid 0): only admin jobs may run as root`,
      );
    }
    return account;
  }

  async #poolAccount(user: string): Promise<JobAccount> {
    let uid = this.#pool.uidOf(user);
    if (uid === undefined) uid = await this.#pool.allocate(user, await this.#osAccounts());
    const home = await this.#home(user, uid);
    return { name: poolAccountName(user), uid, gid: uid, groups: [uid], home };
  }

  /** The pool account's home on this host, made (owned by `uid`) when missing. */
  async #home(user: string, uid: number): Promise<string> {
    // By uid too: a home checked for one uid says nothing of another's.
    const key = `${uid}:${user}`;
    let home = this.#homes.get(key);
    if (home === undefined) {
      this.#homesDir ??= prepareHomesDir(this.#options.homesDir, this.#options.onHomesWarning);
      await this.#homesDir.catch((err: unknown) => {
        this.#homesDir = undefined;
        throw err;
      });
      home = await ensurePoolHome(this.#options.homesDir, user, uid);
      this.#homes.set(key, home);
    }
    return home;
  }

  /**
   * passwd and group as they are now, read again only when either file changed. Every admission
   * asks: the two stats are synchronous (microseconds each), where two trips through the thread
   * pool cost the event loop more than the syscalls and queued behind other file work.
   */
  async #osAccounts(): Promise<OsAccounts> {
    const etc = this.#options.etc ?? '/etc';
    this.#files ??= { passwd: join(etc, 'passwd'), group: join(etc, 'group') };
    const stamp = `${fileStamp(this.#files.passwd)}/${fileStamp(this.#files.group)}`;
    if (this.#os?.stamp !== stamp) this.#os = { accounts: await readOsAccounts(etc), stamp };
    return this.#os.accounts;
  }
}

/** What tells a file's versions apart (inode, mtime, size); '-' when it cannot be read. */
function fileStamp(path: string): string {
  try {
    const s = statSync(path);
    return `${s.ino}:${s.mtimeMs}:${s.size}`;
  } catch {
    return '-';
  }
}

/**
 * The server's own account: what every job of a server that is not root runs as. A uid without a
 * passwd entry (a container run with `--user 1234`) is named by its number.
 */
export function serverAccount(): JobAccount {
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  let name = String(uid);
  try {
    name = userInfo().username;
  } catch {
    // no passwd entry: the number it is
  }
  return { name, uid, gid, groups: process.getgroups?.() ?? [gid], home: homedir() };
}
