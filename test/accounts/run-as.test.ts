import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { UID_POOL } from '../../src/accounts/uid-pool.ts';
import { outputPaths } from '../../src/output/output-files.ts';
import { type ApiHarness, addUserToken, type JobJson, openApi, rawGet } from '../api/api-harness.ts';
import { baseEnv } from '../cli/cli-harness.ts';
import { runCliInProcess } from '../cli/cli-in-process.ts';
import { spySpawns } from '../helpers/spawn-spy.ts';

/**
 * Jobs run as their owner's OS account (docs/security.md, "What a job can reach"), with real uids:
 * this suite runs as root, as the server must to switch accounts. Admin jobs here use the pool
 * too (`adminRunAs: undefined`), as they do on a server started without `--admin-run-as`.
 */

interface Job extends JobJson {
  account: { name: string; uid: number; gid: number } | null;
}

interface Ran {
  readonly job: Job;
  readonly stdout: string;
  readonly stderr: string;
}

let h: ApiHarness;
let alice: Record<string, string>;
let bob: Record<string, string>;

before(async () => {
  h = await openApi(undefined, { adminRunAs: undefined });
  alice = { authorization: `Bearer ${await addUserToken(h, 'alice')}` };
  bob = { authorization: `Bearer ${await addUserToken(h, 'bob')}` };
});
after(() => h.destroy());

async function submit(spec: object, headers?: Record<string, string>): Promise<Job> {
  const { status, body } = await h.json<Job>('/v1/jobs', { body: spec, ...(headers ? { headers } : {}) });
  assert.equal(status, 201, JSON.stringify(body));
  return body;
}

/** Runs a job to its end: the job as it ended and what it wrote. */
async function run(spec: object, headers?: Record<string, string>): Promise<Ran> {
  const job = await submit(spec, headers);
  const auth = headers ?? {};
  const stdout = await h.api(`/v1/jobs/${job.id}/output?stream=stdout&follow=true`, { headers: auth });
  const out = await stdout.text();
  const err = await (await h.api(`/v1/jobs/${job.id}/output?stream=stderr`, { headers: auth })).text();
  const ended = await h.json<Job>(`/v1/jobs/${job.id}`, { headers: auth });
  return { job: ended.body, stdout: out, stderr: err };
}

/**
 * Runs a job to its end as `run` does, and on until the server has removed its io directory: the
 * end is on record (and a follow ends) before that, and `job:finished` is told after it.
 */
async function runToRemoval(spec: object, headers: Record<string, string>): Promise<Ran> {
  const controller = new AbortController();
  const events = await h.api('/v1/events', {
    headers: { accept: 'text/event-stream' },
    signal: controller.signal,
  });
  assert.equal(events.status, 200);
  const reader = events.body!.pipeThrough(new TextDecoderStream()).getReader();
  let text = '';
  /** Reads the stream until `seen` holds of what came. */
  const until = async (seen: () => boolean, what: string) => {
    while (!seen()) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`the event stream ended before ${what}`);
      text += value;
    }
  };
  try {
    // Watching from here on: the job's events come after this.
    await until(() => text.includes('\nevent: ready\n'), 'its ready event');
    const ran = await run(spec, headers);
    const finished = () =>
      text
        .split('\n\n')
        .some((e) => e.includes('\nevent: job:finished\n') && e.includes(`"id":"${ran.job.id}"`));
    await until(finished, `job:finished of ${ran.job.id}`);
    return ran;
  } finally {
    controller.abort();
    await reader.cancel().catch(() => undefined);
  }
}

/** Starts `sleep` as `headers`' user and resolves once it runs (it announces itself). */
async function running(headers: Record<string, string>): Promise<Job> {
  const job = await submit({ command: 'echo ready; exec sleep 600', shell: true }, headers);
  await rawGet(h.url(`/v1/jobs/${job.id}/output?stream=stdout&follow=true`), headers, (body) =>
    body.includes('ready'),
  );
  return (await h.json<Job>(`/v1/jobs/${job.id}`, { headers })).body;
}

async function stopped(job: Job, headers: Record<string, string>): Promise<Job> {
  await h.json(`/v1/jobs/${job.id}/stop`, { method: 'POST', body: { graceMs: 0 }, headers });
  await h.api(`/v1/jobs/${job.id}/output?follow=true`, { headers }).then((r) => r.text());
  return (await h.json<Job>(`/v1/jobs/${job.id}`, { headers })).body;
}

const whoAmI = 'id -u; id -g; id -G; echo "$HOME"; pwd; echo "$USER $LOGNAME"';

describe('a user job runs as its pool account', () => {
  it("its uid, gid, groups, HOME, cwd and USER are its account's, and status shows the account", async () => {
    const { job, stdout } = await run({ command: whoAmI, shell: true }, alice);
    assert.equal(job.status, 'succeeded', job.reason ?? '');
    const account = job.account!;
    assert.ok(account.uid >= UID_POOL.first && account.uid <= UID_POOL.last, `pool uid, got ${account.uid}`);
    assert.deepEqual(account, { name: 'jw-alice', uid: account.uid, gid: account.uid });
    const home = join(h.homesDir, 'alice');
    assert.equal(
      stdout,
      `${account.uid}\n${account.uid}\n${account.uid}\n${home}\n${home}\njw-alice jw-alice\n`,
    );
    assert.equal(job.cwd, home, 'the default working directory is the account home');
    const info = await stat(home);
    assert.deepEqual([info.uid, info.gid, info.mode & 0o777], [account.uid, account.uid, 0o700]);
  });

  it('different users get different uids; the same user the same uid after a restart', async () => {
    const a = (await run({ command: 'id', args: ['-u'] }, alice)).job.account!;
    const b = (await run({ command: 'id', args: ['-u'] }, bob)).job.account!;
    const admin = (await run({ command: 'id', args: ['-u'] })).job.account!;
    assert.equal(new Set([a.uid, b.uid, admin.uid]).size, 3, 'alice, bob and admin apart');
    assert.equal(admin.name, 'jw-admin', 'admin jobs run as a pool account unless asked otherwise');
    await h.restart();
    const again = await run({ command: 'id', args: ['-u'] }, alice);
    assert.equal(again.stdout, `${a.uid}\n`);
    assert.equal(again.job.account!.uid, a.uid);
    const kept = JSON.parse(await readFile(join(h.dataDir, 'accounts.json'), 'utf8')) as {
      accounts: { user: string; uid: number }[];
    };
    assert.deepEqual(kept.accounts.map(({ user, uid }) => [user, uid]).sort(), [
      ['admin', admin.uid],
      ['alice', a.uid],
      ['bob', b.uid],
    ]);
    assert.equal((await stat(join(h.dataDir, 'accounts.json'))).mode & 0o777, 0o600);
  });
});

describe("a new user's first submit", () => {
  it('refused for its spec, allocates no uid and makes no home; the first accepted one does', async () => {
    const erin = { authorization: `Bearer ${await addUserToken(h, 'erin')}` };
    const allocated = async () =>
      (
        JSON.parse(
          await readFile(join(h.dataDir, 'accounts.json'), 'utf8').catch(() => '{"accounts":[]}'),
        ) as {
          accounts: { user: string }[];
        }
      ).accounts.some((a) => a.user === 'erin');
    const home = join(h.homesDir, 'erin');
    for (const [spec, field] of [
      [{ command: 'true', onDuplicate: 'return' }, 'onDuplicate'],
      [{ command: 'no-such-command-jw' }, 'command'],
      [{ command: 'true', cwd: join(home, 'sub') }, 'cwd'],
    ] as const) {
      const refused = await h.json<{ error: { field: string } }>('/v1/jobs', { body: spec, headers: erin });
      assert.equal(refused.status, 400, JSON.stringify(refused.body));
      assert.equal(refused.body.error.field, field);
      assert.equal(await allocated(), false, `no uid after a refused ${field}`);
      await assert.rejects(stat(home), { code: 'ENOENT' }, `no home after a refused ${field}`);
    }
    // Its home, not made yet, is its default working directory all the same.
    const { job, stdout } = await run({ command: 'pwd' }, erin);
    assert.equal(job.status, 'succeeded', job.reason ?? '');
    assert.equal(stdout, `${home}\n`);
    assert.equal(await allocated(), true);
    assert.equal((await stat(home)).uid, job.account!.uid);
  });
});

describe("a removed user's pool account", () => {
  it('keeps its name from a new user, its jobs deleted too, unless the admin says reuseName', async () => {
    const carl = { authorization: `Bearer ${await addUserToken(h, 'carl')}` };
    const { job } = await run({ command: 'true' }, carl);
    assert.equal(job.account!.name, 'jw-carl');
    assert.equal((await h.json(`/v1/jobs/${job.id}`, { method: 'DELETE' })).status, 200);
    assert.equal((await h.json('/v1/users/carl', { method: 'DELETE' })).status, 200);
    // No job of carl's is left; its uid and home are.
    const refused = await h.json<{ error: { field: string; message: string } }>('/v1/users', {
      body: { name: 'carl', role: 'user' },
    });
    assert.equal(refused.status, 400);
    assert.equal(refused.body.error.field, 'name');
    assert.match(
      refused.body.error.message,
      /A user named carl, removed since, left jobs in the history or a pool account/,
    );
    const reused = await h.json('/v1/users', { body: { name: 'carl', role: 'user', reuseName: true } });
    assert.equal(reused.status, 201);
  });
});

describe('what a user job cannot reach', () => {
  it("reading admin.token, jobworker.db, another user's output or the server's environ: permission denied", async () => {
    const bobs = await run({ command: 'echo', args: ['secret of bob'] }, bob);
    assert.equal(bobs.stdout, 'secret of bob\n');
    const targets = [
      join(h.dataDir, 'admin.token'),
      join(h.dataDir, 'jobworker.db'),
      outputPaths(join(h.dataDir, 'jobs', bobs.job.id)).stdout,
      `/proc/${process.pid}/environ`,
    ];
    for (const target of targets) {
      const { job, stdout, stderr } = await run({ command: 'cat', args: [target] }, alice);
      assert.equal(job.status, 'failed', target);
      assert.equal(job.exitCode, 1, target);
      assert.equal(stdout, '', target);
      assert.match(stderr, /Permission denied/, `${target}: ${stderr}`);
    }
    const listing = await run({ command: 'ls', args: [h.dataDir] }, alice);
    assert.match(listing.stderr, /Permission denied/);
  });

  it("cannot signal another user's job (kill -0: EPERM), nor the server", async () => {
    const bobs = await running(bob);
    try {
      const { job, stderr } = await run(
        {
          command: `kill -0 ${bobs.pid} && echo reached; kill -0 ${process.pid} && echo reached`,
          shell: true,
        },
        alice,
      );
      assert.equal(job.status, 'failed');
      assert.doesNotMatch(stderr + job.reason, /reached/);
      assert.equal((stderr.match(/Operation not permitted/g) ?? []).length, 2, stderr);
    } finally {
      assert.equal((await stopped(bobs, bob)).status, 'stopped');
    }
  });

  it('the job directories, the database and the socket are owner-only (root)', async () => {
    const { job } = await run({ command: 'true' }, alice);
    for (const [path, mode] of [
      [h.dataDir, 0o700],
      [join(h.dataDir, 'jobs'), 0o700],
      [join(h.dataDir, 'jobs', job.id), 0o700],
      [join(h.dataDir, 'jobworker.db'), 0o600],
      [join(h.dataDir, 'server.sock'), 0o600],
    ] as const) {
      const info = await stat(path);
      assert.deepEqual([info.uid, info.mode & 0o777], [0, mode], path);
    }
    // Its output files are its account's (a job may reopen /dev/stdout), behind the root-only directory.
    const out = await stat(outputPaths(join(h.dataDir, 'jobs', job.id)).stdout);
    assert.equal(out.uid, job.account!.uid);
  });

  it('what a job leaves in its io directory is removed, with its own rights', async () => {
    // A tree of directories with its result and progress: all of it goes once the job ended.
    const tidy = await runToRemoval(
      {
        command:
          'd=$(dirname "$JOBWORKER_RESULT"); echo "$d"; mkdir -p "$d/tree/a/b"; echo x > "$d/tree/a/b/f"; ' +
          'echo "{\\"done\\": 1}" >> "$JOBWORKER_PROGRESS"; echo "{}" > "$JOBWORKER_RESULT"',
        shell: true,
      },
      alice,
    );
    assert.equal(tidy.job.status, 'succeeded', tidy.job.reason ?? '');
    await assert.rejects(stat(tidy.stdout.trim()), { code: 'ENOENT' });

    // What it made read-only to itself goes too (a tool's cache, chmod -R a-w): it is its own.
    const locked = await runToRemoval(
      {
        command:
          'd=$(dirname "$JOBWORKER_RESULT"); echo "$d"; mkdir -p "$d/locked/in"; echo x > "$d/locked/in/f"; ' +
          'chmod -R a-w "$d/locked"; mkdir "$d/result.json"',
        shell: true,
      },
      alice,
    );
    assert.equal(locked.job.status, 'succeeded', locked.job.reason ?? '');
    await assert.rejects(stat(locked.stdout.trim()), { code: 'ENOENT' });

    // Files, directories, one closed to itself (chmod 000), links to root's files outside: all of
    // it goes, what the links point to stays, and the server forks nothing for it (the spawner,
    // running since the jobs above, walks it in a child of its own).
    const outside = await mkdtemp(join(tmpdir(), 'jw-run-as-outside-'));
    try {
      await writeFile(join(outside, 'secret'), 'root only', { mode: 0o600 });
      const spy = spySpawns();
      let left: Ran;
      try {
        left = await runToRemoval(
          {
            command:
              'd=$(dirname "$JOBWORKER_RESULT"); echo "$d"; mkdir -p "$d/t/u"; echo x > "$d/t/u/f"; echo y > "$d/f"; ' +
              'ln -s "$1/secret" "$d/link"; ln -s "$1" "$d/t/dirlink"; mkdir "$d/closed"; echo z > "$d/closed/f"; ' +
              'chmod 000 "$d/closed"',
            args: [outside],
            shell: true,
          },
          alice,
        );
      } finally {
        spy.restore();
      }
      assert.equal(left.job.status, 'succeeded', left.job.reason ?? '');
      await assert.rejects(stat(left.stdout.trim()), { code: 'ENOENT' });
      assert.equal(await readFile(join(outside, 'secret'), 'utf8'), 'root only');
      assert.deepEqual(spy.calls, [], 'the server started no process');
    } finally {
      await rm(outside, { recursive: true, force: true });
    }
  });

  it('a job that reopens its own stdout by path (tee /dev/stdout) can', async () => {
    const { job, stdout } = await run({ command: 'echo hi | tee -a /dev/stdout', shell: true }, alice);
    assert.equal(job.status, 'succeeded', job.reason ?? '');
    assert.equal(stdout, 'hi\nhi\n');
  });
});

describe('root, only for admins who ask', () => {
  it('runAsRoot from an admin runs as root; from a user it is refused on the field', async () => {
    const root = await run({ command: 'id', args: ['-u'], runAsRoot: true });
    assert.equal(root.stdout, '0\n');
    assert.deepEqual(root.job.account, { name: 'root', uid: 0, gid: 0 });
    const refused = await h.json<{ error: { code: string; field: string; message: string } }>('/v1/jobs', {
      body: { command: 'id', runAsRoot: true },
      headers: alice,
    });
    assert.equal(refused.status, 403);
    assert.deepEqual(
      { code: refused.body.error.code, field: refused.body.error.field },
      { code: 'FORBIDDEN', field: 'runAsRoot' },
    );
    const bad = await h.json<{ error: { code: string; field: string } }>('/v1/jobs', {
      body: { command: 'id', runAsRoot: 'yes' },
    });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.field, 'runAsRoot');
  });
});

describe('root, checked again at the launch', () => {
  it("a queued root job of an admin demoted meanwhile fails to start, saying why; an admin's runs", async () => {
    const carol = { authorization: `Bearer ${await addUserToken(h, 'carol', 'admin')}` };
    const queue = 'root-later';
    assert.equal((await h.json(`/v1/queues/${queue}/pause`, { method: 'POST' })).status, 200);
    const demoted = await submit({ command: 'id', args: ['-u'], runAsRoot: true, queue }, carol);
    const kept = await submit({ command: 'id', args: ['-u'], runAsRoot: true, queue });
    assert.deepEqual(demoted.account, { name: 'root', uid: 0, gid: 0 }, 'chosen at the submit of an admin');
    const patched = await h.json(`/v1/users/carol`, { method: 'PATCH', body: { role: 'user' } });
    assert.equal(patched.status, 200, JSON.stringify(patched.body));
    assert.equal((await h.json(`/v1/queues/${queue}/resume`, { method: 'POST' })).status, 200);
    const ended = async (id: string) => {
      await h.api(`/v1/jobs/${id}/output?follow=true`).then((r) => r.text());
      return (await h.json<Job>(`/v1/jobs/${id}`)).body;
    };
    const failed = await ended(demoted.id);
    assert.equal(failed.status, 'failed');
    assert.equal(failed.pid, null, 'it never ran');
    assert.match(failed.reason ?? '', /runs as root.*owner carol is no longer an admin/);
    const ran = await ended(kept.id);
    assert.equal(ran.status, 'succeeded', ran.reason ?? '');
  });
});

describe('the CLI', () => {
  it('start --as-root runs an admin job as root, status shows the account; a user is refused', async () => {
    const env = (token: string) => baseEnv({ JOBWORKER_URL: h.url(''), JOBWORKER_TOKEN: token });
    const started = await runCliInProcess(['start', '--json', '--as-root', '--', 'id', '-u'], env(h.token));
    assert.equal(started.code, 0, started.stderr);
    const job = JSON.parse(started.stdout) as Job;
    await h.api(`/v1/jobs/${job.id}/output?follow=true`).then((r) => r.text());
    const status = await runCliInProcess(['status', job.id], env(h.token));
    assert.match(status.stdout, /^Account +root \(uid 0, gid 0\)$/m);
    const pooled = await run({ command: 'true' }, alice);
    const shown = await runCliInProcess(['status', pooled.job.id], env(h.token));
    const { uid } = pooled.job.account!;
    assert.match(shown.stdout, new RegExp(`^Account +jw-alice \\(uid ${uid}, gid ${uid}\\)$`, 'm'));

    const aliceToken = alice.authorization!.slice('Bearer '.length);
    const refused = await runCliInProcess(['start', '--as-root', '--', 'id'], env(aliceToken));
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /Only an admin may run a job as root/);
  });
});

describe("what a submit tells of paths the job's account cannot reach", () => {
  it('a working directory or a command behind a directory it may not search: the same answer, there or not', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'jw-root-only-')); // 0700, root's
    try {
      await mkdir(join(dir, 'sub'));
      await writeFile(join(dir, 'tool'), '#!/bin/sh\n', { mode: 0o755 });
      const refusal = async (spec: object) => {
        const res = await h.json<{ error: { code: string; field: string; message: string } }>('/v1/jobs', {
          body: spec,
          headers: alice,
        });
        assert.equal(res.status, 400);
        return res.body.error;
      };
      // The owner learns only that its account cannot go there: not whether `sub` exists.
      const there = await refusal({ command: 'true', cwd: join(dir, 'sub') });
      const missing = await refusal({ command: 'true', cwd: join(dir, 'nothing') });
      assert.equal(there.field, 'cwd');
      assert.equal(there.message.replace('sub', 'X'), missing.message.replace('nothing', 'X'));
      assert.match(there.message, new RegExp(`\\(${dir} is not searchable by it\\)`));
      // Nor whether a program is there: both are not found (the account could run neither).
      const tool = await refusal({ command: join(dir, 'tool') });
      const none = await refusal({ command: join(dir, 'none') });
      assert.deepEqual([tool.code, none.code], ['COMMAND_NOT_FOUND', 'COMMAND_NOT_FOUND']);
      assert.equal(tool.message.replace('tool', 'X'), none.message.replace('none', 'X'));
      // Nor through a link in a directory it may search, into the one it may not.
      const links = await mkdtemp(join(tmpdir(), 'jw-links-'));
      try {
        await chmod(links, 0o755);
        await symlink(dir, join(links, 'into'));
        const viaThere = await refusal({ command: 'true', cwd: join(links, 'into', 'sub') });
        const viaMissing = await refusal({ command: 'true', cwd: join(links, 'into', 'nothing') });
        assert.equal(viaThere.message.replace('sub', 'X'), viaMissing.message.replace('nothing', 'X'));
        assert.match(viaThere.message, new RegExp(`\\(${dir} is not searchable by it\\)`));
        const viaTool = await refusal({ command: join(links, 'into', 'tool') });
        const viaNone = await refusal({ command: join(links, 'into', 'none') });
        assert.deepEqual([viaTool.code, viaNone.code], ['COMMAND_NOT_FOUND', 'COMMAND_NOT_FOUND']);
      } finally {
        await rm(links, { recursive: true, force: true });
      }
      // Root may reach both: an admin's root job is told what is there.
      const rooted = await h.json<Job>('/v1/jobs', { body: { command: join(dir, 'tool'), runAsRoot: true } });
      assert.equal(rooted.status, 201, JSON.stringify(rooted.body));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('a working directory the account cannot enter', () => {
  it('is refused at submit, naming `cwd`, the account and the directory, with nothing created', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'jw-root-only-')); // 0700, root's
    try {
      const before = (await h.json<{ jobs: Job[] }>('/v1/jobs?limit=200', { headers: alice })).body.jobs
        .length;
      const refused = await h.json<{ error: { code: string; field: string; message: string } }>('/v1/jobs', {
        body: { command: 'touch', args: ['ran'], cwd: dir },
        headers: alice,
      });
      assert.equal(refused.status, 400);
      assert.equal(refused.body.error.field, 'cwd');
      assert.match(
        refused.body.error.message,
        new RegExp(
          `run as jw-alice, which cannot enter its working directory ${dir} \\(${dir} is not searchable`,
        ),
      );
      const after = (await h.json<{ jobs: Job[] }>('/v1/jobs?limit=200', { headers: alice })).body.jobs
        .length;
      assert.equal(after, before, 'no job was created');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('fails the start with the directory, the account and the reason when it closed after submit', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'jw-closing-'));
    await chmod(dir, 0o755);
    try {
      // Held in a paused queue while the directory closes: the wrapper's chdir, as the account, decides.
      assert.equal((await h.json('/v1/queues/closing/pause', { method: 'POST' })).status, 200);
      const job = await submit({ command: 'touch', args: ['ran'], cwd: dir, queue: 'closing' }, alice);
      await chmod(dir, 0o700);
      assert.equal((await h.json('/v1/queues/closing/resume', { method: 'POST' })).status, 200);
      await h.api(`/v1/jobs/${job.id}/output?follow=true`, { headers: alice }).then((r) => r.text());
      const ended = (await h.json<Job>(`/v1/jobs/${job.id}`, { headers: alice })).body;
      assert.equal(ended.status, 'failed');
      assert.equal(
        ended.reason,
        `could not enter its working directory ${dir} as jw-alice: Permission denied`,
      );
      await assert.rejects(stat(join(dir, 'ran')), { code: 'ENOENT' });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('stop, pause, timeout and adoption of jobs under other uids', () => {
  it('a pool job is paused, resumed, timed out, adopted after a restart and stopped', async () => {
    const paused = await running(alice);
    const frozen = await h.json<Job>(`/v1/jobs/${paused.id}/pause`, { method: 'POST', headers: alice });
    assert.equal(frozen.body.status, 'paused');
    const thawed = await h.json<Job>(`/v1/jobs/${paused.id}/resume`, { method: 'POST', headers: alice });
    assert.equal(thawed.body.status, 'running');
    await h.restart();
    const adopted = await h.json<Job>(`/v1/jobs/${paused.id}`, { headers: alice });
    assert.equal(adopted.body.status, 'running');
    assert.equal((await stopped(paused, alice)).status, 'stopped');

    const timed = await run({ command: 'sleep', args: ['600'], timeoutMs: 200 }, alice);
    assert.equal(timed.job.status, 'timed_out');
  });
});
