import type { IncomingMessage } from 'node:http';
import { connect } from 'node:net';
import { Http1ResponseParser } from '../../src/client/http1-response-parser.ts';
import type { ApiClient } from './api-client.ts';
import { nowMicros } from './line-latency.ts';

/** Called with each piece of a job's stdout and the moment it arrived (CLOCK_MONOTONIC µs). */
export type OnBytes = (text: string, arrivedMicros: number) => void;

export interface Follower {
  /** Resolves when the response headers came: the follow is registered on the server. */
  readonly opened: Promise<void>;
  /** Resolves with the job's final status, once the stream has ended. */
  readonly ended: Promise<string>;
}

/**
 * One read buffer for every raw follower of the process: each read is parsed and decoded before
 * its callback returns (the parser copies what it keeps), so none outlives the next read.
 */
let sharedReadBuffer: Buffer | undefined;

/**
 * Follows stdout as raw bytes (`?follow=true`); the final status is the `X-Jobworker-Status`
 * trailer. A plain `node:net` socket read into a shared buffer and parsed by the CLI's own parser
 * (src/client/http1-response-parser.ts), as the catch-up scenario's raw reader does: a thousand
 * `node:http` responses (their parser, chunk decoding and streams) took 83-90 % of the bench
 * process's core in `fan-out`, which queued arrivals in this process, not in the server.
 */
export function followRaw(api: ApiClient, id: string, onBytes: OnBytes): Follower {
  const url = new URL(api.url);
  if (url.protocol !== 'http:' || url.port === '') {
    throw new Error(`followRaw: expected a plain http:// server URL with a port, got ${api.url}`);
  }
  const opened = Promise.withResolvers<void>();
  let headChecked = false;
  const ended = Promise.withResolvers<string>();
  const parser = new Http1ResponseParser('GET', {
    onBody: (piece) => onBytes(piece.toString('latin1'), arrived),
  });
  let arrived = 0;
  const fail = (error: Error): void => {
    opened.reject(error);
    ended.reject(error);
    socket.destroy();
  };
  sharedReadBuffer ??= Buffer.allocUnsafe(256 * 1024);
  const buffer = sharedReadBuffer;
  const socket = connect({
    host: url.hostname,
    port: Number(url.port),
    onread: {
      buffer,
      callback: (length: number) => {
        arrived = nowMicros();
        try {
          const answer = parser.push(buffer.subarray(0, length));
          parser.detachPending();
          if (!headChecked && parser.head !== undefined) {
            headChecked = true;
            if (parser.head.status !== 200) throw new Error(`Follow answered ${parser.head.status}`);
            opened.resolve();
          }
          if (answer !== undefined) {
            ended.resolve(String(parser.trailers['x-jobworker-status']));
            socket.destroy();
          }
        } catch (error) {
          fail(error as Error);
        }
        return true;
      },
    },
  });
  socket.on('error', fail);
  socket.on('end', () => fail(new Error('The server closed the follow before its end')));
  socket.write(
    `GET /v1/jobs/${id}/output?stream=stdout&follow=true HTTP/1.1\r\nHost: ${url.host}\r\n` +
      `Authorization: ${api.authorization}\r\nConnection: close\r\n\r\n`,
  );
  // Settled or not, a rejection nobody awaits yet must not end the bench.
  opened.promise.catch(() => {});
  ended.promise.catch(() => {});
  return { opened: opened.promise, ended: ended.promise };
}

/** Follows stdout as server-sent events; the final status comes in the `end` event. */
export function followSse(api: ApiClient, id: string, onBytes: OnBytes): Follower {
  const response = api.open('GET', `/v1/jobs/${id}/output?stream=stdout&follow=true`, {
    headers: { accept: 'text/event-stream' },
    agent: false,
  });
  const opened = response.then(checkOk);
  const ended = response.then(
    (res) =>
      new Promise<string>((resolve, reject) => {
        let buffered = '';
        let status = 'none';
        res.setEncoding('utf8');
        res.on('data', (text: string) => {
          const arrived = nowMicros();
          buffered += text;
          for (let end = buffered.indexOf('\n\n'); end !== -1; end = buffered.indexOf('\n\n')) {
            const event = parseEvent(buffered.slice(0, end));
            buffered = buffered.slice(end + 2);
            if (event.name === 'output') {
              const { data } = JSON.parse(event.data) as { data: string };
              onBytes(Buffer.from(data, 'base64').toString('latin1'), arrived);
            } else if (event.name === 'end') {
              status = (JSON.parse(event.data) as { job: { status: string } }).job.status;
            }
          }
        });
        res.once('end', () => resolve(status));
        res.once('error', reject);
      }),
  );
  // Settled or not, a rejection nobody awaits yet (a run that failed while attaching, whose
  // server then closes the follows already open) must not end the bench.
  opened.catch(() => {});
  ended.catch(() => {});
  return { opened, ended };
}

function parseEvent(block: string): { name: string; data: string } {
  let name = 'message';
  const data: string[] = [];
  for (const line of block.split('\n')) {
    if (line.startsWith('event: ')) name = line.slice(7);
    else if (line.startsWith('data: ')) data.push(line.slice(6));
  }
  return { name, data: data.join('\n') };
}

function checkOk(res: IncomingMessage): void {
  if (res.statusCode !== 200) throw new Error(`Follow answered ${res.statusCode}`);
}
