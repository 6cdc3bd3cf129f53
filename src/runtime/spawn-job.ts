import { type ChildProcess, spawn } from 'node:child_process';
import { SpawnError } from '../core/errors.ts';
import type { JobSpec, ProcessIdentity } from '../core/job.ts';
import { bootId, readProcStat } from './process-identity.ts';
import { wrapperArgs } from './wrapper.ts';

export interface SpawnRequest {
  readonly spec: JobSpec;
  /** The job's directory, where the wrapper writes its exit record. */
  readonly dir: string;
  /** The job's cgroup directories (may be empty). */
  readonly cgroups: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  /** File descriptors of the job's stdout and stderr files; the caller closes them afterwards. */
  readonly stdoutFd: number;
  readonly stderrFd: number;
}

export interface SpawnedJob {
  readonly child: ChildProcess;
  readonly identity: ProcessIdentity;
}

/**
 * Starts the job's wrapper as the leader of a new session and process group, with the
 * job's output files as its stdout and stderr (the kernel writes them; the server is
 * never in the data path) and /dev/null as stdin.
 */
export function spawnJob(request: SpawnRequest): SpawnedJob {
  const { spec } = request;
  const command = spec.shell
    ? ['/bin/sh', '-c', spec.command, 'sh', ...spec.args]
    : [spec.command, ...spec.args];
  let child: ChildProcess;
  try {
    child = spawn(
      '/bin/sh',
      wrapperArgs(
        request.dir,
        request.cgroups.map((dir) => `${dir}/cgroup.procs`),
        command,
      ),
      {
        cwd: spec.cwd,
        env: request.env,
        detached: true,
        stdio: ['ignore', request.stdoutFd, request.stderrFd],
        argv0: 'jobworker-wrapper',
      },
    );
  } catch (err) {
    throw new SpawnError(`Could not start the job: ${(err as Error).message}`, { cause: err });
  }
  const pid = child.pid;
  if (pid === undefined) {
    // spawn reports EAGAIN, EMFILE and the like asynchronously; the error event carries it.
    child.on('error', () => {});
    throw new SpawnError('Could not start the job: the operating system refused to create a process');
  }
  // Read now, before the event loop can reap it: even a wrapper that already exited is
  // still a zombie with its start time until Node collects it.
  const startTicks = readProcStat(pid)?.startTicks ?? -1;
  return { child, identity: { pid, startTicks, bootId: bootId(), cgroups: [...request.cgroups] } };
}
