import { setMaxListeners } from 'node:events';

/** Signals linked into one (`linkSignals`), and how to let go of them. */
export interface LinkedSignal {
  /** Aborts, with that signal's reason, when the first of the linked signals aborts. */
  readonly signal: AbortSignal;
  /** Removes the listeners on the linked signals. Idempotent; call it once the signal is done with. */
  dispose(): void;
}

/**
 * What `AbortSignal.any` does, by hand, with listeners that go with `dispose`. The server links a
 * signal that lives as long as it does (its shutdown, its engine's close) with each request's or
 * wait's own, and on Node 24.21 `AbortSignal.any` keeps memory for every signal it made with a
 * long-lived source, whether or not it aborted or was listened to: 100,000 calls, each listened
 * to and then aborted by its short-lived source, left 14.7 MB of heap after forced collections,
 * 400,000 left 35.7 MB (nodejs/node#64476 and its kin). Undefined entries are skipped; one signal
 * alone is given back as it is.
 */
export function linkSignals(signals: readonly (AbortSignal | undefined)[]): LinkedSignal {
  const sources = signals.filter((signal): signal is AbortSignal => signal !== undefined);
  if (sources.length === 1) return { signal: sources[0]!, dispose: () => {} };
  const linked = new AbortController();
  const already = sources.find((source) => source.aborted);
  if (already) {
    linked.abort(already.reason);
    return { signal: linked.signal, dispose: () => {} };
  }
  const onAbort = function (this: AbortSignal): void {
    dispose();
    linked.abort(this.reason);
  };
  const dispose = (): void => {
    for (const source of sources) source.removeEventListener('abort', onAbort);
  };
  for (const source of sources) source.addEventListener('abort', onAbort, { once: true });
  return { signal: linked.signal, dispose };
}

/**
 * An AbortController whose signal takes any number of listeners without Node's leak warning: for
 * a signal that lives as long as the server (its shutdown, its engine's close), which every wait
 * or follow under way listens on through `linkSignals`.
 */
export function unboundedController(): AbortController {
  const controller = new AbortController();
  setMaxListeners(0, controller.signal);
  return controller;
}
