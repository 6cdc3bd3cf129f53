import type { ServerResponse } from 'node:http';

/**
 * Cuts `res` as soon as `ended` aborts (the stream it carries was ended for its caller: a token
 * revoked or expired, a user changed). The stream itself ends only at its next read, and a client
 * that stopped reading holds the route in a write until it reads again: the response is destroyed
 * at once instead, which also wakes that write. Returns what stops listening (call it once the
 * response is over).
 */
export function cutWhenEnded(res: ServerResponse, ended: AbortSignal): () => void {
  const cut = (): void => {
    res.destroy();
  };
  // Ended already (while a relay opened): its first read says so, but the client may not read.
  if (ended.aborted) {
    cut();
    return () => undefined;
  }
  ended.addEventListener('abort', cut, { once: true });
  return () => ended.removeEventListener('abort', cut);
}
