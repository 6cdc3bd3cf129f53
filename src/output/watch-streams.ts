import { type FSWatcher, watch } from 'node:fs';
import { OUTPUT_FILE_NAMES } from './output-files.ts';

// Events about other files of the job directory (our own index and kept window) are not output.
const STREAM_FILES = new Set<string>([OUTPUT_FILE_NAMES.stdout, OUTPUT_FILE_NAMES.stderr]);

/**
 * One kernel watch on a job directory, calling `changed` when a stream file may have grown (or
 * when the kernel does not say which file changed). Throws as `fs.watch` does (inotify limits).
 */
export function watchStreams(dir: string, changed: () => void): FSWatcher {
  return watch(dir, (_event, name) => {
    if (name === null || STREAM_FILES.has(name)) changed();
  });
}
