/**
 * `load` run at the first call, its promise shared by every call after; a rejection is not kept:
 * the next call runs `load` again, so that a module that failed to load once (a file replaced
 * mid-upgrade) is not every later request's failure until a restart. For what a server loads on
 * first use instead of at start (prom-client, Connect, @fastify/send).
 */
export function loadOnce<T>(load: () => Promise<T>): () => Promise<T> {
  let loading: Promise<T> | undefined;
  return () => {
    loading ??= load().catch((err: unknown) => {
      loading = undefined;
      throw err;
    });
    return loading;
  };
}
