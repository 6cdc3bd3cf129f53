import { Agent, type IncomingMessage, request } from 'node:http';

export interface ApiResponse<T> {
  readonly status: number;
  readonly body: T;
}

/**
 * A lean client of the REST API over node:http with keep-alive sockets: `fetch` costs more CPU
 * per request, and the load generator shares the machine's two cores with the server.
 */
export class ApiClient {
  readonly url: string;
  readonly #token: string;
  readonly #agent: Agent;

  constructor(url: string, token: string, options: { maxSockets?: number } = {}) {
    this.url = url;
    this.#token = token;
    this.#agent = new Agent({ keepAlive: true, maxSockets: options.maxSockets ?? 64 });
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
      const req = request(`${this.url}${path}`, {
        method,
        headers,
        agent: options.agent ?? this.#agent,
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
