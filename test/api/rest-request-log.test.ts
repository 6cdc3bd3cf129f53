import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { LOG_SERIALIZERS } from '../../src/api/rest/log-serializers.ts';
import { type Harness, openHarness } from '../helpers/engine-harness.ts';
import { openApp } from '../helpers/rest-app-harness.ts';

/** Requests are logged at debug only (off the hot path at info); error answers still are at info. */
describe('request logs', () => {
  let h: Harness;
  before(async () => {
    h = await openHarness();
  });
  after(() => h.destroy());

  /** An app logging at `level` into an array of parsed lines; `children` counts pino children made. */
  async function appAt(level: string) {
    const lines: Record<string, unknown>[] = [];
    const logger = pino(
      { level, serializers: LOG_SERIALIZERS },
      { write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) },
    );
    const counter = { children: 0 };
    const child = logger.child.bind(logger);
    logger.child = ((...args: Parameters<typeof child>) => {
      counter.children++;
      return child(...args);
    }) as typeof logger.child;
    const { app } = await openApp(h, { logger });
    return { app, lines, logger, counter };
  }

  it('at info, logs no line for a request answered 200, and the request with an error answer', async () => {
    const { app, lines } = await appAt('info');
    try {
      assert.equal((await app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200);
      assert.equal(lines.length, 0, JSON.stringify(lines));
      assert.equal((await app.inject({ method: 'GET', url: '/v1/jobs?token=secret' })).statusCode, 401);
      assert.equal(lines.length, 1, JSON.stringify(lines));
      assert.equal(lines[0]?.code, 'UNAUTHENTICATED');
      assert.deepEqual(lines[0]?.req, {
        method: 'GET',
        url: '/v1/jobs?token=[redacted]',
        remoteAddress: '127.0.0.1',
      });
    } finally {
      await app.close();
    }
  });

  it('at debug, logs one `request completed` line per request, with its request, status and time', async () => {
    const { app, lines } = await appAt('debug');
    try {
      await app.inject({ method: 'GET', url: '/healthz' });
      const completed = lines.filter((l) => l.msg === 'request completed');
      assert.equal(completed.length, 1, JSON.stringify(lines));
      assert.equal(lines.filter((l) => l.msg === 'incoming request').length, 0);
      assert.equal((completed[0]?.req as { url?: string } | undefined)?.url, '/healthz');
      assert.deepEqual(completed[0]?.res, { statusCode: 200 });
      assert.equal(typeof completed[0]?.responseTime, 'number');
      assert.equal(completed[0]?.level, 20);
    } finally {
      await app.close();
    }
  });

  it('makes no child logger for a request that logs nothing; one that logs gets its request id', async () => {
    const { app, lines, counter } = await appAt('info');
    try {
      const before = counter.children;
      for (let i = 0; i < 5; i++)
        assert.equal((await app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200);
      assert.equal(counter.children, before, 'a request that logs nothing costs no child logger');
      const refused = await app.inject({ method: 'GET', url: '/v1/jobs' }); // no token: logged at info
      assert.equal(refused.statusCode, 401);
      assert.equal(counter.children, before + 1);
      assert.equal(lines.length, 1, JSON.stringify(lines));
      assert.match(
        String(lines[0]?.reqId),
        /^req-/,
        'the line carries the request id, as an eager child did',
      );
      assert.equal(lines[0]?.code, 'UNAUTHENTICATED');
    } finally {
      await app.close();
    }
  });

  it('follows the root level as it changes: debug lines appear once debug is on', async () => {
    const { app, lines, logger } = await appAt('info');
    try {
      await app.inject({ method: 'GET', url: '/healthz' });
      assert.equal(lines.filter((l) => l.msg === 'request completed').length, 0);
      logger.level = 'debug';
      await app.inject({ method: 'GET', url: '/healthz' });
      const completed = lines.filter((l) => l.msg === 'request completed');
      assert.equal(completed.length, 1, JSON.stringify(lines));
      assert.match(String(completed[0]?.reqId), /^req-/);
    } finally {
      await app.close();
    }
  });
});
