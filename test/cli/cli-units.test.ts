import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { CliContext } from '../../src/cli/cli-context.ts';
import { readCliEnvironment } from '../../src/cli/cli-env.ts';
import { parseServerUrl } from '../../src/cli/connection.ts';
import { formatAgo, formatDuration, parseDuration } from '../../src/cli/durations.ts';
import { jobExitStatus } from '../../src/cli/exit-status.ts';
import { commandLine } from '../../src/cli/job-format.ts';
import { mergeLimits } from '../../src/cli/limit-options.ts';
import { buildProgram, COMMANDS } from '../../src/cli/program.ts';
import { renderTable } from '../../src/cli/table.ts';
import type { ApiJob } from '../../src/client/api-types.ts';
import { isLoopbackUrl } from '../../src/client/connection.ts';

describe('durations', () => {
  it('parses 500ms, 10s, 5m, 1h and plain seconds', () => {
    assert.equal(parseDuration('500ms'), 500);
    assert.equal(parseDuration('10s'), 10_000);
    assert.equal(parseDuration('5m'), 300_000);
    assert.equal(parseDuration('1h'), 3_600_000);
    assert.equal(parseDuration('7'), 7000);
    assert.equal(parseDuration('1.5'), 1500);
    assert.equal(parseDuration('0'), 0);
  });

  it('rejects anything else', () => {
    for (const bad of ['', 'abc', '-1s', '10 s', '1d', '5sec', '1e3', 's']) {
      assert.throws(() => parseDuration(bad), /Expected a duration/, bad);
    }
  });

  it('formats durations and relative times', () => {
    assert.equal(formatDuration(850), '850ms');
    assert.equal(formatDuration(4250), '4.2s');
    assert.equal(formatDuration(12_000), '12s');
    assert.equal(formatDuration(185_000), '3m 05s');
    assert.equal(formatDuration(7_380_000), '2h 03m');
    assert.equal(formatDuration(3 * 86_400_000 + 4 * 3_600_000), '3d 04h');
    const now = new Date('2025-01-01T12:00:00Z');
    assert.equal(formatAgo(new Date('2025-01-01T12:00:00.500Z'), now), 'just now');
    assert.equal(formatAgo(new Date('2025-01-01T11:59:48Z'), now), '12s ago');
    assert.equal(formatAgo(new Date('2025-01-01T11:57:00Z'), now), '3m ago');
    assert.equal(formatAgo(new Date('2024-12-29T12:00:00Z'), now), '3d ago');
  });
});

describe('exit status of a followed job', () => {
  const job = (fields: Partial<ApiJob>) =>
    ({ status: 'failed', exitCode: null, signal: null, ...fields }) as ApiJob;
  it('is like docker run', () => {
    assert.equal(jobExitStatus(job({ status: 'succeeded', exitCode: 0 })), 0);
    assert.equal(jobExitStatus(job({ exitCode: 3 })), 3);
    assert.equal(jobExitStatus(job({ signal: 'SIGKILL' })), 137);
    assert.equal(jobExitStatus(job({ status: 'stopped', signal: 'SIGTERM' })), 143);
    assert.equal(jobExitStatus(job({ status: 'stopped', exitCode: 0 })), 1);
    assert.equal(jobExitStatus(job({ reason: 'command not found: nope' })), 1);
  });
});

describe('server address', () => {
  it('accepts http(s) URLs only and knows loopback hosts', () => {
    assert.equal(parseServerUrl('http://127.0.0.1:9000', false).href, 'http://127.0.0.1:9000/');
    assert.throws(() => parseServerUrl('127.0.0.1:9000', false), /--server/);
    assert.throws(() => parseServerUrl('ftp://x', true), /JOBWORKER_URL/);
    for (const url of [
      'http://127.0.0.1:1',
      'http://127.1.2.3',
      'http://localhost:8080',
      'http://[::1]:80',
    ]) {
      assert.ok(isLoopbackUrl(new URL(url)), url);
    }
    for (const url of ['http://10.0.0.1', 'http://example.com', 'http://[::2]']) {
      assert.ok(!isLoopbackUrl(new URL(url)), url);
    }
  });

  it('refuses plain http:// to another machine: the token would cross the network in clear text', () => {
    assert.throws(
      () => parseServerUrl('http://jobs.example.com:8080', false),
      /Expected --server to be an https:\/\/ URL for a server on another machine.*clear text/,
    );
    assert.throws(() => parseServerUrl('http://10.0.0.1', true), /JOBWORKER_URL/);
    assert.equal(
      parseServerUrl('https://jobs.example.com:8080', false).href,
      'https://jobs.example.com:8080/',
    );
    assert.equal(parseServerUrl('http://localhost:8080', false).href, 'http://localhost:8080/');
  });
});

describe('formatting', () => {
  it('quotes a command line like a shell user would type it, with no control characters', () => {
    const job = {
      command: 'echo',
      args: ['a b', "it's", 'x\x1b]0;t\x07'],
      shell: false,
    } as unknown as ApiJob;
    assert.equal(commandLine(job), `echo 'a b' 'it'\\''s' 'x\\x1b]0;t\\x07'`);
    assert.equal(
      commandLine({ command: 'ls -l | wc', args: [], shell: true } as unknown as ApiJob),
      'ls -l | wc',
    );
  });

  it('cuts shrinkable columns so that lines fit the width', () => {
    const table = renderTable(
      [{ header: 'ID' }, { header: 'COMMAND', shrink: true }],
      [['abc', 'a very long command line that does not fit']],
      { maxWidth: 20 },
    );
    assert.deepEqual(table.split('\n'), ['ID   COMMAND', 'abc  a very long co…', '']);
    const columns = [{ header: 'ID' }, { header: 'LONG', optional: true }, { header: 'C', shrink: true }];
    const cells = [['0123456789', 'optional', 'command words']];
    assert.deepEqual(renderTable(columns, cells, { maxWidth: 22 }).split('\n'), [
      'ID          C',
      '0123456789  command…',
      '',
    ]);
    assert.deepEqual(renderTable(columns, cells, { maxWidth: 6 }).split('\n'), ['ID', '01234…', '']);
    assert.deepEqual(renderTable(columns, cells).split('\n')[1], '0123456789  optional  command words');
  });

  it('prints every cell as printable text: a control character from the server cannot reach the terminal', () => {
    const table = renderTable(
      [{ header: 'URL' }, { header: 'STATE' }],
      [
        ['https://h/\u001b]0;owned\u0007', 'active'],
        ['x\r\ny', '\u009b2J'],
      ],
    );
    // biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
    assert.doesNotMatch(table, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/);
    assert.deepEqual(table.split('\n'), [
      'URL                         STATE',
      'https://h/\\x1b]0;owned\\x07  active',
      'x\\r\\ny                      \\x9b2J',
      '',
    ]);
  });
});

describe('limits merged by queue set and user set-limits', () => {
  it('keeps the IO limits a flag does not name', () => {
    const M = 1024 * 1024;
    assert.deepEqual(mergeLimits({ memory: M, io: { readBps: 10 * M } }, { io: { writeBps: 50 * M } }), {
      memory: M,
      io: { readBps: 10 * M, writeBps: 50 * M },
    });
    assert.deepEqual(
      mergeLimits({ io: { readBps: M, device: '/dev/vda' } }, { io: { readBps: 2 * M } }),
      { io: { readBps: 2 * M, device: '/dev/vda' } },
      'the one named is replaced',
    );
  });

  it('replaces the whole IO limit when it changes from a weight to throttles or back', () => {
    assert.deepEqual(mergeLimits({ io: { readBps: 1 } }, { io: { weight: 100 } }), { io: { weight: 100 } });
    assert.deepEqual(mergeLimits({ io: { weight: 100 } }, { io: { writeBps: 1 } }), { io: { writeBps: 1 } });
    assert.deepEqual(mergeLimits(undefined, { io: { writeBps: 1 } }), { io: { writeBps: 1 } });
    assert.deepEqual(mergeLimits({ io: { writeBps: 1 }, cpu: 2 }, { pids: 5 }), {
      io: { writeBps: 1 },
      cpu: 2,
      pids: 5,
    });
  });
});

describe('the lazily loaded commands', () => {
  it('name every command and alias the whole program has: a run of one loads its module alone', async () => {
    const ctx: CliContext = {
      env: readCliEnvironment({}),
      stdout: process.stdout,
      stderr: process.stderr,
      cwd: process.cwd(),
      exitCode: 0,
      ownsProcess: false,
    };
    const program = await buildProgram(ctx, { argv: [] });
    const registered = program.commands.flatMap((c) => [c.name(), ...c.aliases()]).sort();
    const listed = COMMANDS.flatMap((c) => c.names).sort();
    assert.deepEqual(listed, registered);
  });

  it("loads only the command named after the program's options, and every one when it cannot tell", async () => {
    const ctx: CliContext = {
      env: readCliEnvironment({}),
      stdout: process.stdout,
      stderr: process.stderr,
      cwd: process.cwd(),
      exitCode: 0,
      ownsProcess: false,
    };
    const loaded = async (argv: string[]) =>
      (await buildProgram(ctx, { argv })).commands.map((command) => command.name());
    assert.deepEqual(await loaded(['status', 'ID']), ['status']);
    assert.deepEqual(await loaded(['--json', '--address=h:1', '--ca', 'ca.pem', 'status', 'ID']), ['status']);
    assert.deepEqual(await loaded(['--debug', '--cert', 'c.pem', '--key', 'k.pem', 'ls', 'done']), ['list']);
    const all = (await loaded([])).length;
    assert.equal((await loaded(['--json', '--help'])).length, all);
    assert.equal((await loaded(['--json', 'statu', 'ID'])).length, all);
    // `--ca status`: "status" is the CA file, so no command is named.
    assert.equal((await loaded(['--ca', 'status'])).length, all);
  });
});
