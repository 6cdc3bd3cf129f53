import { CursorError, describe } from '../core/errors.ts';
import type { OutputSelector } from './output-types.ts';

export const OUTPUT_SELECTORS: readonly OutputSelector[] = ['stdout', 'stderr', 'all'];

const DECIMAL = /^[0-9]+$/;

/**
 * Parses a cursor as sent by a client: a non-negative safe integer in decimal. Anything else
 * (absent, empty, signed, fractional, exponent, too large) is a `CursorError`.
 */
export function parseCursor(text: string | undefined): number {
  const value = text === undefined || !DECIMAL.test(text) ? Number.NaN : Number(text);
  if (!Number.isSafeInteger(value)) {
    throw new CursorError(
      `Expected \`cursor\` to be a non-negative integer in decimal, got ${describe(text)}`,
    );
  }
  return value;
}

/** The text form of a cursor, as clients receive it. */
export function formatCursor(cursor: number): string {
  return String(cursor);
}

/** Guards API entry points against cursors that did not come through `parseCursor`. */
export function assertCursor(cursor: number): void {
  if (!Number.isSafeInteger(cursor) || cursor < 0) {
    throw new CursorError(`Expected \`cursor\` to be a non-negative integer, got ${describe(cursor)}`);
  }
}

export function pastEndError(selector: OutputSelector, cursor: number, end: number): CursorError {
  const view = selector === 'all' ? 'the combined output' : selector;
  return new CursorError(`Cursor ${cursor} is past the end of ${view} (${end} bytes so far)`);
}
