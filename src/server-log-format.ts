/**
 * The server log for a person at a terminal: one short line per entry instead of pino's JSON,
 *
 *   14:03:07.123 INFO  jobworker listening url=http://127.0.0.1:8080 dataDir=/srv/jobworker
 *   14:03:09.871 INFO  request completed GET /v1/jobs 200 1.9ms reqId=req-1
 *   14:03:10.002 ERROR [engine] job supervision failed jobId=0197... err: disk full
 *       at ... (the stack, for errors)
 *
 * local time, level, message, then the entry's own fields (pid and hostname, the same on every
 * line, are left out). Formatted in the writing thread, line by line, as pino hands each line
 * over: no worker thread, no transport, nothing kept between lines.
 */

/** `pretty` for people, `json` (pino's own lines) for machines. */
export type LogFormat = 'pretty' | 'json';

export const LOG_FORMATS: readonly LogFormat[] = ['pretty', 'json'];

export interface PrettyLogOptions {
  /** ANSI colours: level, dimmed time and field names. */
  readonly color: boolean;
}

const LEVELS: Readonly<Record<number, { name: string; sgr: string }>> = {
  10: { name: 'TRACE', sgr: '90' },
  20: { name: 'DEBUG', sgr: '34' },
  30: { name: 'INFO', sgr: '32' },
  40: { name: 'WARN', sgr: '33' },
  50: { name: 'ERROR', sgr: '31' },
  60: { name: 'FATAL', sgr: '35' },
};

/** Fields shown in their own way (or, for pid, hostname and v, not at all). */
const SHOWN_APART = new Set([
  'level',
  'time',
  'msg',
  'pid',
  'hostname',
  'v',
  'component',
  'req',
  'res',
  'responseTime',
  'err',
]);

/**
 * A pino destination that writes each JSON line as a readable one to `out` (pino hands over one
 * whole line per write); `flush` is passed on, so closing still waits for the last lines.
 */
export function prettyLogDestination(
  out: { write(line: string): boolean; flush(cb: (err?: Error) => void): void },
  options: PrettyLogOptions,
): { write(chunk: string): boolean; flush(cb: (err?: Error) => void): void } {
  return {
    write: (chunk) => {
      const text = chunk
        .split('\n')
        .filter((line) => line !== '')
        .map((line) => `${formatLogLine(line, options)}\n`)
        .join('');
      return text === '' || out.write(text);
    },
    flush: (cb) => out.flush(cb),
  };
}

/** One pino JSON line as a person reads it; a line that is not JSON is passed on as it is. */
export function formatLogLine(line: string, options: PrettyLogOptions): string {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return printable(line);
  }
  const paint = (sgr: string, text: string) => (options.color ? `\x1b[${sgr}m${text}\x1b[0m` : text);
  const level = LEVELS[Number(entry.level)] ?? { name: String(entry.level), sgr: '0' };
  const parts = [
    paint('2', clock(typeof entry.time === 'number' ? new Date(entry.time) : new Date())),
    paint(level.sgr, level.name.padEnd(5)),
  ];
  if (typeof entry.component === 'string') parts.push(`[${printable(entry.component)}]`);
  parts.push(printable(String(entry.msg ?? '')));
  const req = entry.req as { method?: unknown; url?: unknown } | undefined;
  if (req && typeof req === 'object') parts.push(printable(`${String(req.method)} ${String(req.url)}`));
  const res = entry.res as { statusCode?: unknown } | undefined;
  if (res && typeof res === 'object') parts.push(String(res.statusCode));
  if (typeof entry.responseTime === 'number') parts.push(`${entry.responseTime.toFixed(1)}ms`);
  for (const [key, value] of Object.entries(entry)) {
    if (SHOWN_APART.has(key) || value === undefined) continue;
    parts.push(`${paint('2', `${key}=`)}${renderValue(value)}`);
  }
  const err = entry.err as { message?: unknown; stack?: unknown } | undefined;
  let stack = '';
  if (err && typeof err === 'object') {
    parts.push(`${paint('2', 'err:')} ${printable(String(err.message ?? ''))}`);
    // The stack is for errors; a warning's cause is enough in one line.
    if (Number(entry.level) >= 50 && typeof err.stack === 'string') {
      stack = err.stack
        .split('\n')
        .slice(1)
        .map((frame) => `\n    ${printable(frame.trim())}`)
        .join('');
    }
  }
  return parts.join(' ') + stack;
}

/** HH:MM:SS.mmm in local time. */
function clock(date: Date): string {
  const two = (n: number) => String(n).padStart(2, '0');
  return `${two(date.getHours())}:${two(date.getMinutes())}:${two(date.getSeconds())}.${String(date.getMilliseconds()).padStart(3, '0')}`;
}

/** Plain words as they are; anything with spaces, quotes or control characters as JSON. */
function renderValue(value: unknown): string {
  if (typeof value === 'string')
    return /^[\x21-\x7e]*$/.test(value) && !value.includes('"') && value !== ''
      ? value
      : JSON.stringify(value);
  if (typeof value === 'object' && value !== null) return JSON.stringify(value);
  return String(value);
}

/** Control characters (escape sequences included) shown escaped, never sent to the terminal. */
function printable(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: finding them is the point
  return text.replace(/[\x00-\x1f\x7f-\x9f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}
