import type { JobIsolation } from '../core/job.ts';
import type { QueueDefaults } from './job-store.ts';
import { limitsOfColumns } from './limit-columns.ts';
import type { QueueRow } from './schema.ts';

/** A stored `isolation` default (written from a normalized one, so read back as is). */
export function parseIsolation(json: string | null): JobIsolation | null {
  return json === null ? null : (JSON.parse(json) as JobIsolation);
}

/** What a submission takes from its queue's row; a queue never configured has none of it. */
export function queueDefaultsOf(row: QueueRow | undefined): QueueDefaults {
  return { limits: limitsOfColumns(row ?? {}), isolation: parseIsolation(row?.isolation ?? null) };
}
