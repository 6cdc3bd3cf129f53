import {
  accessSync,
  constants,
  existsSync,
  type FSWatcher,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  watch,
  writeFileSync,
} from 'node:fs';
import { mkdir as mkdirAsync, rmdir as rmdirAsync } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { childPath } from '../core/child-path.ts';
import { ValidationError } from '../core/errors.ts';
import type { JobLimits, JobUsage } from '../core/job.ts';
import { diskScheduler, ioDeviceFor } from './block-device.ts';
import { controllersFor, V1_EQUIVALENT, writeV1Limits, writeV2Limits } from './cgroup-limits.ts';
import { type CgroupMounts, readCgroupMounts } from './cgroup-mounts.ts';
import { readUsage } from './cgroup-usage.ts';
import { cgroupParent } from './delegated-cgroup.ts';
import { hostHasSwap } from './host-swap.ts';
import { pollKernel } from './kernel-poll.ts';
import { sendSignal } from './signals.ts';

/** The v1 hierarchies jobworker uses, each where the v2 hierarchy lacks its controller. */
const V1_HIERARCHIES = ['freezer', 'memory', 'cpu', 'cpuacct', 'blkio', 'pids'] as const;
/** Each v1 hierarchy's controller as the v2 hierarchy names it. */
const V2_NAME: Readonly<Record<(typeof V1_HIERARCHIES)[number], string>> = {
  freezer: 'freeze',
  memory: 'memory',
  cpu: 'cpu',
  cpuacct: 'cpu',
  blkio: 'io',
  pids: 'pids',
};

/**
 * The v2 cgroup, inside ours, that holds the spawner and the wrappers it forks (not a job's: job
 * ids are UUIDs).
 */
const SPAWNER_LEAF = 'spawner';

/** How this host lets jobworker contain a job's processes. */
export type CgroupMode = 'v2' | 'v1' | 'none';

export interface CgroupOptions {
  /** Name of the directory created in each hierarchy to hold the jobs' cgroups. */
  readonly name?: string;
  /** Force a mode (tests, or hosts where detection picks wrongly); `none` disables cgroups. */
  readonly mode?: CgroupMode;
  readonly mounts?: CgroupMounts;
  /** Where to read whether the host has swap (`SwapTotal`); tests name a file of their own. */
  readonly meminfo?: string;
}

/**
 * Creates, watches, kills and removes per-job cgroups.
 *
 * The unified (v2) hierarchy is preferred: `cgroup.kill` ends every process at once and
 * `cgroup.events` tells, by a kernel notification, when the cgroup is empty. On v1 (or
 * hybrid hosts whose v2 hierarchy lacks a controller) the job also joins the v1 `freezer`
 * (for a race-free kill), and the v1 hierarchies of the limits it asks for and of the usage it
 * measures (`memory`, `cpu`, `cpuacct`, `blkio`, `pids`: see `create`).
 */
export class Cgroups {
  readonly mode: CgroupMode;
  /** Our directory in the v2 hierarchy, when usable. */
  readonly #v2Root: string | null;
  /** The v2 hierarchy's mount point (its root holds io.cost.qos). */
  readonly #v2Mount: string | null;
  readonly #v2Kill: boolean;
  readonly #v2Controllers: ReadonlySet<string>;
  /** Our directory in each usable v1 controller hierarchy. */
  readonly #v1Roots: ReadonlyMap<string, string>;
  /**
   * The `cgroup.procs` file of the jobs' CPU group, which the spawner joins before its first fork
   * (`SpawnerClient`'s `cpuGroup`), so that it, its wrappers and their jobs share the CPU with the
   * server's threads as one group (docs/isolation.md, "The server and its jobs share the CPU as
   * two"); undefined where jobworker has no CPU controller, or no cgroups at all. On v2 a leaf
   * beside the jobs' cgroups, `jobworker/spawner` (a cgroup with children holds no process); on v1
   * (and hybrid hosts) our directory in the `cpu` hierarchy itself.
   */
  readonly cpuGroupProcs: string | undefined;
  #realtimeRefused: string | undefined;
  readonly #meminfo: string | undefined;

  constructor(options: CgroupOptions = {}) {
    const name = options.name ?? 'jobworker';
    this.#meminfo = options.meminfo;
    const mounts = options.mounts ?? readCgroupMounts();
    const want = options.mode;
    this.#v2Mount = mounts.v2;
    // As root: the hierarchy's root; as another account: its own delegated cgroup (cgroupParent).
    const v2Parent = want === 'none' || want === 'v1' || !mounts.v2 ? null : cgroupParent(mounts.v2);
    this.#v2Root = v2Parent === null ? null : makeRoot(join(v2Parent, name));
    this.#v2Kill = this.#v2Root !== null && existsSync(join(this.#v2Root, 'cgroup.kill'));
    this.#v2Controllers = this.#v2Root ? enableControllers(this.#v2Root) : new Set();
    const v1 = new Map<string, string>();
    if (want !== 'none' && want !== 'v2') {
      for (const controller of V1_HIERARCHIES) {
        // cpuacct only counts CPU time, which every v2 cgroup's cpu.stat counts already.
        if (controller === 'cpuacct' ? this.#v2Root !== null : this.#v2Controllers.has(V2_NAME[controller]))
          continue;
        const mount = mounts.v1.get(controller);
        const root = mount ? makeRoot(join(mount, name)) : null;
        if (root) v1.set(controller, root);
      }
    }
    this.#v1Roots = v1;
    this.mode = this.#v2Root ? 'v2' : v1.has('freezer') ? 'v1' : 'none';
    this.cpuGroupProcs = this.mode === 'none' ? undefined : this.#makeCpuGroup();
  }

  /**
   * Why the jobs' CPU group got no real-time time where the kernel keeps some per group (v1
   * `cpu.rt_runtime_us`: see `grantRealtime`), for the server's log: its jobs cannot then take a
   * real-time policy. Undefined when it got some, had some, or the kernel keeps none per group.
   */
  get realtimeRefused(): string | undefined {
    return this.#realtimeRefused;
  }

  /** Makes the jobs' CPU group where it is missing (see `cpuGroupProcs`); its cgroup.procs file. */
  #makeCpuGroup(): string | undefined {
    if (this.#v2Root && this.#v2Controllers.has('cpu')) {
      const leaf = makeRoot(join(this.#v2Root, SPAWNER_LEAF));
      return leaf ? join(leaf, 'cgroup.procs') : undefined;
    }
    const v1Cpu = this.#v1Roots.get('cpu');
    if (!v1Cpu) return undefined;
    this.#realtimeRefused = grantRealtime(v1Cpu);
    return join(v1Cpu, 'cgroup.procs');
  }

  /**
   * Throws a `ValidationError` naming the limit and the controller when the host cannot enforce a
   * requested limit (no cgroup, or the controller in neither hierarchy), when an IO limit has
   * no block device to apply to, and when a memory limit would leave swap open (below). A limit is
   * never silently ignored.
   */
  checkLimits(limits: JobLimits, cwd: string): void {
    for (const { controller, field } of controllersFor(limits)) {
      const v1 = V1_EQUIVALENT[controller];
      if (!this.#v2Controllers.has(controller) && !this.#v1Roots.has(v1)) {
        throw new ValidationError(
          field,
          `This host gives jobworker no ${controller} cgroup controller (not enabled in the cgroup v2 ` +
            `hierarchy, no v1 \`${v1}\` hierarchy): \`${field}\` cannot be enforced here`,
        );
      }
    }
    if (limits.memorySwap !== undefined && !this.#swapLimitable(limits)) {
      throw new ValidationError(
        'limits.memorySwap',
        'This host cannot limit swap (cgroup v2 `memory.swap.max` missing, or v1 `memory.memsw` without ' +
          '`limits.memory`: swap accounting is off): `limits.memorySwap` cannot be enforced here',
      );
    }
    // A memory limit alone caps swap at 0 (`memory.swap.max`, v1 `memory.memsw`), so that a job over
    // it is stopped, not swapped. Without swap accounting there is no such cap: on a host with swap
    // the job would page out past its limit instead. On a host without swap the limit is exact.
    if (
      limits.memory !== undefined &&
      limits.memorySwap === undefined &&
      !this.#swapLimitable(limits) &&
      hostHasSwap(this.#meminfo)
    ) {
      throw new ValidationError(
        'limits.memory',
        'This host has swap but no cgroup swap accounting (cgroup v2 `memory.swap.max` missing, or v1 ' +
          '`memory.memsw.limit_in_bytes` missing): a job over `limits.memory` would be swapped out ' +
          'instead of stopped, so `limits.memory` cannot be enforced here. Enable swap accounting ' +
          '(boot with `swapaccount=1`, or cgroup v2 with `memory.swap.max`), or turn swap off',
      );
    }
    const io = limits.io;
    if (io?.weight !== undefined) this.#ioWeightFile(io.device, cwd);
    else if (io) ioDeviceFor(io.device, cwd);
  }

  /**
   * Creates the job's cgroups and applies its limits. Returns their directories, the
   * tracking one (v2, else v1 freezer) first; empty when the host has none. On failure
   * removes what it made and throws. On v1 hierarchies a job joins those of its limits, and a job
   * with any limit also `memory`, `blkio` and (where no v2 cgroup counts CPU time) `cpuacct`, so
   * that its usage is measured whole; a job without limits pays for no v1 cgroup but the freezer.
   * The directories are made off the event loop: a cgroup's mkdir is kernel work (a memory one
   * ~0.5 ms here) that every start would otherwise block the server for.
   */
  async create(jobId: string, limits: JobLimits, cwd: string): Promise<string[]> {
    const dirs: string[] = [];
    const io = limits.io;
    const ioDevice = io && io.weight === undefined ? ioDeviceFor(io.device, cwd) : undefined;
    const weightFile = io?.weight !== undefined ? this.#ioWeightFile(io.device, cwd) : undefined;
    try {
      if (this.#v2Root) {
        const dir = childPath(this.#v2Root, jobId);
        await mkdirAsync(dir);
        dirs.push(dir);
        for (const { controller } of controllersFor(limits)) {
          if (this.#v2Controllers.has(controller))
            writeV2Limits(dir, controller, limits, ioDevice, weightFile);
        }
      }
      const needed = new Set(controllersFor(limits).map(({ controller }) => V1_EQUIVALENT[controller]));
      const limited = needed.size > 0;
      for (const [hierarchy, root] of this.#v1Roots) {
        // A v1 cgroup costs a mkdir and an rmdir per job (a memory one ~0.5 ms here): only a job
        // with limits pays for the ones that measure it whole.
        const measures =
          limited && (hierarchy === 'memory' || hierarchy === 'blkio' || hierarchy === 'cpuacct');
        if (hierarchy !== 'freezer' && !measures && !needed.has(hierarchy)) continue;
        const dir = childPath(root, jobId);
        // Hierarchies mounted together (`cpu,cpuacct`) are one directory: made once (a second
        // mkdir failed the job's start with EEXIST), and each one's limits written into it.
        if (!dirs.includes(dir)) {
          await mkdirAsync(dir);
          dirs.push(dir);
        }
        writeV1Limits(dir, hierarchy, limits, ioDevice, weightFile);
      }
      return dirs;
    } catch (err) {
      this.remove(dirs);
      throw err;
    }
  }

  /** What the job's processes used so far, from its cgroups' counters (docs/isolation.md). */
  usage(dirs: readonly string[]): JobUsage {
    const v2 = this.#v2Dir(dirs);
    const v1 = new Map<string, string>();
    for (const [hierarchy, root] of this.#v1Roots) {
      const dir = dirs.find((d) => d.startsWith(`${root}/`));
      if (dir) v1.set(hierarchy, dir);
    }
    return readUsage({ ...(v2 ? { v2, v2Controllers: this.#v2Controllers } : {}), v1 });
  }

  #swapLimitable(limits: JobLimits): boolean {
    if (this.#v2Controllers.has('memory'))
      return this.#v2Root !== null && existsSync(join(this.#v2Root, 'memory.swap.max'));
    const memory = this.#v1Roots.get('memory');
    return (
      memory !== undefined &&
      limits.memory !== undefined &&
      existsSync(join(memory, 'memory.memsw.limit_in_bytes'))
    );
  }

  /**
   * The file that keeps an IO weight for the job's disk: `io.bfq.weight` or `io.weight` (v2),
   * `blkio.bfq.weight` or `blkio.weight` (v1). A weight is kept only by the BFQ (or CFQ) disk
   * scheduler, or by v2's io.cost where it is enabled for the disk: anywhere else the file may
   * exist and change nothing, so such a weight is refused naming why.
   */
  #ioWeightFile(device: string | undefined, cwd: string): string {
    const disk = ioDeviceFor(device, cwd);
    const scheduler = diskScheduler(disk);
    const v2 = this.#v2Controllers.has('io') ? this.#v2Root : null;
    const blkio = this.#v1Roots.get('blkio');
    if (scheduler === 'bfq') {
      if (v2 && existsSync(join(v2, 'io.bfq.weight'))) return 'io.bfq.weight';
      if (blkio && existsSync(join(blkio, 'blkio.bfq.weight'))) return 'blkio.bfq.weight';
    }
    if (scheduler === 'cfq' && blkio && existsSync(join(blkio, 'blkio.weight'))) return 'blkio.weight';
    if (v2 && this.#v2Mount && existsSync(join(v2, 'io.weight'))) {
      let qos: string[] = [];
      try {
        qos = readFileSync(join(this.#v2Mount, 'io.cost.qos'), 'utf8').split('\n');
      } catch {
        // no io.cost on this kernel: io.weight keeps nothing
      }
      if (qos.some((line) => line.startsWith(`${disk} `) && line.includes('enable=1'))) return 'io.weight';
    }
    throw new ValidationError(
      'limits.io.weight',
      `No io (v2) or blkio (v1) cgroup controller here keeps IO weights for disk ${disk}: its scheduler is ` +
        `${scheduler ?? 'unknown'} (weights need bfq, or io.cost enabled on cgroup v2): \`limits.io.weight\` cannot be enforced here; ` +
        'use throttles (readBps, writeBps, readIops, writeIops) instead',
    );
  }

  /**
   * Pids of every process in the job's tracking cgroup; none once it is gone (ENOENT). Any other
   * failure to read it (EMFILE, ENOMEM, EACCES) throws: it says nothing of what the cgroup holds.
   */
  pids(dirs: readonly string[]): number[] {
    const tracking = dirs[0];
    if (!tracking) return [];
    const procs = readIfThere(childPath(tracking, 'cgroup.procs'));
    return procs === undefined ? [] : procs.split('\n').filter(Boolean).map(Number);
  }

  /**
   * Whether the job's tracking cgroup holds no process: true once it is gone (ENOENT). Throws when
   * it cannot be read otherwise (as `pids`): taken for empty, a stop at the server's descriptor
   * limit was recorded done while the job ran on.
   */
  isEmpty(dirs: readonly string[]): boolean {
    const tracking = dirs[0];
    if (!tracking) return true;
    if (tracking === this.#v2Dir(dirs)) {
      const events = readIfThere(childPath(tracking, 'cgroup.events'));
      return events === undefined || events.includes('populated 0');
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
    const freezerRoot = this.#v1Roots.get('freezer');
    // With its separator: a root `.../jobworker` is not the start of `.../jobworker-test/...`.
    const freezer = freezerRoot ? dirs.find((d) => d.startsWith(`${freezerRoot}/`)) : undefined;
    const freeze = (on: boolean) => {
      try {
        if (freezer) writeFileSync(join(freezer, 'freezer.state'), on ? 'FROZEN' : 'THAWED');
        else if (v2) writeFileSync(join(v2, 'cgroup.freeze'), on ? '1' : '0');
      } catch {
        // freezing is an optimisation of the loop below, not required for it
      }
    };
    try {
      for (let round = 0; round < 20 && !this.isEmpty(dirs); round++) {
        freeze(true);
        try {
          for (const pid of this.pids(dirs)) sendSignal(pid, 'SIGKILL');
        } finally {
          freeze(false);
        }
      }
    } catch {
      // The cgroup cannot be read now (EMFILE, say): nothing known to kill this round. The wait
      // that follows every kill (`whenEmpty`) does not take that for empty, so the stop kills again.
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
    // Once each: hierarchies mounted together share a root.
    const roots = [...new Set([this.#v2Root, ...this.#v1Roots.values()])].filter((r) => r !== null);
    return roots.map((root) => join(root, jobId)).filter((dir) => existsSync(dir));
  }

  /**
   * Resolves once the job's cgroup has no process left (a kernel notification on v2, a real-time
   * poll on v1: see kernel-poll.ts); rejects with `signal`'s reason when it aborts first. A cgroup
   * that cannot be read (`isEmpty` throws) is not known empty: the wait goes on, and the next look
   * reads it again.
   */
  whenEmpty(dirs: readonly string[], signal?: AbortSignal): Promise<void> {
    if (this.knownEmpty(dirs)) return Promise.resolve();
    const v2 = this.#v2Dir(dirs);
    return new Promise((resolve, reject) => {
      const finish = () => {
        watcher?.close();
        stopPolling();
        signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      const onAbort = () => {
        watcher?.close();
        stopPolling();
        reject(signal?.reason);
      };
      const check = () => {
        if (this.knownEmpty(dirs)) finish();
      };
      // v2 notifies; v1 has no notification we can use without a release agent, so poll.
      let watcher: FSWatcher | undefined;
      if (v2) {
        try {
          watcher = watch(join(v2, 'cgroup.events'), check);
          // An 'error' event with no listener would crash the server; the poll below still
          // notices the cgroup empty, so a broken watch only makes the wait coarser.
          watcher.on('error', () => watcher?.close());
        } catch {
          // No watch to be had (the host's inotify watches are used up: ENOSPC): the poll alone,
          // at v1's pace. Thrown here, it rejected the wait at once: a stop then skipped its
          // grace, and its kill loop never yielded.
          watcher = undefined;
        }
      }
      const stopPolling = pollKernel(check, watcher ? 1000 : 50, true);
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

  /**
   * Whether the cgroups are known to hold nothing. One that cannot be read (EMFILE, say) is not:
   * it is killed and waited for like one that holds something, rather than taken for empty while
   * it may still run.
   */
  knownEmpty(dirs: readonly string[]): boolean {
    try {
      return this.isEmpty(dirs);
    } catch {
      return false;
    }
  }

  #v2Dir(dirs: readonly string[]): string | undefined {
    return this.#v2Root && dirs[0]?.startsWith(`${this.#v2Root}/`) ? dirs[0] : undefined;
  }
}

/** The file's text; undefined when it does not exist (ENOENT). Any other failure throws. */
function readIfThere(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
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

/**
 * On a kernel with real-time group scheduling (`cpu.rt_runtime_us`, v1), a new cgroup gets no
 * real-time time at all, and a job in it that asks for a real-time policy (`chrt -f`) is refused
 * (EPERM), which it was not among the root cgroup's tasks. So jobworker's directory, while it has
 * none, is given the share of its parent's that no sibling holds (the kernel weighs each group's
 * runtime against its own period). It is never taken back, nor changed once it is not 0 (an
 * administrator's choice stands). Returns why nothing was given, when that is not because the
 * kernel has no such scheduling or the directory had some already.
 */
export function grantRealtime(dir: string): string | undefined {
  const share = (group: string) => {
    const runtime = Number(readFileSync(join(group, 'cpu.rt_runtime_us'), 'utf8'));
    const period = Number(readFileSync(join(group, 'cpu.rt_period_us'), 'utf8'));
    return { runtime, period };
  };
  let own: { runtime: number; period: number };
  try {
    own = share(dir);
  } catch {
    return undefined; // no real-time group scheduling here
  }
  if (own.runtime !== 0) return undefined;
  try {
    const parent = dirname(dir);
    const whole = share(parent);
    // -1: no limit above, which a child cannot be given; 0: nothing to give.
    if (!(whole.runtime > 0 && whole.period > 0 && own.period > 0)) return undefined;
    let held = 0;
    for (const entry of readdirSync(parent, { withFileTypes: true })) {
      if (!entry.isDirectory() || join(parent, entry.name) === dir) continue;
      let sibling: { runtime: number; period: number };
      try {
        sibling = share(join(parent, entry.name));
      } catch {
        continue; // removed meanwhile
      }
      if (sibling.runtime < 0) return `${entry.name} beside it has no limit`;
      if (sibling.period > 0) held += sibling.runtime / sibling.period;
    }
    const free = Math.floor((whole.runtime / whole.period - held) * own.period);
    if (free <= 0) return "its siblings hold all of its parent's";
    writeFileSync(join(dir, 'cpu.rt_runtime_us'), String(free));
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

/** Enables the memory, cpu, io and pids controllers for job cgroups where the parent offers them. */
function enableControllers(root: string): Set<string> {
  const enabled = new Set<string>(['freeze']);
  let available: string[] = [];
  try {
    available = readFileSync(join(root, 'cgroup.controllers'), 'utf8').trim().split(/\s+/);
  } catch {
    return enabled;
  }
  for (const controller of ['memory', 'cpu', 'io', 'pids']) {
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
