import type { JobProgress } from './job.ts';

/** The longest progress message kept; longer ones are cut (a job's line is its own, not ours). */
export const PROGRESS_MESSAGE_CHARS = 1000;
/** The longest progress line read; a longer one is skipped as invalid. */
export const PROGRESS_LINE_BYTES = 8 * 1024;

/**
 * One line a job wrote to `JOBWORKER_PROGRESS`, as progress: `{"done": 3, "total": 10,
 * "message": "..."}` with `done` a number from 0, `total` a number from 0 or null, `message` a
 * string. Anything else (not JSON, wrong types) is undefined: a job's bad line is skipped, never
 * an error of the server's.
 */
export function parseProgressLine(line: string, at: Date): JobProgress | undefined {
  if (line.trim() === '' || line.length > PROGRESS_LINE_BYTES) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const { done, total, message } = value as Record<string, unknown>;
  if (!isCount(done)) return undefined;
  if (total !== undefined && total !== null && !isCount(total)) return undefined;
  if (message !== undefined && message !== null && typeof message !== 'string') return undefined;
  return {
    done,
    total: total ?? null,
    message: typeof message === 'string' ? message.slice(0, PROGRESS_MESSAGE_CHARS) : null,
    at,
  };
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0;
}
