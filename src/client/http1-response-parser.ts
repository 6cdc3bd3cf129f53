/**
 * Reads one HTTP/1.1 response from the bytes of a connection, as they come: the status line, the
 * headers, and a body framed by `Content-Length`, by `Transfer-Encoding: chunked` (trailers
 * kept apart), or by the end of the connection. Interim 1xx answers are skipped. The request/response
 * client of http1-client.ts feeds it; docs/performance.md says why that client exists.
 */

/** A whole answer: the body is complete when this exists. */
export interface HttpAnswer {
  readonly status: number;
  readonly statusMessage: string;
  /** Lower-case names; a repeated header's values joined by ", ". */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Buffer;
}

/** The bytes break HTTP/1.1 (a bad status line, a bad chunk size, a head too large). */
export class MalformedResponseError extends Error {
  override name = 'MalformedResponseError';
}

/** No head is that big from jobworker (its headers are a few hundred bytes). */
const MAX_HEAD_BYTES = 64 * 1024;
const CRLF = Buffer.from('\r\n');
const HEAD_END = Buffer.from('\r\n\r\n');

type Phase =
  | 'head'
  | 'fixed'
  | 'chunk-size'
  | 'chunk-data'
  | 'chunk-end'
  | 'trailers'
  | 'until-close'
  | 'done';

export class Http1ResponseParser {
  readonly #method: string;
  #phase: Phase = 'head';
  #pending: Buffer = Buffer.alloc(0);
  #status = 0;
  #statusMessage = '';
  #headers: Record<string, string> = {};
  #trailers: Record<string, string> = {};
  #body: Buffer[] = [];
  #received = 0;
  /** Bytes still to read of the fixed body or of the current chunk. */
  #remaining = 0;
  #expected: number | undefined;

  /**
   * Body bytes, as they come, instead of the whole body in the answer (a body too large to hold:
   * the catch-up bench's raw reader). Each piece is a view of a chunk given to `push`.
   */
  readonly #onBody: ((piece: Buffer) => void) | undefined;

  /** `method`: a HEAD request's answer has no body whatever its headers say. */
  constructor(method: string, options: { onBody?: (piece: Buffer) => void } = {}) {
    this.#method = method;
    this.#onBody = options.onBody;
  }

  /** The trailers of a chunked body (lower-case names), once read. */
  get trailers(): Readonly<Record<string, string>> {
    return this.#trailers;
  }

  /** The status line and headers, once read (a streamed body's answer starts with them). */
  get head(): Omit<HttpAnswer, 'body'> | undefined {
    if (this.#phase === 'head') return undefined;
    return { status: this.#status, statusMessage: this.#statusMessage, headers: this.#headers };
  }

  /** Whether the whole answer was read. */
  get done(): boolean {
    return this.#phase === 'done';
  }

  /**
   * Copies what is held for the next `push` (a line cut by the end of a read) out of the chunk
   * it came in: for a caller that reads into one reused buffer.
   */
  detachPending(): void {
    if (this.#pending.length > 0) this.#pending = Buffer.from(this.#pending);
  }

  /** The answer once it is whole, else undefined (more bytes needed). Throws MalformedResponseError. */
  push(chunk: Buffer): HttpAnswer | undefined {
    if (this.#phase === 'done') return this.#answer();
    this.#pending = this.#pending.length === 0 ? chunk : Buffer.concat([this.#pending, chunk]);
    while (this.#step()) {
      if (this.#isDone()) return this.#answer();
    }
    return undefined;
  }

  /**
   * The connection ended: the answer when the body ran to the end of the connection, else a
   * sentence saying how much of it came (for the caller's error).
   */
  end(): HttpAnswer | string {
    if (this.#phase === 'until-close' || this.#phase === 'done') {
      this.#phase = 'done';
      return this.#answer();
    }
    if (this.#phase === 'head') {
      return this.#pending.length === 0 ? 'before it answered' : "in the middle of the answer's headers";
    }
    if (this.#expected !== undefined) {
      return `after ${this.#received} of the answer's ${this.#expected} bytes`;
    }
    return `after ${this.#received} bytes of the answer, before its last chunk`;
  }

  /**
   * The head of an error answer (status 300 and up) whose body was cut short, with an empty body:
   * its status says more than the lost body would (as node:http's callers saw it). Undefined for
   * any other answer, or before the head was read.
   */
  errorHead(): HttpAnswer | undefined {
    if (this.#phase === 'head' || this.#status < 300) return undefined;
    return {
      status: this.#status,
      statusMessage: this.#statusMessage,
      headers: this.#headers,
      body: Buffer.alloc(0),
    };
  }

  /** One step of parsing; false when it needs more bytes. */
  #step(): boolean {
    switch (this.#phase) {
      case 'head':
        return this.#readHead();
      case 'fixed':
      case 'chunk-data':
        return this.#readData();
      case 'chunk-size':
        return this.#readChunkSize();
      case 'chunk-end': {
        if (this.#pending.length < 2) return false;
        if (this.#pending[0] !== 0x0d || this.#pending[1] !== 0x0a)
          throw malformed('a chunk not followed by CRLF');
        this.#pending = this.#pending.subarray(2);
        this.#phase = 'chunk-size';
        return true;
      }
      case 'trailers':
        return this.#readTrailers();
      case 'until-close':
        this.#take(this.#pending.length);
        return false;
      case 'done':
        return false;
    }
  }

  #readHead(): boolean {
    const end = this.#pending.indexOf(HEAD_END);
    if (end === -1) {
      if (this.#pending.length > MAX_HEAD_BYTES)
        throw malformed(`headers longer than ${MAX_HEAD_BYTES} bytes`);
      return false;
    }
    const lines = this.#pending.subarray(0, end).toString('latin1').split('\r\n');
    this.#pending = this.#pending.subarray(end + HEAD_END.length);
    const match = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/.exec(lines[0] ?? '');
    if (match === null) throw malformed(`a status line ${JSON.stringify((lines[0] ?? '').slice(0, 80))}`);
    const status = Number(match[1]);
    const headers: Record<string, string> = {};
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      if (colon <= 0) throw malformed(`a header line ${JSON.stringify(line.slice(0, 80))}`);
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim();
      headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
    }
    // 100 Continue, 103 Early Hints: the real answer follows.
    if (status >= 100 && status < 200 && status !== 101) return true;
    this.#status = status;
    this.#statusMessage = match[2] ?? '';
    this.#headers = headers;
    this.#phase = this.#bodyPhase(status, headers);
    return true;
  }

  #bodyPhase(status: number, headers: Record<string, string>): Phase {
    if (this.#method === 'HEAD' || status === 204 || status === 304) return 'done';
    const encoding = headers['transfer-encoding'];
    if (encoding !== undefined) {
      if (!/(^|,)\s*chunked\s*$/i.test(encoding)) return 'until-close';
      return 'chunk-size';
    }
    const length = headers['content-length'];
    if (length === undefined) return 'until-close';
    // A repeated Content-Length is fine only when every copy agrees (RFC 9112, 6.3).
    const values = new Set(length.split(',').map((value) => value.trim()));
    const [only] = values;
    if (values.size !== 1 || only === undefined || !/^\d{1,15}$/.test(only)) {
      throw malformed(`a Content-Length of ${JSON.stringify(length)}`);
    }
    this.#expected = Number(only);
    this.#remaining = this.#expected;
    return this.#remaining === 0 ? 'done' : 'fixed';
  }

  #readData(): boolean {
    if (this.#pending.length === 0) return false;
    const n = Math.min(this.#remaining, this.#pending.length);
    this.#take(n);
    this.#remaining -= n;
    if (this.#remaining > 0) return false;
    this.#phase = this.#phase === 'fixed' ? 'done' : 'chunk-end';
    return true;
  }

  #readChunkSize(): boolean {
    const end = this.#pending.indexOf(CRLF);
    if (end === -1) {
      if (this.#pending.length > 1024) throw malformed('a chunk-size line longer than 1024 bytes');
      return false;
    }
    const line = this.#pending.subarray(0, end).toString('latin1');
    this.#pending = this.#pending.subarray(end + 2);
    // Chunk extensions (";name=value") carry nothing this client uses.
    const size = (line.split(';')[0] ?? '').trim();
    if (!/^[0-9a-fA-F]{1,12}$/.test(size))
      throw malformed(`a chunk size ${JSON.stringify(line.slice(0, 40))}`);
    this.#remaining = Number.parseInt(size, 16);
    this.#phase = this.#remaining === 0 ? 'trailers' : 'chunk-data';
    return true;
  }

  #readTrailers(): boolean {
    const end = this.#pending.indexOf(CRLF);
    if (end === -1) {
      if (this.#pending.length > MAX_HEAD_BYTES)
        throw malformed(`trailers longer than ${MAX_HEAD_BYTES} bytes`);
      return false;
    }
    const line = this.#pending.subarray(0, end).toString('latin1');
    this.#pending = this.#pending.subarray(end + 2);
    if (end === 0) this.#phase = 'done';
    else {
      const colon = line.indexOf(':');
      if (colon > 0) this.#trailers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    return true;
  }

  /** A method, so that TypeScript does not narrow `#phase` across `#step()`, which changes it. */
  #isDone(): boolean {
    return this.#phase === 'done';
  }

  #take(n: number): void {
    if (n === 0) return;
    if (this.#onBody) this.#onBody(this.#pending.subarray(0, n));
    else this.#body.push(this.#pending.subarray(0, n));
    this.#received += n;
    this.#pending = this.#pending.subarray(n);
  }

  #answer(): HttpAnswer {
    return {
      status: this.#status,
      statusMessage: this.#statusMessage,
      headers: this.#headers,
      body: this.#body.length === 1 ? (this.#body[0] as Buffer) : Buffer.concat(this.#body),
    };
  }
}

function malformed(what: string): MalformedResponseError {
  return new MalformedResponseError(`The server's answer is not HTTP/1.1: ${what}`);
}
