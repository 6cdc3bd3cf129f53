import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import type { IncomingHttpHeaders } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { type RunningServer, runServer, type ServerOptions } from '../../src/main.ts';
import { CombinedIndex } from '../../src/output/combined-index.ts';
import { requestFor, trustServerCa } from '../helpers/trust-server.ts';
import { within } from '../helpers/wait.ts';

// Most API tests take it from here.
export { within };

export const FIXTURES = new URL('../fixtures/', import.meta.url).pathname;

/** A server on an ephemeral port with its own fresh data directory. */
export interface ApiHarness {
  server: RunningServer;
  readonly dataDir: string;
  /** Where the server makes pool accounts' homes (a fresh path; made at the first pool job). */
  readonly homesDir: string;
  readonly token: string;
  /** The server's log lines (JSON), for redaction checks. */
  readonly logs: string[];
  /** Resolves with the first log line (already logged or to come; from line `from` on) that matches. */
  logged(pattern: RegExp, from?: number): Promise<string>;
  url(path: string): string;
  /** fetch with the admin token (unless `headers.authorization` says otherwise) and JSON bodies. */
  api(path: string, init?: ApiInit): Promise<Response>;
  json<T = Record<string, unknown>>(path: string, init?: ApiInit): Promise<{ status: number; body: T }>;
  /** close() then runServer again on the same data directory and port. */
  restart(): Promise<void>;
  destroy(): Promise<void>;
}

export interface ApiInit {
  method?: string;
  body?: unknown;
  rawBody?: string | Buffer;
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

/**
 * What the harness gives every server unless a test says otherwise: admin jobs run as root, as
 * they did before jobs ran as their owner's account, so that the suites' jobs may use root-only
 * temporary directories; users' jobs run as pool accounts with homes in a fresh directory. The
 * run-as tests (test/accounts/) pass `adminRunAs: undefined` to exercise the pool for admins too.
 */
export async function testServerOptions(): Promise<Pick<ServerOptions, 'adminRunAs' | 'homesDir'>> {
  // Not made here: the server makes it at its first pool job, so a server that runs none leaves nothing.
  return { adminRunAs: 'root', homesDir: join(tmpdir(), `jw-homes-${randomUUID()}`) };
}

export async function openApi(
  setup?: (dataDir: string) => Promise<void>,
  serverOptions: Omit<ServerOptions, 'listen' | 'dataDir' | 'logStream'> = {},
): Promise<ApiHarness> {
  const dataDir = await mkdtemp(join(tmpdir(), 'jw-api-'));
  const options: ServerOptions = { ...(await testServerOptions()), ...serverOptions };
  const homesDir = options.homesDir!;
  await setup?.(dataDir);
  const logs: string[] = [];
  const logStream = new PassThrough();
  logStream.on('data', (chunk: Buffer) => logs.push(...chunk.toString('utf8').split('\n').filter(Boolean)));
  const logged = async (pattern: RegExp, from = 0): Promise<string> => {
    for (;;) {
      const line = logs.find((l, i) => i >= from && pattern.test(l));
      if (line !== undefined) return line;
      await once(logStream, 'data');
    }
  };
  let server = await runServer({ ...options, listen: '127.0.0.1:0', dataDir, logStream });
  trustServerCa(server.caFile);
  const token = (await readFile(server.adminTokenFile, 'utf8')).trim();
  const harness: ApiHarness = {
    get server() {
      return server;
    },
    set server(value) {
      server = value;
    },
    dataDir,
    homesDir,
    token,
    logs,
    logged,
    url: (path) => server.url + path,
    api: (path, init = {}) => {
      const headers: Record<string, string> = { authorization: `Bearer ${token}`, ...init.headers };
      let body: string | Buffer | undefined = init.rawBody;
      if (init.body !== undefined) {
        body = JSON.stringify(init.body);
        headers['content-type'] ??= 'application/json';
      }
      return fetch(server.url + path, {
        method: init.method ?? (body === undefined ? 'GET' : 'POST'),
        headers,
        ...(body === undefined ? {} : { body }),
        ...(init.signal ? { signal: init.signal } : {}),
      });
    },
    json: async <T>(path: string, init?: ApiInit) => {
      const res = await harness.api(path, init);
      return { status: res.status, body: (await res.json()) as T };
    },
    restart: async () => {
      const port = new URL(server.url).port;
      await server.close();
      server = await runServer({ ...options, listen: `127.0.0.1:${port}`, dataDir, logStream });
    },
    destroy: async () => {
      // Jobs outlive their server by design: a test that failed before stopping its own (a
      // counter.sh that runs until stopped) would leave them running with their data directory
      // gone. Best effort: the server may be closed already, or the admin token revoked.
      await stopLiveJobs(harness).catch(() => {});
      await server.close();
      await rm(dataDir, { recursive: true, force: true, maxRetries: 10 });
      await rm(homesDir, { recursive: true, force: true, maxRetries: 10 });
    },
  };
  return harness;
}

/**
 * Stops every queued, running or paused job of the harness's server (grace 0) and waits for each
 * to end (its followed output ends with it), for at most 10 s.
 */
async function stopLiveJobs(h: ApiHarness): Promise<void> {
  const { status, body } = await h.json<{ jobs: { id: string }[] }>(
    '/v1/jobs?status=queued,running,paused&limit=1000',
  );
  if (status !== 200) return;
  const signal = AbortSignal.timeout(10_000);
  await Promise.all(
    body.jobs.map(async (job) => {
      await (await h.api(`/v1/jobs/${job.id}/stop`, { method: 'POST', body: { graceMs: 0 } })).arrayBuffer();
      await (await h.api(`/v1/jobs/${job.id}/output?follow=true`, { signal })).arrayBuffer();
    }),
  );
}

/** The job JSON as the API answers it. */
export interface JobJson {
  id: string;
  name: string | null;
  command: string;
  args: string[];
  shell: boolean;
  cwd: string;
  labels: Record<string, string>;
  status: string;
  exitCode: number | null;
  signal: string | null;
  reason: string | null;
  owner: string;
  pid: number | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  stopRequestedAt: string | null;
  outputBytes: { stdout: number; stderr: number };
}

export async function startJob(h: ApiHarness, spec: Record<string, unknown>): Promise<JobJson> {
  const { status, body } = await h.json<JobJson>('/v1/jobs', { body: spec });
  if (status !== 201) throw new Error(`start failed: ${status} ${JSON.stringify(body)}`);
  return body;
}

/** `1\n2\n...n\n`: what test/fixtures/counter.sh prints for `n`. */
export function counterOutput(n: number): Buffer {
  return Buffer.from(Array.from({ length: n }, (_, i) => `${i + 1}\n`).join(''));
}

export interface RawResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
  readonly trailers: NodeJS.Dict<string>;
}

/**
 * A GET over node:http (fetch cannot read trailers), without keep-alive so that no socket outlives
 * the request. `onData` may return true to stop reading: the request is then destroyed (a client
 * that goes away mid-stream) and the promise resolves with what came so far.
 */
export function rawGet(
  url: string,
  headers: Record<string, string>,
  onData?: (body: Buffer) => boolean,
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = requestFor(url)(url, { headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      const result = () => ({
        status: res.statusCode ?? 0,
        headers: res.headers,
        body: Buffer.concat(chunks),
        trailers: res.trailers,
      });
      res.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        if (onData?.(Buffer.concat(chunks))) {
          // Resolve once the client's socket is really closed, so fd counts can be compared.
          res.socket.once('close', () => resolve(result()));
          req.destroy();
        }
      });
      // Once the connection is closed too (no keep-alive): a descriptor count taken after a
      // request then does not count a socket still closing.
      res.on('end', () => {
        const socket = res.socket;
        if (!socket || socket.closed) resolve(result());
        else socket.once('close', () => resolve(result()));
      });
      res.on('error', () => undefined);
    });
    req.on('error', (err) => {
      if (!req.destroyed) reject(err);
    });
    req.end();
  });
}

export interface SseEvent {
  readonly event: string;
  readonly id: string | undefined;
  readonly data: string;
}

/** Reads server-sent events from a fetch response; `onEvent` may return true to stop (and abort). */
export async function readSse(
  response: Response,
  onEvent?: (event: SseEvent) => boolean,
): Promise<SseEvent[]> {
  const events: SseEvent[] = [];
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return events;
      buffer += decoder.decode(value, { stream: true });
      let split = buffer.indexOf('\n\n');
      while (split !== -1) {
        const block = buffer.slice(0, split);
        buffer = buffer.slice(split + 2);
        split = buffer.indexOf('\n\n');
        const fields: Record<string, string> = {};
        for (const line of block.split('\n')) {
          if (line.startsWith(':')) continue;
          const colon = line.indexOf(':');
          const key = colon === -1 ? line : line.slice(0, colon);
          const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '');
          fields[key] = fields[key] === undefined ? value : `${fields[key]}\n${value}`;
        }
        const event = { event: fields.event ?? 'message', id: fields.id, data: fields.data ?? '' };
        events.push(event);
        if (onEvent?.(event)) return events;
      }
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
}

/** The bytes carried by `output` events, in order. */
export function sseBytes(events: readonly SseEvent[]): Buffer {
  return Buffer.concat(
    events
      .filter((e) => e.event === 'output')
      .map((e) => Buffer.from((JSON.parse(e.data) as { data: string }).data, 'base64')),
  );
}

/**
 * Starts a job through `POST /v1/jobs` over node:http without keep-alive (not fetch, whose pooled
 * connection would stay open and keep `diagnostics.idle()` waiting); resolves with its id.
 */
export function postJob(h: ApiHarness, spec: Record<string, unknown>): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const req = requestFor(h.server.url)(
      h.url('/v1/jobs'),
      {
        method: 'POST',
        agent: false,
        headers: { authorization: `Bearer ${h.token}`, 'content-type': 'application/json' },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (chunk: string) => {
          text += chunk;
        });
        res.once('end', () => {
          if (res.statusCode === 201) resolve((JSON.parse(text) as { id: string }).id);
          else reject(new Error(`POST /v1/jobs answered ${res.statusCode}: ${text}`));
        });
      },
    );
    req.once('error', reject);
    req.end(JSON.stringify(spec));
  });
}

/** A job's combined view rebuilt from its stream files and combined.idx, apart from the server's reader. */
export async function expectedCombined(dir: string): Promise<{ all: Buffer; stretches: number }> {
  const stdout = await readFile(join(dir, 'stdout'));
  const stderr = await readFile(join(dir, 'stderr'));
  const index = await CombinedIndex.open(dir);
  try {
    const parts: Buffer[] = [];
    for (let i = 0; i < index.count; i++) {
      const entry = await index.entry(i);
      parts.push((entry.stream === 'stdout' ? stdout : stderr).subarray(entry.streamStart, entry.streamEnd));
    }
    return { all: Buffer.concat(parts), stretches: index.count };
  } finally {
    await index.close();
  }
}

export async function openFdCount(): Promise<number> {
  return (await readdir('/proc/self/fd')).length;
}

/** Adds a user through the API (as the admin) and issues it a token; resolves with the token. */
export async function addUserToken(h: ApiHarness, name: string, role = 'user'): Promise<string> {
  const added = await h.json('/v1/users', { body: { name, role } });
  if (added.status !== 201 && added.status !== 409) {
    throw new Error(`user add failed: ${added.status} ${JSON.stringify(added.body)}`);
  }
  const { status, body } = await h.json<{ token: string }>('/v1/tokens', { body: { user: name } });
  if (status !== 201) throw new Error(`token create failed: ${status} ${JSON.stringify(body)}`);
  return body.token;
}

/**
 * Resolves with job `id` (as `GET /v1/jobs/{id}` shows it) once its output holds `text`, read
 * through a follow: a follow starts only once the job's start is on record, with its pid, where
 * its stdout file may hold the text before the server has recorded the start. Gives up after
 * `ms`. The job's pid is checked to be on record.
 */
export async function untilJobSaid(
  baseUrl: string,
  token: string,
  id: string,
  text: string,
  ms = 20_000,
): Promise<JobJson> {
  const stop = new AbortController();
  const headers = { authorization: `Bearer ${token}` };
  const said = async (): Promise<void> => {
    const res = await fetch(`${baseUrl}/v1/jobs/${id}/output?follow=true`, { headers, signal: stop.signal });
    if (res.status !== 200) throw new Error(`following ${id} answered ${res.status}`);
    let seen = '';
    for await (const chunk of res.body!) {
      seen += Buffer.from(chunk).toString('utf8');
      if (seen.includes(text)) return;
    }
    throw new Error(`${id}'s output ended without ${JSON.stringify(text)}: ${JSON.stringify(seen)}`);
  };
  try {
    await within(said(), ms, `job ${id} to say ${JSON.stringify(text)}`);
  } finally {
    stop.abort();
  }
  const job = (await (await fetch(`${baseUrl}/v1/jobs/${id}`, { headers })).json()) as JobJson;
  if (job.status !== 'running' || !(typeof job.pid === 'number' && job.pid > 1)) {
    throw new Error(
      `job ${id} said ${JSON.stringify(text)} but is ${job.status} with pid ${String(job.pid)}`,
    );
  }
  return job;
}
