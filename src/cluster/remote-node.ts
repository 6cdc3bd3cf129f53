import type { IncomingMessage } from 'node:http';
import type { Principal } from '../auth/principal.ts';
import { readBody, send } from '../client/http.ts';
import { ConnectionError } from '../client/wire-errors.ts';
import { type Clock, clockDeadline, systemClock } from '../core/clock.ts';
import { CursorError, ERROR_CODES, type ErrorCode, JobworkerError, ValidationError } from '../core/errors.ts';
import type { Job } from '../core/job.ts';
import { linkSignals } from '../core/linked-signal.ts';
import { FRAME_KIND, FrameDecoder, OUTPUT_FRAMES_TYPE, type OutputFrame } from '../core/output-frames.ts';
import type { FollowEvent } from '../engine/job-engine.ts';
import type { OutputEvent } from '../output/output-types.ts';
import {
  type LiveFigures,
  type NodePeer,
  PeerUnreachableError,
  type RemoteOutput,
  type RemoteOutputRequest,
} from './cluster-routing.ts';
import type { NodeCredentials } from './node-credentials.ts';

export interface RemoteNodeOptions {
  /** The peer's node id. */
  readonly node: string;
  /** The base URL it advertises (`https://10.0.0.3:8443`). */
  readonly url: string;
  /** PEM CA certificates to verify an https:// peer with; absent: the system's. */
  readonly ca?: readonly string[];
  /** Signs every request as this node (the cluster secret). */
  readonly credentials: NodeCredentials;
  /**
   * The job as the shared store records it: what `stop`, `pause`, `resume` and the `end` event
   * return, so that the caller gets the whole job, not its JSON form.
   */
  readonly records: (id: string) => Promise<Job>;
  /** How long to wait for the peer's answer to begin. Default 10 s. */
  readonly answerTimeoutMs?: number;
  /** The timer of `answerTimeoutMs`. Default: the system clock. */
  readonly clock?: Clock;
}

/** How long a job's live figures are waited for (`live`): its record answers past that. */
const LIVE_ANSWER_MS = 2000;

/** Idle time before TCP keepalive probes a forwarded connection. */
const KEEPALIVE_IDLE_MS = 15_000;

/** Codes of the peer's answer that say it refused or failed this node, not the caller's request. */
const PEER_FAULTS = new Set<string>(['UNAUTHENTICATED', 'RATE_LIMITED', 'INTERNAL', 'NODE_UNAVAILABLE']);

/**
 * A client for one peer node: the calls that must reach the node that runs a job (its output, and
 * its processes), made on the peer's REST API and signed with the cluster secret. Output comes as
 * binary frames (src/core/output-frames.ts) and is pulled: nothing more is read from the peer's
 * response until the consumer asks for the next event, so a slow client slows the peer's writer
 * through TCP flow control rather than filling this node's memory.
 */
export class RemoteNode implements NodePeer {
  readonly node: string;
  readonly url: string;
  readonly #options: RemoteNodeOptions;

  constructor(options: RemoteNodeOptions) {
    this.node = options.node;
    this.url = options.url;
    this.#options = options;
  }

  async openOutput(who: Principal, id: string, request: RemoteOutputRequest): Promise<RemoteOutput> {
    const params = new URLSearchParams({
      stream: request.selector,
      cursor: String(request.cursor),
      follow: String(request.follow),
    });
    const response = await this.#send(who, 'GET', `/v1/jobs/${encodeURIComponent(id)}/output?${params}`, {
      accept: OUTPUT_FRAMES_TYPE,
      signal: request.signal,
    });
    const type = response.headers['content-type'] ?? '';
    if (!type.startsWith(OUTPUT_FRAMES_TYPE)) {
      response.destroy();
      throw this.#unavailable(
        `it answered the output as ${type || 'no type'}, not as frames (an older version?)`,
      );
    }
    const end = Number(response.headers['x-jobworker-end'] ?? request.cursor);
    const stream = this.#events(id, response, request);
    const close = stream.return.bind(stream);
    // A generator closed before it ever ran skips its `finally`: close the peer's response here too.
    stream.return = (value) => {
      response.destroy();
      return close(value);
    };
    return Object.assign(stream, { end: Number.isSafeInteger(end) ? end : request.cursor });
  }

  async stop(who: Principal, id: string, graceMs?: number): Promise<Job> {
    await this.#act(who, id, 'stop', graceMs === undefined ? {} : { graceMs });
    return this.#options.records(id);
  }

  async pause(who: Principal, id: string): Promise<Job> {
    await this.#act(who, id, 'pause', {});
    return this.#options.records(id);
  }

  async resume(who: Principal, id: string): Promise<Job> {
    await this.#act(who, id, 'resume', {});
    return this.#options.records(id);
  }

  async live(who: Principal, id: string): Promise<LiveFigures> {
    // A short wait: the caller answers with the job's record when the peer is slow.
    const response = await this.#send(who, 'GET', `/v1/jobs/${encodeURIComponent(id)}`, {
      timeoutMs: LIVE_ANSWER_MS,
    });
    const text = (await readBody(response)).toString('utf8');
    // The peer's JSON form of the job (src/api/rest/job-json.ts): only the two live parts are taken.
    let job: { outputBytes?: unknown; usage?: unknown };
    try {
      job = JSON.parse(text) as typeof job;
    } catch {
      throw this.#unavailable(`it answered job ${id} with something that is not JSON`);
    }
    const bytes = job.outputBytes as { stdout?: unknown; stderr?: unknown } | undefined;
    if (!Number.isSafeInteger(bytes?.stdout) || !Number.isSafeInteger(bytes?.stderr)) {
      throw this.#unavailable(`it answered job ${id} without its output sizes (an older version?)`);
    }
    return {
      outputBytes: { stdout: bytes!.stdout as number, stderr: bytes!.stderr as number },
      usage: (job.usage ?? null) as LiveFigures['usage'],
    };
  }

  async #act(who: Principal, id: string, action: string, body: Record<string, unknown>): Promise<void> {
    const response = await this.#send(who, 'POST', `/v1/jobs/${encodeURIComponent(id)}/${action}`, {
      body: JSON.stringify(body),
    });
    // The answer's job is the peer's JSON form; the store has the whole record.
    await readBody(response);
  }

  async *#events(
    id: string,
    response: IncomingMessage,
    request: RemoteOutputRequest,
  ): AsyncGenerator<FollowEvent> {
    const decoder = new FrameDecoder();
    try {
      // `for await` pulls one chunk at a time: while the consumer holds an event, the response
      // stays paused and its socket's window fills, which stops the peer's writer.
      for await (const chunk of response) {
        const events: OutputEvent[] = [];
        let end = false;
        for (const frame of decoder.push(chunk as Buffer)) {
          if (frame.kind === FRAME_KIND.end) end = true;
          else {
            const event = outputEventOf(frame);
            if (event) events.push(event);
          }
        }
        if (events.length > 0) yield { type: 'output', events };
        if (end) {
          yield { type: 'end', job: await this.#options.records(id) };
          return;
        }
      }
    } catch (err) {
      if (request.signal?.aborted) return;
      throw this.#unavailable(`the output stream of job ${id} broke: ${(err as Error).message}`, err);
    } finally {
      response.destroy();
    }
    // A stream closed early on purpose ends without its `end`, as a local one does.
    if (request.signal?.aborted) return;
    if (decoder.pendingBytes > 0 || request.follow) {
      throw this.#unavailable(`it closed the output stream of job ${id} before the job ended`);
    }
  }

  async #send(
    who: Principal,
    method: 'GET' | 'POST',
    path: string,
    options: { accept?: string; body?: string; signal?: AbortSignal | undefined; timeoutMs?: number },
  ): Promise<IncomingMessage> {
    const answerMs = options.timeoutMs ?? this.#options.answerTimeoutMs ?? 10_000;
    const url = new URL(path, this.url);
    const headers = {
      ...this.#options.credentials.sign(method, url.pathname + url.search, who, options.body ?? ''),
      ...(options.accept ? { accept: options.accept } : {}),
    };
    // The answer must begin in time; once it has, a quiet follow may last as long as its job.
    const timeout = clockDeadline(this.#options.clock ?? systemClock, answerMs);
    // Linked by hand (see linkSignals): the caller's signal may live as long as the server, and
    // the link must last while the response streams (a follow), so it goes when the response does.
    const linked = linkSignals([options.signal, timeout.signal]);
    const signal = linked.signal;
    let response: IncomingMessage;
    try {
      response = await send({
        method,
        url,
        headers,
        signal,
        ...(options.body === undefined ? {} : { body: options.body }),
        ...(this.#options.ca
          ? {
              tls: {
                ca: this.#options.ca,
                caFiles: ['the cluster CA'],
                caExplicit: true,
                cert: undefined,
                key: undefined,
                certFile: undefined,
              },
            }
          : {}),
      });
    } catch (err) {
      linked.dispose();
      if (options.signal?.aborted) throw err;
      if (timeout.signal.aborted) {
        throw this.#unavailable(`it did not answer within ${answerMs} ms`, err, true);
      }
      const why = err instanceof ConnectionError ? err.message : String(err);
      throw this.#unavailable(why, err, true);
    } finally {
      timeout.clear();
    }
    // A peer cut off without a word (a partition: no FIN, no RST) would leave a quiet follow open
    // for ever: TCP keepalive probes the connection once it has been idle for a while, and the
    // kernel ends it when the probes go unanswered (docs/cluster.md, "Failures").
    response.socket?.setKeepAlive(true, KEEPALIVE_IDLE_MS);
    response.once('close', linked.dispose);
    const status = response.statusCode ?? 0;
    if (status >= 200 && status <= 299) return response;
    throw await this.#errorFrom(response);
  }

  /** The peer's error answer as the same error here, or NODE_UNAVAILABLE when it refused this node. */
  async #errorFrom(response: IncomingMessage): Promise<JobworkerError> {
    const status = response.statusCode ?? 0;
    const text = (await readBody(response).catch(() => Buffer.alloc(0))).toString('utf8');
    let error: { code?: unknown; message?: unknown; field?: unknown } | undefined;
    try {
      error = (JSON.parse(text) as { error?: typeof error }).error;
    } catch {
      error = undefined;
    }
    const code = typeof error?.code === 'string' ? error.code : undefined;
    const message = typeof error?.message === 'string' ? error.message : `HTTP ${status}`;
    if (code === undefined || !(code in ERROR_CODES) || PEER_FAULTS.has(code)) {
      return this.#unavailable(`it answered ${status}${code ? ` ${code}` : ''}: ${message}`);
    }
    const field = typeof error?.field === 'string' ? error.field : undefined;
    if (code === 'BAD_CURSOR') return new CursorError(message, field);
    if (field !== undefined) return new ValidationError(field, message, code as ErrorCode);
    return new JobworkerError(code as ErrorCode, message);
  }

  /**
   * NODE_UNAVAILABLE naming the peer: `PeerUnreachableError` when it gave no answer at all (it could
   * not be reached, or said nothing in time), a plain one when it answered with a refusal.
   */
  #unavailable(why: string, cause?: unknown, unreachable = false): JobworkerError {
    const message = `The job runs on node ${JSON.stringify(this.node)} at ${this.url}, which cannot answer now: ${why}`;
    const options = cause === undefined ? undefined : { cause };
    return unreachable
      ? new PeerUnreachableError(message, options)
      : new JobworkerError('NODE_UNAVAILABLE', message, options);
  }
}

function outputEventOf(frame: OutputFrame): OutputEvent | null {
  switch (frame.kind) {
    case FRAME_KIND.stdout:
      return { type: 'data', stream: 'stdout', data: frame.payload, cursor: frame.cursor };
    case FRAME_KIND.stderr:
      return { type: 'data', stream: 'stderr', data: frame.payload, cursor: frame.cursor };
    case FRAME_KIND.truncated: {
      const body = JSON.parse(frame.payload.toString('utf8')) as { stream?: unknown; skippedBytes?: unknown };
      return {
        type: 'truncated',
        stream: body.stream === 'stderr' ? 'stderr' : 'stdout',
        skippedBytes: typeof body.skippedBytes === 'number' ? body.skippedBytes : 0,
        cursor: frame.cursor,
      };
    }
    default:
      // A frame of a later version: skipped, as the format says.
      return null;
  }
}
