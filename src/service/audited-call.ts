import type { Caller } from '../auth/principal.ts';
import type { AuditAction, AuditSink } from '../core/audit.ts';
import type { Clock } from '../core/clock.ts';
import { JobworkerError } from '../core/errors.ts';

/** What an audited call is recorded with besides its caller. */
export interface AuditContext {
  readonly sink: AuditSink;
  readonly clock: Clock;
}

/**
 * Runs a state-changing call and records it in the audit trail with its result: `ok`, or the code
 * of the error it ended with (an unexpected error is `INTERNAL`). `target` may be computed from the
 * result (a new job's id). The sink batches its writes: the call does not wait for them.
 */
export async function auditedCall<T>(
  audit: AuditContext,
  who: Caller,
  action: AuditAction,
  target: string | null | ((result: T | undefined) => string | null),
  run: () => T | Promise<T>,
): Promise<T> {
  const record = (result: string, value?: T) =>
    audit.sink.record({
      at: audit.clock.now(),
      user: who.user,
      role: who.role,
      source: who.source ?? null,
      transport: who.transport ?? 'internal',
      action,
      target: typeof target === 'function' ? target(value) : target,
      result,
    });
  let value: T;
  try {
    value = await run();
  } catch (err) {
    record(err instanceof JobworkerError ? err.code : 'INTERNAL');
    throw err;
  }
  record('ok', value);
  return value;
}
