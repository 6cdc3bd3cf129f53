import { JobworkerError } from '../core/errors.ts';
import { unboundedController } from '../core/linked-signal.ts';

/** One user's hold on its streams' signal (`UserStreams.take`). */
export interface UserStreamHold {
  /** Aborts when `UserStreams.end` is called for the user. */
  readonly signal: AbortSignal;
  /** Gives the hold back once the stream is over. Idempotent. */
  release(): void;
}

/**
 * The streams each user has open (event watches, output reads and follows), so that they can be
 * ended together when what authorized them is gone: a stream is authorized once, when it opens,
 * and may last as long as its job, while a revoked token, a disabled or removed user or a changed
 * role must reach nothing more from then on (docs/security.md). One signal per user with streams
 * open; a user without any holds no memory here.
 */
export class UserStreams {
  readonly #byUser = new Map<string, { controller: AbortController; holds: number }>();

  /** A hold on `user`'s signal, for one stream. */
  take(user: string): UserStreamHold {
    let entry = this.#byUser.get(user);
    if (entry === undefined) {
      entry = { controller: unboundedController(), holds: 0 };
      this.#byUser.set(user, entry);
    }
    entry.holds++;
    const held = entry;
    let released = false;
    return {
      signal: held.controller.signal,
      release: () => {
        if (released) return;
        released = true;
        held.holds--;
        if (held.holds === 0 && this.#byUser.get(user) === held) this.#byUser.delete(user);
      },
    };
  }

  /** Ends every stream `user` has open now; streams it opens later are not affected. */
  end(user: string): void {
    const entry = this.#byUser.get(user);
    if (entry === undefined) return;
    this.#byUser.delete(user);
    entry.controller.abort(new Error(`the credentials of user ${user} changed`));
  }

  /** Users with streams open (leak checks). */
  get users(): number {
    return this.#byUser.size;
  }
}

/** The error a stream ends with when its user's credentials changed (`UserStreams.end`). */
export function streamRevoked(user: string): JobworkerError {
  return new JobworkerError(
    'UNAUTHENTICATED',
    `This stream was ended: the credentials of user ${user} it was opened with changed (a token revoked, ` +
      'the user disabled, removed or given another role); open it again with valid credentials',
  );
}
