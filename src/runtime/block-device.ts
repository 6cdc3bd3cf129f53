import { type BigIntStats, existsSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ValidationError } from '../core/errors.ts';

/**
 * The whole disk an IO limit applies to, as `MAJOR:MINOR` (what `io.max` and the v1
 * `blkio.throttle.*` files take): the device named, or else the one holding `cwd`. A partition
 * is throttled on its disk, since the kernel keeps IO limits per whole disk. Throws a
 * `ValidationError` on `limits.io.device` (or `limits.io` for the working directory) when there is
 * no block device to limit: a path that is no block device, or a directory on overlay, tmpfs or a
 * network filesystem (device major 0).
 */
export function ioDeviceFor(device: string | undefined, cwd: string, sysDevBlock = '/sys/dev/block'): string {
  if (device !== undefined) {
    // One answer whether the path is missing or no block device: the stat is the server's, and
    // two would tell any user which files exist where its jobs may not look (/root/.ssh/id_rsa).
    let st: BigIntStats | undefined;
    try {
      st = statSync(device, { bigint: true });
    } catch {
      st = undefined;
    }
    if (st === undefined || !st.isBlockDevice()) {
      throw new ValidationError(
        'limits.io.device',
        `Expected \`limits.io.device\` to name a block device (such as /dev/vda), got ${device}`,
      );
    }
    return wholeDisk(st.rdev, sysDevBlock, 'limits.io.device', device);
  }
  let st: BigIntStats;
  try {
    st = statSync(cwd, { bigint: true });
  } catch {
    throw new ValidationError('cwd', `Working directory does not exist: ${cwd}`);
  }
  return wholeDisk(st.dev, sysDevBlock, 'limits.io', `the working directory ${cwd}`);
}

function wholeDisk(dev: bigint, sysDevBlock: string, field: string, what: string): string {
  const { major, minor } = splitDev(dev);
  const node = join(sysDevBlock, `${major}:${minor}`);
  if (major === 0 || !existsSync(node)) {
    throw new ValidationError(
      field,
      `${what} is on no block device (device ${major}:${minor}: overlay, tmpfs, a network filesystem ` +
        'or the like), so IO limits have nothing to throttle: name a block device with `limits.io.device` ' +
        '(`--io-device`), or run the job from a directory on a disk',
    );
  }
  // /sys/dev/block/M:m links to .../block/vda/vda1 for a partition: its parent is the disk.
  if (existsSync(join(node, 'partition'))) {
    const disk = dirname(realpathSync(node));
    return readFileSync(join(disk, 'dev'), 'utf8').trim();
  }
  return `${major}:${minor}`;
}

/** glibc's major()/minor() of a 64-bit dev_t. */
function splitDev(dev: bigint): { major: number; minor: number } {
  const major = Number(((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn));
  const minor = Number((dev & 0xffn) | ((dev >> 12n) & ~0xffn));
  return { major, minor };
}

/**
 * The IO scheduler the kernel runs for a disk (`bfq`, `mq-deadline`, `none`), from
 * /sys/dev/block/M:m/queue/scheduler; undefined when unreadable. Only some keep IO weights.
 */
export function diskScheduler(majorMinor: string, sysDevBlock = '/sys/dev/block'): string | undefined {
  try {
    const text = readFileSync(join(sysDevBlock, majorMinor, 'queue', 'scheduler'), 'utf8');
    return /\[([^\]]+)\]/.exec(text)?.[1] ?? text.trim();
  } catch {
    return undefined;
  }
}
