import { ValidationError } from './errors.ts';

/** The longest grace a stop may ask for: one day. */
export const MAX_GRACE_MS = 24 * 3600 * 1000;

/**
 * Refuses a stop's grace that is not a whole number of milliseconds from 0 to `MAX_GRACE_MS`
 * (`ValidationError` naming `graceMs`); undefined (the server's default) passes. Every way in
 * checks it (the service for the API, CLI and gRPC; the engine for the task library), before
 * anything is recorded or signalled.
 */
export function checkGraceMs(graceMs: number | undefined): void {
  if (graceMs === undefined) return;
  if (!Number.isInteger(graceMs) || graceMs < 0 || graceMs > MAX_GRACE_MS) {
    throw ValidationError.expected(
      'graceMs',
      `an integer of milliseconds from 0 to ${MAX_GRACE_MS}`,
      graceMs,
    );
  }
}
