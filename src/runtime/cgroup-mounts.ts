import { readFileSync } from 'node:fs';

/** The cgroup hierarchies mounted on this host, as /proc/self/mountinfo lists them. */
export interface CgroupMounts {
  /** Mount point of the unified (v2) hierarchy, if any. */
  readonly v2: string | null;
  /** Mount point of each v1 controller (`memory`, `cpu`, `freezer`, `pids`, ...). */
  readonly v1: ReadonlyMap<string, string>;
}

export function readCgroupMounts(mountinfo = '/proc/self/mountinfo'): CgroupMounts {
  let text = '';
  try {
    text = readFileSync(mountinfo, 'utf8');
  } catch {
    return { v2: null, v1: new Map() };
  }
  return parseCgroupMounts(text);
}

/**
 * The cgroup hierarchies a mountinfo text lists. Controllers mounted together (`cpu,cpuacct`, as
 * RHEL 7 and Amazon Linux 2 do) map to the same mount point: one hierarchy, one directory per job.
 */
export function parseCgroupMounts(text: string): CgroupMounts {
  let v2: string | null = null;
  const v1 = new Map<string, string>();
  for (const line of text.split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const mountPoint = unescapeMountPath(line.slice(0, sep).split(' ')[4] ?? '');
    const [fstype, , superOptions = ''] = line.slice(sep + 3).split(' ');
    if (fstype === 'cgroup2') v2 ??= mountPoint;
    else if (fstype === 'cgroup') {
      for (const option of superOptions.split(',')) {
        if (['memory', 'cpu', 'freezer', 'pids', 'cpuacct', 'blkio'].includes(option))
          v1.set(option, mountPoint);
      }
    }
  }
  return { v2, v1 };
}

/** mountinfo escapes spaces and the like as octal (`\040`). */
function unescapeMountPath(path: string): string {
  return path.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(Number.parseInt(oct, 8)));
}
