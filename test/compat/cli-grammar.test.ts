import assert from 'node:assert/strict';
import { mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ApiJob } from '../../src/client/api-types.ts';
import { CliProcess, LAUNCHER, startTestServer, type TestServer } from '../cli/cli-harness.ts';
import { runCliInProcess } from '../cli/cli-in-process.ts';

const ID = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$/;

let t: TestServer;
let links: string;
before(async () => {
  t = await startTestServer();
  links = await mkdtemp(join(tmpdir(), 'jw-cli-names-'));
  for (const name of ['worker-cli', 'workerctl']) await symlink(LAUNCHER, join(links, name));
});
after(async () => {
  await t.close();
  await rm(links, { recursive: true, force: true });
});

const cli = (args: readonly string[], extra: NodeJS.ProcessEnv = {}) =>
  runCliInProcess(args, { ...t.env, ...extra });
const asWorkerctl = { JOBWORKER_INVOKED_AS: 'workerctl' };
const started = async (args: readonly string[]) => {
  const res = await cli(['start', ...args]);
  assert.equal(res.code, 0, res.stderr);
  return res.stdout.trim();
};
const ended = (id: string) => cli(['logs', '-f', id]);

describe("the Job Worker design's CLI grammar", () => {
  it('start -- <command>... and (stop|status|output) <jobId>', async () => {
    const id = await started(['--', 'sh', '-c', 'echo out; echo err >&2']);
    assert.match(id, ID);
    await ended(id);
    const output = await cli(['output', id]);
    assert.equal(output.code, 0);
    assert.equal(output.stdout, 'out\n');
    assert.equal(output.stderr, 'err\n');
    const status = await cli(['status', id]);
    assert.match(status.stdout, /succeeded/);
    const stop = await cli(['stop', id]);
    assert.equal(stop.code, 1);
    assert.match(stop.stderr, /had already finished \(succeeded\); nothing changed/);
  });

  it('logs (all|stdout|stderr) <jobId> [--follow], and the old logs ID --stdout -f', async () => {
    const id = await started(['--', 'sh', '-c', 'echo out; echo err >&2']);
    const followed = await cli(['logs', 'stdout', id, '--follow']);
    assert.equal(followed.code, 0);
    assert.equal(followed.stdout, 'out\n');
    assert.equal((await cli(['logs', 'stderr', id])).stdout, 'err\n');
    const all = await cli(['logs', 'all', id]);
    assert.deepEqual([all.stdout, all.stderr], ['out\n', 'err\n']);
    assert.equal((await cli(['logs', id, '--stdout', '-f'])).stdout, 'out\n');
    const wrong = await cli(['logs', 'everything', id]);
    assert.equal(wrong.code, 2);
    assert.match(wrong.stderr, /Expected `logs \[all\|stdout\|stderr\] <job>`, got "everything"/);
    const twice = await cli(['logs', 'stdout', id, '--stderr']);
    assert.equal(twice.code, 2);
  });

  it('list (all|running|failed|cancelled|done), and list --status', async () => {
    const ok = await started(['--', 'true']);
    const bad = await started(['--', 'false']);
    const long = await started(['--', 'sleep', '30']);
    const stopped = await started(['--', 'sleep', '30']);
    await cli(['stop', stopped]);
    await Promise.all([ended(ok), ended(bad), ended(stopped)]);
    const ids = async (...args: string[]) => {
      const res = await cli(['--json', 'list', ...args, '--limit', '1000']);
      assert.equal(res.code, 0, res.stderr);
      return (JSON.parse(res.stdout) as { jobs: ApiJob[] }).jobs.map((j) => j.id);
    };
    const all = await ids('all');
    for (const id of [ok, bad, long, stopped]) assert.ok(all.includes(id));
    assert.ok((await ids('running')).includes(long));
    assert.ok(!(await ids('running')).includes(ok));
    const failed = await ids('failed');
    assert.ok(failed.includes(bad) && !failed.includes(ok));
    const cancelled = await ids('cancelled');
    assert.ok(cancelled.includes(stopped) && !cancelled.includes(bad));
    const done = await ids('done');
    assert.ok([ok, bad, stopped].every((id) => done.includes(id)) && !done.includes(long));
    assert.deepEqual(await ids('--status', 'running'), await ids('running'));
    await cli(['stop', long]);
    const wrong = await cli(['list', 'finished']);
    assert.equal(wrong.code, 2);
    assert.match(
      wrong.stderr,
      /Expected the filter to be one of all, running, failed, cancelled, done, got "finished"/,
    );
  });

  it('--address host:port is https to that address; --debug says where and what', async () => {
    const { host } = new URL(t.server.url);
    const env = { JOBWORKER_URL: '' };
    const id = await started(['--', 'true']);
    const res = await cli(['--debug', `--address=${host}`, `--ca=${t.server.caFile}`, 'status', id], env);
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, new RegExp(id));
    assert.match(res.stderr, new RegExp(`debug: server https://${host.replace(/\./g, '\\.')};`));
    assert.match(res.stderr, /debug: GET \/v1\/jobs\/[0-9a-f-]+ -> 200/);
    const bad = await cli(['--address', 'nowhere', 'status', id], env);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /Expected --address to be host:port, such as 127\.0\.0\.1:8080, got "nowhere"/);
    const both = await cli(['--address', host, '--server', t.server.url, 'status', id]);
    assert.equal(both.code, 2);
    assert.match(both.stderr, /Give --server or --address, not both/);
  });

  it("refuses milestone 5's --health, --start, --stop and --status, saying what to use instead", async () => {
    for (const [args, instead] of [
      [['--health'], /\/health\//],
      [['--start', '--', 'echo', 'hi'], /use `start -- COMMAND/],
      [['--address=127.0.0.1:1', '--stop', 'ID'], /use `stop JOB`/],
      [['--status', 'ID'], /use `status JOB`/],
    ] as const) {
      const res = await cli(args);
      assert.equal(res.code, 2, res.stderr);
      assert.match(
        res.stderr,
        new RegExp(
          `^jobworker: ${args.find((a) => /^--(health|start|stop|status)$/.test(a))} is the Job Worker design's flag`,
        ),
      );
      assert.match(res.stderr, instead);
    }
    // `list --status` is list's own filter, untouched.
    assert.equal((await cli(['list', '--status', 'running'])).code, 0);
  });

  it('unknown job and bad id are errors', async () => {
    const unknown = await cli(['status', '01900000-0000-7000-8000-000000000000']);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /No job with id 01900000-0000-7000-8000-000000000000/);
    assert.equal((await cli(['output', '01900000-0000-7000-8000-000000000000'])).code, 1);
  });
});

describe("the workerctl design's CLI forms", () => {
  it('start "ls -l", status and stop print jobID and status; status shows the output', async () => {
    const start = await cli(['start', 'echo hello; echo oops >&2'], asWorkerctl);
    assert.equal(start.code, 0, start.stderr);
    const [, jobID] = /^jobID: (\S+)\nstatus: created\n$/.exec(start.stdout) ?? [];
    assert.match(jobID ?? '', ID);
    await ended(jobID!);
    const status = await cli(['status', jobID!], asWorkerctl);
    assert.equal(status.stdout, `jobID: ${jobID}\nstatus: finished\noutput:\nhello\noops\n`);

    const long = await cli(['start', 'sleep 30'], asWorkerctl);
    const longId = /^jobID: (\S+)/.exec(long.stdout)![1]!;
    const stop = await cli(['stop', longId], asWorkerctl);
    assert.equal(stop.stdout, `jobID: ${longId}\nstatus: stopped\n`);
    await ended(longId);
    assert.match(
      (await cli(['status', longId], asWorkerctl)).stdout,
      /^jobID: \S+\nstatus: stopped\noutput:\n$/,
    );
    const again = await cli(['stop', longId], asWorkerctl);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /already finished \(stopped\)/);
  });

  it('jobworker keeps printing the bare id', async () => {
    assert.match((await cli(['start', 'true'])).stdout, /^[0-9a-f-]{36}\n$/);
  });
});

describe('the installed names, as real processes', () => {
  it('worker-cli start -- sh -c "/bin/bash" starts a job (it ends at once: no terminal)', async () => {
    const res = await new CliProcess(
      ['start', '--', 'sh', '-c', '/bin/bash'],
      t.env,
      join(links, 'worker-cli'),
    ).result();
    assert.equal(res.code, 0, res.stderr);
    const id = res.stdout.trim();
    assert.match(id, ID);
    const end = await ended(id);
    assert.equal(end.code, 0, 'bash reads EOF from /dev/null and exits 0');
  });

  it('workerctl prints its own form; worker-cli takes the docopt grammar', async () => {
    const res = await new CliProcess(['start', 'ls -l'], t.env, join(links, 'workerctl')).result();
    assert.match(res.stdout, /^jobID: \S+\nstatus: created\n$/, res.stderr);
    const id = /^jobID: (\S+)/.exec(res.stdout)![1]!;
    await ended(id);
    const logs = await new CliProcess(['logs', 'all', id], t.env, join(links, 'worker-cli')).result();
    assert.equal(logs.code, 0, logs.stderr);
    const version = await new CliProcess(['--version'], t.env, join(links, 'worker-cli')).result();
    assert.match(version.stdout, /^\d+\.\d+\.\d+\n$/);
  });
});
