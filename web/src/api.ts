/**
 * Calls to the REST API. The token lives in sessionStorage (gone when the tab closes, never in a
 * URL, never in localStorage where every tab and later session would find it) and goes out only
 * as the `Authorization` header. Without a token, the browser's client certificate (mTLS), if it
 * has one, authenticates the same calls.
 */
import type { Job } from './types.ts';

const TOKEN_KEY = 'jobworker.token';

export const session = {
  token(): string | null {
    return sessionStorage.getItem(TOKEN_KEY);
  },
  signIn(token: string): void {
    sessionStorage.setItem(TOKEN_KEY, token);
  },
  signOut(): void {
    sessionStorage.removeItem(TOKEN_KEY);
  },
};

/**
 * An error answer of the API: its status and `error.code`, `error.field`, `error.message`, and the
 * job it carries on 409 ALREADY_FINISHED (the job as it is) and DUPLICATE (the job with that key).
 */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly field: string | undefined;
  readonly job: Job | undefined;
  constructor(status: number, code: string, message: string, field?: string, job?: Job) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
    this.job = job;
  }
}

/** Listeners told when the API answers 401 (the token expired or was revoked). */
const unauthenticated = new Set<() => void>();
export function onUnauthenticated(listener: () => void): () => void {
  unauthenticated.add(listener);
  return () => unauthenticated.delete(listener);
}

export function authHeaders(): Record<string, string> {
  const token = session.token();
  return token === null ? {} : { Authorization: `Bearer ${token}` };
}

/**
 * A fetch with the caller's credentials; a non-2xx answer becomes an `ApiError`. A 401 forgets the
 * token it was sent with (expired or revoked: kept, it would be sent again on the next load) and
 * tells the `onUnauthenticated` listeners, unless the tab has signed in with another since.
 */
export async function request(path: string, init: RequestInit = {}): Promise<Response> {
  const sent = session.token();
  const res = await fetch(path, {
    ...init,
    credentials: 'same-origin',
    cache: 'no-store',
    headers: { ...authHeaders(), ...(init.headers as Record<string, string> | undefined) },
  });
  if (res.ok) return res;
  let code = `HTTP_${res.status}`;
  let message = res.statusText;
  let field: string | undefined;
  let job: Job | undefined;
  try {
    const body = (await res.json()) as {
      error?: { code?: string; message?: string; field?: string };
      job?: Job;
    };
    code = body.error?.code ?? code;
    message = body.error?.message ?? message;
    field = body.error?.field;
    job = body.job;
  } catch {
    // not JSON: keep the status line
  }
  // A 401 for a credential no longer in use (the tab signed in with another meanwhile) is old
  // news: it neither forgets the new token nor signs the tab out.
  if (res.status === 401 && session.token() === sent) {
    if (sent !== null) session.signOut();
    for (const listener of unauthenticated) listener();
  }
  throw new ApiError(res.status, code, message, field, job);
}

export async function getJson<T>(path: string): Promise<T> {
  return (await (await request(path)).json()) as T;
}

export async function sendJson<T>(method: string, path: string, body?: unknown): Promise<T> {
  const res = await request(path, {
    method,
    ...(body === undefined
      ? {}
      : { body: JSON.stringify(body), headers: { 'Content-Type': 'application/json' } }),
  });
  return (await res.json()) as T;
}

/** A query string from the defined, non-empty values. */
export function query(params: Record<string, string | number | undefined | null>): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== '') search.set(key, String(value));
  }
  const text = search.toString();
  return text === '' ? '' : `?${text}`;
}
