import type { Principal } from '../auth/principal.ts';
import { JobworkerError } from '../core/errors.ts';

/** Refuses (`FORBIDDEN`) a caller who is not an admin: "Only an admin may `what`". */
export function requireAdmin(who: Principal, what: string): void {
  if (who.role !== 'admin') throw new JobworkerError('FORBIDDEN', `Only an admin may ${what}`);
}
