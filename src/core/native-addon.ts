import { accessSync, constants } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/**
 * Where scripts/build-native.sh puts the addons (`dist/native/`), relative to this module: from the
 * sources (src/core/) and from the emitted JavaScript (dist/src/core/, which the server's bundle
 * names as this module's URL).
 */
const PLACES = ['../../dist/native/', '../../native/'];

/**
 * Loads one of jobworker's optional Node-API addons (`file`, e.g. `send-file.node`) from the
 * first place it loads from, or says why it cannot be had: not built (no C compiler or Node-API
 * headers at setup), or there but failing to load (named with its error). The server runs without
 * each of them, only slower or holding more memory.
 */
export function loadNativeAddon<T>(
  file: string,
  places: readonly string[] = PLACES.map((place) => place + file),
): { addon: T } | { reason: string } {
  // Not named `require`: the server's bundle turns import.meta.url into a call of the real one.
  const load = createRequire(import.meta.url);
  let lastError: unknown;
  for (const relative of places) {
    const path = fileURLToPath(new URL(relative, import.meta.url));
    try {
      return { addon: load(path) as T };
    } catch (err) {
      // A file that is there but does not load says more than a place where none was built.
      if (lastError === undefined || (err as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND')
        lastError = err;
    }
  }
  const detail =
    (lastError as NodeJS.ErrnoException | undefined)?.code === 'MODULE_NOT_FOUND'
      ? 'not built (scripts/build-native.sh)'
      : String((lastError as Error | undefined)?.message ?? lastError);
  return { reason: `${file}: ${detail}` };
}

/**
 * The path of one of jobworker's native programs (`file`, e.g. `jobworker-spawner`) in the first
 * of the places the addons are built to where it is an executable file; undefined when it was
 * not built. Its caller says what that means (the spawner is needed, the checkpointer optional).
 */
export function nativeExecutablePath(file: string): string | undefined {
  for (const place of PLACES) {
    const path = fileURLToPath(new URL(place + file, import.meta.url));
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {
      // not this one
    }
  }
  return undefined;
}
