import { atWallTime, type Clock, type ClockTimer, systemClock } from '../core/clock.ts';
import { JobworkerError } from '../core/errors.ts';

/** One stream's hold (`UserStreams.take`). */
export interface UserStreamHold {
  /**
   * Aborts when `UserStreams.end` is called for the stream's user (or its token), or when its
   * token expires; its reason is the error the stream ends with (`streamEnded`).
   */
  readonly signal: AbortSignal;
  /** Gives the hold back once the stream is over. Idempotent. */
  release(): void;
}

/** What a stream is, for the limits per user: an output read or follow, or an event watch. */
export type StreamKind = 'output' | 'events';

interface Hold {
  readonly kind: StreamKind;
  readonly tokenId: string | undefined;
  readonly controller: AbortController;
  /** Ends the hold when its token expires. */
  expiry: ClockTimer | undefined;
}

/**
 * The streams each user has open (event watches, output reads and follows), with the token each
 * was opened with, so that they can be ended when what authorized them is gone: a stream is
 * authorized once, when it opens, and may last as long as its job, while a revoked token, a
 * disabled or removed user or a changed role must reach nothing more from then on
 * (docs/security.md). A user without streams holds no memory here.
 */
export class UserStreams {
  readonly #byUser = new Map<string, UserEntry>();
  readonly #clock: Clock;

  /** `clock`: what a token's expiry is read from and waited for on. */
  constructor(clock: Clock = systemClock) {
    this.#clock = clock;
  }

  /**
   * A hold for one stream of `user`, opened with token `tokenId` (absent: a certificate, ...)
   * that expires at `tokenExpiresAt` (ms since the epoch; absent: never). A token that has expired
   * already gives a hold ended before it is returned.
   */
  take(user: string, kind: StreamKind, tokenId?: string, tokenExpiresAt?: number): UserStreamHold {
    let entry = this.#byUser.get(user);
    if (entry === undefined) {
      entry = { holds: new Set(), counts: { output: 0, events: 0 } };
      this.#byUser.set(user, entry);
    }
    const hold: Hold = { kind, tokenId, controller: new AbortController(), expiry: undefined };
    entry.holds.add(hold);
    entry.counts[kind]++;
    const held = entry;
    if (tokenExpiresAt !== undefined) this.#expireAt(user, held, hold, tokenExpiresAt);
    return {
      signal: hold.controller.signal,
      release: () => this.#drop(user, held, hold),
    };
  }

  /** Ends `hold` when the wall clock reaches `at`, as the token's check does (`atWallTime`). */
  #expireAt(user: string, entry: UserEntry, hold: Hold, at: number): void {
    hold.expiry = atWallTime(this.#clock, at, () => {
      this.#drop(user, entry, hold);
      hold.controller.abort(streamExpired(user));
    });
  }

  /** How many streams of `kind` `user` has open. */
  count(user: string, kind: StreamKind): number {
    return this.#byUser.get(user)?.counts[kind] ?? 0;
  }

  /**
   * Ends the streams `user` has open now: those opened with `tokenId` when one is given (that
   * token alone was revoked), else all of them. Streams opened later are not affected.
   */
  end(user: string, tokenId?: string): void {
    const entry = this.#byUser.get(user);
    if (entry === undefined) return;
    for (const hold of [...entry.holds]) {
      if (tokenId !== undefined && hold.tokenId !== tokenId) continue;
      this.#drop(user, entry, hold);
      hold.controller.abort(streamRevoked(user));
    }
  }

  /** Users with streams open (leak checks). */
  get users(): number {
    return this.#byUser.size;
  }

  /** Forgets one hold (once: a second call, from its release after `end`, does nothing). */
  #drop(user: string, entry: UserEntry, hold: Hold): void {
    if (!entry.holds.delete(hold)) return;
    hold.expiry?.clear();
    entry.counts[hold.kind]--;
    if (entry.holds.size === 0 && this.#byUser.get(user) === entry) this.#byUser.delete(user);
  }
}

interface UserEntry {
  readonly holds: Set<Hold>;
  readonly counts: Record<StreamKind, number>;
}

/** The error a stream ends with when its user's credentials changed (`UserStreams.end`). */
export function streamRevoked(user: string): JobworkerError {
  return new JobworkerError(
    'UNAUTHENTICATED',
    `This stream was ended: the credentials of user ${user} it was opened with changed (its token ` +
      'revoked, the user disabled, removed or given another role); open it again with valid credentials',
  );
}

/** The error a stream ends with when the token it was opened with expired. */
export function streamExpired(user: string): JobworkerError {
  return new JobworkerError(
    'UNAUTHENTICATED',
    `This stream was ended: the token of user ${user} it was opened with expired; open it again with a valid token`,
  );
}

/** The error of a call whose token expired after it was authenticated, before it acted. */
export function callExpired(user: string): JobworkerError {
  return new JobworkerError(
    'UNAUTHENTICATED',
    `The token of user ${user} this call was made with expired while it was under way; nothing was done`,
  );
}

/**
 * The error a stream ends with once its hold's `signal` aborted: the reason it was ended for
 * (`streamRevoked`, `streamExpired`).
 */
export function streamEnded(signal: AbortSignal, user: string): JobworkerError {
  return signal.reason instanceof JobworkerError ? signal.reason : streamRevoked(user);
}

/** The error of a call whose credentials lost power after it was authenticated, before it acted. */
export function callRevoked(user: string): JobworkerError {
  return new JobworkerError(
    'UNAUTHENTICATED',
    `The credentials of user ${user} this call was made with changed while it was under way (its ` +
      'token revoked, the user disabled, removed or given another role); nothing was done',
  );
}
