import { Agent, type IncomingMessage, request } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';

export interface ApiResponse<T> {
  readonly status: number;
  readonly body: T;
}

/**
 * A lean client of the REST API over node:http with keep-alive sockets: `fetch` costs more CPU
 * per request, and the load generator shares the machine's two cores with the server. Given `ca`
 * (the server's CA, PEM), it speaks HTTPS through node:https instead, for a server with TLS.
 */
export class ApiClient {
  readonly url: string;
  readonly #token: string;
  readonly #agent: Agent;

  readonly #request: typeof request;
  /** Also given with each request: one on a socket of its own (`agent: false`) trusts it too. */
  readonly #ca: string | undefined;

  constructor(url: string, token: string, options: { maxSockets?: number; ca?: string } = {}) {
    this.url = url;
    this.#token = token;
    const agentOptions = { keepAlive: true, maxSockets: options.maxSockets ?? 64 };
    this.#agent =
      options.ca === undefined
        ? new Agent(agentOptions)
        : new HttpsAgent({ ...agentOptions, ca: options.ca });
    this.#request = options.ca === undefined ? request : (httpsRequest as typeof request);
    this.#ca = options.ca;
  }

  get authorization(): string {
    return `Bearer ${this.#token}`;
  }

  /** One JSON request; the body is parsed whatever the status. */
  async json<T>(method: string, path: string, body?: unknown): Promise<ApiResponse<T>> {
    const res = await this.open(method, path, { body });
    const text = await readText(res);
    return { status: res.statusCode ?? 0, body: (text === '' ? null : JSON.parse(text)) as T };
  }

  /** Sends a request and resolves with the response as soon as its headers arrived. */
  open(
    method: string,
    path: string,
    options: { body?: unknown; headers?: Record<string, string>; agent?: Agent | false } = {},
  ): Promise<IncomingMessage> {
    const payload = options.body === undefined ? undefined : JSON.stringify(options.body);
    const headers: Record<string, string> = { authorization: this.authorization, ...options.headers };
    if (payload !== undefined) headers['content-type'] = 'application/json';
    return new Promise((resolve, reject) => {
      const req = this.#request(`${this.url}${path}`, {
        method,
        headers,
        agent: options.agent ?? this.#agent,
        ...(this.#ca === undefined ? {} : { ca: this.#ca }),
      });
      req.once('response', resolve);
      req.once('error', reject);
      req.end(payload);
    });
  }

  close(): void {
    this.#agent.destroy();
  }
}

export async function readText(res: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of res) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
