import type { LookupAddress, LookupOptions } from 'node:dns';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import type { Clock } from '../core/clock.ts';
import type { WebhookAddressPolicy } from './address-policy.ts';
import type { LookupGate } from './lookup-gate.ts';

/** One POST of a delivery. */
export interface WebhookPost {
  readonly url: string;
  readonly body: string;
  readonly headers: Readonly<Record<string, string>>;
  /** May reach private and loopback addresses. */
  readonly trusted: boolean;
}

/**
 * What the receiver answered: its status, or why no answer came. `refused`: the address policy
 * forbade the address, which trying again will not change (the delivery fails at once).
 */
export type PostResult = { readonly status: number } | { readonly error: string; readonly refused?: true };

export interface SenderOptions {
  readonly clock: Clock;
  readonly policy: WebhookAddressPolicy;
  /** An attempt without a complete answer after this long fails. */
  readonly timeoutMs: number;
  /** The DNS lookups of every attempt go through it (a bounded number at once). */
  readonly lookups: LookupGate;
}

/**
 * POSTs a delivery, never following redirects. Every address the URL's host resolves to is checked
 * against the policy in the connection's own DNS lookup, so the address checked is the address
 * connected to (a name that resolves to a public address when submitted and to 127.0.0.1 later,
 * "DNS rebinding", is refused at connect time). Never throws: failures are results.
 */
export function postWebhook(post: WebhookPost, options: SenderOptions): Promise<PostResult> {
  const url = new URL(post.url);
  // An address written in the URL is connected to without a lookup: checked here instead.
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const refusal = isIP(host) === 0 ? null : options.policy.refusal(host, post.trusted);
  if (refusal) return Promise.resolve({ error: refusal, refused: true });
  return new Promise((resolve) => {
    let settled = false;
    let refused = false;
    // A lookup still waiting for its turn when the attempt ends (its timeout) is not made.
    const over = new AbortController();
    const done = (result: PostResult) => {
      if (settled) return;
      settled = true;
      timer.clear();
      over.abort();
      resolve(result);
    };
    const checkedLookup = (
      hostname: string,
      opts: LookupOptions,
      callback: (
        err: NodeJS.ErrnoException | null,
        address: string | LookupAddress[],
        family?: number,
      ) => void,
    ) => {
      options.lookups.lookup(
        hostname,
        { ...opts, all: true },
        (err, addresses) => {
          if (err) return callback(err, []);
          for (const a of addresses) {
            const refusal = options.policy.refusal(a.address, post.trusted);
            if (refusal) {
              refused = true;
              return callback(Object.assign(new Error(refusal), { code: 'EWEBHOOKADDRESS' }), []);
            }
          }
          if (opts.all) return callback(null, addresses);
          const first = addresses[0];
          if (!first)
            return callback(
              Object.assign(new Error(`${hostname} has no address`), { code: 'ENOTFOUND' }),
              [],
            );
          callback(null, first.address, first.family);
        },
        over.signal,
      );
    };
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const req = send(
      url,
      {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(post.body),
          ...post.headers,
        },
        lookup: checkedLookup as never,
        agent: false,
      },
      (res: IncomingMessage) => {
        // The answer's body is not kept: only its status counts.
        res.resume();
        res.on('end', () => done({ status: res.statusCode ?? 0 }));
        res.on('error', (err) => done({ error: err.message }));
      },
    );
    const timer = options.clock.setTimer(
      () => req.destroy(new Error(`no answer within ${options.timeoutMs} ms`)),
      options.timeoutMs,
    );
    req.on('error', (err) => done(refused ? { error: err.message, refused: true } : { error: err.message }));
    req.end(post.body);
  });
}
