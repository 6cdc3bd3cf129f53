import { chmodSync, lstatSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

/** A path of the data directory that others could read or enter, and the mode it had. */
export interface LooserPath {
  readonly path: string;
  /** Its permission bits before they were fixed, e.g. 0o644. */
  readonly mode: number;
}

/**
 * Makes the data directory owner-only: it holds the job database (every job's spec, environment
 * values included), the admin token and every job's output. Directories lose their group and
 * other bits (ending 0700), files too (ending 0600); symlinks and sockets are left alone (a
 * symlink's mode means nothing, and the server's socket is made 0600 when it is made). Returns
 * what was looser, for a warning.
 *
 * The data directory's own entries are always checked. Below them, a directory that was already
 * owner-only is not walked: nobody else could reach into it, and the server makes everything in
 * it owner-only itself. One that was looser (a data directory made by hand, or by a version that
 * made `jobs/` 0755) is walked all the way down, once: a start stays O(top-level entries) however
 * many job directories there are (a walk of 20,000 of them takes seconds).
 *
 * Synchronous on purpose: it runs once at start, before anything is served, and a stat without a
 * trip through the thread pool is several times cheaper.
 */
export function restrictDataDir(dataDir: string): LooserPath[] {
  const looser: LooserPath[] = [];
  const visit = (path: string, walk: boolean): void => {
    const stats = lstatSync(path, { throwIfNoEntry: false });
    // Gone meanwhile (a job's temporary file renamed), a symlink, a socket: nothing to fix.
    if (!stats || !(stats.isDirectory() || stats.isFile())) return;
    const mode = stats.mode & 0o7777;
    const loose = (mode & 0o7077) !== 0;
    if (loose) {
      chmodSync(path, mode & 0o700);
      looser.push({ path, mode });
    }
    if (stats.isDirectory() && (walk || loose)) {
      for (const name of readdirSync(path)) visit(join(path, name), loose);
    }
  };
  visit(dataDir, true);
  return looser;
}

/** "/d (0755), /d/jobworker.db (0644) and 3 more": the warning's list of what was looser. */
export function describeLooser(looser: readonly LooserPath[], shown = 5): string {
  const named = looser
    .slice(0, shown)
    .map(({ path, mode }) => `${path} (${mode.toString(8).padStart(4, '0')})`);
  const more = looser.length - named.length;
  return more > 0 ? `${named.join(', ')} and ${more} more` : named.join(', ');
}
