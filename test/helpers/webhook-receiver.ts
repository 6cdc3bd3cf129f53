import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One POST the receiver got. */
export interface Received {
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

/**
 * What to answer a request: a status, or `hang` (never answer: the sender's attempt stays in
 * flight, as when a server is killed mid-delivery).
 */
export type Answer = number | 'hang';

/** A real HTTP server on loopback that records the webhook POSTs it gets. No test sleeps: await `nth`. */
export class WebhookReceiver {
  readonly received: Received[] = [];
  readonly #server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => this.#got(req.url ?? '/', req.headers, Buffer.concat(chunks).toString('utf8'), res));
  });
  readonly #waiters: { n: number; resolve: (r: Received) => void }[] = [];
  readonly #hung: ServerResponse[] = [];
  /** Answers in order; once used up, 200 to everything. */
  answers: Answer[] = [];

  static async open(): Promise<WebhookReceiver> {
    const receiver = new WebhookReceiver();
    receiver.#server.listen(0, '127.0.0.1');
    await once(receiver.#server, 'listening');
    return receiver;
  }

  /** `http://127.0.0.1:PORT{path}`. */
  url(path = '/hook'): string {
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}${path}`;
  }

  /** Resolves with the n-th request (1-based), already received or to come. */
  nth(n: number): Promise<Received> {
    const got = this.received[n - 1];
    if (got) return Promise.resolve(got);
    return new Promise((resolve) => this.#waiters.push({ n, resolve }));
  }

  /** The requests for one event, in order. */
  of(event: string): Received[] {
    return this.received.filter((r) => r.headers['jobworker-event'] === event);
  }

  async close(): Promise<void> {
    for (const res of this.#hung) res.destroy();
    this.#server.closeAllConnections();
    this.#server.close();
    await once(this.#server, 'close');
  }

  #got(path: string, headers: IncomingHttpHeaders, body: string, res: ServerResponse): void {
    const received = { path, headers, body };
    this.received.push(received);
    const answer = this.answers.shift() ?? 200;
    if (answer === 'hang') this.#hung.push(res);
    else res.writeHead(answer, { 'content-type': 'text/plain' }).end('ok');
    for (const w of this.#waiters.filter((w) => w.n === this.received.length)) {
      this.#waiters.splice(this.#waiters.indexOf(w), 1);
      w.resolve(received);
    }
  }
}
