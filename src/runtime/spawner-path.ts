import { accessSync, constants } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * Where the native spawner is: `dist/native/jobworker-spawner` of this checkout, built by
 * scripts/setup.sh (scripts/build-native.sh) from src/runtime/native/jobworker-spawner.c.
 * Throws a message that says how to build it when it is missing.
 */
export function spawnerPath(): string {
  const path = fileURLToPath(new URL('../../dist/native/jobworker-spawner', import.meta.url));
  try {
    accessSync(path, constants.X_OK);
  } catch {
    throw new Error(
      `The job spawner is not built (${path} is missing): run scripts/setup.sh, which compiles it from src/runtime/native/jobworker-spawner.c`,
    );
  }
  return path;
}
