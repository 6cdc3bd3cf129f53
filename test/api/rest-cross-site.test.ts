import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { after, before, describe, it } from 'node:test';
import { type ApiHarness, openApi } from './api-harness.ts';

/** A POST without a body, as a page's `fetch(..., {mode: 'no-cors'})` or a beacon sends it, with a client certificate. */
function postWithCert(
  url: string,
  pems: { ca: string; cert: string; key: string },
  headers: Record<string, string>,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { method: 'POST', ...pems, agent: false, headers }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe("a browser page of another site cannot change anything with the user's client certificate", () => {
  let h: ApiHarness;
  let pems: { ca: string; cert: string; key: string };
  before(async () => {
    h = await openApi();
    const ca = await readFile(h.server.caFile!, 'utf8');
    const { status, body } = await h.json<{ certPem: string; keyPem: string }>('/v1/certs', {
      body: { user: 'admin', days: 1 },
    });
    assert.equal(status, 201);
    pems = { ca, cert: body.certPem, key: body.keyPem };
  });
  after(() => h.destroy());

  const draining = async () => (await h.json<{ draining: boolean }>('/v1/drain')).body.draining;

  it('refuses a cross-site or same-site request (Sec-Fetch-Site), or another Origin, and does nothing', async () => {
    const url = `${h.server.url}/v1/drain`;
    const host = new URL(h.server.url).host;
    const refused: Record<string, string>[] = [
      { 'sec-fetch-site': 'cross-site' },
      { 'sec-fetch-site': 'same-site' },
      // A browser without Sec-Fetch-Site: its Origin.
      { origin: 'https://evil.example' },
      { origin: 'null' },
    ];
    for (const headers of refused) {
      const res = await postWithCert(url, pems, headers);
      assert.equal(res.status, 403, `${JSON.stringify(headers)}: ${res.body}`);
      assert.match(JSON.parse(res.body).error.message, /came from another site's page/);
      assert.equal(await draining(), false, JSON.stringify(headers));
    }
    // Its own dashboard (same-origin, or its own Origin), and tools that say nothing: answered.
    const allowed: Record<string, string>[] = [
      { 'sec-fetch-site': 'same-origin' },
      { origin: `https://${host}` },
      {},
    ];
    for (const headers of allowed) {
      const res = await postWithCert(url, pems, headers);
      assert.equal(res.status, 200, `${JSON.stringify(headers)}: ${res.body}`);
      assert.equal(await draining(), true);
      assert.equal((await h.json('/v1/undrain', { method: 'POST', body: {} })).status, 200);
    }
  });

  it('reads stay open to it (no answer is readable across origins: no CORS headers)', async () => {
    const res = await h.api('/v1/drain', { headers: { 'sec-fetch-site': 'cross-site' } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('access-control-allow-origin'), null);
  });
});
