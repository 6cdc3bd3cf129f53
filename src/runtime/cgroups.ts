import {
  accessSync,
  constants,
  existsSync,
  mkdirSync,
  readFileSync,
  rmdirSync,
  watch,
  writeFileSync,
} from 'node:fs';
import { rmdir as rmdirAsync } from 'node:fs/promises';
import { join } from 'node:path';
import { ValidationError } from '../core/errors.ts';
import type { JobLimits } from '../core/job.ts';
import { type CgroupMounts, readCgroupMounts } from './cgroup-mounts.ts';
import { cgroupParent } from './delegated-cgroup.ts';
import { sendSignal } from './signals.ts';

/** How this host lets jobworker contain a job's processes. */
export type CgroupMode = 'v2' | 'v1' | 'none';

export interface CgroupOptions {
  /** Name of the directory created in each hierarchy to hold the jobs' cgroups. */
  readonly name?: string;
  /** Force a mode (tests, or hosts where detection picks wrongly); `none` disables cgroups. */
  readonly mode?: CgroupMode;
  readonly mounts?: CgroupMounts;
}

/**
 * Creates, watches, kills and removes per-job cgroups.
 *
 * The unified (v2) hierarchy is preferred: `cgroup.kill` ends every process at once and
 * `cgroup.events` tells, by a kernel notification, when the cgroup is empty. On v1 (or
 * hybrid hosts whose v2 hierarchy lacks a controller) the job also joins the v1 `freezer`
 * (for a race-free kill) and, when it asks for limits, `memory` and `cpu`.
 */
export class Cgroups {
  readonly mode: CgroupMode;
  /** Our directory in the v2 hierarchy, when usable. */
  readonly #v2Root: string | null;
  readonly #v2Kill: boolean;
  readonly #v2Controllers: ReadonlySet<string>;
  /** Our directory in each usable v1 controller hierarchy. */
  readonly #v1Roots: ReadonlyMap<string, string>;

  constructor(options: CgroupOptions = {}) {
    const name = options.name ?? 'jobworker';
    const mounts = options.mounts ?? readCgroupMounts();
    const want = options.mode;
    // As root: the hierarchy's root; as another account: its own delegated cgroup (cgroupParent).
    const v2Parent = want === 'none' || want === 'v1' || !mounts.v2 ? null : cgroupParent(mounts.v2);
    this.#v2Root = v2Parent === null ? null : makeRoot(join(v2Parent, name));
    this.#v2Kill = this.#v2Root !== null && existsSync(join(this.#v2Root, 'cgroup.kill'));
    this.#v2Controllers = this.#v2Root ? enableControllers(this.#v2Root) : new Set();
    const v1 = new Map<string, string>();
    if (want !== 'none' && want !== 'v2') {
      for (const controller of ['freezer', 'memory', 'cpu']) {
        if (this.#v2Controllers.has(controller === 'freezer' ? 'freeze' : controller)) continue;
        const mount = mounts.v1.get(controller);
        const root = mount ? makeRoot(join(mount, name)) : null;
        if (root) v1.set(controller, root);
      }
    }
    this.#v1Roots = v1;
    this.mode = this.#v2Root ? 'v2' : v1.has('freezer') ? 'v1' : 'none';
  }

  /** Throws a ValidationError when the host cannot enforce a requested limit. */
  checkLimits(limits: JobLimits): void {
    if (
      limits.memoryBytes !== undefined &&
      !this.#v2Controllers.has('memory') &&
      !this.#v1Roots.has('memory')
    ) {
      throw new ValidationError(
        'limits.memoryBytes',
        'This host gives jobworker no memory cgroup controller',
      );
    }
    if (limits.cpuMillis !== undefined && !this.#v2Controllers.has('cpu') && !this.#v1Roots.has('cpu')) {
      throw new ValidationError('limits.cpuMillis', 'This host gives jobworker no cpu cgroup controller');
    }
  }

  /**
   * Creates the job's cgroups and applies its limits. Returns their directories, the
   * tracking one (v2, else v1 freezer) first; empty when the host has none. On failure
   * removes what it made and throws.
   */
  create(jobId: string, limits: JobLimits): string[] {
    const dirs: string[] = [];
    try {
      if (this.#v2Root) {
        const dir = join(this.#v2Root, jobId);
        mkdirSync(dir);
        dirs.push(dir);
        if (limits.memoryBytes !== undefined && this.#v2Controllers.has('memory')) {
          writeFileSync(join(dir, 'memory.max'), String(limits.memoryBytes));
          // Without swap off, a job over its limit swaps instead of being stopped by the limit.
          if (existsSync(join(dir, 'memory.swap.max'))) writeFileSync(join(dir, 'memory.swap.max'), '0');
        }
        if (limits.cpuMillis !== undefined && this.#v2Controllers.has('cpu')) {
          writeFileSync(join(dir, 'cpu.max'), `${limits.cpuMillis * 100} 100000`);
        }
      }
      const freezer = this.#v1Roots.get('freezer');
      if (freezer) dirs.push(mk(join(freezer, jobId)));
      const memory = this.#v1Roots.get('memory');
      if (memory && limits.memoryBytes !== undefined) {
        const dir = mk(join(memory, jobId));
        dirs.push(dir);
        writeFileSync(join(dir, 'memory.limit_in_bytes'), String(limits.memoryBytes));
      }
      const cpu = this.#v1Roots.get('cpu');
      if (cpu && limits.cpuMillis !== undefined) {
        const dir = mk(join(cpu, jobId));
        dirs.push(dir);
        writeFileSync(join(dir, 'cpu.cfs_period_us'), '100000');
        writeFileSync(join(dir, 'cpu.cfs_quota_us'), String(limits.cpuMillis * 100));
      }
      return dirs;
    } catch (err) {
      this.remove(dirs);
      throw err;
    }
  }

  /** Pids of every process in the job's tracking cgroup. */
  pids(dirs: readonly string[]): number[] {
    const tracking = dirs[0];
    if (!tracking) return [];
    try {
      return readFileSync(join(tracking, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
    } catch {
      return [];
    }
  }

  isEmpty(dirs: readonly string[]): boolean {
    const tracking = dirs[0];
    if (!tracking) return true;
    if (tracking === this.#v2Dir(dirs)) {
      try {
        return readFileSync(join(tracking, 'cgroup.events'), 'utf8').includes('populated 0');
      } catch {
        return true;
      }
    }
    return this.pids(dirs).length === 0;
  }

  /** Kills every process in the job's cgroups, escapees of the process group included. */
  killAll(dirs: readonly string[]): void {
    const v2 = this.#v2Dir(dirs);
    if (v2 && this.#v2Kill) {
      try {
        writeFileSync(join(v2, 'cgroup.kill'), '1');
        return;
      } catch {
        // fall through to the pid-by-pid kill
      }
    }
    // Freeze first (v1 freezer, or v2 cgroup.freeze) so nothing can fork while we kill.
    const freezer = dirs.find(
      (d) => this.#v1Roots.get('freezer') && d.startsWith(this.#v1Roots.get('freezer')!),
    );
    const freeze = (on: boolean) => {
      try {
        if (freezer) writeFileSync(join(freezer, 'freezer.state'), on ? 'FROZEN' : 'THAWED');
        else if (v2) writeFileSync(join(v2, 'cgroup.freeze'), on ? '1' : '0');
      } catch {
        // freezing is an optimisation of the loop below, not required for it
      }
    };
    for (let round = 0; round < 20 && !this.isEmpty(dirs); round++) {
      freeze(true);
      for (const pid of this.pids(dirs)) sendSignal(pid, 'SIGKILL');
      freeze(false);
    }
  }

  /**
   * Freezes (or thaws) every process of the job: `cgroup.freeze` on v2, `freezer.state` on v1.
   * False when the job has no cgroup that can freeze (the caller falls back to SIGSTOP).
   */
  freeze(dirs: readonly string[], frozen: boolean): boolean {
    const freezer = this.#v1Roots.get('freezer');
    const v1 = freezer ? dirs.find((d) => d.startsWith(`${freezer}/`)) : undefined;
    const v2 = this.#v2Dir(dirs);
    try {
      if (v2) writeFileSync(join(v2, 'cgroup.freeze'), frozen ? '1' : '0');
      else if (v1) writeFileSync(join(v1, 'freezer.state'), frozen ? 'FROZEN' : 'THAWED');
      else return false;
      return true;
    } catch {
      return false;
    }
  }

  /** The cgroup directories that exist for a job id: what a start cut short may have left. */
  existing(jobId: string): string[] {
    const roots = [this.#v2Root, ...this.#v1Roots.values()].filter((r) => r !== null);
    return roots.map((root) => join(root, jobId)).filter((dir) => existsSync(dir));
  }

  /** Resolves once the job's cgroup has no process left (a kernel notification on v2). */
  whenEmpty(dirs: readonly string[], signal?: AbortSignal): Promise<void> {
    if (this.isEmpty(dirs)) return Promise.resolve();
    const v2 = this.#v2Dir(dirs);
    return new Promise((resolve, reject) => {
      const finish = () => {
        watcher?.close();
        clearInterval(timer);
        signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      const onAbort = () => {
        watcher?.close();
        clearInterval(timer);
        reject(signal?.reason);
      };
      const check = () => {
        if (this.isEmpty(dirs)) finish();
      };
      // v2 notifies; v1 has no notification we can use without a release agent, so poll.
      const watcher = v2 ? watch(join(v2, 'cgroup.events'), check) : undefined;
      // An 'error' event with no listener would crash the server; the interval below still
      // notices the cgroup empty, so a broken watch only makes the wait coarser.
      watcher?.on('error', () => watcher.close());
      const timer = setInterval(check, v2 ? 1000 : 50);
      signal?.addEventListener('abort', onAbort, { once: true });
      check();
    });
  }

  /**
   * `remove` off the event loop: removing a cgroup directory is one of the dearest calls of a
   * job's life in the kernel (~0.2 ms here), and the end of every job pays it.
   */
  async removeAsync(dirs: readonly string[]): Promise<void> {
    for (const dir of [...dirs].reverse()) {
      try {
        await rmdirAsync(dir);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
  }

  /** Removes the job's cgroups; an already-removed one is fine. */
  remove(dirs: readonly string[]): void {
    for (const dir of [...dirs].reverse()) {
      try {
        rmdirSync(dir);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
  }

  #v2Dir(dirs: readonly string[]): string | undefined {
    return this.#v2Root && dirs[0]?.startsWith(`${this.#v2Root}/`) ? dirs[0] : undefined;
  }
}

function makeRoot(dir: string): string | null {
  try {
    mkdirSync(dir, { recursive: true });
    accessSync(join(dir, 'cgroup.procs'), constants.W_OK);
    return dir;
  } catch {
    return null;
  }
}

function mk(dir: string): string {
  mkdirSync(dir);
  return dir;
}

/** Enables the memory and cpu controllers for job cgroups where the parent offers them. */
function enableControllers(root: string): Set<string> {
  const enabled = new Set<string>(['freeze']);
  let available: string[] = [];
  try {
    available = readFileSync(join(root, 'cgroup.controllers'), 'utf8').trim().split(/\s+/);
  } catch {
    return enabled;
  }
  for (const controller of ['memory', 'cpu', 'pids']) {
    if (!available.includes(controller)) continue;
    try {
      writeFileSync(join(root, 'cgroup.subtree_control'), `+${controller}`);
      enabled.add(controller);
    } catch {
      // the parent did not delegate it; limits needing it are refused at submit
    }
  }
  return enabled;
}
