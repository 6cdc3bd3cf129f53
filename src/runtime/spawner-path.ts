import { fileURLToPath } from 'node:url';
import { nativeExecutablePath } from '../core/native-addon.ts';

/**
 * Where the native spawner is: `dist/native/jobworker-spawner` of this checkout, built by
 * scripts/setup.sh (scripts/build-native.sh) from src/runtime/native/jobworker-spawner.c.
 * Found from the sources (src/runtime/) and from the emitted JavaScript (dist/src/runtime/).
 * Throws a message that says how to build it when it is missing.
 */
export function spawnerPath(): string {
  const path = nativeExecutablePath('jobworker-spawner');
  if (path !== undefined) return path;
  throw new Error(
    `The job spawner is not built (${fileURLToPath(new URL('../../dist/native/jobworker-spawner', import.meta.url))} is missing): run scripts/setup.sh, which compiles it from src/runtime/native/jobworker-spawner.c`,
  );
}
