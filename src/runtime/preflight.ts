import { accessSync, constants, lstatSync, readlinkSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { ValidationError } from '../core/errors.ts';
import type { JobAccount, JobSpec } from '../core/job.ts';

/**
 * Checks, just before a job is created, what only the filesystem can tell: the working
 * directory exists and the command can be executed. A bad spec is refused here with
 * nothing created, rather than becoming a job that fails at once. `homeToMake` is the home of an
 * account not made yet (`unmadeAccount`), which is made once the job is admitted: as working
 * directory, it counts as the empty directory of the account's own it will be.
 */
export function preflight(spec: JobSpec, env: Readonly<Record<string, string>>, homeToMake?: string): void {
  // The account's view first: whether a directory it may not search holds `cwd` (or its command)
  // is no business of the job's owner, so what lies behind one is answered alike, existing or not.
  // The home to be made is the account's own once made (`ensurePoolHome` takes one left by an
  // earlier data directory only when the pool gives its owner's uid, and refuses it otherwise):
  // only the way to it is the account's to search.
  const inHomeToMake = homeToMake !== undefined && resolve(spec.cwd) === resolve(homeToMake);
  const blocked = spec.account
    ? firstUnsearchable(inHomeToMake ? dirname(resolve(spec.cwd)) : spec.cwd, spec.account)
    : undefined;
  if (blocked !== undefined && spec.account) {
    throw new ValidationError(
      'cwd',
      `The job would run as ${spec.account.name}, which cannot enter its working directory ${spec.cwd} ` +
        `(${blocked} is not searchable by it): pass a working directory it can enter (\`cwd\`, ` +
        '`jobworker start --cwd DIR`), or run it from one',
    );
  }
  if (!inHomeToMake) checkCwd(spec.cwd);
  if (spec.shell) return;
  if (resolveCommand(spec.command, spec.cwd, env.PATH ?? '', spec.account) === undefined) {
    throw new ValidationError('command', commandNotFound(spec.command), 'COMMAND_NOT_FOUND');
  }
}

function checkCwd(cwd: string): void {
  let cwdStat: ReturnType<typeof statSync>;
  try {
    cwdStat = statSync(cwd);
  } catch {
    throw new ValidationError('cwd', `Working directory does not exist: ${cwd}`);
  }
  if (!cwdStat.isDirectory())
    throw new ValidationError('cwd', `Working directory is not a directory: ${cwd}`);
}

/**
 * What the checks of a submit see of an account not made yet (a user's first pool account, whose
 * uid is allocated only once its job passed them): a new uid owns no file and its group holds no
 * one, so it reaches what other accounts reach (ids no file or group carries say just that).
 */
export function unmadeAccount(pending: { readonly name: string; readonly home: string }): JobAccount {
  return { name: pending.name, uid: -1, gid: -1, groups: [], home: pending.home };
}

/**
 * The first directory on the way to `dir` that `account` may not search (execute permission by
 * its owner, group and other bits), or undefined when it may enter `dir`, or when something on the
 * way does not exist behind directories it may search (it could see that itself). Symbolic links
 * are followed as the kernel follows them for the account: a link's target is walked in turn, each
 * of its directories checked too, so that a link in a directory of the account's own cannot carry
 * the check past a directory it may not search. Root may enter any. ACLs are not read: a
 * directory opened to the account by an ACL alone is refused here (the message says which, so a
 * `cwd` elsewhere or a mode bit fixes it).
 */
/**
 * Whether `account` can look `path` up: every directory on the way to it that exists is one it may
 * search. What it cannot reach, it cannot see either, there or not.
 */
export function reachableBy(path: string, account: JobAccount): boolean {
  return firstUnsearchable(dirname(resolve(path)), account) === undefined;
}

function firstUnsearchable(dir: string, account: JobAccount): string | undefined {
  if (account.uid === 0) return undefined;
  /** What is left to walk, component by component; `at`, the directory reached (no link in it). */
  const pending = resolve(dir).split('/').filter(Boolean);
  let at = '/';
  let links = 0;
  for (;;) {
    const st = statSync(at, { throwIfNoEntry: false });
    if (st === undefined) return undefined; // gone meanwhile: the start reports it
    if (!searchableBy(st, account)) return at;
    const name = pending.shift();
    if (name === undefined) return undefined;
    if (name === '.') continue;
    if (name === '..') {
      at = dirname(at);
      continue;
    }
    const next = at === '/' ? `/${name}` : `${at}/${name}`;
    const entry = lstatSync(next, { throwIfNoEntry: false });
    if (entry === undefined) return undefined;
    if (entry.isSymbolicLink()) {
      // As many as the kernel follows (40, then ELOOP): the start reports a loop.
      if (++links > 40) return undefined;
      const target = readlinkSync(next);
      pending.unshift(...target.split('/').filter(Boolean));
      if (target.startsWith('/')) at = '/';
      continue;
    }
    // A file where a directory was to be: not searchable by anyone; the caller's stat says so.
    if (!entry.isDirectory()) return undefined;
    at = next;
  }
}

/** Whether `account` may search a directory of these modes: by its owner, group or other bits. */
function searchableBy(st: { uid: number; gid: number; mode: number }, account: JobAccount): boolean {
  const bit =
    st.uid === account.uid
      ? 0o100
      : st.gid === account.gid || account.groups.includes(st.gid)
        ? 0o010
        : 0o001;
  return (st.mode & bit) !== 0;
}

/**
 * "command not found: ls -l", with the likely cause when the command holds whitespace: it is one
 * program name, never split into words (that takes a shell).
 */
function commandNotFound(command: string): string {
  const message = `command not found: ${command}`;
  if (!/\s/.test(command.trim())) return message;
  const [program = command, ...words] = command.trim().split(/\s+/);
  return (
    `${message}. \`command\` names one program and is never split into words: for a command line ` +
    `with spaces, send \`"shell": true\` to run it with /bin/sh -c, or the program alone with its ` +
    `arguments in \`args\` (${JSON.stringify({ command: program, args: words })})`
  );
}

/**
 * The executable `command` names, as execvp(3) would find it, or undefined. With `account` (the
 * job's), only in a directory that account may search: one it may not could hold the file or not,
 * and the job could run it in neither case, so both answer undefined alike.
 */
export function resolveCommand(
  command: string,
  cwd: string,
  path: string,
  account?: JobAccount | null,
): string | undefined {
  const reachable = (file: string) =>
    isExecutableFile(file) && (!account || firstUnsearchable(dirname(file), account) === undefined);
  if (command.includes('/')) {
    const file = isAbsolute(command) ? command : resolve(cwd, command);
    return reachable(file) ? file : undefined;
  }
  for (const dir of path.split(':')) {
    const file = join(resolve(cwd, dir || '.'), command);
    if (reachable(file)) return file;
  }
  return undefined;
}

function isExecutableFile(file: string): boolean {
  try {
    // Most directories of PATH lack the command: a missing file answers undefined, without an
    // error made (with its stack) and thrown for each of them at every admission.
    if (!statSync(file, { throwIfNoEntry: false })?.isFile()) return false;
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}
