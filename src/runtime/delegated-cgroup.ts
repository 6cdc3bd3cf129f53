import { accessSync, constants, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/**
 * A server that is not root may still manage cgroups: the ones systemd delegates to its service
 * (`Delegate=yes`, docs/jobworker.service). It then makes its jobs' cgroups inside its own cgroup
 * and nowhere else (docs/isolation.md, "Guarantees by host").
 */

/** This process's cgroup in the unified hierarchy (`/system.slice/jobworker.service`), if any. */
export function ownCgroupPath(procSelfCgroup = '/proc/self/cgroup'): string | undefined {
  try {
    const line = readFileSync(procSelfCgroup, 'utf8')
      .split('\n')
      .find((l) => l.startsWith('0::'));
    return line?.slice(3) || undefined;
  } catch {
    return undefined;
  }
}

/**
 * The cgroup a non-root server would manage: its own, or the parent of its own when it already
 * sits in the `server` leaf (a server restarted inside its service's cgroup). Nothing is changed.
 */
export function delegatedCgroupDir(v2Mount: string): string | undefined {
  const own = ownCgroupPath();
  if (!own) return undefined;
  return join(v2Mount, basename(own) === SERVER_LEAF ? dirname(own) : own);
}

/** The leaf a non-root server moves itself into, inside its delegated cgroup. */
export const SERVER_LEAF = 'server';

/**
 * Where jobworker makes its cgroups in the unified hierarchy mounted at `v2Mount`: the hierarchy's
 * root for root; for any other account, its own cgroup when it may write there (delegated), after
 * moving itself into a leaf of it (`<own>/server`): the kernel enables controllers for a cgroup's
 * children only while that cgroup holds no process itself. Null when it has no cgroup to write.
 */
export function cgroupParent(v2Mount: string, uid = process.geteuid?.() ?? 0): string | null {
  if (uid === 0) return v2Mount;
  const dir = delegatedCgroupDir(v2Mount);
  if (!dir) return null;
  try {
    accessSync(join(dir, 'cgroup.procs'), constants.W_OK);
    const leaf = join(dir, SERVER_LEAF);
    mkdirSync(leaf, { recursive: true });
    writeFileSync(join(leaf, 'cgroup.procs'), String(process.pid));
    // Hand the delegated controllers on to the children (jobworker/ and its jobs); one the
    // delegation does not include is left out, and limits needing it are refused at submit.
    const offered = readFileSync(join(dir, 'cgroup.controllers'), 'utf8').trim().split(/\s+/);
    for (const controller of ['cpu', 'memory', 'pids', 'io']) {
      if (!offered.includes(controller)) continue;
      try {
        writeFileSync(join(dir, 'cgroup.subtree_control'), `+${controller}`);
      } catch {
        // not delegated after all
      }
    }
    return dir;
  } catch {
    return null;
  }
}
