import { readdirSync, readFileSync } from 'node:fs';

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ, 100 on Linux). */
const CLOCK_TICKS = 100;

/** Resident set size of a process, in bytes (VmRSS). */
export function rssBytes(pid: number): number {
  return statusField(pid, 'VmRSS');
}

/** Peak resident set size since the process started, in bytes (VmHWM). */
export function peakRssBytes(pid: number): number {
  return statusField(pid, 'VmHWM');
}

/** CPU times from /proc/<pid>/stat, in seconds: its own, and those of the children it reaped. */
export interface StatTimes {
  readonly user: number;
  readonly system: number;
  readonly reapedUser: number;
  readonly reapedSystem: number;
}

/** utime, stime, cutime and cstime of a process (`self`: this one), in seconds. */
export function statTimes(pid: number | 'self'): StatTimes {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which is in parentheses and may hold spaces.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const seconds = (i: number) => Number(fields[i]) / CLOCK_TICKS;
  return { user: seconds(11), system: seconds(12), reapedUser: seconds(13), reapedSystem: seconds(14) };
}

/** User + system CPU time the process has used (all its threads), in seconds. */
export function cpuSeconds(pid: number): number {
  const t = statTimes(pid);
  return t.user + t.system;
}

/** CPU time of a process and of the children it reaped, in seconds. */
export function cpuWithReapedSeconds(pid: number | 'self'): number {
  const t = statTimes(pid);
  return t.user + t.system + t.reapedUser + t.reapedSystem;
}

/**
 * CPU time of the process's children, in seconds: what its living children used so far, with what
 * they reaped (for the server: its spawner with the wrappers it reaped and the jobs those reaped,
 * and the checkpoint helper), plus what the process itself reaped (a spawner that ended, say). A
 * grandchild still running (a wrapper, a job) counts only once reaped.
 */
export function childrenCpuSeconds(pid: number): number {
  const own = statTimes(pid);
  let total = own.reapedUser + own.reapedSystem;
  for (const child of childPids(pid)) {
    try {
      total += cpuWithReapedSeconds(child);
    } catch {
      // it ended meanwhile: once reaped, its time is in the process's own (above, next reading)
    }
  }
  return total;
}

/** The pids of the process's children, over all its threads. */
function childPids(pid: number): number[] {
  const out: number[] = [];
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    try {
      const text = readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').trim();
      if (text) out.push(...text.split(' ').map(Number));
    } catch {
      // the thread ended meanwhile
    }
  }
  return out;
}

/**
 * The scheduler's account of the process's main thread alone (its event loop and what runs on it,
 * not libuv's pool, V8's helper threads or GC threads), from /proc/<pid>/task/<pid>/schedstat, in
 * seconds: time it ran on a core, and time it was ready to run but waited for one.
 */
export function mainThreadSchedule(pid: number): { running: number; waiting: number } {
  const [running, waiting] = readFileSync(`/proc/${pid}/task/${pid}/schedstat`, 'utf8')
    .split(' ')
    .map(Number);
  if (running === undefined || waiting === undefined || Number.isNaN(running) || Number.isNaN(waiting)) {
    throw new Error(`Unexpected /proc/${pid}/task/${pid}/schedstat`);
  }
  return { running: running / 1e9, waiting: waiting / 1e9 };
}

/** Descriptors the process holds open now. */
export function openFds(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

function statusField(pid: number, name: string): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status);
  if (!match) throw new Error(`No ${name} in /proc/${pid}/status`);
  return Number(match[1]) * 1024;
}

/** Samples a process's RSS every `everyMs` and keeps the largest value seen. */
export class RssSampler {
  readonly #pid: number;
  readonly #timer: NodeJS.Timeout;
  #max = 0;

  constructor(pid: number, everyMs = 100) {
    this.#pid = pid;
    this.#sample();
    this.#timer = setInterval(() => this.#sample(), everyMs);
  }

  /** Stops sampling and returns the largest RSS seen, in bytes. */
  stop(): number {
    clearInterval(this.#timer);
    this.#sample();
    return this.#max;
  }

  #sample(): void {
    try {
      this.#max = Math.max(this.#max, rssBytes(this.#pid));
    } catch {
      // The process has exited; keep what was seen.
    }
  }
}
