import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DASHBOARD_CSP } from '../../src/api/rest/dashboard-routes.ts';
import { type Harness, openHarness } from '../helpers/engine-harness.ts';
import { type AppHarness, openApp } from '../helpers/rest-app-harness.ts';

/**
 * An app whose dashboard is `web`, a fresh directory that `fill` writes first; closed, with the
 * directory, after the suite.
 */
function dashboardApp(fill: (web: string) => Promise<void>): { a: AppHarness; web: string } {
  let h: Harness;
  const app = { a: undefined as unknown as AppHarness, web: '' };
  before(async () => {
    h = await openHarness();
    app.web = await mkdtemp(join(tmpdir(), 'jw-web-'));
    await fill(app.web);
    app.a = await openApp(h, { webRoot: app.web });
  });
  after(async () => {
    await app.a.close();
    await h.destroy();
    await rm(app.web, { recursive: true, force: true });
  });
  return app;
}

describe('the dashboard files when the dashboard is not built', () => {
  const app = dashboardApp(async () => {});
  let a: AppHarness;
  before(() => {
    a = app.a;
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

describe('the dashboard files of a build', () => {
  const html = '<!doctype html><script type="module" src="/assets/app-1.js"></script>\n';
  const js = `console.log(${JSON.stringify('x'.repeat(1000))});\n`;
  const app = dashboardApp(async (web) => {
    await mkdir(join(web, 'assets'));
    await mkdir(join(web, '.hidden'));
    await writeFile(join(web, 'index.html'), html);
    await writeFile(join(web, 'assets', 'app-1.js'), js);
    await writeFile(join(web, 'assets', 'gone-1.css'), 'body{}');
    await writeFile(join(web, '.built'), '');
    await writeFile(join(web, '.hidden', 'secret.txt'), 'no');
    await writeFile(join(web, 'assets', 'data-1.bin42'), 'raw');
    await symlink(join(web, 'assets', 'app-1.js'), join(web, 'assets', 'linked-1.js'));
    await symlink(join(web, 'assets', 'nowhere.js'), join(web, 'assets', 'broken-1.js'));
  });
  let a: AppHarness;
  let web: string;
  before(() => {
    ({ a, web } = app);
  });

  it('serves index.html at / and at /index.html, never cached stale, under the CSP', async () => {
    for (const url of ['/', '/index.html']) {
      const res = await a.app.inject({ url });
      assert.equal(res.statusCode, 200, url);
      assert.equal(res.body, html);
      assert.match(String(res.headers['content-type']), /^text\/html/);
      assert.equal(res.headers['cache-control'], 'no-cache');
      assert.equal(res.headers['content-security-policy'], DASHBOARD_CSP);
      assert.equal(res.headers['x-frame-options'], 'DENY');
    }
  });

  it('serves an asset for a year, answers its ETag with 304, a range with 206, HEAD without a body', async () => {
    const res = await a.app.inject({ url: '/assets/app-1.js' });
    assert.equal(res.statusCode, 200);
    assert.equal(res.body, js);
    assert.match(String(res.headers['content-type']), /javascript/);
    assert.equal(res.headers['cache-control'], 'public, max-age=31536000, immutable');
    const etag = String(res.headers.etag);
    assert.ok(etag.length > 2);
    const again = await a.app.inject({ url: '/assets/app-1.js', headers: { 'if-none-match': etag } });
    assert.equal(again.statusCode, 304);
    assert.equal(again.body, '');
    assert.equal(again.headers['content-type'], undefined, 'a 304 has no body, and no type');
    assert.equal(again.headers['cache-control'], 'public, max-age=31536000, immutable');
    const part = await a.app.inject({ url: '/assets/app-1.js', headers: { range: 'bytes=0-11' } });
    assert.equal(part.statusCode, 206);
    assert.equal(part.body, js.slice(0, 12));
    assert.equal(part.headers['content-range'], `bytes 0-11/${js.length}`);
    const head = await a.app.inject({ method: 'HEAD', url: '/assets/app-1.js' });
    assert.equal(head.statusCode, 200);
    assert.equal(head.body, '');
    assert.equal(Number(head.headers['content-length']), js.length);
  });

  it('answers a range past the end with 416 and a failed If-Match with 412, as HTTP says', async () => {
    const past = await a.app.inject({ url: '/assets/app-1.js', headers: { range: 'bytes=99999-' } });
    assert.equal(past.statusCode, 416);
    assert.equal(past.headers['content-range'], `bytes */${js.length}`);
    assert.equal(past.headers['content-security-policy'], DASHBOARD_CSP);
    assert.equal(past.headers['cache-control'], 'no-store', 'no cache keeps a refusal as the file');
    const changed = await a.app.inject({ url: '/assets/app-1.js', headers: { 'if-match': '"other"' } });
    assert.equal(changed.statusCode, 412);
    assert.equal(changed.headers['cache-control'], 'no-store');
  });

  it('serves a file through a symbolic link, and one of an unknown type as bytes', async () => {
    const linked = await a.app.inject({ url: '/assets/linked-1.js' });
    assert.equal(linked.statusCode, 200);
    assert.equal(linked.body, js);
    const raw = await a.app.inject({ url: '/assets/data-1.bin42' });
    assert.equal(raw.statusCode, 200);
    assert.equal(raw.headers['content-type'], 'application/octet-stream');
    assert.equal(raw.body, 'raw');
  });

  it('serves no dotfile nor broken link, and any other path still wants credentials', async () => {
    for (const url of [
      '/.built',
      '/.hidden/secret.txt',
      '/assets/',
      '/assets/nope.js',
      '/assets/broken-1.js',
    ]) {
      assert.equal((await a.app.inject({ url })).statusCode, 401, url);
    }
  });

  it('answers a file removed since the start like an unknown path', async () => {
    await rm(join(web, 'assets', 'gone-1.css'));
    const res = await a.app.inject({ url: '/assets/gone-1.css' });
    assert.equal(res.statusCode, 404);
    assert.equal(res.json().error.code, 'NOT_FOUND');
  });
});
