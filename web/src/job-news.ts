import type { Job } from './types.ts';

/**
 * Whether `incoming` tells of the job `shown` as it was before: an answer or an event that left
 * before the job's end, arriving after it. A job's end is its last change (a retry is a job of its
 * own), so such news would put a finished job back to running for good: no event follows a finish.
 */
export function isOlderNews(shown: Job, incoming: Job): boolean {
  return shown.id === incoming.id && shown.finishedAt !== null && incoming.finishedAt === null;
}
