import { JobworkerError } from '../core/errors.ts';

/** One stream's hold (`UserStreams.take`). */
export interface UserStreamHold {
  /** Aborts when `UserStreams.end` is called for the stream's user (or its token). */
  readonly signal: AbortSignal;
  /** Gives the hold back once the stream is over. Idempotent. */
  release(): void;
}

interface Hold {
  readonly tokenId: string | undefined;
  readonly controller: AbortController;
}

/**
 * The streams each user has open (event watches, output reads and follows), with the token each
 * was opened with, so that they can be ended when what authorized them is gone: a stream is
 * authorized once, when it opens, and may last as long as its job, while a revoked token, a
 * disabled or removed user or a changed role must reach nothing more from then on
 * (docs/security.md). A user without streams holds no memory here.
 */
export class UserStreams {
  readonly #byUser = new Map<string, Set<Hold>>();

  /** A hold for one stream of `user`, opened with token `tokenId` (absent: a certificate, ...). */
  take(user: string, tokenId?: string): UserStreamHold {
    let holds = this.#byUser.get(user);
    if (holds === undefined) {
      holds = new Set();
      this.#byUser.set(user, holds);
    }
    const hold: Hold = { tokenId, controller: new AbortController() };
    holds.add(hold);
    const held = holds;
    return {
      signal: hold.controller.signal,
      release: () => {
        held.delete(hold);
        if (held.size === 0 && this.#byUser.get(user) === held) this.#byUser.delete(user);
      },
    };
  }

  /**
   * Ends the streams `user` has open now: those opened with `tokenId` when one is given (that
   * token alone was revoked), else all of them. Streams opened later are not affected.
   */
  end(user: string, tokenId?: string): void {
    const holds = this.#byUser.get(user);
    if (holds === undefined) return;
    for (const hold of [...holds]) {
      if (tokenId !== undefined && hold.tokenId !== tokenId) continue;
      holds.delete(hold);
      hold.controller.abort(new Error(`the credentials of user ${user} changed`));
    }
    if (holds.size === 0) this.#byUser.delete(user);
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
    `This stream was ended: the credentials of user ${user} it was opened with changed (its token ` +
      'revoked, the user disabled, removed or given another role); open it again with valid credentials',
  );
}

/** The error of a call whose credentials lost power after it was authenticated, before it acted. */
export function callRevoked(user: string): JobworkerError {
  return new JobworkerError(
    'UNAUTHENTICATED',
    `The credentials of user ${user} this call was made with changed while it was under way (its ` +
      'token revoked, the user disabled, removed or given another role); nothing was done',
  );
}
