import { loadNativeAddon } from '../core/native-addon.ts';

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
 * glibc's `malloc_trim(0)` for this process (`dist/native/malloc-trim.node`, built by
 * scripts/build-native.sh; `places` relative to src/core/ for tests), or the reason it cannot be
 * had: the addon is not built or failed to load (`loadNativeAddon`), or the C library is not
 * glibc (musl has no such call and gives memory back on its own terms). The server runs without
 * it; it only keeps free malloc memory resident longer.
 */
export function loadMallocTrim(places?: readonly string[]): { trim: MallocTrim } | { reason: string } {
  const loaded = loadNativeAddon<MallocTrimAddon>('malloc-trim.node', places);
  if ('reason' in loaded) return loaded;
  const { addon } = loaded;
  if (!addon.available()) return { reason: 'the C library is not glibc' };
  return { trim: () => addon.trim() };
}
