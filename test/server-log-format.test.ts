import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { runServer } from '../src/main.ts';
import { formatLogLine } from '../src/server-log-format.ts';

const at = new Date(2026, 0, 2, 3, 4, 5, 67); // local time
const line = (entry: object) => JSON.stringify({ pid: 42, hostname: 'box', time: at.getTime(), ...entry });

describe('the readable server log', () => {
  it('one line per entry: local time, level, message, the fields that matter', () => {
    const plain = { color: false };
    assert.equal(
      formatLogLine(
        line({ level: 30, msg: 'jobworker listening', url: 'http://127.0.0.1:8080', dataDir: '/srv/j w' }),
        plain,
      ),
      '03:04:05.067 INFO  jobworker listening url=http://127.0.0.1:8080 dataDir="/srv/j w"',
    );
    assert.equal(
      formatLogLine(
        line({
          level: 30,
          reqId: 'req-1',
          req: { method: 'GET', url: '/v1/jobs', remoteAddress: '127.0.0.1' },
          res: { statusCode: 200 },
          responseTime: 1.94,
          msg: 'request completed',
        }),
        plain,
      ),
      '03:04:05.067 INFO  request completed GET /v1/jobs 200 1.9ms reqId=req-1',
    );
    assert.equal(
      formatLogLine(
        line({
          level: 50,
          component: 'engine',
          jobId: 'j1',
          err: { type: 'Error', message: 'disk full', stack: 'Error: disk full\n    at f (a.ts:1:2)' },
          msg: 'job supervision failed',
        }),
        plain,
      ),
      '03:04:05.067 ERROR [engine] job supervision failed jobId=j1 err: disk full\n    at f (a.ts:1:2)',
    );
  });

  it('colours the level and dims the time when asked, and never passes control characters on', () => {
    const warn = formatLogLine(line({ level: 40, msg: 'careful', n: 3 }), { color: true });
    assert.equal(warn, '\x1b[2m03:04:05.067\x1b[0m \x1b[33mWARN \x1b[0m careful \x1b[2mn=\x1b[0m3');
    const hostile = formatLogLine(line({ level: 30, msg: 'evil \x1b]0;pwned\x07', name: '\x1b[2J' }), {
      color: false,
    });
    assert.ok(!hostile.includes('\x1b'), hostile);
    assert.match(hostile, /evil \\x1b\]0;pwned\\x07 name="\\u001b\[2J"/);
  });

  it('runServer writes readable lines with logFormat pretty, JSON lines by default off a terminal, and refuses another format', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'jw-log-'));
    try {
      for (const [logFormat, pattern] of [
        ['pretty', /^\d\d:\d\d:\d\d\.\d{3} INFO {2}jobworker listening url=https:\/\/127\.0\.0\.1:\d+ /m],
        [undefined, /^\{"level":30,"time":\d+,.*"msg":"jobworker listening"\}$/m],
      ] as const) {
        let text = '';
        const logStream = new PassThrough();
        logStream.on('data', (chunk: Buffer) => {
          text += chunk.toString('utf8');
        });
        const server = await runServer({ listen: '127.0.0.1:0', dataDir, logStream, logFormat });
        await server.close();
        assert.match(text, pattern);
      }
      // To a terminal: readable and coloured by default, plain with NO_COLOR, JSON when asked.
      const noColor = process.env.NO_COLOR;
      try {
        for (const [logFormat, env, pattern] of [
          [
            undefined,
            undefined,
            /^ESC\[2m\d\d:\d\d:\d\d\.\d{3}ESC\[0m ESC\[32mINFO ESC\[0m jobworker listening /m,
          ],
          [undefined, '1', /^\d\d:\d\d:\d\d\.\d{3} INFO {2}jobworker listening /m],
          ['json', undefined, /^\{"level":30,.*"msg":"jobworker listening"\}$/m],
        ] as const) {
          if (env === undefined) delete process.env.NO_COLOR;
          else process.env.NO_COLOR = env;
          let text = '';
          const terminal = Object.assign(new PassThrough(), { isTTY: true });
          terminal.on('data', (chunk: Buffer) => {
            text += chunk.toString('utf8');
          });
          const server = await runServer({ listen: '127.0.0.1:0', dataDir, logStream: terminal, logFormat });
          await server.close();
          assert.match(text.replaceAll('\x1b', 'ESC'), pattern);
        }
      } finally {
        if (noColor === undefined) delete process.env.NO_COLOR;
        else process.env.NO_COLOR = noColor;
      }
      await assert.rejects(runServer({ listen: '127.0.0.1:0', dataDir, logFormat: 'fancy' }), {
        field: 'logFormat',
        message: 'Expected `logFormat` to be `pretty` or `json`, got `fancy`',
      });
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
