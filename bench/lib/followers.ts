import type { Agent, IncomingMessage } from 'node:http';
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

/** Follows stdout as raw bytes (`?follow=true`); the final status is the `X-Jobworker-Status` trailer. */
export function followRaw(api: ApiClient, id: string, onBytes: OnBytes, agent?: Agent | false): Follower {
  const response = api.open('GET', `/v1/jobs/${id}/output?stream=stdout&follow=true`, {
    agent: agent ?? false,
  });
  return {
    opened: response.then(checkOk),
    ended: response.then(
      (res) =>
        new Promise<string>((resolve, reject) => {
          res.setEncoding('latin1');
          res.on('data', (text: string) => onBytes(text, nowMicros()));
          res.once('end', () => resolve(String(res.trailers['x-jobworker-status'])));
          res.once('error', reject);
        }),
    ),
  };
}

/** Follows stdout as server-sent events; the final status comes in the `end` event. */
export function followSse(api: ApiClient, id: string, onBytes: OnBytes): Follower {
  const response = api.open('GET', `/v1/jobs/${id}/output?stream=stdout&follow=true`, {
    headers: { accept: 'text/event-stream' },
    agent: false,
  });
  return {
    opened: response.then(checkOk),
    ended: response.then(
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
    ),
  };
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
