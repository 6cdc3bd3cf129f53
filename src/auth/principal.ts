/**
 * Who is calling, once authenticated.
 * - `admin`: sees and stops every job.
 * - `user`: sees and stops only the jobs it started.
 */
export type Role = 'admin' | 'user';

export const ROLES: readonly Role[] = ['admin', 'user'];

export interface Principal {
  /** The user name, recorded as the owner of the jobs it starts and on the stops it asks for. */
  readonly user: string;
  readonly role: Role;
  /**
   * The OS account an admin configured for this user's jobs (`user add NAME --run-as ACCOUNT`);
   * null or absent: a pool account the server allocates (docs/security.md).
   */
  readonly runAs?: string | null;
}
