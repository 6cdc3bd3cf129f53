import type { Job } from '../core/job.ts';

/** Where a job stands with its dependencies (each given as its latest attempt). */
export type DependencyVerdict =
  | { readonly kind: 'ready' }
  | { readonly kind: 'waiting' }
  | { readonly kind: 'failed'; readonly reason: string };

/**
 * Ready when every dependency succeeded; failed as soon as one ended otherwise (with a reason
 * naming it); waiting while one has not ended or will be retried. Shared by every store.
 */
export function dependencyVerdict(deps: readonly Job[]): DependencyVerdict {
  let waiting = false;
  for (const dep of deps) {
    if (dep.status === 'succeeded') continue;
    if (dep.status === 'queued' || dep.status === 'running' || dep.status === 'paused' || dep.retriedAs) {
      waiting = true;
      continue;
    }
    const how = dep.exit?.reason ? ` (${dep.exit.reason})` : '';
    return { kind: 'failed', reason: `dependency ${dep.id} ended ${dep.status}${how}` };
  }
  return waiting ? { kind: 'waiting' } : { kind: 'ready' };
}
