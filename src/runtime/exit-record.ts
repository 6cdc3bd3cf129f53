import { join } from 'node:path';
import { readRecordFile } from './record-file.ts';

/** The file in a job's directory where its wrapper records how the command ended. */
export const EXIT_FILE = 'exit';

/** Where a job's process failed before its command ran (see src/runtime/native/jobworker-spawner.c). */
export type StartStage = 'cgroup' | 'stdio' | 'chdir' | 'exec';

/**
 * What the wrapper recorded about the command it ran. The native wrapper tells an exit code
 * from a death by signal; `status` is the shell wrapper's form (128+N after signal N) that
 * servers before the native spawner left, still read for the jobs they started.
 */
export type ExitRecord =
  | { readonly kind: 'exited'; readonly code: number; readonly at: Date }
  | { readonly kind: 'signaled'; readonly signal: number; readonly at: Date }
  | { readonly kind: 'failed'; readonly stage: StartStage; readonly message: string; readonly at: Date }
  | { readonly kind: 'notstarted'; readonly at: Date }
  | { readonly kind: 'status'; readonly status: number; readonly at: Date }
  | { readonly kind: 'notfound'; readonly at: Date };

const STAGES = new Set<string>(['cgroup', 'stdio', 'chdir', 'exec']);

/** Reads the wrapper's exit record; undefined while there is none (or it is incomplete). */
export async function readExitRecord(dir: string): Promise<ExitRecord | undefined> {
  const record = await readRecordFile(join(dir, EXIT_FILE));
  return record && parseExitRecord(record.line, record.at);
}

export function parseExitRecord(line: string, at: Date): ExitRecord | undefined {
  const [word = '', second = '', third = '', ...rest] = line.split(' ');
  if (word === 'exit' || word === 'signal') {
    const num = Number(second);
    if (!Number.isInteger(num) || num < 0 || num > 255) return undefined;
    return word === 'exit' ? { kind: 'exited', code: num, at } : { kind: 'signaled', signal: num, at };
  }
  if (word === 'error' && STAGES.has(second)) {
    // errno ENOENT at exec is what "command not found" is.
    const message = second === 'exec' && third === '2' ? 'command not found' : rest.join(' ');
    return { kind: 'failed', stage: second as StartStage, message, at };
  }
  if (word === 'notstarted') return { kind: 'notstarted', at };
  // The shell wrapper's records.
  if (word === 'notfound') return { kind: 'notfound', at };
  if (word === 'cgroup') return { kind: 'failed', stage: 'cgroup', message: '', at };
  const status = Number(word);
  if (word === '' || !Number.isInteger(status) || status < 0 || status > 255) return undefined;
  return { kind: 'status', status, at };
}
