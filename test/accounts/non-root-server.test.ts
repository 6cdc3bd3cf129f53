import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { chown, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { CLI_MAIN } from '../cli/cli-harness.ts';
import { trustServerCa } from '../helpers/trust-server.ts';

/**
 * A server that is not root cannot switch accounts (docs/security.md): a real `jobworker serve`
 * started under uid 65534 (`nobody`) over a data directory of its own.
 */

const NOBODY = 65_534;
const dirs: string[] = [];
const servers: ChildProcess[] = [];
after(async () => {
  for (const server of servers) if (server.exitCode === null) server.kill('SIGTERM');
  await Promise.all(servers.map((s) => (s.exitCode === null ? once(s, 'exit') : undefined)));
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

interface Serving {
  readonly url: string;
  readonly admin: string;
  readonly stop: () => Promise<void>;
}

/** `jobworker serve` as nobody; resolves once it says where it listens. */
async function serveAsNobody(dataDir: string, args: readonly string[] = []): Promise<Serving> {
  const child = spawn(
    process.execPath,
    [CLI_MAIN, 'serve', '--listen', '127.0.0.1:0', '--data-dir', dataDir, '--json', ...args],
    {
      uid: NOBODY,
      gid: NOBODY,
      env: { PATH: process.env.PATH, HOME: dataDir, LANG: 'C.UTF-8' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  servers.push(child);
  let stdout = '';
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (text: string) => {
    stderr += text;
  });
  const where = await new Promise<{ url: string; adminTokenFile: string }>((resolve, reject) => {
    child.stdout!.setEncoding('utf8').on('data', (text: string) => {
      stdout += text;
      try {
        resolve(JSON.parse(stdout));
      } catch {
        // not all of it yet
      }
    });
    child.once('exit', (code) => reject(new Error(`serve exited ${code}: ${stderr}`)));
  });
  const admin = (await readFile(where.adminTokenFile, 'utf8')).trim();
  trustServerCa(join(dataDir, 'tls', 'ca.pem'));
  return {
    url: where.url,
    admin,
    stop: async () => {
      child.kill('SIGTERM');
      if (child.exitCode === null) await once(child, 'exit');
    },
  };
}

interface Reply {
  status: number;
  body: {
    id?: string;
    account?: { name: string; uid: number };
    error?: { code: string; message: string; field?: string };
  };
}

async function post(server: Serving, token: string, spec: object): Promise<Reply> {
  const res = await fetch(`${server.url}/v1/jobs`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(spec),
  });
  return { status: res.status, body: (await res.json()) as Reply['body'] };
}

/** Adds a `user` through the API as the admin; resolves with a token of theirs. */
async function addUser(server: Serving, name: string): Promise<string> {
  const call = (path: string, body: object) =>
    fetch(`${server.url}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${server.admin}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
  const added = await call('/v1/users', { name, role: 'user' });
  assert.equal(added.status, 201, await added.text());
  const token = await call('/v1/tokens', { user: name });
  assert.equal(token.status, 201);
  return ((await token.json()) as { token: string }).token;
}

async function stdoutOf(server: Serving, token: string, id: string): Promise<string> {
  const res = await fetch(`${server.url}/v1/jobs/${id}/output?stream=stdout&follow=true`, {
    headers: { authorization: `Bearer ${token}` },
  });
  return res.text();
}

describe('a server that does not run as root', () => {
  it('runs admin jobs as itself, refuses user jobs with the fix, and runs them with --single-account', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'jw-nobody-'));
    dirs.push(dataDir);
    await chown(dataDir, NOBODY, NOBODY);

    const server = await serveAsNobody(dataDir);
    const alice = await addUser(server, 'alice');
    const adminJob = await post(server, server.admin, { command: 'id', args: ['-u'] });
    assert.equal(adminJob.status, 201, JSON.stringify(adminJob.body));
    assert.deepEqual(
      { name: adminJob.body.account?.name, uid: adminJob.body.account?.uid },
      { name: 'nobody', uid: NOBODY },
    );
    assert.equal(await stdoutOf(server, server.admin, adminJob.body.id!), `${NOBODY}\n`);

    const refused = await post(server, alice, { command: 'id' });
    assert.equal(refused.status, 403);
    assert.equal(refused.body.error?.code, 'ACCOUNT_UNAVAILABLE');
    assert.match(
      refused.body.error?.message ?? '',
      /runs as `nobody`, not root.*Run the server as root, or start it with --single-account to accept that every job runs as nobody/,
    );
    const root = await post(server, server.admin, { command: 'id', runAsRoot: true });
    assert.equal(root.status, 403);
    assert.deepEqual(
      { code: root.body.error?.code, field: root.body.error?.field },
      { code: 'ACCOUNT_UNAVAILABLE', field: 'runAsRoot' },
    );
    await server.stop();

    const single = await serveAsNobody(dataDir, ['--single-account']);
    const accepted = await post(single, alice, { command: 'id', args: ['-u'] });
    assert.equal(accepted.status, 201, JSON.stringify(accepted.body));
    assert.equal(await stdoutOf(single, alice, accepted.body.id!), `${NOBODY}\n`);
    await single.stop();
  });
});
