// The REST API's shapes, as the server's own modules define them (type-only imports: nothing of
// the server is bundled).
export type { JobJson as Job } from '../../src/api/rest/job-json.ts';
export type { JobStatus } from '../../src/core/job.ts';

/** A queue as GET /v1/queues answers it (schema `Queue`). */
export interface Queue {
  name: string;
  concurrency: number | null;
  maxWaiting: number | null;
  paused: boolean;
  running: number;
  waiting: number;
}

/** A user as GET /v1/users answers it (schema `User`). */
export interface User {
  name: string;
  role: 'admin' | 'user' | 'viewer';
  runAs: string | null;
  disabled: boolean;
  createdAt: string;
}

/** A token as GET /v1/tokens answers it (schema `Token`): never its secret. */
export interface Token {
  id: string;
  user: string;
  label: string | null;
  createdAt: string;
  lastUsedAt: string | null;
  expiresAt: string | null;
  revokedAt: string | null;
  state: 'active' | 'expired' | 'revoked';
}

/** An audit entry (schema `AuditEntry`). */
export interface AuditEntry {
  id: string;
  at: string;
  user: string | null;
  role: string | null;
  source: string | null;
  transport: string | null;
  action: string;
  target: string | null;
  result: string;
}
