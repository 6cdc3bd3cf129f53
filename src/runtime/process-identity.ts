import { readFileSync } from 'node:fs';
import type { ProcessIdentity } from '../core/job.ts';

/**
 * Who a pid is. A pid alone is never trusted: pids are reused, so a job's process is
 * recognised by pid + start time (clock ticks since boot) + boot id.
 */

let cachedBootId: string | undefined;

/** The kernel's boot id; it changes on every boot. */
export function bootId(): string {
  cachedBootId ??= readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  return cachedBootId;
}

export interface ProcStat {
  /** One-letter state: R, S, D, Z (zombie), T, ... */
  readonly state: string;
  readonly ppid: number;
  readonly pgid: number;
  /** Field 22: start time in clock ticks after boot. */
  readonly startTicks: number;
}

/** Parses /proc/PID/stat, or returns undefined when no such process exists. */
export function readProcStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return undefined;
  }
  // The command name (field 2) may hold spaces and parentheses: parse after the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const startTicks = Number(fields[19]);
  if (!Number.isFinite(startTicks)) return undefined;
  return { state: fields[0] ?? '?', ppid: Number(fields[1]), pgid: Number(fields[2]), startTicks };
}

/** The identity of a process that is alive right now, or undefined. */
export function identify(pid: number): { startTicks: number; bootId: string } | undefined {
  const stat = readProcStat(pid);
  if (!stat || stat.state === 'Z' || stat.state === 'X') return undefined;
  return { startTicks: stat.startTicks, bootId: bootId() };
}

/**
 * True when `pid` is still the very process that was recorded, and alive (a zombie
 * counts as exited: it runs nothing, and on hosts whose init does not reap, it stays).
 */
export function isSameProcessAlive(recorded: RecordedProcess): boolean {
  if (recorded.bootId !== bootId()) return false;
  const stat = readProcStat(recorded.pid);
  return (
    stat !== undefined && stat.startTicks === recorded.startTicks && stat.state !== 'Z' && stat.state !== 'X'
  );
}

/** Whether two records name the same process: pid, start time and boot all alike. */
export function sameProcess(a: RecordedProcess, b: RecordedProcess): boolean {
  return a.pid === b.pid && a.startTicks === b.startTicks && a.bootId === b.bootId;
}

/** A process as recorded: pid, start time and boot. */
export interface RecordedProcess {
  readonly pid: number;
  readonly startTicks: number;
  readonly bootId: string;
}

/**
 * The process whose end is the job's end: its wrapper, which exits once it has recorded the
 * command's exit status. Jobs started before the native spawner recorded only their wrapper,
 * as `pid`.
 */
export function endWatchedProcess(identity: ProcessIdentity): RecordedProcess {
  return identity.wrapper ? { ...identity.wrapper, bootId: identity.bootId } : identity;
}
