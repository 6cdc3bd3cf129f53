import type { Logger } from '../core/logger.ts';
import type { JobStore } from '../store/job-store.ts';

/**
 * Before recovery, which reads jobs by this node's id alone: on a store this server alone uses
 * (SQLite), the jobs running, paused or being started under another id become this node's
 * (`JobStore.takeOverJobs`), so that recovery adopts, stops or records them as it does its own.
 * They were left by this same server under an id that changed since; without this they stayed
 * running for ever, each holding its queue's slot, and a stop of one was recorded and never
 * carried out. Says so once, with what to do about it.
 */
export async function takeOverJobs(store: JobStore, node: string, logger: Logger): Promise<void> {
  const taken = await store.takeOverJobs(node);
  if (taken.length === 0) return;
  const count = taken.reduce((sum, t) => sum + t.jobs, 0);
  const names = taken.map((t) => `${JSON.stringify(t.from)} (${t.jobs})`).join(', ');
  logger.warn(
    { node, takenOver: taken },
    `took over ${count} job(s) left running under another node id, ${names}, as ${JSON.stringify(node)}: ` +
      'the node id changed since they started (its default, the host name, changes with a new host or ' +
      "container). Keep it stable: `jobworker serve --node-id ID` (JOBWORKER_NODE_ID), or the Worker's `node`",
  );
}
