import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type ApiHarness, addUserToken, openApi } from '../api-harness.ts';
import {
  bearer,
  call,
  errorDetail,
  failure,
  type GrpcClient,
  grpc,
  grpcClient,
  type OutputMessage,
} from './grpc-client.ts';

interface JobMessage {
  id: string;
  status: string;
  owner: string;
  exitCode?: number;
  stopRequestTime?: unknown;
}

/** Reads a StreamOutput call to its end: the bytes of the view and the last (`end`) message's job. */
function readToEnd(
  stream: grpc.ClientReadableStream<OutputMessage>,
): Promise<{ data: Buffer; end: JobMessage; cursor: string }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let cursor = '0';
    stream.on('data', (message: OutputMessage) => {
      if (message.event === 'data') {
        chunks.push(message.data!.data);
        cursor = message.data!.cursor;
      } else if (message.event === 'end') {
        resolve({ data: Buffer.concat(chunks), end: message.end as JobMessage, cursor });
      }
    });
    stream.on('error', reject);
    stream.on('end', () => reject(new Error('stream ended without its end message')));
  });
}

/** Like `readToEnd`, keeping only the bytes' count and hash (so that the test itself holds no output). */
function hashToEnd(
  stream: grpc.ClientReadableStream<OutputMessage>,
): Promise<{ bytes: number; sha256: string }> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    let bytes = 0;
    stream.on('data', (message: OutputMessage) => {
      if (message.event === 'data') {
        hash.update(message.data!.data);
        bytes += message.data!.data.length;
      } else if (message.event === 'end') resolve({ bytes, sha256: hash.digest('hex') });
    });
    stream.on('error', reject);
  });
}

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

describe('gRPC with @grpc/grpc-js over HTTP/2 and TLS, with a client certificate', () => {
  let h: ApiHarness;
  let ca: string;
  let alice: GrpcClient;
  let bobToken: string;
  let anonymous: GrpcClient;

  before(async () => {
    h = await openApi();
    ca = await readFile(h.server.caFile!, 'utf8');
    await addUserToken(h, 'alice');
    bobToken = await addUserToken(h, 'bob');
    const issued = await h.json<{ certPem: string; keyPem: string }>('/v1/certs', {
      body: { user: 'alice', days: 1 },
    });
    assert.equal(issued.status, 201);
    alice = grpcClient('JobService', h.server.url, {
      ca,
      cert: issued.body.certPem,
      key: issued.body.keyPem,
    });
    anonymous = grpcClient('JobService', h.server.url, { ca });
  });
  after(async () => {
    alice.close();
    anonymous.close();
    await h.destroy();
  });

  it('starts a job as the user the certificate names and follows it to the end, byte for byte', async () => {
    const started = await call<{ job: JobMessage; created: boolean }>(alice, 'start', {
      command: 'head',
      args: ['-c', '1000000', '/dev/urandom'],
    });
    assert.equal(started.created, true);
    assert.equal(started.job.owner, 'alice');
    const { data, end } = await readToEnd(
      alice.streamOutput({ id: started.job.id, view: 'OUTPUT_VIEW_STDOUT', follow: true }, bearer()),
    );
    assert.equal(end.status, 'JOB_STATUS_SUCCEEDED');
    assert.equal(end.exitCode, 0);
    assert.equal(data.length, 1_000_000);
    const file = await readFile(join(h.dataDir, 'jobs', started.job.id, 'stdout'));
    assert.equal(sha256(data), sha256(file));

    // Resumed from a cursor: the rest, with no gap and no duplicate.
    const rest = await readToEnd(
      alice.streamOutput({ id: started.job.id, view: 'OUTPUT_VIEW_STDOUT', cursor: '400000' }, bearer()),
    );
    assert.equal(sha256(rest.data), sha256(file.subarray(400_000)));
    assert.equal(rest.cursor, '1000000');

    // A cursor past the end, or below 0, is OUT_OF_RANGE with BAD_CURSOR, as REST's 416 is.
    for (const cursor of ['1000001', '-1']) {
      const bad = await failure(
        readToEnd(alice.streamOutput({ id: started.job.id, view: 'OUTPUT_VIEW_STDOUT', cursor }, bearer())),
      );
      assert.equal(bad.code, grpc.status.OUT_OF_RANGE, cursor);
      assert.equal(errorDetail(bad).code, 'BAD_CURSOR', cursor);
    }
  });

  it('stops a running job; a second stop is FAILED_PRECONDITION with ALREADY_FINISHED and the job in the details', async () => {
    const { job } = await call<{ job: JobMessage }>(alice, 'start', {
      command: 'sh',
      args: ['-c', 'echo ready; exec sleep 600'],
    });
    const stream = alice.streamOutput({ id: job.id, follow: true }, bearer());
    const ended = readToEnd(stream);
    const [first] = (await new Promise<OutputMessage[]>((resolve) =>
      stream.once('data', (m) => resolve([m])),
    ))!;
    assert.equal(first?.data?.data.toString(), 'ready\n');
    const stopped = await call<{ job: JobMessage }>(alice, 'stop', { id: job.id, graceMs: '1000' });
    assert.ok(stopped.job.stopRequestTime, 'the stop is recorded at once');
    const waited = await call<{ job: JobMessage }>(alice, 'waitFor', { id: job.id });
    assert.equal(waited.job.status, 'JOB_STATUS_STOPPED');
    assert.equal((await ended).end.status, 'JOB_STATUS_STOPPED');

    const again = await failure(call(alice, 'stop', { id: job.id }));
    assert.equal(again.code, grpc.status.FAILED_PRECONDITION);
    const detail = errorDetail(again);
    assert.equal(detail.code, 'ALREADY_FINISHED');
    assert.deepEqual(detail.types, ['jobworker.v1.ErrorDetail', 'jobworker.v1.Job']);
  });

  it("answers another user's job exactly like an unknown one: NOT_FOUND", async () => {
    const bob = await call<{ job: JobMessage }>(alice, 'start', { command: 'true' }, bearer(bobToken));
    assert.equal(bob.job.owner, 'bob', 'a token in the metadata wins over the certificate');
    const theirs = await failure(call(alice, 'get', { id: bob.job.id }));
    const unknown = '01900000-0000-7000-8000-000000000000';
    const none = await failure(call(alice, 'get', { id: unknown }));
    assert.equal(theirs.code, grpc.status.NOT_FOUND);
    assert.equal(none.code, grpc.status.NOT_FOUND);
    assert.equal(theirs.details.replace(bob.job.id, unknown), none.details);
    assert.equal(errorDetail(theirs).code, 'NOT_FOUND');
    const stream = await failure(readToEnd(alice.streamOutput({ id: bob.job.id }, bearer())));
    assert.equal(stream.code, grpc.status.NOT_FOUND);
    // Bob sees it, by his token.
    const got = await call<{ job: JobMessage }>(anonymous, 'get', { id: bob.job.id }, bearer(bobToken));
    assert.equal(got.job.id, bob.job.id);
  });

  it('refuses a call without credentials (UNAUTHENTICATED) and a bad field (INVALID_ARGUMENT naming it)', async () => {
    const refused = await failure(call(anonymous, 'list', {}));
    assert.equal(refused.code, grpc.status.UNAUTHENTICATED);
    assert.equal(errorDetail(refused).code, 'UNAUTHENTICATED');
    const bad = await failure(call(alice, 'start', { command: 'true', priority: 5000 }));
    assert.equal(bad.code, grpc.status.INVALID_ARGUMENT);
    assert.deepEqual(
      { code: errorDetail(bad).code, field: errorDetail(bad).field },
      { code: 'VALIDATION_FAILED', field: 'priority' },
    );
    assert.match(bad.details, /Expected `priority` to be/);
  });

  it('records RPC calls in the audit trail with their transport', async () => {
    await call(alice, 'start', { command: 'true', name: 'audited' });
    const { body } = await h.json<{ entries: { user: string; transport: string; action: string }[] }>(
      '/v1/audit?action=job:submit&user=alice',
    );
    assert.ok(body.entries.length > 0);
    assert.ok(body.entries.every((e) => e.transport === 'grpc'));
    // A bad token is a failed authentication (a call with none guesses nothing, and is not one).
    const refused = await failure(call(anonymous, 'list', {}, bearer('jw_not_issued')));
    assert.equal(refused.code, grpc.status.UNAUTHENTICATED);
    const failed = await h.json<{ entries: { transport: string }[] }>('/v1/audit?action=auth:fail');
    assert.ok(failed.body.entries.some((e) => e.transport === 'grpc'));
  });

  it('a follow survives a client that stops reading for a while, then ends byte for byte', async () => {
    const size = 16 * 1024 * 1024;
    const { job } = await call<{ job: JobMessage }>(alice, 'start', {
      command: 'head',
      args: ['-c', String(size), '/dev/zero'],
    });
    const stream = alice.streamOutput({ id: job.id, view: 'OUTPUT_VIEW_STDOUT', follow: true }, bearer());
    const result = hashToEnd(stream);
    await new Promise((resolve) => stream.once('data', resolve));
    stream.pause();
    await call(alice, 'waitFor', { id: job.id });
    stream.resume();
    const { bytes, sha256: digest } = await result;
    assert.equal(bytes, size);
    assert.equal(digest, sha256(await readFile(join(h.dataDir, 'jobs', job.id, 'stdout'))));
  });
});
