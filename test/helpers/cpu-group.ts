import { dirname } from 'node:path';
import { readCgroupMounts } from '../../src/runtime/cgroup-mounts.ts';

/**
 * Where a process is in the hierarchy of the jobs' CPU group (`Cgroups.spawnerCpuGroup`, a
 * `cgroup.procs` file), read from its `/proc/PID/cgroup` text, and where the group itself is: both
 * as paths from that hierarchy's mount (`/jobworker`). `at` is undefined when the process is in no
 * cgroup of that hierarchy.
 */
export function cpuGroupPlacement(procCgroup: string, group: string): { at?: string; group: string } {
  const mounts = readCgroupMounts();
  const dir = dirname(group);
  const lines = procCgroup.split('\n').map((line) => line.split(':'));
  if (mounts.v2 && dir.startsWith(`${mounts.v2}/`)) {
    return { at: lines.find(([id]) => id === '0')?.[2], group: dir.slice(mounts.v2.length) };
  }
  const mount = mounts.v1.get('cpu');
  if (!mount || !dir.startsWith(`${mount}/`))
    throw new Error(`${group} is in no cgroup hierarchy mounted here`);
  return {
    at: lines.find(([, controllers]) => controllers?.split(',').includes('cpu'))?.[2],
    group: dir.slice(mount.length),
  };
}
