import type { IncomingMessage } from 'node:http';
import type { JobIsolation, JobLimits } from '../core/job.ts';
import { OUTPUT_FRAMES_TYPE } from '../core/output-frames.ts';
import type {
  ApiAuditEntry,
  ApiCertificate,
  ApiDelivery,
  ApiJob,
  ApiNode,
  ApiQueue,
  ApiToken,
  ApiUser,
  ApiWebhook,
  AuditQuery,
  CreateJobBody,
  DrainState,
  IssuedCertificatePems,
  JobPage,
  ListQuery,
  OutputView,
  QueueSettings,
} from './api-types.ts';
import type { Connection } from './connection.ts';
import { flatHeaders, readBody, send, sendWhole } from './http.ts';
import { exchange, openStream } from './http1-client.ts';
import { ApiError, ProtocolError } from './wire-errors.ts';

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface ApiClientOptions {
  /** Receives one line per request and its answer (`--debug`). */
  readonly debug?: (line: string) => void;
  /** False leaves out the hints about flags and variables in error messages (the library client has neither). */
  readonly cliHints?: boolean;
  /**
   * Each request read whole on a connection of its own, through a small HTTP/1.1 client that
   * loads no `node:http` (http1-client.ts): for a process that makes a request or two and exits,
   * the CLI. Default false: `node:http` with its keep-alive agent, for a client that lives on and
   * polls (the library, the task manager), which would otherwise open and close a connection per
   * request (`npm run bench -- task-manager`: 0.7 % of a core against 4.3 %).
   */
  readonly oneShot?: boolean;
}

/** REST v1, every route the CLI and the library use. Every method throws `ApiError` for an error answer. */
export class ApiClient {
  readonly connection: Connection;
  readonly #debug: ((line: string) => void) | undefined;
  readonly #cliHints: boolean;
  readonly #oneShot: boolean;

  constructor(connection: Connection, options: ApiClientOptions = {}) {
    this.connection = connection;
    this.#debug = options.debug;
    this.#cliHints = options.cliHints ?? true;
    this.#oneShot = options.oneShot ?? false;
  }

  /** `created` is false when `onDuplicate: 'return'` answered with the job already there (200, not 201). */
  async createJob(body: CreateJobBody): Promise<{ job: ApiJob; created: boolean }> {
    const { status, value } = await this.request<ApiJob>('POST', 'v1/jobs', body);
    return { job: value, created: status === 201 };
  }

  getJob(id: string): Promise<ApiJob> {
    return this.json('GET', `v1/jobs/${encodeURIComponent(id)}`);
  }

  /** Starts a run of a named task with these parameters (docs/tasks.md); answers its job. */
  runTask(name: string, params: Readonly<Record<string, unknown>>): Promise<ApiJob> {
    return this.json('POST', `v1/tasks/${encodeURIComponent(name)}/runs`, params);
  }

  /**
   * The JSON text a finished, succeeded job left at JOBWORKER_RESULT (`null` for none), unparsed:
   * its numbers exactly as the job wrote them.
   */
  async getJobResultText(id: string): Promise<string> {
    return (await this.requestText('GET', `v1/jobs/${encodeURIComponent(id)}/result`)).text;
  }

  /**
   * The job a person means by `ref`: a whole id, a unique id prefix (6 characters or more), the
   * name of one of the caller's jobs, or `last`. A 404 when nothing matches, a 409 `AMBIGUOUS`
   * listing some candidates when several do.
   */
  resolveJob(ref: string): Promise<ApiJob> {
    return this.json('GET', `v1/jobs/resolve?${new URLSearchParams({ ref })}`);
  }

  /** Deletes a finished job and its output; answers the job as it was. */
  deleteJob(id: string): Promise<ApiJob> {
    return this.json('DELETE', `v1/jobs/${encodeURIComponent(id)}`);
  }

  /** Deletes the caller's finished jobs (everyone's for an admin) finished at least `olderThanMs` ago. */
  async prune(olderThanMs: number): Promise<number> {
    const { deleted } = await this.json<{ deleted: number }>('POST', 'v1/prune', { olderThanMs });
    return deleted;
  }

  listJobs(query: ListQuery): Promise<JobPage> {
    const params = new URLSearchParams();
    if (query.status !== undefined) params.set('status', query.status);
    if (query.name !== undefined) params.set('name', query.name);
    if (query.queue !== undefined) params.set('queue', query.queue);
    if (query.text !== undefined) params.set('text', query.text);
    for (const label of query.label ?? []) params.append('label', label);
    if (query.limit !== undefined) params.set('limit', String(query.limit));
    if (query.cursor !== undefined) params.set('cursor', query.cursor);
    const search = params.size === 0 ? '' : `?${params}`;
    return this.json('GET', `v1/jobs${search}`);
  }

  /**
   * Asks for a stop. A queued job is `cancelled` at once; a job that had already finished is an
   * `ApiError` with status 409.
   */
  stopJob(id: string, graceMs: number | undefined): Promise<ApiJob> {
    return this.json(
      'POST',
      `v1/jobs/${encodeURIComponent(id)}/stop`,
      graceMs === undefined ? {} : { graceMs },
    );
  }

  /** Freezes a running job; anything but a running job is a 409 `ILLEGAL_TRANSITION`. */
  pauseJob(id: string): Promise<ApiJob> {
    return this.act(`v1/jobs/${encodeURIComponent(id)}/pause`, () => this.getJob(id));
  }

  resumeJob(id: string): Promise<ApiJob> {
    return this.act(`v1/jobs/${encodeURIComponent(id)}/resume`, () => this.getJob(id));
  }

  async listQueues(): Promise<readonly ApiQueue[]> {
    const { queues } = await this.json<{ queues: readonly ApiQueue[] }>('GET', 'v1/queues');
    return queues;
  }

  /** The nodes of the cluster (this server alone on SQLite); admins and viewers. */
  async listNodes(): Promise<readonly ApiNode[]> {
    const { nodes } = await this.json<{ nodes: readonly ApiNode[] }>('GET', 'v1/nodes');
    return nodes;
  }

  getQueue(name: string): Promise<ApiQueue> {
    return this.json('GET', queuePath(name));
  }

  /** Admins only. */
  setQueue(name: string, settings: QueueSettings): Promise<ApiQueue> {
    return this.json('PUT', queuePath(name), settings);
  }

  pauseQueue(name: string): Promise<ApiQueue> {
    return this.act(`${queuePath(name)}/pause`, () => this.getQueue(name));
  }

  resumeQueue(name: string): Promise<ApiQueue> {
    return this.act(`${queuePath(name)}/resume`, () => this.getQueue(name));
  }

  /** Stops dispatching on the server; with `wait`, the answer comes once no job runs there any more. */
  drain(wait: boolean): Promise<DrainState> {
    return this.json('POST', 'v1/drain', { wait });
  }

  drainState(): Promise<DrainState> {
    return this.json('GET', 'v1/drain');
  }

  undrain(): Promise<DrainState> {
    return this.act('v1/undrain', () => this.drainState());
  }

  /** Users, tokens and the audit trail: admins only. */
  async listUsers(): Promise<readonly ApiUser[]> {
    return (await this.json<{ users: readonly ApiUser[] }>('GET', 'v1/users')).users;
  }

  addUser(body: { name: string; role: string; runAs?: string; reuseName?: boolean }): Promise<ApiUser> {
    return this.json('POST', 'v1/users', body);
  }

  setUser(
    name: string,
    changes: {
      role?: string;
      disabled?: boolean;
      runAs?: string | null;
      defaultLimits?: JobLimits | null;
      maxLimits?: JobLimits | null;
      isolation?: JobIsolation | null;
    },
  ): Promise<ApiUser> {
    return this.json('PATCH', `v1/users/${encodeURIComponent(name)}`, changes);
  }

  removeUser(name: string): Promise<ApiUser> {
    return this.json('DELETE', `v1/users/${encodeURIComponent(name)}`);
  }

  async listTokens(user?: string): Promise<readonly ApiToken[]> {
    const search = user === undefined ? '' : `?${new URLSearchParams({ user })}`;
    return (await this.json<{ tokens: readonly ApiToken[] }>('GET', `v1/tokens${search}`)).tokens;
  }

  /** The answer holds the token itself: the only time it is shown. */
  createToken(body: {
    user: string;
    label?: string;
    expiresIn?: string;
  }): Promise<ApiToken & { token: string }> {
    return this.json('POST', 'v1/tokens', body);
  }

  revokeToken(id: string): Promise<ApiToken> {
    return this.json('DELETE', `v1/tokens/${encodeURIComponent(id)}`);
  }

  listAudit(query: AuditQuery): Promise<{ entries: readonly ApiAuditEntry[]; nextCursor: string | null }> {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(query)) if (value !== undefined) params.set(key, String(value));
    return this.json('GET', `v1/audit${params.size === 0 ? '' : `?${params}`}`);
  }

  /** Admins only: a key pair and certificate for `user`, made by the server's CA. */
  issueCertificate(user: string, days: number | undefined): Promise<IssuedCertificatePems> {
    return this.json('POST', 'v1/certs', days === undefined ? { user } : { user, days });
  }

  async listCertificates(): Promise<readonly ApiCertificate[]> {
    return (await this.json<{ certificates: readonly ApiCertificate[] }>('GET', 'v1/certs')).certificates;
  }

  revokeCertificate(serial: string): Promise<ApiCertificate> {
    return this.json('POST', `v1/certs/${encodeURIComponent(serial)}/revoke`, {});
  }

  /** Admins only: a server-wide webhook; the answer holds its secret, shown this once. */
  addWebhook(body: {
    url: string;
    events?: string[];
    secret?: string;
  }): Promise<{ webhook: ApiWebhook; secret: string }> {
    return this.json('POST', 'v1/webhooks', body);
  }

  async listWebhooks(): Promise<readonly ApiWebhook[]> {
    return (await this.json<{ webhooks: readonly ApiWebhook[] }>('GET', 'v1/webhooks')).webhooks;
  }

  removeWebhook(id: string): Promise<ApiWebhook> {
    return this.json('DELETE', `v1/webhooks/${encodeURIComponent(id)}`);
  }

  listDeliveries(query: {
    jobId?: string;
    webhookId?: string;
    status?: string;
    limit?: number;
  }): Promise<{ deliveries: readonly ApiDelivery[]; nextCursor: string | null }> {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(query)) if (value !== undefined) params.set(key, String(value));
    return this.json('GET', `v1/webhooks/deliveries${params.size === 0 ? '' : `?${params}`}`);
  }

  /**
   * Opens the binary frame form of a job's output (src/core/output-frames.ts) from `cursor`
   * (null: the start of the view); the caller reads the body.
   */
  async openOutputFrames(
    id: string,
    options: { view: OutputView; follow: boolean; cursor: string | null; signal?: AbortSignal },
  ): Promise<OutputFramesAnswer> {
    const params = new URLSearchParams({ stream: options.view, follow: String(options.follow) });
    if (options.cursor !== null) params.set('cursor', options.cursor);
    const req = {
      method: 'GET',
      url: this.url(`v1/jobs/${encodeURIComponent(id)}/output?${params}`),
      socketPath: this.connection.socketPath,
      tls: this.connection.tls,
      headers: this.headers({ accept: OUTPUT_FRAMES_TYPE }),
      signal: options.signal,
    } as const;
    // A one-shot client (the CLI) reads into two reused buffers; a long-lived one through node:http,
    // whose buffers its caller may keep.
    const answer: OutputFramesAnswer = this.#oneShot
      ? { ...(await openStream(req, STREAM_READ_BYTES)), borrowed: true }
      : fromIncoming(await send(req));
    this.#debug?.(`GET /v1/jobs/${id}/output?${params} -> ${answer.status}`);
    if (answer.status !== 200) {
      const body = await readBody(answer.body, answer.borrowed).catch(() => Buffer.alloc(0));
      throw this.errorFrom(answer.status, answer.statusMessage, body);
    }
    const type = answer.headers['content-type'] ?? '';
    if (!type.startsWith(OUTPUT_FRAMES_TYPE)) {
      answer.destroy();
      throw new ProtocolError(
        `The server answered the output as ${type || 'no type'}, not as frames: is it older than this client?`,
      );
    }
    return answer;
  }

  private async json<T>(method: Method, path: string, body?: unknown): Promise<T> {
    return (await this.request<T>(method, path, body)).value;
  }

  /**
   * A POST whose answer docs/queues.md leaves open: the object it acted on, or, when the server
   * answers with no body (204), the object as `reread` gets it.
   */
  private async act<T>(path: string, reread: () => Promise<T>): Promise<T> {
    const { value } = await this.request<T | undefined>('POST', path, {});
    return value === undefined ? reread() : value;
  }

  private async request<T>(
    method: Method,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; value: T }> {
    const { status, text } = await this.requestText(method, path, body);
    if (text === '' && status === 204) return { status, value: undefined as T };
    try {
      return { status, value: JSON.parse(text) as T };
    } catch {
      throw new ApiError(status, `The server answered ${method} /${path} with something that is not JSON`);
    }
  }

  /** A request whose successful answer is returned as its text; an error answer throws `ApiError`. */
  private async requestText(
    method: Method,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; text: string }> {
    const req = {
      method,
      url: this.url(path),
      socketPath: this.connection.socketPath,
      tls: this.connection.tls,
      headers: this.headers({ accept: 'application/json' }),
      body: body === undefined ? undefined : JSON.stringify(body),
    };
    const answer = this.#oneShot ? await exchange(req) : await sendWhole(req);
    const status = answer.status;
    this.#debug?.(`${method} /${path} -> ${status}`);
    if (status < 200 || status > 299) throw this.errorFrom(status, answer.statusMessage, answer.body);
    return { status, text: answer.body.toString('utf8') };
  }

  private url(path: string): URL {
    return new URL(path, this.connection.baseUrl);
  }

  private headers(extra: Record<string, string>): Record<string, string> {
    const token = this.connection.token;
    return token === null ? extra : { ...extra, authorization: `Bearer ${token}` };
  }

  private errorFrom(status: number, statusMessage: string, body: Buffer): ApiError {
    const text = body.toString('utf8');
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    const error = isRecord(parsed) && isRecord(parsed.error) ? parsed.error : undefined;
    const code = typeof error?.code === 'string' ? error.code : null;
    const field = typeof error?.field === 'string' ? error.field : null;
    let message =
      typeof error?.message === 'string' ? error.message : `HTTP ${status} ${statusMessage}`.trim();
    const job =
      isRecord(parsed) && isRecord(parsed.job)
        ? parsed.job
        : isRecord(parsed) && 'status' in parsed
          ? parsed
          : null;
    if (status === 409 && error === undefined && job !== null) {
      message = `Job ${String(job.id)} had already finished (${String(job.status)}); nothing changed`;
    }
    if (status === 401 && this.#cliHints) message += this.authHint();
    if (code === 'DUPLICATE' && job !== null && !message.includes(String(job.id))) {
      message += `: job ${String(job.id)} (${String(job.status)})`;
    }
    return new ApiError(
      status,
      message,
      code ?? (status === 409 && error === undefined ? 'ALREADY_FINISHED' : null),
      field,
    );
  }

  private authHint(): string {
    const { tokenSource, tokenFile, socketPath } = this.connection;
    if (tokenSource === 'env') return '; check JOBWORKER_TOKEN';
    if (tokenSource === 'file') return `; the token in ${tokenFile} was refused (set JOBWORKER_TOKEN?)`;
    if (socketPath !== null) return `; no token: set JOBWORKER_TOKEN (no token in ${tokenFile})`;
    // The admin token is sent over the server's socket only, never to a TCP port (docs/cli.md).
    return (
      `; no token: set JOBWORKER_TOKEN (the admin token of a local server is in ${tokenFile}), ` +
      'or leave out --server and JOBWORKER_URL to reach the local server through its socket'
    );
  }
}

function queuePath(name: string): string {
  return `v1/queues/${encodeURIComponent(name)}`;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Bytes per read of a one-shot client's output stream: large, so a catch-up is few reads. */
const STREAM_READ_BYTES = 1024 * 1024;

/** The answer to `openOutputFrames`: its head, then its body as it comes. */
export interface OutputFramesAnswer {
  readonly status: number;
  readonly statusMessage: string;
  /** Lower-case names. */
  readonly headers: Readonly<Record<string, string | undefined>>;
  readonly body: AsyncIterable<Buffer>;
  /**
   * True when each body piece is valid only until the next is asked for (it lies in a reused
   * read buffer): a reader must copy what it keeps longer.
   */
  readonly borrowed: boolean;
  destroy(): void;
}

function fromIncoming(response: IncomingMessage): OutputFramesAnswer {
  return {
    status: response.statusCode ?? 0,
    statusMessage: response.statusMessage ?? '',
    headers: flatHeaders(response),
    body: response,
    borrowed: false,
    destroy: () => response.destroy(),
  };
}
