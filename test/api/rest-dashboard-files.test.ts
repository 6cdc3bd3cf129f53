import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DASHBOARD_CSP } from '../../src/api/rest/dashboard-routes.ts';
import { type Harness, openHarness } from '../helpers/engine-harness.ts';
import { type AppHarness, openApp } from '../helpers/rest-app-harness.ts';

describe('the dashboard files when the dashboard is not built', () => {
  let h: Harness;
  let a: AppHarness;
  let empty: string;

  before(async () => {
    h = await openHarness();
    empty = await mkdtemp(join(tmpdir(), 'jw-noweb-'));
    a = await openApp(h, { webRoot: empty });
  });
  after(async () => {
    await a.close();
    await h.destroy();
    await rm(empty, { recursive: true, force: true });
  });

  it('answers GET / with how to build it, under the same CSP, without credentials', async () => {
    const res = await a.app.inject({ url: '/' });
    assert.equal(res.statusCode, 404);
    assert.match(res.body, /The dashboard is not built .*run scripts\/setup\.sh/);
    assert.equal(res.headers['content-security-policy'], DASHBOARD_CSP);
  });

  it('leaves the API and the workerctl action route at / as they were', async () => {
    const token = await a.issue('admin', 'admin');
    const jobs = await a.app.inject({ url: '/v1/jobs', headers: { authorization: `Bearer ${token}` } });
    assert.equal(jobs.statusCode, 200);
    const openapi = await a.app.inject({
      url: '/v1/openapi.json',
      headers: { authorization: `Bearer ${token}` },
    });
    const paths = (openapi.json() as { paths: Record<string, Record<string, unknown>> }).paths;
    // `/` in the document is the workerctl design's POST only; the page is not an API operation.
    assert.deepEqual(Object.keys(paths['/'] ?? {}), ['post']);
    assert.ok(paths['/v1/events']?.get);
  });
});
