import { readFileSync } from 'node:fs';

/**
 * Whether this host has swap to page a job out to: `SwapTotal` in /proc/meminfo above 0 (a swap
 * device or file is on, zram included). Where it has none, a memory limit alone holds a job to it
 * exactly; where it has some, only a swap cap (cgroup swap accounting) does (docs/isolation.md,
 * "Memory and swap"). Read at each check, not once: swap can be turned on while the server runs.
 * A file that cannot be read is taken for swap present: a limit is refused rather than left open.
 */
export function hostHasSwap(meminfo = '/proc/meminfo'): boolean {
  let text: string;
  try {
    text = readFileSync(meminfo, 'utf8');
  } catch {
    return true;
  }
  const line = text.split('\n').find((l) => l.startsWith('SwapTotal:'));
  // No such line, or one that is not a number: not known to be none.
  return Number(line?.split(/\s+/)[1]) !== 0;
}
