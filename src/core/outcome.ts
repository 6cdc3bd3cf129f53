import type { JobExit, JobStatus } from './job.ts';

/** What the runtime knows when a job's processes are gone. */
export interface EndFacts {
  /** The wrapper's record: the command's shell status, or why it never ran; undefined when none was left. */
  readonly record?:
    | { readonly kind: 'status'; readonly status: number }
    | { readonly kind: 'notfound' | 'cgroup' | 'notstarted' };
  readonly command: string;
  /** Who asked the job to stop, when someone did (`timeout` for a timeout). */
  readonly stopBy?: string;
  readonly timeoutMs?: number | null;
  /** The stop had to SIGKILL processes after this grace period. */
  readonly forcedAfterMs?: number;
  /** Signal names by number (the runtime supplies the host's table). */
  readonly signalName: (num: number) => string | undefined;
}

export interface Outcome {
  readonly status: JobStatus;
  readonly exit: JobExit;
}

/**
 * Decides a finished job's status and its one human line. Never invents an exit code:
 * with no record the job is `lost` (or `stopped`, when a stop was asked for and its
 * processes are gone, which is all a stop promises).
 */
export function decideOutcome(facts: EndFacts): Outcome {
  const { record } = facts;
  let exit: JobExit;
  if (record?.kind === 'notfound') {
    exit = { exitCode: 127, signal: null, reason: `command not found: ${facts.command}` };
  } else if (record?.kind === 'notstarted') {
    exit = { exitCode: null, signal: null, reason: 'ended before its command started' };
  } else if (record?.kind === 'cgroup') {
    exit = { exitCode: null, signal: null, reason: 'could not join its cgroup' };
  } else if (record?.kind === 'status') {
    const signal = record.status > 128 ? facts.signalName(record.status - 128) : undefined;
    exit = signal
      ? { exitCode: null, signal, reason: `killed by ${signal}` }
      : { exitCode: record.status, signal: null, reason: `exited with code ${record.status}` };
  } else if (facts.forcedAfterMs !== undefined) {
    exit = { exitCode: null, signal: 'SIGKILL', reason: 'killed by SIGKILL' };
  } else {
    exit = { exitCode: null, signal: null, reason: 'no exit status' };
  }
  if (facts.forcedAfterMs !== undefined) {
    exit = { ...exit, reason: `${exit.reason} after ${formatDuration(facts.forcedAfterMs)} grace` };
  }
  if (facts.stopBy === 'timeout') {
    return {
      status: 'timed_out',
      exit: { ...exit, reason: `timed out after ${formatDuration(facts.timeoutMs ?? 0)}: ${exit.reason}` },
    };
  }
  if (facts.stopBy !== undefined) {
    return { status: 'stopped', exit: { ...exit, reason: `stopped by ${facts.stopBy}: ${exit.reason}` } };
  }
  if (!record) {
    return {
      status: 'lost',
      exit: { ...exit, reason: 'its processes ended while no server was running and left no exit status' },
    };
  }
  return { status: exit.exitCode === 0 ? 'succeeded' : 'failed', exit };
}

/** `250 ms`, `10 s`, `1.5 s`, `3 min`, `2 h`. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60_000) return `${Number((ms / 1000).toFixed(1))} s`;
  if (ms < 3_600_000) return `${Number((ms / 60_000).toFixed(1))} min`;
  return `${Number((ms / 3_600_000).toFixed(1))} h`;
}
