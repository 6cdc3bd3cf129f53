import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type Harness, openHarness } from '../helpers/engine-harness.ts';
import { type AppHarness, openApp } from '../helpers/rest-app-harness.ts';
import { type ApiHarness, openApi } from './api-harness.ts';

const CAP = 64 * 1024;
// `seq 1 200000` prints 1,288,895 bytes: far past the cap.
const SEQ = { command: 'sh', args: ['-c', 'seq 1 200000'] };
const SEQ_BYTES = 1_288_895;

/** The header's count, and that the body is exactly the newest bytes after it. */
function assertTruncated(headers: Record<string, unknown>, body: string): void {
  const dropped = Number(headers['x-jobworker-truncated-bytes']);
  assert.ok(dropped > 0, `dropped ${String(headers['x-jobworker-truncated-bytes'])}`);
  assert.equal(
    dropped + Buffer.byteLength(body),
    SEQ_BYTES,
    'what was dropped and what came: the whole output',
  );
  assert.ok(body.endsWith('199999\n200000\n'));
}

describe('POST /run of a job whose output passed the cap', () => {
  let h: Harness;
  let a: AppHarness;
  before(async () => {
    h = await openHarness({ outputCapBytes: CAP });
    a = await openApp(h, { run: { withoutToken: true } });
  });
  after(async () => {
    await a.close();
    await h.destroy();
  });

  it('says in a header how many of its first bytes were dropped before the body', async () => {
    const res = await a.app.inject({
      method: 'POST',
      url: '/run',
      remoteAddress: '127.0.0.1',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify(SEQ),
    });
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['x-jobworker-status'], 'succeeded');
    assertTruncated(res.headers, res.body);
  });

  it('says 0 when nothing was dropped', async () => {
    const res = await a.app.inject({
      method: 'POST',
      url: '/run',
      remoteAddress: '127.0.0.1',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ command: 'echo', args: ['hi'] }),
    });
    assert.equal(res.body, 'hi\n');
    assert.equal(res.headers['x-jobworker-truncated-bytes'], '0');
  });
});

describe('POST /run, its body sent from the files', () => {
  let h: ApiHarness;
  before(async () => {
    h = await openApi(undefined, { outputCap: String(CAP) });
  });
  after(() => h.destroy());

  it('says how many bytes were dropped too', async () => {
    const res = await h.api('/run', { body: SEQ });
    assert.equal(res.status, 200);
    assertTruncated(Object.fromEntries(res.headers), await res.text());
  });
});
