import { type JobExit, type JobLimits, type JobStatus, type JobUsage, TIMEOUT_STOPPER } from './job.ts';
import { formatBytes } from './units.ts';

/**
 * The wrapper's record of how the command ended (see src/runtime/exit-record.ts): an exit code,
 * a signal number, a failure before the command ran, a stop before it ran; `status` and
 * `notfound` are the records of the shell wrapper that servers before the native spawner used.
 */
export type EndRecord =
  | { readonly kind: 'exited'; readonly code: number }
  | { readonly kind: 'signaled'; readonly signal: number }
  | {
      readonly kind: 'failed';
      readonly stage: 'cgroup' | 'stdio' | 'user' | 'chdir' | 'exec' | 'namespace';
      readonly message: string;
    }
  | { readonly kind: 'status'; readonly status: number }
  | { readonly kind: 'notfound' | 'notstarted' };

/** What the runtime knows when a job's processes are gone. */
export interface EndFacts {
  /** The wrapper's record; undefined when none was left. */
  readonly record?: EndRecord;
  readonly command: string;
  /** The job's working directory, named when it could not be entered. */
  readonly cwd?: string;
  /** The name of the OS account the job was to run as; absent for the server's own. */
  readonly account?: string;
  /** Who asked the job to stop, when someone did (`TIMEOUT_STOPPER` for its timeout). */
  readonly stopBy?: string;
  readonly timeoutMs?: number | null;
  /** The stop had to SIGKILL processes after this grace period. */
  readonly forcedAfterMs?: number;
  /**
   * The wrapper died without a record while this server was watching it (the job, or someone,
   * killed it): the server saw it happen and stopped what was left of the job.
   */
  readonly supervisorKilled?: boolean;
  /** Signal names by number (the runtime supplies the host's table). */
  readonly signalName: (num: number) => string | undefined;
  /** The job's limits, named in the reason when it ran into them. */
  readonly limits?: JobLimits;
  /** What its cgroups counted: OOM kills and refused forks are told in the reason. */
  readonly usage?: JobUsage;
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
  return noteLimits(decideFromRecord(facts), facts);
}

/**
 * Says in the reason that the job ran into its limits: a main process killed by the OOM killer
 * reads `out of memory (limit 64 MiB)` rather than `killed by SIGKILL`; OOM kills of other
 * processes and forks refused at the pids limit are added to whatever the reason was.
 */
function noteLimits(outcome: Outcome, facts: EndFacts): Outcome {
  const { usage, limits } = facts;
  if (!usage) return outcome;
  let { reason } = outcome.exit;
  if (usage.oomKills > 0) {
    const oom = `out of memory (limit ${limits?.memory === undefined ? 'of its cgroup' : formatBytes(limits.memory)})`;
    if (outcome.status === 'failed' && outcome.exit.signal === 'SIGKILL') reason = oom;
    else reason = `${reason}; ${oom}: ${plural(usage.oomKills, 'process', 'processes')} killed`;
  }
  if (usage.pidsLimitHits > 0) {
    const limit = limits?.pids === undefined ? '' : ` (${limits.pids})`;
    reason = `${reason}; reached its pids limit${limit}: ${plural(usage.pidsLimitHits, 'fork', 'forks')} refused`;
  }
  return reason === outcome.exit.reason ? outcome : { ...outcome, exit: { ...outcome.exit, reason } };
}

function plural(n: number, one: string, many: string): string {
  return `${n} ${n === 1 ? one : many}`;
}

function decideFromRecord(facts: EndFacts): Outcome {
  const { record } = facts;
  let exit = recordedExit(facts);
  if (!exit && facts.forcedAfterMs !== undefined) {
    exit = { exitCode: null, signal: 'SIGKILL', reason: 'killed by SIGKILL' };
  } else if (!exit && facts.supervisorKilled) {
    exit = {
      exitCode: null,
      signal: null,
      reason: "the job's supervisor process was killed; its remaining processes were stopped",
    };
  }
  exit ??= { exitCode: null, signal: null, reason: 'no exit status' };
  if (facts.forcedAfterMs !== undefined) {
    exit = { ...exit, reason: `${exit.reason} after ${formatDuration(facts.forcedAfterMs)} grace` };
  }
  if (facts.stopBy === TIMEOUT_STOPPER) {
    return {
      status: 'timed_out',
      exit: { ...exit, reason: `timed out after ${formatDuration(facts.timeoutMs ?? 0)}: ${exit.reason}` },
    };
  }
  if (facts.stopBy !== undefined) {
    return { status: 'stopped', exit: { ...exit, reason: `stopped by ${facts.stopBy}: ${exit.reason}` } };
  }
  if (!record && !facts.supervisorKilled) {
    return {
      status: 'lost',
      exit: { ...exit, reason: 'its processes ended while no server was running and left no exit status' },
    };
  }
  return { status: exit.exitCode === 0 ? 'succeeded' : 'failed', exit };
}

function recordedExit(facts: EndFacts): JobExit | undefined {
  const { record } = facts;
  const killedBy = (num: number): JobExit | undefined => {
    const signal = facts.signalName(num);
    return signal ? { exitCode: null, signal, reason: `killed by ${signal}` } : undefined;
  };
  const exited = (code: number): JobExit => ({
    exitCode: code,
    signal: null,
    reason: `exited with code ${code}`,
  });
  switch (record?.kind) {
    case undefined:
      return undefined;
    case 'exited':
      return exited(record.code);
    case 'signaled':
      return (
        killedBy(record.signal) ?? {
          exitCode: null,
          signal: null,
          reason: `killed by signal ${record.signal}`,
        }
      );
    case 'status':
      // The shell wrapper's 128+N cannot be told from a command that exits 128+N: read as a signal.
      return (record.status > 128 ? killedBy(record.status - 128) : undefined) ?? exited(record.status);
    case 'notfound':
      return { exitCode: 127, signal: null, reason: `command not found: ${facts.command}` };
    case 'notstarted':
      return { exitCode: null, signal: null, reason: 'ended before its command started' };
    case 'failed':
      return {
        exitCode: record.stage === 'exec' && record.message === 'command not found' ? 127 : null,
        signal: null,
        reason: failureReason(record, facts),
      };
  }
}

function failureReason(record: Extract<EndRecord, { kind: 'failed' }>, facts: EndFacts): string {
  const { command } = facts;
  const why = record.message ? `: ${record.message}` : '';
  const as = facts.account === undefined ? '' : ` as ${facts.account}`;
  switch (record.stage) {
    case 'exec':
      return record.message === 'command not found'
        ? `command not found: ${command}`
        : `could not execute ${command}${why}`;
    case 'chdir':
      return facts.cwd === undefined
        ? `could not enter its working directory${as}${why}`
        : `could not enter its working directory ${facts.cwd}${as}${why}`;
    case 'user':
      return `could not switch to its account${facts.account === undefined ? '' : ` ${facts.account}`}${why}`;
    case 'cgroup':
      return `could not join its cgroup${why}`;
    case 'stdio':
      return `could not set up its standard streams${why}`;
    case 'namespace':
      // A path of `isolation.mount` that does not exist reads ENOENT here.
      return `could not set up its isolation (namespaces, mounts)${why}`;
  }
}

/** `250 ms`, `10 s`, `1.5 s`, `3 min`, `2 h`. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60_000) return `${Number((ms / 1000).toFixed(1))} s`;
  if (ms < 3_600_000) return `${Number((ms / 60_000).toFixed(1))} min`;
  return `${Number((ms / 3_600_000).toFixed(1))} h`;
}
