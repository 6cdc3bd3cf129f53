import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { HTTP_STATUS } from '../../src/api/rest/error-mapping.ts';
import {
  checkInsecureHttp,
  parseDefaultTimeout,
  parseListen,
  parseMaxQueues,
  parseMaxRunning,
  parseOutputCap,
  readServerConfig,
} from '../../src/config.ts';
import { ERROR_CODES } from '../../src/core/errors.ts';
import { type ApiHarness, openApi, startJob } from './api-harness.ts';

interface ErrorJson {
  error: { code: string; message: string; field?: string };
}

describe('REST API input checking', () => {
  let h: ApiHarness;
  let jobId = '';
  before(async () => {
    h = await openApi();
    const job = await startJob(h, { command: 'echo', args: ['12345'] });
    jobId = job.id;
    await h.api(`/v1/jobs/${jobId}/output?follow=true`).then((r) => r.text());
  });
  after(() => h.destroy());

  async function expectError(
    path: string,
    init: Parameters<ApiHarness['api']>[1],
    status: number,
    code: string,
    field?: string,
    message?: RegExp,
  ): Promise<ErrorJson> {
    const res = await h.api(path, init);
    const text = await res.text();
    assert.equal(res.status, status, `${path}: ${text}`);
    assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
    const body = JSON.parse(text) as ErrorJson;
    assert.equal(body.error.code, code, text);
    if (field !== undefined) assert.equal(body.error.field, field, text);
    if (message) assert.match(body.error.message, message);
    assert.ok(!/\n\s+at /.test(text), 'no stack trace');
    return body;
  }

  it('malformed JSON, an empty JSON body and a non-JSON body are 400', async () => {
    const json = { 'content-type': 'application/json' };
    await expectError(
      '/v1/jobs',
      { method: 'POST', rawBody: '{"command": "echo",', headers: json },
      400,
      'VALIDATION_FAILED',
      'body',
    );
    await expectError(
      '/v1/jobs',
      { method: 'POST', rawBody: '', headers: json },
      400,
      'VALIDATION_FAILED',
      'body',
    );
    await expectError(
      '/v1/jobs',
      { method: 'POST', rawBody: '{"command":"x"}\u0000', headers: json },
      400,
      'VALIDATION_FAILED',
      'body',
    );
    await expectError(
      '/v1/jobs',
      { method: 'POST', rawBody: 'command=echo', headers: { 'content-type': 'text/plain' } },
      400,
      'VALIDATION_FAILED',
      'Content-Type',
    );
    await expectError('/v1/jobs', { method: 'POST' }, 400, 'VALIDATION_FAILED', 'body');
    await expectError('/v1/jobs', { body: [1, 2] }, 400, 'VALIDATION_FAILED', 'body', /to be an object/);
  });

  it('defect 19: input that is accepted but wrong is refused, saying what was wrong', async () => {
    const json = { 'content-type': 'application/json' };
    // JSON's \\ud800 escape decodes to a lone surrogate, which has no UTF-8 form: the process
    // would receive EF BF BD. Each field that reaches the job or is shown is checked.
    const lone = '\\ud800';
    for (const [body, field] of [
      [`{"command": "echo${lone}"}`, 'command'],
      [`{"command": "echo", "args": ["ok", "a${lone}"]}`, 'args[1]'],
      [`{"command": "echo", "env": {"A": "${lone}"}}`, 'env.A'],
      [`{"command": "echo", "env": {"A${lone}": "x"}}`, 'env'],
      [`{"command": "echo", "cwd": "/tmp/${lone}"}`, 'cwd'],
      [`{"command": "echo", "name": "n${lone}"}`, 'name'],
      [`{"command": "echo", "labels": {"team": "${lone}"}}`, 'labels.team'],
      [`{"command": "echo", "labels": {"t${lone}": "x"}}`, 'labels'],
    ] as const) {
      await expectError(
        '/v1/jobs',
        { rawBody: body, headers: json },
        400,
        'VALIDATION_FAILED',
        field,
        /not valid UTF-8/,
      );
      await expectError(
        '/run',
        { rawBody: body, headers: json },
        400,
        'VALIDATION_FAILED',
        field,
        /not valid UTF-8/,
      );
    }
    // Raw bytes that are not UTF-8 would be decoded to U+FFFD just the same.
    await expectError(
      '/v1/jobs',
      {
        rawBody: Buffer.from([...Buffer.from('{"command": "echo", "args": ["'), 0xff, ...Buffer.from('"]}')]),
        headers: json,
      },
      400,
      'VALIDATION_FAILED',
      'body',
      /not valid UTF-8/,
    );
    // Date.parse reads 2027-02-30 as March 2.
    await expectError(
      '/v1/jobs',
      { body: { command: 'echo', runAt: '2027-02-30T00:00:00Z' } },
      400,
      'VALIDATION_FAILED',
      'runAt',
      /February 2027 has 28 days/,
    );
    await expectError(
      '/v1/jobs',
      { body: { command: 'echo', onDuplicate: 'return' } },
      400,
      'VALIDATION_FAILED',
      'onDuplicate',
      /only with a `dedupeKey`/,
    );
    const proto = await expectError(
      '/v1/jobs',
      { rawBody: '{"__proto__": {"x": 1}, "command": "echo"}', headers: json },
      400,
      'VALIDATION_FAILED',
      'body',
      /Expected no `__proto__` key/,
    );
    assert.ok(!/not valid JSON/.test(proto.error.message), proto.error.message);
    // Escaped, and nested: the same.
    await expectError(
      '/v1/jobs',
      { rawBody: '{"command": "echo", "labels": {"\\u005f_proto__": {}}}', headers: json },
      400,
      'VALIDATION_FAILED',
      'body',
      /Expected no `__proto__` key/,
    );
    // Nothing of any of these was created.
    const page = await h.json<{ jobs: { id: string }[] }>('/v1/jobs?limit=1000');
    assert.deepEqual(
      page.body.jobs.map((j) => j.id),
      [jobId],
    );
  });

  it('defect 14: a command line with spaces is COMMAND_NOT_FOUND with a hint; /run takes a cwd', async () => {
    const notFound = await expectError(
      '/v1/jobs',
      { body: { command: 'ls -l' } },
      400,
      'COMMAND_NOT_FOUND',
      'command',
      /command not found: ls -l/,
    );
    assert.match(notFound.error.message, /"shell": true/);
    assert.match(notFound.error.message, /`args`/);
    assert.match(notFound.error.message, /\{"command":"ls","args":\["-l"\]\}/);
    // A single word gets no such advice: it is simply not there.
    const plain = await expectError(
      '/v1/jobs',
      { body: { command: 'no-such-jw' } },
      400,
      'COMMAND_NOT_FOUND',
    );
    assert.ok(!plain.error.message.includes('shell'), plain.error.message);
    // The take-home starter's example, with a cwd: API jobs run in the server user's home otherwise.
    const res = await h.api('/run', {
      body: { command: 'cat', args: ['README.md'], cwd: new URL('../..', import.meta.url).pathname },
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-jobworker-status'), 'succeeded');
    assert.equal(await res.text(), await readFile(new URL('../../README.md', import.meta.url), 'utf8'));
  });

  it('unknown fields are refused, named, never dropped', async () => {
    await expectError(
      '/v1/jobs',
      { body: { command: 'echo', comand: 'x' } },
      400,
      'VALIDATION_FAILED',
      'comand',
      /Unknown field `comand`/,
    );
    await expectError(
      '/v1/jobs',
      { body: { command: 'echo', limits: { gpus: 1 } } },
      400,
      'VALIDATION_FAILED',
      'limits.gpus',
    );
    await expectError(`/v1/jobs/${jobId}/stop`, { body: { grace: 1 } }, 400, 'VALIDATION_FAILED', 'grace');
    await expectError('/run', { body: { command: 'echo', extra: true } }, 400, 'VALIDATION_FAILED', 'extra');
    await expectError(
      '/v1/jobs?colour=red',
      {},
      400,
      'VALIDATION_FAILED',
      'colour',
      /Unknown query parameter/,
    );
    await expectError(`/v1/jobs/${jobId}/output?folow=true`, {}, 400, 'VALIDATION_FAILED', 'folow');
  });

  it('wrong types are 400 naming the field, what was expected and what came', async () => {
    await expectError(
      '/v1/jobs',
      { body: {} },
      400,
      'VALIDATION_FAILED',
      'command',
      /Missing required field `command`/,
    );
    await expectError(
      '/v1/jobs',
      { body: { command: 42 } },
      400,
      'VALIDATION_FAILED',
      'command',
      /Expected `command` to be a string, got `42`/,
    );
    await expectError(
      '/v1/jobs',
      { body: { command: 'echo', args: 'a b' } },
      400,
      'VALIDATION_FAILED',
      'args',
      /to be an array/,
    );
    await expectError(
      '/v1/jobs',
      { body: { command: 'echo', args: ['a', 2] } },
      400,
      'VALIDATION_FAILED',
      'args[1]',
    );
    await expectError(
      '/v1/jobs',
      { body: { command: 'echo', env: { A: 1 } } },
      400,
      'VALIDATION_FAILED',
      'env.A',
    );
    await expectError(
      '/v1/jobs',
      { body: { command: 'echo', shell: 'yes' } },
      400,
      'VALIDATION_FAILED',
      'shell',
    );
    await expectError(
      '/v1/jobs',
      { body: { command: 'echo', timeoutMs: '5' } },
      400,
      'VALIDATION_FAILED',
      'timeoutMs',
      /an integer or `null`/,
    );
    await expectError(
      '/v1/jobs',
      { body: { command: 'echo', timeoutMs: -5 } },
      400,
      'VALIDATION_FAILED',
      'timeoutMs',
    );
    await expectError(
      '/v1/jobs',
      { body: { command: 'echo', cwd: 'relative' } },
      400,
      'VALIDATION_FAILED',
      'cwd',
      /absolute path/,
    );
    await expectError(
      '/v1/jobs',
      { body: { command: 'echo', cwd: '/no/such/dir' } },
      400,
      'VALIDATION_FAILED',
      'cwd',
    );
    await expectError(
      '/v1/jobs',
      { body: { command: 'no-such-command-jw' } },
      400,
      'COMMAND_NOT_FOUND',
      'command',
    );
    await expectError(
      `/v1/jobs/${jobId}/stop`,
      { body: { graceMs: 1.5 } },
      400,
      'VALIDATION_FAILED',
      'graceMs',
    );
    await expectError(
      `/v1/jobs/${jobId}/stop`,
      { body: { graceMs: -1 } },
      400,
      'VALIDATION_FAILED',
      'graceMs',
      /got `-1`/,
    );
    await expectError('/v1/jobs?limit=0', {}, 400, 'VALIDATION_FAILED', 'limit');
    await expectError('/v1/jobs?limit=ten', {}, 400, 'VALIDATION_FAILED', 'limit');
    await expectError('/v1/jobs?status=done', {}, 400, 'VALIDATION_FAILED', 'status', /got `done`/);
    await expectError('/v1/jobs?label=nokey', {}, 400, 'VALIDATION_FAILED', 'label');
    await expectError('/v1/jobs?limit=1&limit=2', {}, 400, 'VALIDATION_FAILED', 'limit');
    await expectError('/v1/jobs?cursor=abc', {}, 400, 'VALIDATION_FAILED', 'cursor');
    await expectError(
      `/v1/jobs/${jobId}/output?stream=both`,
      {},
      400,
      'VALIDATION_FAILED',
      'stream',
      /one of stdout, stderr, all/,
    );
    await expectError(`/v1/jobs/${jobId}/output?follow=yes`, {}, 400, 'VALIDATION_FAILED', 'follow');
  });

  it('NUL bytes are refused wherever they come', async () => {
    await expectError(
      '/v1/jobs',
      { body: { command: 'echo\u0000rm' } },
      400,
      'VALIDATION_FAILED',
      'command',
      /NUL/,
    );
    await expectError(
      '/v1/jobs',
      { body: { command: 'echo', args: ['a\u0000'] } },
      400,
      'VALIDATION_FAILED',
      'args[0]',
    );
    await expectError(
      '/v1/jobs',
      { body: { command: 'echo', env: { A: 'x\u0000y' } } },
      400,
      'VALIDATION_FAILED',
      'env.A',
    );
    await expectError(`/v1/jobs/${jobId}%00`, {}, 400, 'VALIDATION_FAILED', 'id');
    await expectError(`/v1/jobs/${jobId}/output?cursor=1%00`, {}, 400, 'BAD_CURSOR', 'cursor');
  });

  it('a body over 1 MiB is 413', async () => {
    const big = { command: 'echo', args: ['x'.repeat(2 * 1024 * 1024)] };
    await expectError('/v1/jobs', { body: big }, 413, 'PAYLOAD_TOO_LARGE');
    await expectError('/run', { body: big }, 413, 'PAYLOAD_TOO_LARGE');
  });

  it('a malformed id is 400 on `id`; an unknown one is 404', async () => {
    const unknown = `${jobId.slice(0, -4)}ffff`;
    for (const suffix of ['', '/output']) {
      await expectError(`/v1/jobs/not-a-job${suffix}`, {}, 400, 'VALIDATION_FAILED', 'id', /got `not-a-job`/);
      await expectError(`/v1/jobs/${unknown}${suffix}`, {}, 404, 'NOT_FOUND', undefined, new RegExp(unknown));
    }
    await expectError('/v1/jobs/not-a-job/stop', { method: 'POST' }, 400, 'VALIDATION_FAILED', 'id');
    await expectError(`/v1/jobs/${unknown}/stop`, { method: 'POST' }, 404, 'NOT_FOUND');
    await expectError(`/v1/jobs/${'a'.repeat(900)}`, {}, 400, 'VALIDATION_FAILED', 'id');
  });

  it('a bad output cursor is 400 BAD_CURSOR, from the query or from Last-Event-ID', async () => {
    for (const cursor of ['-1', '1.5', '1e3', 'abc', '', '99999999999999999999', '7']) {
      await expectError(`/v1/jobs/${jobId}/output?cursor=${cursor}`, {}, 400, 'BAD_CURSOR', 'cursor');
    }
    await expectError(
      `/v1/jobs/${jobId}/output?cursor=7&stream=stdout`,
      {},
      400,
      'BAD_CURSOR',
      'cursor',
      /past the end of stdout \(6 bytes/,
    );
    const sse = { accept: 'text/event-stream' };
    await expectError(
      `/v1/jobs/${jobId}/output`,
      { headers: { ...sse, 'last-event-id': 'x' } },
      400,
      'BAD_CURSOR',
      'Last-Event-ID',
      /`Last-Event-ID`/,
    );
    await expectError(
      `/v1/jobs/${jobId}/output`,
      { headers: { ...sse, 'last-event-id': '100' } },
      400,
      'BAD_CURSOR',
      'Last-Event-ID',
    );
    const ok = await h.api(`/v1/jobs/${jobId}/output?cursor=6`);
    assert.equal(ok.status, 200);
    assert.equal(await ok.text(), '', 'the end is a valid cursor');
  });

  it('maps every error code to the HTTP status docs/errors.md gives it', async () => {
    const docs = await readFile(new URL('../../docs/errors.md', import.meta.url), 'utf8');
    const documented = new Map(
      [...docs.matchAll(/^\| `([A-Z_]+)` \| (\d{3}) \|/gm)].map((m) => [m[1], Number(m[2])] as const),
    );
    assert.deepEqual(Object.keys(HTTP_STATUS).sort(), Object.keys(ERROR_CODES).sort());
    for (const [code, status] of Object.entries(HTTP_STATUS))
      assert.equal(documented.get(code), status, code);
  });

  it('parses listen addresses, any host; plain HTTP only on loopback ones', () => {
    assert.deepEqual(parseListen('127.0.0.1:8080'), { host: '127.0.0.1', port: 8080 });
    assert.deepEqual(parseListen('[::1]:0'), { host: '::1', port: 0 });
    assert.deepEqual(parseListen('localhost:9000'), { host: 'localhost', port: 9000 });
    for (const text of ['0.0.0.0:8080', '[::]:8080', '192.168.1.2:80', 'example.com:80']) {
      const listen = parseListen(text);
      assert.equal(checkInsecureHttp(listen, false), false);
      assert.throws(() => checkInsecureHttp(listen, true), { field: 'insecureHttp' });
    }
    assert.equal(checkInsecureHttp(parseListen('[::1]:0'), true), true);
    for (const bad of ['8080', '127.0.0.1', '127.0.0.1:99999', '::1:80']) {
      assert.throws(() => parseListen(bad), /Expected `listen`/);
    }
  });

  it('parses the most running jobs and refuses anything but a whole number from 1', () => {
    assert.equal(parseMaxRunning('1'), 1);
    assert.equal(parseMaxRunning('10000'), 10_000);
    for (const bad of ['0', '-3', '2.5', 'many', '', '99999999']) {
      assert.throws(() => parseMaxRunning(bad), { field: 'maxRunning' });
    }
  });

  it('parses the most queues: a whole number from 1, or none; JOBWORKER_MAX_QUEUES, else 1000', () => {
    assert.equal(parseMaxQueues('1'), 1);
    assert.equal(parseMaxQueues(' 1000000 '), 1_000_000);
    assert.equal(parseMaxQueues('none'), null);
    for (const bad of ['0', '-3', '2.5', 'many', '', '1000001', 'None']) {
      assert.throws(() => parseMaxQueues(bad), {
        field: 'maxQueues',
        message: /^Expected `maxQueues` to be a whole number of queues from 1 to 1000000, or none, got/,
      });
    }
    assert.equal(readServerConfig({}).maxQueues, '1000');
    assert.equal(readServerConfig({ JOBWORKER_MAX_QUEUES: '50' }).maxQueues, '50');
  });

  it('parses the default timeout: a duration or none', () => {
    assert.equal(parseDefaultTimeout('60s'), 60_000);
    assert.equal(parseDefaultTimeout('60'), 60_000);
    assert.equal(parseDefaultTimeout('1.5m'), 90_000);
    assert.equal(parseDefaultTimeout('2h'), 7_200_000);
    assert.equal(parseDefaultTimeout('366d'), 366 * 86_400_000);
    assert.equal(parseDefaultTimeout('none'), null);
    for (const bad of ['0', '0s', '-1s', '367d', 'soon', '', '1w']) {
      assert.throws(() => parseDefaultTimeout(bad), {
        field: 'defaultTimeout',
        message: /Expected `defaultTimeout`/,
      });
    }
  });

  it('parses output caps with units and refuses tiny or malformed ones', () => {
    assert.equal(parseOutputCap('1G'), 1024 ** 3);
    assert.equal(parseOutputCap('512M'), 512 * 1024 ** 2);
    assert.equal(parseOutputCap('64KiB'), 64 * 1024);
    assert.equal(parseOutputCap('1048576'), 1024 ** 2);
    for (const bad of ['10', '1.5G', 'lots', '-1G', '']) {
      assert.throws(() => parseOutputCap(bad), { field: 'outputCap' });
    }
  });
});
