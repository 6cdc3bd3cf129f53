/**
 * The server's own uid, read once: a process's ids change only through setuid(2), which the
 * server never calls, and `process.getuid()` is a system call that every job's start made three
 * times (0.8 % of the event loop in a profile of `npm run bench -- start-rate`). Undefined where
 * the platform has no uids.
 */
export const SERVER_UID: number | undefined = process.getuid?.();
