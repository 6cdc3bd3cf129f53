import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type RunningServer, runServer } from '../../src/main.ts';
import { testServerOptions } from '../api/api-harness.ts';
import { baseEnv, LAUNCHER, quiet, startTestServer, type TestServer } from './cli-harness.ts';

// Alternating blocks of random bytes on both streams: frames of both kinds, cut anywhere by the
// CLI's 1 MiB reads, more than the sockets hold.
const SCRIPT =
  'i=0; while [ $i -lt 24 ]; do head -c 131072 /dev/urandom; head -c 100000 /dev/urandom >&2; i=$((i+1)); done';

/** Starts `script` as a job and waits for its end; its id. */
async function finishedJob(url: string, token: string, script = SCRIPT): Promise<string> {
  const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
  const created = await fetch(`${url}/v1/jobs`, {
    method: 'POST',
    headers,
    body: JSON.stringify({ command: 'sh', args: ['-c', script] }),
  });
  assert.equal(created.status, 201);
  const { id } = (await created.json()) as { id: string };
  await (await fetch(`${url}/v1/jobs/${id}/output?follow=true`, { headers })).arrayBuffer();
  return id;
}

/**
 * `jobworker logs ID` as a user runs it (bin/jobworker, a process of its own), its stdout and
 * stderr to files, or its stdout to a pipe this test reads.
 */
async function logs(env: NodeJS.ProcessEnv, id: string, dir: string, stdoutTo: 'file' | 'pipe') {
  const out = join(dir, `out-${stdoutTo}`);
  const err = join(dir, `err-${stdoutTo}`);
  const outFile = await open(out, 'w');
  const errFile = await open(err, 'w');
  try {
    const child = spawn(LAUNCHER, ['logs', id], {
      env,
      stdio: ['ignore', stdoutTo === 'file' ? outFile.fd : 'pipe', errFile.fd],
    });
    const piped: Buffer[] = [];
    child.stdout?.on('data', (chunk: Buffer) => piped.push(chunk));
    const [code] = (await once(child, 'close')) as [number | null];
    assert.equal(code, 0);
    const stdout = stdoutTo === 'file' ? await readFile(out) : Buffer.concat(piped);
    return { stdout, stderr: await readFile(err) };
  } finally {
    await outFile.close();
    await errFile.close();
  }
}

describe('jobworker logs: a multi-MiB finished output, written by a real CLI process to files and pipes', () => {
  let tls: TestServer;
  let plain: RunningServer;
  let plainDir: string;
  let plainToken: string;
  let work: string;
  before(async () => {
    tls = await startTestServer();
    plainDir = await mkdtemp(join(tmpdir(), 'jw-cli-plain-'));
    plain = await runServer({
      listen: '127.0.0.1:0',
      insecureHttp: true,
      dataDir: plainDir,
      logStream: quiet(),
      ...(await testServerOptions()),
    });
    plainToken = (await readFile(plain.adminTokenFile, 'utf8')).trim();
    work = await mkdtemp(join(tmpdir(), 'jw-cli-logs-'));
  });
  after(async () => {
    await tls.close();
    await plain.close();
    await rm(plainDir, { recursive: true, force: true });
    await rm(work, { recursive: true, force: true });
  });

  it('exits 0 without a word when its reader closes the pipe (`jobworker logs ID | head -c1`)', async () => {
    const env = baseEnv({ JOBWORKER_URL: plain.url, JOBWORKER_TOKEN: plainToken });
    // Stdout only: the CLI's stderr then carries nothing of the job's, only what it says itself.
    const id = await finishedJob(plain.url, plainToken, 'head -c 4000000 /dev/urandom');
    for (let round = 0; round < 3; round++) {
      const child = spawn(LAUNCHER, ['logs', id], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (text: string) => {
        stderr += text;
      });
      // The reader takes the first bytes and goes away, as `head -c1` does.
      child.stdout.once('data', () => child.stdout.destroy());
      const [code] = (await once(child, 'close')) as [number | null];
      assert.equal(code, 0, `exit status (round ${round}); stderr: ${stderr}`);
      assert.equal(stderr, '', 'no error message');
    }
  });

  for (const over of ['plain HTTP (read into one reused buffer)', 'TLS'] as const) {
    it(`over ${over}: each stream exact, to a file and to a pipe`, async () => {
      const isTls = over === 'TLS';
      const url = isTls ? tls.server.url : plain.url;
      const token = isTls ? tls.token : plainToken;
      const dataDir = isTls ? tls.dataDir : plainDir;
      const env = isTls ? tls.env : baseEnv({ JOBWORKER_URL: url, JOBWORKER_TOKEN: token });
      const id = await finishedJob(url, token);
      const stdout = await readFile(join(dataDir, 'jobs', id, 'stdout'));
      const stderr = await readFile(join(dataDir, 'jobs', id, 'stderr'));
      assert.equal(stdout.length, 24 * 131072);
      assert.equal(stderr.length, 24 * 100000);
      for (const to of ['file', 'pipe'] as const) {
        const got = await logs(env, id, work, to);
        assert.ok(got.stdout.equals(stdout), `stdout to a ${to}: ${got.stdout.length} bytes, exact`);
        assert.ok(got.stderr.equals(stderr), `stderr (with stdout to a ${to}): exact`);
      }
    });
  }
});
