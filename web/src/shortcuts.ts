/** How long after `g` its second key moves to a page (as GitHub's and Gmail's `g` keys do). */
export const G_WINDOW_MS = 1500;

/** The pages a `g` pair moves to, by its second key. */
const G_PAGES: Readonly<Record<string, string>> = {
  j: 'jobs',
  q: 'queues',
  s: 'start',
  u: 'users',
  a: 'audit',
};

/** What a key pressed outside any field does: move to a page, or take the key itself. */
export type PairKey = { page: string } | { swallowed: true } | { key: string };

/**
 * The two-key `g` moves. A `g` long forgotten must not turn a later `j` into a jump, nor one
 * pressed before typing in a field: the second key counts within G_WINDOW_MS of the `g`, and a key
 * typed in a field forgets it. Times are the events' own (`KeyboardEvent.timeStamp`), so there is
 * no timer to clear.
 */
export class GKeys {
  #since: number | null = null;

  /** A key pressed outside any field at `time` (ms). */
  key(key: string, time: number): PairKey {
    const since = this.#since;
    this.#since = null;
    if (since !== null && time - since <= G_WINDOW_MS) {
      const page = G_PAGES[key];
      // The second key of a pair is taken by it even when it names no page (`g x`).
      return page === undefined ? { swallowed: true } : { page };
    }
    if (key === 'g') {
      this.#since = time;
      return { swallowed: true };
    }
    return { key };
  }

  /** A key typed in a field: a pending `g` is forgotten. */
  typed(): void {
    this.#since = null;
  }
}
