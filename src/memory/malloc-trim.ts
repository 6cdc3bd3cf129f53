import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/** What src/memory/native/malloc-trim.c exports. */
interface MallocTrimAddon {
  /** malloc_trim(0): true when some memory was given back. */
  trim(): boolean;
  /** Whether trim() can do anything here (glibc); false elsewhere, where it is a no-op. */
  available(): boolean;
}

/** Gives glibc's free heap memory back to the system; true when some was. */
export type MallocTrim = () => boolean;

/**
 * `dist/native/malloc-trim.node`, built by scripts/build-native.sh, found from the sources
 * (src/memory/) and from the emitted JavaScript (dist/src/memory/).
 */
const CANDIDATES = ['../../dist/native/malloc-trim.node', '../../native/malloc-trim.node'];

/**
 * glibc's `malloc_trim(0)` for this process (the addon from the first of `candidates`, paths
 * relative to this module, that loads), or the reason it cannot be had: the addon is not
 * built (no C compiler or Node-API headers at setup), failed to load, or the C library is not
 * glibc (musl has no such call and gives memory back on its own terms). The server runs without it;
 * it only keeps free malloc memory resident longer.
 */
export function loadMallocTrim(
  candidates: readonly string[] = CANDIDATES,
): { trim: MallocTrim } | { reason: string } {
  // Not named `require`: the server's bundle turns import.meta.url into a call of the real one.
  const load = createRequire(import.meta.url);
  let lastError: unknown;
  for (const relative of candidates) {
    const path = fileURLToPath(new URL(relative, import.meta.url));
    let addon: MallocTrimAddon;
    try {
      addon = load(path) as MallocTrimAddon;
    } catch (err) {
      // A file that is there but does not load says more than a place where none was built.
      if (lastError === undefined || (err as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND')
        lastError = err;
      continue;
    }
    if (!addon.available()) return { reason: 'the C library is not glibc' };
    return { trim: () => addon.trim() };
  }
  const detail =
    (lastError as NodeJS.ErrnoException | undefined)?.code === 'MODULE_NOT_FOUND'
      ? 'not built (scripts/build-native.sh)'
      : String((lastError as Error | undefined)?.message ?? lastError);
  return { reason: `malloc-trim.node: ${detail}` };
}
