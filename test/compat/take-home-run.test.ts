import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TOKENLESS_USER } from '../../src/auth/principal.ts';
import { type Harness, openHarness } from '../helpers/engine-harness.ts';
import { type AppHarness, openApp } from '../helpers/rest-app-harness.ts';
import { waitForFileText, within } from '../helpers/wait.ts';

describe("the take-home starter's POST /run, --run-without-token and --run-cwd", () => {
  let h: Harness;
  let a: AppHarness;
  let dir: string;
  let adminToken: string;

  const run = (
    body: unknown,
    options: { from?: string; token?: string; headers?: Record<string, string> } = {},
  ) =>
    a.app.inject({
      method: 'POST',
      url: '/run',
      remoteAddress: options.from ?? '127.0.0.1',
      headers: {
        'content-type': 'application/json',
        ...(options.token === undefined ? {} : { authorization: `Bearer ${options.token}` }),
        ...options.headers,
      },
      payload: JSON.stringify(body),
    });

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'jw-run-cwd-'));
    await writeFile(join(dir, 'README.md'), '# Take home assignment\n');
    h = await openHarness();
    a = await openApp(h, { run: { cwd: dir, withoutToken: true } });
    adminToken = await a.issue('admin', 'admin');
  });
  after(async () => {
    await a.close();
    await h.destroy();
    await rm(dir, { recursive: true, force: true });
  });

  it("runs the starter's two examples without a token from loopback, relative paths in --run-cwd", async () => {
    const hello = await run({ command: 'python3', args: ['-c', 'print("hello world")'] });
    assert.equal(hello.statusCode, 200, hello.body);
    assert.equal(hello.body, 'hello world\n');
    const cat = await run({ command: 'cat', args: ['README.md'] });
    assert.equal(cat.statusCode, 200, cat.body);
    assert.equal(cat.body, '# Take home assignment\n');
    const job = await h.engine.get(String(cat.headers['x-jobworker-job-id']));
    assert.equal(job.owner, TOKENLESS_USER, 'tokenless jobs are its own principal’s, no real user’s');
    assert.equal(job.spec.cwd, dir);
  });

  it('an explicit cwd wins over --run-cwd', async () => {
    const res = await run({ command: 'pwd', cwd: '/' });
    assert.equal(res.body, '/\n');
  });

  it("acts as a principal of its own, a user's powers: runAsRoot and another user's scope are refused", async () => {
    // Any local process may call it, every job included: it must not be a way to root.
    const root = await run({ command: 'id', runAsRoot: true });
    assert.equal(root.statusCode, 403, root.body);
    assert.match(root.body, /Only an admin may run a job as root/);
    const scope = await run({ command: 'true', dedupeKey: 'k', dedupeScope: 'bob' });
    assert.equal(scope.statusCode, 403, scope.body);
  });

  it("shares nothing with the admin: an admin's running job's dedupeKey makes a job of its own, never hands over the admin's job or its output", async () => {
    const adminGo = join(dir, 'admin-go');
    const adminReady = join(dir, 'admin-ready');
    const asAdmin = { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' };
    const started = await a.app.inject({
      method: 'POST',
      url: '/v1/jobs',
      headers: asAdmin,
      payload: JSON.stringify({
        command: 'sh',
        args: [
          '-c',
          `echo admin-secret; touch ${adminReady}; while [ ! -e ${adminGo} ]; do sleep 0.02; done`,
        ],
        dedupeKey: 'nightly',
      }),
    });
    assert.equal(started.statusCode, 201, started.body);
    const adminJob = JSON.parse(started.body) as { id: string };
    await waitForFileText(adminReady, '');
    // The attacker: any local process, with the key of the admin's running job. Its own job ends
    // the admin's, so that a /run handed the admin's job (and waiting for it) still comes back.
    let res: Awaited<ReturnType<typeof run>>;
    try {
      res = await within(
        run({
          command: 'sh',
          args: ['-c', `echo mine; touch ${adminGo}`],
          dedupeKey: 'nightly',
          onDuplicate: 'return',
        }),
        20_000,
        "the tokenless /run to end: only a job of its own releases the admin's",
      );
    } finally {
      await writeFile(adminGo, '');
    }
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(res.body, 'mine\n', "none of the admin's output");
    const tokenlessId = String(res.headers['x-jobworker-job-id']);
    assert.notEqual(tokenlessId, adminJob.id);
    assert.equal((await h.engine.get(tokenlessId)).owner, TOKENLESS_USER);

    // Its own running job, it does get back by its key (every tokenless caller is that one principal).
    const ownGo = join(dir, 'own-go');
    const ownReady = join(dir, 'own-ready');
    const first = run({
      command: 'sh',
      args: ['-c', `touch ${ownReady}; while [ ! -e ${ownGo} ]; do sleep 0.02; done; echo first`],
      dedupeKey: 'own',
    });
    await waitForFileText(ownReady, '');
    const second = run({ command: 'echo', args: ['second'], dedupeKey: 'own', onDuplicate: 'return' });
    await writeFile(ownGo, '');
    const [one, two] = await Promise.all([first, second]);
    assert.equal(two.headers['x-jobworker-job-id'], one.headers['x-jobworker-job-id']);
    assert.equal(two.body, 'first\n');

    // The admin's listing: its own jobs are not the tokenless ones, which name their own owner.
    const list = async (query: string) => {
      const page = await a.app.inject({ method: 'GET', url: `/v1/jobs?${query}`, headers: asAdmin });
      assert.equal(page.statusCode, 200, page.body);
      return (JSON.parse(page.body) as { jobs: { id: string; owner: string }[] }).jobs;
    };
    const admins = await list('owner=admin&limit=1000');
    assert.deepEqual(
      admins.map((j) => j.owner),
      admins.map(() => 'admin'),
    );
    assert.ok(admins.some((j) => j.id === adminJob.id));
    assert.ok(!admins.some((j) => j.id === tokenlessId || j.id === one.headers['x-jobworker-job-id']));
    const all = await list('limit=1000');
    assert.equal(all.find((j) => j.id === tokenlessId)?.owner, TOKENLESS_USER);

    // The audit trail names the tokenless principal, a `user`, from loopback; an admin finds it by name.
    await a.audit.flush();
    const audit = await a.app.inject({
      method: 'GET',
      url: `/v1/audit?user=${TOKENLESS_USER}&action=job:submit`,
      headers: asAdmin,
    });
    assert.equal(audit.statusCode, 200, audit.body);
    const entry = (
      JSON.parse(audit.body) as {
        entries: { user: string; role: string; source: string; transport: string; target: string }[];
      }
    ).entries.find((e) => e.target === tokenlessId);
    assert.deepEqual(entry && [entry.user, entry.role, entry.source, entry.transport], [
      TOKENLESS_USER,
      'user',
      '127.0.0.1',
      'tcp',
    ]);
  });

  it('is no user: no real user may take its name, so no token or certificate ever names it', async () => {
    const res = await a.app.inject({
      method: 'POST',
      url: '/v1/users',
      headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
      payload: JSON.stringify({ name: TOKENLESS_USER, role: 'admin' }),
    });
    assert.equal(res.statusCode, 400, res.body);
    assert.equal(JSON.parse(res.body).error.field, 'name');
  });

  it("refuses a page of another site: one whose name was made to resolve here (its Host), or a browser's cross-site request", async () => {
    const marker = join(dir, 'rebound');
    const spec = { command: 'touch', args: [marker] };
    // DNS rebinding: the browser is on this machine and thinks the page's own host is this server.
    const rebound = await run(spec, { headers: { host: 'evil.example:8080' } });
    assert.equal(rebound.statusCode, 401, rebound.body);
    const crossSite = await run(spec, { headers: { 'sec-fetch-site': 'cross-site' } });
    assert.equal(crossSite.statusCode, 403, crossSite.body);
    assert.match(
      JSON.parse(crossSite.body).error.message,
      /came from another site's page \(Sec-Fetch-Site: cross-site\)/,
    );
    assert.equal(await readFile(marker, 'utf8').catch(() => 'never ran'), 'never ran');
    // Named as this machine (`localhost`, 127.0.0.1, [::1], its own name): answered.
    for (const host of ['localhost:8080', '127.0.0.1:8080', '[::1]:8080', `${hostname()}:8080`]) {
      const ok = await run({ command: 'true' }, { headers: { host } });
      assert.equal(ok.statusCode, 200, `${host}: ${ok.body}`);
    }
  });

  it('a token, when sent, is checked as usual', async () => {
    const res = await run({ command: 'true' }, { token: 'jw_notatokennotatokennotatokennotatoken1' });
    assert.equal(res.statusCode, 401);
  });

  it('from another address, or on any other route, credentials are still needed', async () => {
    const remote = await run({ command: 'true' }, { from: '10.0.0.7' });
    assert.equal(remote.statusCode, 401);
    for (const [method, url] of [
      ['POST', '/v1/jobs'],
      ['GET', '/v1/jobs'],
      ['POST', '/start/'],
    ] as const) {
      const res = await a.app.inject({
        method,
        url,
        remoteAddress: '127.0.0.1',
        ...(method === 'POST'
          ? { headers: { 'content-type': 'application/json' }, payload: '{"command":"true"}' }
          : {}),
      });
      assert.equal(res.statusCode, 401, `${method} ${url}`);
    }
  });
});

describe('without --run-without-token', () => {
  it('/run needs credentials from loopback too', async () => {
    const h = await openHarness();
    const a = await openApp(h);
    try {
      const res = await a.app.inject({
        method: 'POST',
        url: '/run',
        remoteAddress: '127.0.0.1',
        headers: { 'content-type': 'application/json' },
        payload: '{"command":"true"}',
      });
      assert.equal(res.statusCode, 401);
    } finally {
      await a.close();
      await h.destroy();
    }
  });

  it('serve refuses --run-without-token on an address that is not loopback', async () => {
    const { runServer } = await import('../../src/main.ts');
    const dataDir = await mkdtemp(join(tmpdir(), 'jw-run-refuse-'));
    try {
      await assert.rejects(runServer({ listen: '0.0.0.0:0', dataDir, runWithoutToken: true }), {
        code: 'VALIDATION_FAILED',
        field: 'runWithoutToken',
        message: /only on a loopback address/,
      });
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it("answers a tokenless /run over the server's Unix socket whatever host the client names (no web page reaches it), as its own account", async () => {
    const { runServer } = await import('../../src/main.ts');
    const { request } = await import('node:http');
    const { PassThrough } = await import('node:stream');
    const dataDir = await mkdtemp(join(tmpdir(), 'jw-run-socket-'));
    const server = await runServer({
      listen: '127.0.0.1:0',
      dataDir,
      insecureHttp: true,
      runWithoutToken: true,
      adminRunAs: 'root',
      logStream: new PassThrough(),
    });
    try {
      const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = request(
          {
            socketPath: server.socketPath!,
            path: '/run',
            method: 'POST',
            // What clients of a Unix socket send (Go's, Python's requests-unixsocket): no host of this machine.
            headers: { host: 'unix', 'content-type': 'application/json' },
          },
          (res) => {
            let body = '';
            res.on('data', (c: Buffer) => (body += c));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
          },
        );
        req.on('error', reject);
        req.end(JSON.stringify({ command: 'sh', args: ['-c', 'echo over the socket as $USER'] }));
      });
      assert.equal(answer.status, 200, answer.body);
      // As root, the pool account of its own principal: not the admin's (root here), nor the admin's pool account.
      assert.equal(answer.body, `over the socket as jw-${TOKENLESS_USER}\n`);
    } finally {
      await server.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
