import { childPath } from '../core/child-path.ts';
import { readRecordFile } from './record-file.ts';

/** The file in a job's directory where its wrapper records how the command ended. */
export const EXIT_FILE = 'exit';

/** Where a job's process failed before its command ran (see src/runtime/native/jobworker-spawner.c). */
export type StartStage = 'cgroup' | 'stdio' | 'user' | 'chdir' | 'exec' | 'namespace';

/**
 * When a record says the job ended. `at` is the record's own time when it carries one (it was
 * written late: see `late`), otherwise the time its file was written, which is when the job ended.
 */
interface RecordTime {
  readonly at: Date;
  /**
   * The disk was full when the job ended: the wrapper wrote the record only once space returned,
   * and put the real end time in it (`exit 3 @1767225600000`).
   */
  readonly late: boolean;
}

/** How the command ended, as its wrapper recorded it. */
type RecordKind =
  | { readonly kind: 'exited'; readonly code: number }
  | { readonly kind: 'signaled'; readonly signal: number }
  | { readonly kind: 'failed'; readonly stage: StartStage; readonly message: string }
  | { readonly kind: 'notstarted' }
  | { readonly kind: 'status'; readonly status: number }
  | { readonly kind: 'notfound' };

/**
 * What the wrapper recorded about the command it ran. The native wrapper tells an exit code
 * from a death by signal; `status` is the shell wrapper's form (128+N after signal N) that
 * servers before the native spawner left, still read for the jobs they started.
 */
export type ExitRecord = RecordTime & RecordKind;

const STAGES = new Set<string>(['cgroup', 'stdio', 'user', 'chdir', 'exec', 'namespace']);

/** Reads the wrapper's exit record; undefined while there is none (or it is incomplete). */
export async function readExitRecord(dir: string): Promise<ExitRecord | undefined> {
  const record = await readRecordFile(childPath(dir, EXIT_FILE));
  return record && parseExitRecord(record.line, record.at);
}

/** Parses a record's line; `written` is when its file was written. Undefined when it is not one. */
export function parseExitRecord(line: string, written: Date): ExitRecord | undefined {
  const words = line.split(' ');
  // A late record ends with its real end time; records without one (every record before it
  // existed, the shell wrapper's too) keep their form.
  const last = words.at(-1) ?? '';
  const late = words.length > 1 && /^@\d{1,15}$/.test(last);
  if (late) words.pop();
  const time: RecordTime = { at: late ? new Date(Number(last.slice(1))) : written, late };
  const kind = parseKind(words);
  return kind && { ...kind, ...time };
}

function parseKind(words: readonly string[]): RecordKind | undefined {
  const [word = '', second = '', third = '', ...rest] = words;
  if (word === 'exit' || word === 'signal') {
    const num = Number(second);
    // Number('') is 0: a record cut to its first word is no exit code.
    if (second === '' || !Number.isInteger(num) || num < 0 || num > 255) return undefined;
    return word === 'exit' ? { kind: 'exited', code: num } : { kind: 'signaled', signal: num };
  }
  if (word === 'error' && STAGES.has(second)) {
    // errno ENOENT at exec is what "command not found" is.
    const message = second === 'exec' && third === '2' ? 'command not found' : rest.join(' ');
    return { kind: 'failed', stage: second as StartStage, message };
  }
  if (word === 'notstarted') return { kind: 'notstarted' };
  // The shell wrapper's records.
  if (word === 'notfound') return { kind: 'notfound' };
  if (word === 'cgroup') return { kind: 'failed', stage: 'cgroup', message: '' };
  const status = Number(word);
  if (word === '' || !Number.isInteger(status) || status < 0 || status > 255) return undefined;
  return { kind: 'status', status };
}
