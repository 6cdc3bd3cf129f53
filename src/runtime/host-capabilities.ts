import { execFile } from 'node:child_process';
import { accessSync, constants, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ValidationError } from '../core/errors.ts';
import { namespacesOf } from '../core/isolation.ts';
import type { JobIsolation } from '../core/job.ts';
import { type CgroupMounts, readCgroupMounts } from './cgroup-mounts.ts';
import { delegatedCgroupDir } from './delegated-cgroup.ts';
import { spawnerPath } from './spawner-path.ts';

/**
 * What this host lets jobworker do for a job: cgroups (which version, which controllers, where),
 * namespaces, running jobs as other accounts. `jobworker doctor` prints it; the engine refuses a
 * job that asks for what is missing here, naming what is missing (docs/isolation.md).
 */

/** The kinds of Linux namespace a job can be given, by their `/proc/self/ns` names. */
export type NamespaceKind = 'pid' | 'net' | 'mnt' | 'uts' | 'user';
export const NAMESPACE_KINDS: readonly NamespaceKind[] = ['pid', 'net', 'mnt', 'uts', 'user'];

/** Whether one kind of namespace exists in the kernel and whether this process may create one. */
export interface NamespaceSupport {
  /** The kernel has it (`/proc/self/ns/<kind>` exists). */
  readonly kernel: boolean;
  /** This process created one in a try (`unshare` in a child of the spawner). */
  readonly creatable: boolean;
  /** Why not, when not creatable: the errno's text, or what is missing. */
  readonly why?: string;
}

/** A cgroup controller and where jobworker could use it. */
export interface ControllerSupport {
  readonly name: string;
  /** `v2` when the unified hierarchy offers it, else `v1` when a v1 hierarchy is mounted, else null. */
  readonly via: 'v2' | 'v1' | null;
}

export interface HostCapabilities {
  /** This process's effective uid; 0 is root. */
  readonly uid: number;
  readonly cgroups: {
    /** Mount point of the unified hierarchy, if mounted. */
    readonly v2Mount: string | null;
    /**
     * Where jobworker makes its cgroups in the unified hierarchy: the hierarchy's root as root;
     * as another account, the service's own (delegated) cgroup from /proc/self/cgroup.
     */
    readonly v2Parent: string | null;
    /** jobworker may create cgroups under `v2Parent`. */
    readonly v2Writable: boolean;
    /** Whether `cgroup.kill` exists (kernel 5.14+): stop kills a whole tree in one write. */
    readonly v2Kill: boolean;
    /** Whether `cgroup.freeze` exists (kernel 5.2+): pause freezes a whole tree. */
    readonly v2Freeze: boolean;
    /** Controllers the unified hierarchy offers at `v2Parent`. */
    readonly v2Controllers: readonly string[];
    /** v1 controller hierarchies mounted, by controller name, and whether jobworker may write them. */
    readonly v1: readonly {
      readonly controller: string;
      readonly mount: string;
      readonly writable: boolean;
    }[];
  };
  /** Per controller: where a limit of that kind would be enforced. */
  readonly controllers: readonly ControllerSupport[];
  readonly namespaces: Readonly<Record<NamespaceKind, NamespaceSupport>>;
  /** Whether jobs can run as their owners' accounts (the server must be root to switch). */
  readonly runAs: { readonly switchAccounts: boolean; readonly why?: string };
}

const LIMIT_CONTROLLERS = ['cpu', 'memory', 'io', 'pids', 'freezer'] as const;
/** The v1 name of a controller whose v2 name differs. */
const V1_NAME: Record<string, string> = { io: 'blkio' };

/** How to probe. */
export interface ProbeOptions {
  readonly mounts?: CgroupMounts;
  /** The native spawner's path (it tries the namespaces). Default: `spawnerPath()`. */
  readonly spawner?: string;
  /**
   * Probe as this account instead (a root process only): what a server running as that account
   * would get. Default: this process's own.
   */
  readonly as?: { readonly uid: number; readonly gid: number };
}

/** Probes this host for what a server running as this process's account (or `as`) would get. */
export async function probeHost(options: ProbeOptions = {}): Promise<HostCapabilities> {
  const uid = options.as?.uid ?? process.geteuid?.() ?? -1;
  const mounts = options.mounts ?? readCgroupMounts();
  const cgroups = probeCgroups(mounts, uid);
  const controllers = LIMIT_CONTROLLERS.map((name): ControllerSupport => {
    const v2Name = name === 'freezer' ? 'freeze' : name;
    // cgroup.freeze is a core file of every v2 cgroup but the root (no controller to enable); the others are listed.
    const inV2 =
      cgroups.v2Writable && (v2Name === 'freeze' ? cgroups.v2Freeze : cgroups.v2Controllers.includes(v2Name));
    const inV1 = cgroups.v1.some((h) => h.controller === (V1_NAME[name] ?? name) && h.writable);
    return { name, via: inV2 ? 'v2' : inV1 ? 'v1' : null };
  });
  const namespaces = await probeNamespaces(options.spawner, options.as);
  const switchAccounts = uid === 0;
  return {
    uid,
    cgroups,
    controllers,
    namespaces,
    runAs: switchAccounts
      ? { switchAccounts }
      : { switchAccounts, why: `the server runs as uid ${uid}, not root: every job runs as that account` },
  };
}

function probeCgroups(mounts: CgroupMounts, uid: number): HostCapabilities['cgroups'] {
  const v2Parent = mounts.v2 ? (uid === 0 ? mounts.v2 : (delegatedCgroupDir(mounts.v2) ?? null)) : null;
  const v2Writable = v2Parent !== null && writable(v2Parent, uid);
  const v2Controllers = v2Parent ? readWords(join(v2Parent, 'cgroup.controllers')) : [];
  const v2Kill = v2Parent !== null && hasCoreFile(v2Parent, 'cgroup.kill');
  const v2Freeze = v2Parent !== null && hasCoreFile(v2Parent, 'cgroup.freeze');
  const v1 = [...mounts.v1].map(([controller, mount]) => ({
    controller,
    mount,
    writable: writable(mount, uid),
  }));
  return { v2Mount: mounts.v2, v2Parent, v2Writable, v2Kill, v2Freeze, v2Controllers, v1 };
}

/**
 * Whether the kernel gives non-root cgroups this core file (`cgroup.kill`: 5.14+, `cgroup.freeze`:
 * 5.2+). The root cgroup has neither, so a child of `dir` is asked when `dir` has none.
 */
function hasCoreFile(dir: string, file: string): boolean {
  if (existsSync(join(dir, file))) return true;
  try {
    return readdirSync(dir, { withFileTypes: true }).some(
      (entry) => entry.isDirectory() && existsSync(join(dir, entry.name, file)),
    );
  } catch {
    return false;
  }
}

/** Whether account `uid` may create entries in `dir` (this process's own account: access(2)). */
function writable(dir: string, uid: number): boolean {
  try {
    if (uid === (process.geteuid?.() ?? -1)) {
      accessSync(dir, constants.W_OK);
      return true;
    }
    if (uid === 0) return true;
    const st = statSync(dir);
    return (st.uid === uid && (st.mode & 0o200) !== 0) || (st.mode & 0o002) !== 0;
  } catch {
    return false;
  }
}

function readWords(path: string): string[] {
  try {
    return readFileSync(path, 'utf8').trim().split(/\s+/).filter(Boolean);
  } catch {
    return [];
  }
}

const execFileAsync = promisify(execFile);

async function probeNamespaces(
  spawner: string | undefined,
  as: ProbeOptions['as'],
): Promise<Record<NamespaceKind, NamespaceSupport>> {
  const tried = new Map<string, number>();
  let failure = '';
  try {
    const { stdout } = await execFileAsync(spawner ?? spawnerPath(), ['--probe-namespaces'], {
      timeout: 10_000,
      ...(as ? { uid: as.uid, gid: as.gid } : {}),
    });
    for (const line of stdout.split('\n')) {
      const [kind, errno] = line.split(' ');
      if (kind && errno !== undefined) tried.set(kind, Number(errno));
    }
  } catch (err) {
    failure = `the spawner could not try: ${(err as Error).message}`;
  }
  const out = {} as Record<NamespaceKind, NamespaceSupport>;
  for (const kind of NAMESPACE_KINDS) {
    const kernel = existsSync(`/proc/self/ns/${kind}`);
    const errno = tried.get(kind);
    out[kind] =
      kernel && errno === 0
        ? { kernel, creatable: true }
        : {
            kernel,
            creatable: false,
            why: !kernel
              ? 'the kernel has no such namespace'
              : errno === undefined
                ? failure || 'not tried'
                : errno === 1
                  ? 'not permitted: creating one needs root (CAP_SYS_ADMIN)'
                  : `unshare failed with errno ${errno}`,
          };
  }
  return out;
}

/** The field of `isolation` that asks for a kind of namespace, for a refusal's message. */
function fieldOf(kind: string, isolation: JobIsolation): string {
  if (kind === 'pid') return 'isolation.pid';
  if (kind === 'net') return 'isolation.network';
  if (kind === 'uts') return 'isolation.hostname';
  return isolation.mount ? 'isolation.mount' : 'isolation.pid';
}

const KIND_TEXT: Record<string, string> = {
  pid: 'a PID namespace',
  net: 'a network namespace',
  mnt: 'a mount namespace',
  uts: 'a UTS namespace',
};

/**
 * Throws a `ValidationError` naming the field and what this host lacks when it cannot give a job
 * the isolation it asks for; nothing happens for what it can.
 */
export function checkIsolation(isolation: JobIsolation | undefined, host: HostCapabilities): void {
  if (!isolation) return;
  for (const kind of namespacesOf(isolation)) {
    const support = host.namespaces[kind];
    if (support.creatable) continue;
    throw new ValidationError(
      fieldOf(kind, isolation),
      `This host cannot give a job ${KIND_TEXT[kind]}: ${support.why ?? 'unavailable'} (see \`jobworker doctor\`)`,
    );
  }
}
