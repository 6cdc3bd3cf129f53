import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { ApiJob } from '../../src/client/api-types.ts';
import { trustServerCa } from '../helpers/trust-server.ts';
import { killProcessGroup, pidAlive } from '../helpers/wait.ts';
import { baseEnv, CliProcess, jobworker, jobworkerJson, LAUNCHER } from './cli-harness.ts';

const dirs: string[] = [];
after(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true, maxRetries: 10 });
});
const tempDir = async () => {
  const dir = await mkdtemp(join(tmpdir(), 'jw-serve-'));
  dirs.push(dir);
  return dir;
};

describe('jobworker serve', () => {
  it('starts, answers /healthz, and exits 0 on SIGTERM leaving running jobs running', async () => {
    const dataDir = await tempDir();
    const serve = new CliProcess(
      ['serve', '--listen', '127.0.0.1:0', '--data-dir', dataDir, '--json'],
      baseEnv(),
      LAUNCHER,
    );
    const ready = await serve.waitUntil((stdout) => {
      try {
        JSON.parse(stdout);
        return true;
      } catch {
        return false;
      }
    }, 'its address as JSON');
    const where = JSON.parse(ready) as {
      url: string;
      dataDir: string;
      adminTokenFile: string;
      caFile: string;
    };
    assert.equal(where.adminTokenFile, join(dataDir, 'admin.token'));
    assert.equal(where.caFile, join(dataDir, 'tls', 'ca.pem'));
    assert.match(where.url, /^https:/);
    trustServerCa(where.caFile);
    const health = await fetch(new URL('healthz', where.url));
    assert.equal(health.status, 200);

    // The server is reached over its socket in the data directory, with the admin token found
    // there: nothing else to configure.
    const env = baseEnv({ JOBWORKER_DATA_DIR: dataDir });
    const job = await jobworkerJson<ApiJob>(['start', '--', 'sh', '-c', 'echo up; exec sleep 600'], env);
    const follower = new CliProcess(['logs', '-f', job.id], env);
    await follower.waitForStdout('up\n');
    follower.child.kill('SIGINT');
    const interrupted = await follower.result();
    assert.equal(interrupted.code, 130, 'Ctrl-C stops following');
    assert.match(interrupted.stderr, /keeps running/);
    const { pid } = await jobworkerJson<ApiJob>(['status', job.id], env);
    assert.ok(pid !== null && (await pidAlive(pid)));

    serve.child.kill('SIGTERM');
    const exited = await serve.result();
    assert.equal(exited.code, 0, exited.stderr);
    try {
      assert.ok(await pidAlive(pid), 'the job outlived the server');
    } finally {
      killProcessGroup(pid);
    }
  });

  it('runs through a symlink to the launcher, as the workerctl name', async () => {
    const link = join(await tempDir(), 'workerctl');
    await symlink(LAUNCHER, link);
    const version = new CliProcess(['--version'], baseEnv(), link);
    const result = await version.result();
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^\d+\.\d+\.\d+\n$/);
    const usage = await jobworker(['serve', '--nope'], baseEnv());
    assert.equal(usage.code, 2);
  });

  it('a bad --listen, --insecure-http off loopback, --log-level, --output-cap or --max-queues is a usage error: one line, exit 2, nothing left running', async () => {
    const dataDir = await tempDir();
    for (const [args, pattern] of [
      [['--listen', '0.0.0.0:8080', '--insecure-http'], /Refusing to serve plain HTTP on 0\.0\.0\.0:8080/],
      [['--listen', 'nowhere'], /Expected `listen` to be an address/],
      [['--log-level', 'loud'], /logLevel/],
      [['--log-format', 'fancy'], /Expected `logFormat` to be `pretty` or `json`, got `fancy`/],
      [['--output-cap', '10'], /outputCap.*64K/],
      [
        ['--max-queues', '0'],
        /Expected `maxQueues` to be a whole number of queues from 1 to 1000000, or none, got `0`/,
      ],
    ] as const) {
      const result = await jobworker(['serve', '--data-dir', dataDir, ...args], baseEnv());
      assert.equal(result.code, 2, result.stderr);
      assert.equal(result.stderr.trimEnd().split('\n').length, 1, result.stderr);
      assert.match(result.stderr, pattern);
    }
  });
});

describe("jobworker serve and the clients' options", () => {
  it('refuses each, before or after `serve`, naming it and what serve takes instead: exit 2', async () => {
    const dataDir = await tempDir();
    // Any stdout is the server's first log line: it started, ignoring the option (the bug).
    const refused = async (args: readonly string[]) => {
      const serve = new CliProcess([...args, '--listen', '127.0.0.1:0', '--data-dir', dataDir], baseEnv());
      const served = await serve
        .waitUntil((stdout) => stdout.length > 0)
        .then(
          () => true,
          () => false,
        );
      if (served) serve.child.kill('SIGTERM');
      const result = await serve.result();
      assert.ok(!served, `${args.join(' ')} served: ${result.stdout}`);
      assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`);
      return result.stderr;
    };
    for (const [args, pattern] of [
      [['serve', '--address', '0.0.0.0:9443', '--debug'], /^jobworker: --address .* --listen HOST:PORT\n$/],
      [['serve', '--debug'], /^jobworker: --debug .* --log-level debug\n$/],
      [['--debug', 'serve'], /^jobworker: --debug .* --log-level debug\n$/],
      [['serve', '--server', 'https://127.0.0.1:9443'], /^jobworker: --server .* --listen HOST:PORT/],
      [['--ca', 'ca.pem', 'serve'], /^jobworker: --ca .* --client-ca FILE\n$/],
      [
        ['serve', '--cert', 'c.pem', '--key', 'k.pem'],
        /^jobworker: --cert .* --tls-cert FILE with --tls-key FILE\n$/,
      ],
      [['serve', '--key', 'k.pem'], /^jobworker: --key .* --tls-cert FILE with --tls-key FILE\n$/],
    ] as const) {
      assert.match(await refused(args), pattern);
    }
    // With --json the one document on stdout would be the server's address: the error is on stderr.
    const json = await refused(['serve', '--json', '--address', '0.0.0.0:9443']);
    assert.equal(JSON.parse(json).error.code, 'USAGE');
  });

  it("leaves them out of serve's help, and says what it takes instead", async () => {
    const help = await jobworker(['serve', '--help'], baseEnv());
    assert.equal(help.code, 0);
    const options = help.stdout.slice(help.stdout.indexOf('Options:'));
    for (const flag of ['--server', '--address', '--ca ', '--cert', '--key ', '--debug']) {
      assert.ok(!options.includes(flag), `${flag} in ${options}`);
    }
    assert.match(options, /--json/);
    assert.match(help.stdout.replace(/\s+/g, ' '), /--debug are not serve's/);
  });
});

describe('jobworker serve --store with a password', () => {
  it('warns that the password shows in its command line, and names the ways that do not', async () => {
    const dataDir = await tempDir();
    // Nothing listens on port 1: the start fails after the warning, with nothing left running.
    const result = await jobworker(
      ['serve', '--data-dir', dataDir, '--store', 'postgres://jw:s3cret@127.0.0.1:1/jobworker'],
      baseEnv(),
    );
    assert.notEqual(result.code, 0);
    assert.match(
      result.stderr,
      /warning: the --store URL holds a password, which every local user and every job can read .*\$JOBWORKER_STORE/,
    );
    assert.doesNotMatch(result.stderr, /s3cret/, 'the password itself is not repeated');
  });
});

describe('jobworker serve on a terminal', () => {
  it('prints log lines a person reads, in colour', async () => {
    const dataDir = await tempDir();
    const quote = (word: string) => `'${word.replaceAll("'", `'\\''`)}'`;
    const line = [LAUNCHER, 'serve', '--listen', '127.0.0.1:0', '--data-dir', dataDir].map(quote).join(' ');
    // util-linux script(1) gives the server a pseudo-terminal as its stdout.
    const terminal = new CliProcess(['-qefc', line, '/dev/null'], baseEnv(), 'script');
    await terminal.waitForStdout('jobworker listening');
    const { pid } = JSON.parse(await readFile(join(dataDir, 'server.pid'), 'utf8')) as { pid: number };
    assert.ok(Number.isSafeInteger(pid) && pid > 1, `server.pid names a process: ${String(pid)}`);
    process.kill(pid, 'SIGTERM');
    const { code, stdout } = await terminal.result();
    assert.equal(code, 0, stdout);
    assert.match(
      stdout.replaceAll('\x1b', 'ESC'),
      /^ESC\[2m\d\d:\d\d:\d\d\.\d{3}ESC\[0m ESC\[32mINFO ESC\[0m jobworker listening ESC\[2murl=/m,
    );
    assert.ok(!stdout.includes('{"level"'), 'no JSON on a terminal');
  });
});
