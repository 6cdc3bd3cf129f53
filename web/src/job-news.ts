import type { Job } from './types.ts';

/**
 * A job's phase: waiting, started (running or paused), finished. A job only moves forward through
 * them (a retry is a job of its own), so news of an earlier phase than the one shown is older
 * news: an answer or an event that left before the change shown, arriving after it.
 */
function phase(job: Job): number {
  if (job.finishedAt !== null) return 2;
  return job.startedAt !== null ? 1 : 0;
}

/**
 * Whether `incoming` tells of the job `shown` as it was before: taken, it would put a finished job
 * back to running for good (no event follows a job's end), or a running one back to queued.
 */
export function isOlderNews(shown: Job, incoming: Job): boolean {
  return shown.id === incoming.id && phase(incoming) < phase(shown);
}

/**
 * Whether `incoming` tells of a later phase of the job `shown`: what an event heard while a list
 * was on its way must do to replace the list's row. An event of the same phase may be older than
 * the answer (a progress event sent before a pause, whose own event is still on its way, would
 * show the paused job running until it comes), and the answer is kept.
 */
export function isLaterPhase(shown: Job, incoming: Job): boolean {
  return shown.id === incoming.id && phase(incoming) > phase(shown);
}

/**
 * Whether two news of one job cannot be ordered: of the same phase, with another status (running,
 * paused). An answer read while such an event arrived may be the older or the newer; the job is
 * read again, and what it is now replaces both.
 */
export function isUnordered(one: Job, other: Job): boolean {
  return one.id === other.id && phase(one) === phase(other) && one.status !== other.status;
}
