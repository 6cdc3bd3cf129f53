import type { JobLimits } from '../core/job.ts';
import type { LimitSettings } from '../core/limits.ts';

/** The two JSON columns (migration 0007) that hold a queue's or a user's limit settings. */
export interface LimitColumns {
  default_limits: string | null;
  max_limits: string | null;
}

export function limitColumns(settings: LimitSettings): LimitColumns {
  return { default_limits: json(settings.defaults), max_limits: json(settings.maxima) };
}

export function limitsOfColumns(row: Partial<LimitColumns>): LimitSettings {
  return { defaults: parse(row.default_limits), maxima: parse(row.max_limits) };
}

function json(limits: JobLimits): string | null {
  return Object.keys(limits).length === 0 ? null : JSON.stringify(limits);
}

function parse(text: string | null | undefined): JobLimits {
  return text ? (JSON.parse(text) as JobLimits) : {};
}
