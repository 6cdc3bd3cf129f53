/**
 * Waits for the kernel's state where it gives no notification: a process gone, a process group
 * empty, a v1 cgroup empty, or (on v2, every second) a missed `cgroup.events` change. The one
 * kind of timer in the engine and the runtime that does not go through the engine's `Clock`, on
 * purpose: what it watches moves in real time whatever clock schedules the jobs, and on a test's
 * manual clock a poll would wait for a tick that nobody gives (an adopted job's end would never
 * be seen). How long to wait in all (a grace period, a time to give up) is the caller's
 * deadline, on its `Clock`.
 */

/**
 * Calls `check` every `ms` of real time until the returned function is called. `keepAlive`: the
 * poll alone keeps the process running (a wait someone awaits), or not (a watch in the background).
 */
export function pollKernel(check: () => void, ms: number, keepAlive: boolean): () => void {
  const timer = setInterval(check, ms);
  if (!keepAlive) timer.unref();
  return () => clearInterval(timer);
}

/** Resolves after `ms` of real time: the pause between two looks at the kernel's state. */
export function pauseBetweenLooks(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
