import { accessSync, constants, statSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { ValidationError } from '../core/errors.ts';
import type { JobAccount, JobSpec } from '../core/job.ts';

/**
 * Checks, just before a job is created, what only the filesystem can tell: the working
 * directory exists and the command can be executed. A bad spec is refused here with
 * nothing created, rather than becoming a job that fails at once.
 */
export function preflight(spec: JobSpec, env: Readonly<Record<string, string>>): void {
  // The account's view first: whether a directory it may not search holds `cwd` (or its command)
  // is no business of the job's owner, so what lies behind one is answered alike, existing or not.
  const blocked = spec.account ? firstUnsearchable(spec.cwd, spec.account) : undefined;
  if (blocked !== undefined && spec.account) {
    throw new ValidationError(
      'cwd',
      `The job would run as ${spec.account.name}, which cannot enter its working directory ${spec.cwd} ` +
        `(${blocked} is not searchable by it): pass a working directory it can enter (\`cwd\`, ` +
        '`jobworker start --cwd DIR`), or run it from one',
    );
  }
  let cwdStat: ReturnType<typeof statSync>;
  try {
    cwdStat = statSync(spec.cwd);
  } catch {
    throw new ValidationError('cwd', `Working directory does not exist: ${spec.cwd}`);
  }
  if (!cwdStat.isDirectory())
    throw new ValidationError('cwd', `Working directory is not a directory: ${spec.cwd}`);
  if (spec.shell) return;
  if (resolveCommand(spec.command, spec.cwd, env.PATH ?? '', spec.account) === undefined) {
    throw new ValidationError('command', commandNotFound(spec.command), 'COMMAND_NOT_FOUND');
  }
}

/**
 * The first directory on the way to `dir` that `account` may not search (execute permission by
 * its owner, group and other bits), or undefined when it may enter `dir`, or when a directory on
 * the way does not exist behind ones it may search (it could see that itself). Root may enter any.
 * ACLs are not read: a directory opened to the account by an ACL alone is refused here (the
 * message says which, so a `cwd` elsewhere or a mode bit fixes it).
 */
function firstUnsearchable(dir: string, account: JobAccount): string | undefined {
  if (account.uid === 0) return undefined;
  const parts = resolve(dir).split('/').filter(Boolean);
  for (let i = 0; i <= parts.length; i++) {
    const path = `/${parts.slice(0, i).join('/')}`;
    const st = statSync(path, { throwIfNoEntry: false });
    if (st === undefined) return undefined;
    const bit =
      st.uid === account.uid
        ? 0o100
        : st.gid === account.gid || account.groups.includes(st.gid)
          ? 0o010
          : 0o001;
    if ((st.mode & bit) === 0) return path;
  }
  return undefined;
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
