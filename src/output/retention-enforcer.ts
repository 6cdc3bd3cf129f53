import { stat, unlink, writeFile } from 'node:fs/promises';
import type { OutputBytes, OutputStream } from '../core/job.ts';
import { OUTPUT_STREAMS, outputPaths } from './output-files.ts';
import {
  fileStartOf,
  HolePunchError,
  type KeptWindow,
  nextKeptWindow,
  punchHole,
  readKeptWindow,
  writeKeptWindow,
} from './retention.ts';

/**
 * The spare file's size: room for what one move of a kept window and the punch after it need on a
 * full disk (`kept.json`'s first block, a new block of the combined index, a directory's), with
 * margin. One file per server, not per job.
 */
export const SPARE_BYTES = 64 * 1024;

/** What the enforcer remembers about one job between observations (no descriptor). */
export interface JobRetention {
  kept: KeptWindow | undefined;
  /** How far holes were punched by this process: after a restart the whole dropped prefix is punched once more. */
  punched: Record<OutputStream, number>;
  /**
   * The kept start each stream's last punch was tried for, done or not (never behind `punched`): a
   * failed punch is tried again once the window has moved past it, not at every observation that
   * finds new bytes, each of which ran fallocate(1) again (a fork of the server).
   */
  tried: Record<OutputStream, number>;
  /** A punch of this job failed and was reported: later failures are not reported again. */
  punchFailed: boolean;
}

export function newJobRetention(): JobRetention {
  return {
    kept: undefined,
    punched: { stdout: 0, stderr: 0 },
    tried: { stdout: 0, stderr: 0 },
    punchFailed: false,
  };
}

/**
 * Applies the per-stream cap of a monitor to the jobs it observes, in two steps that the
 * monitor calls in order: `advance` persists the new kept window, then `punch` frees the disk
 * blocks it no longer covers. A punch that fails is reported once (per enforcer when
 * fallocate(1) is missing, else per job) and tried again each time the window moves, so a
 * passing failure (a busy disk, a full process table) does not leave the job growing for good.
 * Until a punch succeeds the bytes stay intact on disk, hidden behind the kept window like
 * punched ones, so readers see the same view either way.
 */
export class RetentionEnforcer {
  readonly #capBytes: number;
  readonly #fallocate: string;
  readonly #spare: string | undefined;
  /** The spare file is not there (given back, or never made): made again after the next punch. */
  #spareMissing = true;
  #toolMissing = false;

  /**
   * `spare`: a file on the jobs' filesystem that holds `SPARE_BYTES` of room for the moment a full
   * disk refuses a move of a kept window, which must be on disk before the punch that frees it
   * (see retention.ts): the file is given back, the move and the punch made, and the file made
   * again once the disk has room. Without it, a disk that a job's output filled (a server not
   * root, a filesystem without blocks kept for root) stays full.
   */
  constructor(capBytes: number, fallocate: string, spare?: string) {
    this.#capBytes = capBytes;
    this.#fallocate = fallocate;
    this.#spare = Number.isFinite(capBytes) ? spare : undefined;
  }

  /** Makes the spare file when missing (none without a cap or a path). */
  async prepareSpare(): Promise<void> {
    const spare = this.#spare;
    if (spare === undefined || !this.#spareMissing) return;
    // One an earlier server made whole is kept as it is: rewritten, its blocks would be given back
    // for a moment, which a job still writing (jobs outlive their server) could take.
    const made = await stat(spare).catch(() => undefined);
    if (made !== undefined && made.size === SPARE_BYTES && made.blocks * 512 >= SPARE_BYTES) {
      this.#spareMissing = false;
      return;
    }
    try {
      // Written, not allocated sparse or truncated: the blocks must be the file's to give back.
      await writeFile(spare, Buffer.alloc(SPARE_BYTES), { mode: 0o600 });
    } catch (err) {
      // Part of it may be on disk: given back now, not left holding blocks that nothing frees.
      await unlink(spare).catch(() => undefined);
      throw err;
    }
    this.#spareMissing = false;
  }

  /** Moves the kept window for the sizes just observed, and persists it before any punch. */
  async advance(dir: string, sizes: OutputBytes, state: JobRetention): Promise<void> {
    if (!Number.isFinite(this.#capBytes)) return;
    const kept = state.kept ?? (await readKeptWindow(dir));
    state.kept = kept;
    const next = nextKeptWindow(kept, sizes, this.#capBytes);
    if (next.stdout === kept.stdout && next.stderr === kept.stderr) return;
    await this.#persist(dir, next);
    state.kept = next;
  }

  /**
   * Records that the job truncated the files of `streams` (`KeptWindow.fileStart`): each file now
   * starts at `at`, the end its stream had reached, and every byte of it before `at` is dropped.
   * Done whatever the cap, and on disk before the caller indexes what the files hold now.
   */
  async restart(
    dir: string,
    streams: readonly OutputStream[],
    at: OutputBytes,
    state: JobRetention,
  ): Promise<KeptWindow> {
    const kept = state.kept ?? (await readKeptWindow(dir));
    const fileStart = { stdout: fileStartOf(kept, 'stdout'), stderr: fileStartOf(kept, 'stderr') };
    const next = { stdout: kept.stdout, stderr: kept.stderr, fileStart };
    for (const stream of streams) {
      fileStart[stream] = at[stream];
      next[stream] = Math.max(kept[stream], at[stream]);
      // Nothing of the file before `at` is left to punch: what it holds now is all kept.
      state.tried[stream] = next[stream];
      state.punched[stream] = next[stream];
    }
    await this.#persist(dir, next);
    state.kept = next;
    return next;
  }

  async #persist(dir: string, next: KeptWindow): Promise<void> {
    try {
      await writeKeptWindow(dir, next);
    } catch (err) {
      if (!isNoSpace(err) || !(await this.#giveBackSpare())) throw err;
      // The spare's room, for this move; the punch that follows frees far more.
      await writeKeptWindow(dir, next);
    }
  }

  /** Removes the spare file (whole, or what a failed make left) to free its blocks; false when there was none. */
  async #giveBackSpare(): Promise<boolean> {
    if (this.#spare === undefined) return false;
    this.#spareMissing = true;
    try {
      await unlink(this.#spare);
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Frees the blocks before the persisted kept window, of each stream whose window moved since its
   * last try; rejects with the first `HolePunchError` to report (each stream is tried all the same).
   */
  async punch(dir: string, state: JobRetention): Promise<void> {
    const kept = state.kept;
    if (!kept || this.#toolMissing) return;
    let report: unknown;
    for (const stream of OUTPUT_STREAMS) {
      if (kept[stream] <= state.tried[stream]) continue;
      state.tried[stream] = kept[stream];
      try {
        // In the file: a stream its job truncated starts mid-stream (`fileStart`).
        await punchHole(outputPaths(dir)[stream], kept[stream] - fileStartOf(kept, stream), this.#fallocate);
        state.punched[stream] = kept[stream];
        // The disk has room again: the spare given back (or not made at the start) is made now.
        if (this.#spareMissing) await this.prepareSpare().catch(() => undefined);
      } catch (err) {
        if (err instanceof HolePunchError && err.toolMissing) {
          this.#toolMissing = true;
          throw err;
        }
        // Reported once per job; the next move of the window tries again.
        if (!state.punchFailed) {
          state.punchFailed = true;
          report = err;
        }
      }
    }
    if (report !== undefined) throw report;
  }
}

function isNoSpace(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT';
}
