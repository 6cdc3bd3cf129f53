import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { waitForFileText } from '../helpers/wait.ts';
import {
  type ApiHarness,
  FIXTURES,
  type JobJson,
  openApi,
  rawGet,
  readSse,
  sseBytes,
  startJob,
  within,
} from './api-harness.ts';

/** The numbers of counter.sh's lines must run 1, 2, 3... with nothing missing or repeated. */
function assertConsecutive(output: Buffer): number {
  const lines = output.toString().split('\n');
  assert.equal(lines.pop(), '', 'ends with a whole line');
  for (const [i, line] of lines.entries()) assert.equal(line, String(i + 1), `line ${i + 1}`);
  return lines.length;
}

describe('REST API: restarting the server while clients follow', () => {
  let h: ApiHarness;
  before(async () => {
    h = await openApi();
  });
  after(() => h.destroy());

  it('ends open streams at close(); clients resume from their cursor on the next server with no gap and no duplicate', async () => {
    const job = await startJob(h, { command: join(FIXTURES, 'counter.sh') });
    const stdoutFile = join(h.dataDir, 'jobs', job.id, 'stdout');
    const auth = { authorization: `Bearer ${h.token}` };
    // The submission answered once the job was admitted; a follow sends bytes once it has started.
    await rawGet(
      h.url(`/v1/jobs/${job.id}/output?stream=stdout&follow=true`),
      auth,
      (body) => body.length > 0,
    );
    const started = await h.json<JobJson>(`/v1/jobs/${job.id}`);
    assert.equal(started.body.status, 'running');

    // Two followers, raw and SSE, both reading live when the server goes down.
    const sseResponse = await h.api(`/v1/jobs/${job.id}/output?stream=stdout&follow=true`, {
      headers: { accept: 'text/event-stream' },
    });
    const sseEvents = readSse(sseResponse);
    let closing: Promise<void> | undefined;
    const raw1 = await rawGet(h.url(`/v1/jobs/${job.id}/output?stream=stdout&follow=true`), auth, (body) => {
      if (!closing && body.includes('\n20\n')) closing = h.server.close();
      return false;
    });
    await within(closing!, 20_000, 'close() ends the open streams');
    await h.server.close(); // idempotent

    // The raw stream ended cleanly, with its end cursor in a trailer and no status (it was cut short).
    assert.equal(raw1.status, 200);
    assert.equal(raw1.trailers['x-jobworker-cursor'], String(raw1.body.length));
    assert.equal(raw1.trailers['x-jobworker-status'], undefined, 'no status: the job had not ended');
    const sse1 = await sseEvents;
    assert.ok(sse1.length > 0);
    assert.ok(!sse1.some((e) => e.event === 'end'), 'no end event: the job had not ended');
    const sse1Bytes = sseBytes(sse1);
    assert.equal(sse1.at(-1)?.id, String(sse1Bytes.length));

    await h.restart();
    const adopted = await h.json<JobJson>(`/v1/jobs/${job.id}`);
    assert.equal(adopted.status, 200, 'the admin token still works');
    assert.equal(adopted.body.status, 'running', 'the job kept running');
    assert.equal(adopted.body.pid, started.body.pid);

    // Both clients resume from their cursor while the job goes on; then it is stopped.
    const raw2 = rawGet(
      h.url(
        `/v1/jobs/${job.id}/output?stream=stdout&follow=true&cursor=${raw1.trailers['x-jobworker-cursor']}`,
      ),
      auth,
    );
    const sse2 = h
      .api(`/v1/jobs/${job.id}/output?stream=stdout&follow=true`, {
        headers: { accept: 'text/event-stream', 'last-event-id': sse1.at(-1)!.id! },
      })
      .then((res) => readSse(res));
    const beyond = assertConsecutive(await readFile(stdoutFile)) + 30;
    await waitForFileText(stdoutFile, `\n${beyond}\n`);
    const stop = await h.api(`/v1/jobs/${job.id}/stop`, { body: { graceMs: 0 } });
    assert.equal(stop.status, 202);

    const rawRest = await raw2;
    assert.equal(rawRest.headers['x-jobworker-cursor'], raw1.trailers['x-jobworker-cursor']);
    assert.equal(rawRest.trailers['x-jobworker-status'], 'stopped');
    const sseRest = await sse2;
    assert.equal(sseRest.at(-1)?.event, 'end');
    assert.equal((JSON.parse(sseRest.at(-1)!.data) as { job: JobJson }).job.status, 'stopped');

    const file = await readFile(stdoutFile);
    const rawAll = Buffer.concat([raw1.body, rawRest.body]);
    const sseAll = Buffer.concat([sse1Bytes, sseBytes(sseRest)]);
    assert.deepEqual(rawAll, file, 'raw: every byte once, in order');
    assert.deepEqual(sseAll, file, 'SSE: every byte once, in order');
    assert.ok(assertConsecutive(rawAll) >= beyond);
  });

  it('close() answers a POST /run still waiting with the output so far; the job keeps running', async () => {
    // The job tells its id through a file: /run answers only at the end.
    const marker = join(h.dataDir, 'run-marker');
    const script = 'echo started; echo "$JOBWORKER_JOB_ID" > "$1"; exec sleep 600';
    const running = h.api('/run', { body: { command: 'sh', args: ['-c', script, 'sh', marker] } });
    const auth = { authorization: `Bearer ${h.token}` };
    const job = { id: (await waitForFileText(marker, '\n')).trim() };
    await rawGet(h.url(`/v1/jobs/${job.id}/output?follow=true`), auth, (body) => body.includes('started'));
    await h.server.close();
    const res = await running;
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-jobworker-job-id'), job.id);
    assert.equal(res.headers.get('x-jobworker-status'), 'running');
    assert.equal(res.headers.get('x-jobworker-exit-code'), null);
    assert.equal(await res.text(), 'started\n');

    await h.restart();
    assert.equal((await h.json<JobJson>(`/v1/jobs/${job.id}`)).body.status, 'running');
    assert.equal((await h.api(`/v1/jobs/${job.id}/stop`, { body: { graceMs: 0 } })).status, 202);
  });
});
