import { accessSync, constants } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * Where the native spawner is: `dist/native/jobworker-spawner` of this checkout, built by
 * scripts/setup.sh (scripts/build-native.sh) from src/runtime/native/jobworker-spawner.c.
 * Found from the sources (src/runtime/) and from the emitted JavaScript (dist/src/runtime/).
 * Throws a message that says how to build it when it is missing.
 */
export function spawnerPath(): string {
  const candidates = ['../../dist/native/jobworker-spawner', '../../native/jobworker-spawner'].map(
    (relative) => fileURLToPath(new URL(relative, import.meta.url)),
  );
  for (const path of candidates) {
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {
      // not this one
    }
  }
  throw new Error(
    `The job spawner is not built (${candidates[0]} is missing): run scripts/setup.sh, which compiles it from src/runtime/native/jobworker-spawner.c`,
  );
}
