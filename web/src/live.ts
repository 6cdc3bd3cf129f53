import { request } from './api.ts';
import { readSse } from './sse.ts';
import type { Job } from './types.ts';

export type LiveEvent =
  | { type: 'job'; kind: string; job: Job }
  | { type: 'reset' }
  | { type: 'connected' }
  | { type: 'disconnected' };

/**
 * The one live connection of the page: GET /v1/events over fetch (with the Authorization header),
 * resumed with `Last-Event-ID` after a cut; a `reset` tells every view to reload what it shows.
 */
class LiveEvents {
  readonly #listeners = new Set<(event: LiveEvent) => void>();
  #controller: AbortController | undefined;
  #lastEventId: string | undefined;
  connected = false;

  subscribe(listener: (event: LiveEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  start(): void {
    if (this.#controller) return;
    const controller = new AbortController();
    this.#controller = controller;
    void this.#run(controller.signal);
  }

  stop(): void {
    this.#controller?.abort();
    this.#controller = undefined;
    this.#lastEventId = undefined;
    // Not live any more: a sign-in after this must not show the dot live before it connects.
    this.connected = false;
  }

  #emit(event: LiveEvent): void {
    if (event.type === 'connected') this.connected = true;
    if (event.type === 'disconnected') this.connected = false;
    for (const listener of this.#listeners) listener(event);
  }

  async #run(signal: AbortSignal): Promise<void> {
    let delay = 500;
    while (!signal.aborted) {
      // A stream opened without Last-Event-ID replays nothing: what changed between a view's first
      // read and this stream's start (or during a cut too old to resume) would be missed until the
      // next change of the same thing, so its `ready` tells every view to reload, as a reset does.
      const fresh = this.#lastEventId === undefined;
      try {
        const res = await request('/v1/events', {
          headers: {
            Accept: 'text/event-stream',
            ...(this.#lastEventId === undefined ? {} : { 'Last-Event-ID': this.#lastEventId }),
          },
          signal,
        });
        if (!res.body) throw new Error('no body');
        for await (const e of readSse(res.body, signal)) {
          if (e.id !== null) this.#lastEventId = e.id;
          if (e.event === 'ready') {
            delay = 500;
            this.#emit({ type: 'connected' });
            if (fresh) this.#emit({ type: 'reset' });
          } else if (e.event === 'reset') {
            delay = 500;
            this.#emit({ type: 'connected' });
            this.#emit({ type: 'reset' });
          } else if (e.event.startsWith('job:')) {
            this.#emit({ type: 'job', kind: e.event, job: JSON.parse(e.data) as Job });
          }
        }
      } catch (err) {
        if (signal.aborted) return;
        if ((err as { status?: number }).status === 401) return;
      }
      this.#emit({ type: 'disconnected' });
      if (signal.aborted) return;
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 10_000);
    }
  }
}

export const live = new LiveEvents();
