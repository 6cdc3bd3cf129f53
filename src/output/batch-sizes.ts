import { constants } from 'node:os';
import { getSystemErrorMessage, getSystemErrorName } from 'node:util';
import type { OutputBytes } from '../core/job.ts';
import { loadNativeAddon } from '../core/native-addon.ts';
import { OUTPUT_FILE_NAMES, STAT_ORDER } from './output-files.ts';

/** What src/output/native/file-sizes.c exports. */
export interface FileSizesAddon {
  /**
   * Stats each `dir/name` on a pool thread, each directory's names in the order given: the size
   * of dirs[i]/names[j] at `i * names.length + j`, or -errno for a file that could not be
   * stat'ed. At most 65,536 dirs and 16 names per call; a TypeError for anything but arrays of
   * strings without NUL.
   */
  fileSizes(dirs: readonly string[], names: readonly string[]): Promise<Float64Array>;
}

/**
 * The stream sizes of many job directories at once, each as `readOutputSizes` reads it (a stream
 * file that is not there counts 0), or the error that kept one directory's from being read. Unlike
 * `readOutputSizesSync`, whose `throwIfNoEntry: false` also counts ENOTDIR as absent, a job
 * directory replaced by a file is an error here, which the monitor reports.
 */
export type BatchSizes = (dirs: readonly string[]) => Promise<(OutputBytes | Error)[]>;

/** Directories per call of the addon: one call holds one of libuv's four pool threads while it stats. */
export const DIRS_PER_CALL = 1024;

/** The file names in the order the addon stats them in each directory (see `STAT_ORDER`). */
const STREAM_NAMES = STAT_ORDER.map((stream) => OUTPUT_FILE_NAMES[stream]);
const STDOUT_AT = STAT_ORDER.indexOf('stdout');
const STDERR_AT = STAT_ORDER.indexOf('stderr');

/**
 * `BatchSizes` through `dist/native/file-sizes.node` (scripts/build-native.sh; `places` relative to
 * src/core/ for tests), or why it cannot be had. Calls are made one after another, `DIRS_PER_CALL`
 * directories each, so that a sweep of many thousands leaves the pool's other threads to the
 * server's file operations.
 */
export function loadBatchSizes(places?: readonly string[]): { batchSizes: BatchSizes } | { reason: string } {
  const loaded = loadNativeAddon<FileSizesAddon>('file-sizes.node', places);
  if ('reason' in loaded) return loaded;
  return { batchSizes: batchSizesThrough(loaded.addon) };
}

/** `BatchSizes` over an addon's `fileSizes` (the real one, or one a test wraps). */
export function batchSizesThrough(addon: FileSizesAddon): BatchSizes {
  return async (dirs) => {
    const results: (OutputBytes | Error)[] = [];
    for (let first = 0; first < dirs.length; first += DIRS_PER_CALL) {
      const chunk = dirs.slice(first, first + DIRS_PER_CALL);
      const sizes = await addon.fileSizes(chunk, STREAM_NAMES);
      for (let i = 0; i < chunk.length; i++) {
        const stdout = sizes[STREAM_NAMES.length * i + STDOUT_AT]!;
        const stderr = sizes[STREAM_NAMES.length * i + STDERR_AT]!;
        const failed = statError(stdout, chunk[i]!, 'stdout') ?? statError(stderr, chunk[i]!, 'stderr');
        results.push(failed ?? { stdout: Math.max(0, stdout), stderr: Math.max(0, stderr) });
      }
    }
    return results;
  };
}

/**
 * The error of a failed stat (-errno), worded and named as fs.statSync's; none for a size or
 * ENOENT.
 */
function statError(result: number, dir: string, name: string): Error | undefined {
  if (result >= 0 || -result === constants.errno.ENOENT) return undefined;
  const code = getSystemErrorName(result);
  const path = `${dir}/${name}`;
  const message = `${code}: ${getSystemErrorMessage(result)}, stat '${path}'`;
  return Object.assign(new Error(message), { code, errno: result, syscall: 'stat', path });
}
