import { request as httpsRequest } from 'node:https';
import type { AppHarness } from './rest-app-harness.ts';

/**
 * A live GET over the app's real TLS port (`openApp(h, { tls: true })`), as a long-lived stream
 * needs: its head, its body as it comes (`onData`), and how it ended, awaited with `until`.
 */
export class LiveResponse {
  status = 0;
  headers: Record<string, string | string[] | undefined> = {};
  bytes = 0;
  /** 'end': the body ended as HTTP says it should; 'cut': the connection broke first. */
  ended: 'end' | 'cut' | undefined;
  #waiters: (() => void)[] = [];
  #close: () => void = () => undefined;

  static open(
    a: AppHarness,
    token: string,
    path: string,
    accept: string,
    onData: (chunk: Buffer) => void = () => undefined,
  ): Promise<LiveResponse> {
    const live = new LiveResponse();
    return new Promise((resolve, reject) => {
      const req = httpsRequest(
        new URL(path, a.url),
        { ca: a.caPem, agent: false, headers: { authorization: `Bearer ${token}`, accept } },
        (res) => {
          live.status = res.statusCode ?? 0;
          live.headers = res.headers;
          res.on('data', (chunk: Buffer) => {
            live.bytes += chunk.length;
            onData(chunk);
            live.#wake();
          });
          res.on('end', () => live.#done('end'));
          res.on('aborted', () => live.#done('cut'));
          res.on('error', () => live.#done('cut'));
          res.on('close', () => live.#done(res.complete ? 'end' : 'cut'));
          resolve(live);
        },
      );
      req.on('error', reject);
      live.#close = () => req.destroy();
      req.end();
    });
  }

  /** Resolves once `predicate` holds, looked at after each piece of the body and at its end. */
  async until(predicate: (live: LiveResponse) => boolean): Promise<void> {
    while (!predicate(this)) await new Promise<void>((resolve) => this.#waiters.push(resolve));
  }

  close(): void {
    this.#close();
  }

  #done(how: 'end' | 'cut'): void {
    this.ended ??= how;
    this.#wake();
  }

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }
}
