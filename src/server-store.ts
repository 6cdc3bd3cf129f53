import { join } from 'node:path';
import type { Clock } from './core/clock.ts';
import { DATABASE_FILE } from './lost-database.ts';
import type { JobStore } from './store/job-store.ts';
import type { PgJobStore } from './store/postgres/pg-job-store.ts';
import { SqliteJobStore } from './store/sqlite/sqlite-job-store.ts';
import type { UserStore } from './store/user-store.ts';
import type { WebhookStore } from './store/webhook-store.ts';

/** Where a server keeps its jobs, users and webhooks (docs/storage.md). */
export type StoreChoice =
  | { readonly kind: 'sqlite' }
  | { readonly kind: 'postgres'; readonly url: string; readonly poolMax: number };

/** Every store a server uses, behind one connection (SQLite) or one pool (PostgreSQL). */
export type ServerStore = JobStore & { readonly users: UserStore; readonly webhooks: WebhookStore };

/**
 * Opens the store the server was told to use: SQLite in the data directory (one node), or a
 * PostgreSQL database that the nodes of a cluster share (then `shared` is the same store), its
 * sessions named after `node` and timed by its node timeout (docs/cluster.md, "Frozen nodes").
 */
export async function openServerStore(
  choice: StoreChoice,
  dataDir: string,
  clock: Clock,
  log: (message: string) => void,
  node?: { readonly nodeId: string; readonly nodeTimeoutMs: number },
): Promise<{ store: ServerStore; shared?: PgJobStore }> {
  if (choice.kind === 'sqlite') {
    // Its checkpoints off the event loop (the checkpoint helper), where it was built.
    return {
      store: await SqliteJobStore.open(join(dataDir, DATABASE_FILE), { checkpoints: { clock, log } }),
    };
  }
  // Loaded only here: pg, its pool and the cluster's queries are a large part of the server's code,
  // which a server on SQLite (most of them) would otherwise hold for nothing.
  const { PgJobStore } = await import('./store/postgres/pg-job-store.ts');
  const store = await PgJobStore.open(choice.url, { max: choice.poolMax, clock, ...node });
  return { store, shared: store };
}
