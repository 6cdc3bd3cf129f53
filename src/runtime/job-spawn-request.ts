import { resolve } from 'node:path';
import type { JobAccount, JobIsolation, JobSpec } from '../core/job.ts';
import { outputPaths } from '../output/output-files.ts';
import { jobEnvironment } from './job-environment.ts';
import type { JobIoPaths } from './job-io.ts';
import { reachableBy, resolveCommand } from './preflight.ts';
import type { SpawnRequest, SpawnUser } from './spawner-protocol.ts';

/**
 * What the spawner runs for a job: the command's resolved path exec'd with the exact argv
 * (argv[0] as the user wrote it) and the job's whole environment; a shell only for
 * `shell: true`, as `/bin/sh -c SCRIPT sh ARGS...`. `io`: where it may leave its result and progress.
 */
export function jobSpawnRequest(
  spec: JobSpec,
  jobId: string,
  dir: string,
  cgroups: readonly string[],
  io?: JobIoPaths,
): SpawnRequest {
  const env = jobEnvironment(spec, jobId, io);
  const paths = outputPaths(dir);
  const common = {
    jobId,
    dir,
    cwd: spec.cwd,
    env,
    cgroupProcs: cgroups.map((cgroup) => `${cgroup}/cgroup.procs`),
    stdoutPath: paths.stdout,
    stderrPath: paths.stderr,
    ...spawnUser(spec.account),
    ...(spec.isolation ? { isolation: isolationOptions(spec.isolation, io, spec.account) } : {}),
  };
  if (spec.shell) {
    return { ...common, path: '/bin/sh', argv: ['/bin/sh', '-c', spec.command, 'sh', ...spec.args] };
  }
  // A path is exec'd as it is, so a file that is not executable fails with its own errno
  // (EACCES: "Permission denied"). A name is looked up in the job's PATH; one gone since the
  // preflight gets an empty path, which fails the exec with ENOENT: "command not found".
  const path = spec.command.includes('/')
    ? resolve(spec.cwd, spec.command)
    : (resolveCommand(spec.command, spec.cwd, env.PATH ?? '') ?? '');
  return { ...common, path, argv: [spec.command, ...spec.args] };
}

/**
 * A job's isolation as the spawner's options (src/runtime/native/jobworker-spawner.c). With a
 * private /tmp, the job's io directory goes too (`io=`): the default one is below /tmp, and the
 * spawner binds it back into the job's own /tmp, or the job could not leave its result there.
 */
export function isolationOptions(
  isolation: JobIsolation,
  io?: JobIoPaths,
  account?: JobAccount | null,
): string[] {
  const out: string[] = [];
  if (isolation.pid) out.push('pid');
  if (isolation.network === 'none') out.push('net');
  if (isolation.mount?.privateTmp) out.push('tmp', ...(io ? [`io=${io.dir}`] : []));
  if (isolation.hostname !== undefined) out.push(`uts=${isolation.hostname}`);
  // The spawner mounts these as root, and a path that is not there fails the start: a user who
  // named one its job's account cannot reach (`/root/.ssh/id_rsa`) would learn from the start
  // whether it exists. Such a path goes as one that may be missing (`ro?=`, `hide?=`): mounted
  // when it is there, skipped when not, which the account cannot tell apart. Never left out: the
  // check reads mode bits only, and an ACL, or a directory of the account's own that it may
  // `chmod u+x`, can open the way to it all the same.
  const reached = (path: string) => !account || account.uid === 0 || reachableBy(path, account);
  const option = (kind: string, path: string) => `${kind}${reached(path) ? '' : '?'}=${path}`;
  for (const path of isolation.mount?.readOnly ?? []) out.push(option('ro', path));
  for (const path of isolation.mount?.hide ?? []) out.push(option('hide', path));
  return out;
}

/**
 * Whom the job's process becomes. A root server switches to the job's account (root included: it
 * sheds the server's groups). A server of another account cannot switch: its jobs' accounts are its
 * own, and one that is not (queued under a root server) is asked for all the same, so that its
 * start fails with the kernel's reason instead of running as the wrong account.
 */
function spawnUser(account: JobAccount | null): { user?: SpawnUser } {
  if (!account) return {};
  if (process.getuid?.() !== 0 && account.uid === process.getuid?.()) return {};
  return { user: { uid: account.uid, gid: account.gid, groups: account.groups } };
}
