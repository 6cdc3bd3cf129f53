import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, statSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { get as httpsGet } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { BrowserContext, Page } from 'playwright-core';
import { DASHBOARD_CSP, defaultWebRoot } from '../../src/api/rest/dashboard-routes.ts';
import { type Harness, openHarness } from '../helpers/engine-harness.ts';
import { type AppHarness, openApp } from '../helpers/rest-app-harness.ts';
import { launchChromium, requireChromium, serverSpki } from './browser.ts';

/**
 * The dashboard in a real browser (Debian's Chromium, driven by playwright-core) against a real
 * server on loopback over TLS: the REST app of the harness listening with the server's own TLS
 * (Chromium trusts exactly its key). Screenshots of each page are taken into a temporary
 * directory, and into docs/img/ (the README's pictures) with JOBWORKER_UPDATE_SCREENSHOTS=1: a
 * plain test run leaves the tracked files alone.
 */
const SCREENSHOTS =
  process.env.JOBWORKER_UPDATE_SCREENSHOTS === '1'
    ? new URL('../../docs/img/', import.meta.url).pathname
    : mkdtempSync(join(tmpdir(), 'jobworker-screenshots-'));
const XSS = '<img src=x onerror=alert(1)>';

describe('the dashboard in Chromium', () => {
  let h: Harness;
  let a: AppHarness;
  let context: BrowserContext;
  let closeBrowser: () => Promise<void>;
  let adminToken: string;
  let aliceToken: string;
  const dialogs: string[] = [];
  const cspViolations: string[] = [];
  const pageErrors: string[] = [];

  before(async () => {
    requireChromium();
    const webRoot = defaultWebRoot();
    if (!existsSync(`${webRoot}/index.html`)) {
      throw new Error(`The dashboard is not built (${webRoot}/index.html): run npm run build`);
    }
    h = await openHarness();
    a = await openApp(h, { tls: true, webRoot });
    adminToken = await a.issue('admin', 'admin');
    aliceToken = await a.issue('alice', 'user');
    ({ context, close: closeBrowser } = await launchChromium(await serverSpki(a.url!, a.caPem)));
    context.on('page', watch);
    await mkdir(SCREENSHOTS, { recursive: true });
  });

  after(async () => {
    await closeBrowser?.();
    if (process.env.JOBWORKER_UPDATE_SCREENSHOTS !== '1')
      await rm(SCREENSHOTS, { recursive: true, force: true });
    // Anything still running (a test that failed half-way) is stopped, not left behind.
    for (const job of (await h.engine.list({ limit: 100, status: ['running', 'paused'] })).jobs) {
      await h.engine.stop(job.id, { user: 'admin' }).catch(() => undefined);
      await h.engine.waitFor(job.id).catch(() => undefined);
    }
    await a.service.shutdown();
    await a.close();
    await h.destroy();
  });

  /** A GET of the server, as the page would send it, trusting the server's CA. */
  function fetchTrusting(
    url: string,
    headers: Record<string, string>,
  ): Promise<{ status: number; headers: Record<string, string>; body: Buffer }> {
    return new Promise((resolve, reject) => {
      const req = httpsGet(url, { ca: a.caPem, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          const kept: Record<string, string> = {};
          for (const [name, value] of Object.entries(res.headers)) {
            if (typeof value === 'string') kept[name] = value;
          }
          resolve({ status: res.statusCode ?? 0, headers: kept, body: Buffer.concat(chunks) });
        });
        res.on('error', reject);
      });
      req.on('error', reject);
    });
  }

  /** Every page records dialogs (and dismisses them), CSP violations and uncaught errors. */
  function watch(page: Page): void {
    page.on('dialog', (dialog) => {
      dialogs.push(dialog.message());
      void dialog.dismiss();
    });
    page.on('console', (message) => {
      if (message.text().includes('Content Security Policy')) cspViolations.push(message.text());
    });
    page.on('pageerror', (err) => pageErrors.push(err.message));
  }

  async function signedIn(token: string, viewport = { width: 1280, height: 800 }): Promise<Page> {
    const page = await context.newPage();
    await page.setViewportSize(viewport);
    await page.goto(`${a.url}/`);
    await page.getByLabel('Token').fill(token);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Jobs' }).waitFor();
    await page.getByTestId('live').filter({ hasText: 'live' }).waitFor();
    return page;
  }

  async function shot(page: Page, name: string): Promise<void> {
    const path = join(SCREENSHOTS, `${name}.png`);
    await page.screenshot({ path });
    assert.ok(statSync(path).size > 0, `the ${name} screenshot was written`);
  }

  it('serves the page with a strict Content-Security-Policy, the token never in a URL', async () => {
    const page = await a.app.inject({ url: '/' });
    assert.equal(page.statusCode, 200);
    assert.equal(page.headers['content-security-policy'], DASHBOARD_CSP);
    assert.match(DASHBOARD_CSP, /script-src 'self'(;|$)/);
    assert.doesNotMatch(DASHBOARD_CSP, /unsafe-eval/);
    assert.doesNotMatch(page.body, /<script>(?!<\/script>)|<script(?![^>]*\bsrc=)[^>]*>/, 'no inline script');
    const asset = /src="(\/assets\/[^"]+\.js)"/.exec(page.body)?.[1];
    assert.ok(asset);
    const js = await a.app.inject({ url: asset });
    assert.equal(js.statusCode, 200);
    assert.equal(js.headers['content-security-policy'], DASHBOARD_CSP);
    // Only the dashboard's files are public: the API, and any other path, still want credentials.
    assert.equal((await a.app.inject({ url: '/v1/jobs' })).statusCode, 401);
    assert.equal((await a.app.inject({ url: '/nope.js' })).statusCode, 401);
    const unknown = await a.app.inject({
      url: '/nope.js',
      headers: { authorization: `Bearer ${adminToken}` },
    });
    assert.equal(unknown.json().error.code, 'NOT_FOUND');
  });

  it('signs in, starts a job from the form, shows its lines live, stops it, and the list follows', async () => {
    const list = await signedIn(adminToken);
    const page = await signedIn(adminToken);
    const urls: string[] = [];
    page.on('request', (req) => urls.push(req.url()));

    await page.keyboard.press('g');
    await page.keyboard.press('s');
    await page.getByRole('heading', { name: 'Start a job' }).waitFor();
    await page
      .getByLabel('Command')
      .fill("i=0; while true; do i=$((i+1)); printf '\\033[32mtick %s\\033[0m\\n' $i; sleep 0.2; done");
    await page.getByLabel('Run with /bin/sh -c').check();
    await page.getByLabel('Name').fill('ticker');
    await page.getByLabel('Queue').fill('web');
    await shot(page, 'start');
    await page.getByRole('button', { name: 'Start', exact: true }).click();

    // The job page: its lines arrive in the terminal as the job prints them, in colour.
    await page.getByTestId('job-name').filter({ hasText: 'ticker' }).waitFor();
    const rows = page.locator('.xterm-rows');
    await rows.filter({ hasText: 'tick 3' }).waitFor();
    await rows.filter({ hasText: 'tick 5' }).waitFor();
    assert.ok(
      (await page.locator('.xterm-rows span.xterm-fg-2').count()) > 0,
      'ANSI green rendered as colour',
    );
    const id = decodeURIComponent(new URL(page.url()).hash.split('/')[2]!);
    // The new job reached the other tab's list by the event stream, running.
    const row = list.locator(`tr[data-job-id="${id}"]`);
    await row.locator('.badge', { hasText: 'running' }).waitFor();
    await shot(page, 'job');

    await page.locator('[data-action="stop"]').click();
    await page.getByRole('dialog', { name: 'Stop this job?' }).waitFor();
    // The dialog's action has the focus; a keyboard user moves to Cancel, and it stays there while
    // the page renders (its running duration ticks): it used to go back to Stop on each render.
    assert.equal(await page.evaluate('document.activeElement?.dataset.testid'), 'confirm');
    await page.keyboard.press('Shift+Tab');
    // Two ticks of the page: the renders of the first have run their effects by the second.
    const duration = page.getByTestId('duration');
    for (let tick = 0; tick < 2; tick++) {
      const before = (await duration.textContent()) ?? '';
      const exactly = new RegExp(`^${before.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`);
      await duration.filter({ hasNotText: exactly }).waitFor();
    }
    assert.equal(await page.evaluate('document.activeElement?.textContent'), 'Cancel');
    await page.getByTestId('confirm').click();
    await page.locator('.job-title .badge', { hasText: 'stopped' }).waitFor();
    await page.getByTestId('output-state').filter({ hasText: 'complete' }).waitFor();
    // ... and in the list, without a reload.
    await row.locator('.badge', { hasText: 'stopped' }).waitFor();
    assert.equal((await h.engine.get(id)).status, 'stopped');

    for (const url of urls) {
      assert.ok(!url.includes(adminToken), `the token went into a URL: ${url}`);
      assert.doesNotMatch(url, /token=/i);
    }
    await list.close();
    await page.close();
  });

  it('filters the list by queue and by a search of command lines, from the server and live', async () => {
    const admin = { user: 'admin', role: 'admin' } as const;
    const start = (args: string[], queue?: string) =>
      a.service.start(admin, { command: 'true', args, ...(queue === undefined ? {} : { queue }) });
    const old = await start(['Find-Me-Old'], 'dash-q');
    const otherOld = await start(['other-old'], 'dash-q');
    const page = await signedIn(adminToken);
    await page.locator('input[name="queue"]').fill('dash-q');
    await page.locator('input[name="queue"]').press('Tab');
    await page.locator(`tr[data-job-id="${otherOld.id}"]`).waitFor();
    await page.locator('input[name="text"]').fill('FIND-me');
    await page.locator('input[name="text"]').press('Tab');
    await page.locator(`tr[data-job-id="${old.id}"]`).waitFor();
    // The text filter is in force (a job of the queue that does not match has left the page)
    // before live jobs arrive: they are judged by both filters.
    await page.locator(`tr[data-job-id="${otherOld.id}"]`).waitFor({ state: 'detached' });

    // New jobs arrive by the event stream; only those the server would list join the page.
    const elsewhere = await start(['find-me-elsewhere']);
    const unrelated = await start(['nothing'], 'dash-q');
    const matching = await start(['find-me-live'], 'dash-q');
    await page.locator(`tr[data-job-id="${matching.id}"]`).waitFor();
    // Events come in order: by the time the last job shows, the two before it were judged.
    for (const job of [elsewhere, unrelated]) {
      assert.equal(await page.locator(`tr[data-job-id="${job.id}"]`).count(), 0, job.spec.args[0]);
    }
    assert.equal(await page.locator('tbody tr[data-job-id]').count(), 2);
    await page.close();
  });

  it('keeps a search being typed while the list renders, applies it on Enter, gives it up on Escape', async () => {
    const admin = { user: 'admin', role: 'admin' } as const;
    const start = (args: string[]) => a.service.start(admin, { command: 'true', args, queue: 'typing-q' });
    const kept = await start(['typed-match']);
    const page = await signedIn(adminToken);
    // The whole answer for these filters received: the page shows it from then on.
    const listed = (filter: (params: URLSearchParams) => boolean) =>
      page.waitForEvent('requestfinished', (req) => {
        const url = new URL(req.url());
        return url.pathname === '/v1/jobs' && filter(url.searchParams);
      });
    const queueOnly = listed((params) => params.get('queue') === 'typing-q' && !params.has('text'));
    await page.locator('input[name="queue"]').fill('typing-q');
    await page.locator('input[name="queue"]').press('Enter');
    await queueOnly;
    await page.locator(`tr[data-job-id="${kept.id}"]`).waitFor();
    // The '/' shortcut reaches the search box through FilterInput.
    await page.locator('h1').click();
    await page.keyboard.press('/');
    const search = page.locator('input[name="text"]');
    assert.equal(await page.evaluate('document.activeElement?.name'), 'text');
    await page.keyboard.type('typed-ma');
    // A new job of the queue joins the page (the search is not applied yet): the list renders
    // while the box holds text that is not yet a filter. That render used to put the box back
    // to the applied filter (empty), and the search was lost.
    const arriving = await start(['other']);
    await page.locator(`tr[data-job-id="${arriving.id}"]`).waitFor();
    assert.equal(await search.inputValue(), 'typed-ma');
    const searched = listed((params) => params.get('text') === 'typed-ma');
    await search.press('Enter');
    await searched;
    await page.locator(`tr[data-job-id="${arriving.id}"]`).waitFor({ state: 'detached' });
    assert.equal(await page.locator(`tr[data-job-id="${kept.id}"]`).count(), 1);
    assert.equal(await search.inputValue(), 'typed-ma');
    // Escape gives up what was typed since: the box shows the applied search again, and leaving
    // it asks for no other list.
    let asked = 0;
    page.on('request', (req) => {
      if (new URL(req.url()).pathname === '/v1/jobs') asked++;
    });
    await search.press('End');
    await search.pressSequentially('-not');
    await search.press('Escape');
    assert.equal(await search.inputValue(), 'typed-ma');
    assert.notEqual(await page.evaluate('document.activeElement?.name'), 'text');
    // A render, then: nothing was asked, and the rows are still those of the applied search.
    const later = await start(['typed-match-later']);
    await page.locator(`tr[data-job-id="${later.id}"]`).waitFor();
    assert.equal(asked, 0);
    assert.equal(await search.inputValue(), 'typed-ma');
    await page.close();
  });

  it('keeps a list filtered by status true as its jobs start, pause, resume and end', async () => {
    const admin = { user: 'admin', role: 'admin' } as const;
    const page = await signedIn(adminToken);
    const running = page.waitForEvent('requestfinished', (req) => {
      const url = new URL(req.url());
      return url.pathname === '/v1/jobs' && url.searchParams.get('status') === 'running';
    });
    await page.locator('select[name="status"]').selectOption('running');
    await running;
    const job = await a.service.start(admin, { command: 'sleep', args: ['60'], queue: 'status-q' });
    // Queued, it does not match; started, it joins the page (only a new job's first event could
    // add a row before).
    const row = page.locator(`tr[data-job-id="${job.id}"]`);
    await row.locator('.badge', { hasText: 'running' }).waitFor();
    // Paused, it leaves; resumed, it is back (the events of a pause and a resume).
    await a.service.pause(admin, job.id);
    await row.waitFor({ state: 'detached' });
    await a.service.resume(admin, job.id);
    await row.locator('.badge', { hasText: 'running' }).waitFor();
    await a.service.stop(admin, job.id);
    // Stopped, it no longer matches, and leaves (it stayed, shown stopped, under "running").
    await row.waitFor({ state: 'detached' });
    await page.close();
  });

  it('runs a job again with its limits, attempts, name and labels as they applied', async () => {
    const admin = { user: 'admin', role: 'admin' } as const;
    const first = await a.service.start(admin, {
      command: 'true',
      name: 'again-me',
      labels: { team: 'web' },
      limits: { memory: '64M', pids: 64 },
      retry: { attempts: 2 },
    });
    await a.service.waitFor(admin, first.id);
    const page = await signedIn(adminToken);
    await page.goto(`${a.url}/#/jobs/${first.id}`);
    await page.getByTestId('job-name').filter({ hasText: 'again-me' }).waitFor();
    await page.locator('[data-action="retry"]').click();
    await page.getByRole('dialog', { name: 'Run this job again?' }).waitFor();
    await page.keyboard.press('Enter');
    await page.waitForURL((url) => url.hash.startsWith('#/jobs/') && !url.hash.endsWith(first.id));
    const againId = decodeURIComponent(new URL(page.url()).hash.split('/')[2]!);
    const again = await a.service.get(admin, againId);
    assert.equal(again.spec.name, 'again-me');
    assert.deepEqual(again.spec.labels, { team: 'web' });
    // Left out, a job capped at 64 MiB ran again with no cap.
    assert.equal(again.spec.limits.memory, 64 * 1024 * 1024);
    assert.equal(again.spec.limits.pids, 64);
    assert.equal(again.spec.retry?.attempts, 2);
    await page.close();
  });

  /**
   * Holds the page's next list of `queue`: read from the server at once (`fetched`), handed to the
   * page only at `release()`, so that what happens meanwhile reaches the page by its events first.
   */
  async function holdList(
    page: Page,
    queue: string,
  ): Promise<{ fetched: Promise<void>; release: () => void }> {
    const { promise: fetched, resolve: onFetched } = Promise.withResolvers<void>();
    const { promise: held, resolve: release } = Promise.withResolvers<void>();
    await page.route(
      (url) => url.pathname === '/v1/jobs' && url.searchParams.get('queue') === queue,
      async (route) => {
        // Read here, trusting the server's own CA (Playwright's fetch trusts neither it nor the
        // browser's pinned key), with the page's token.
        const headers = await route.request().allHeaders();
        const answer = await fetchTrusting(route.request().url(), {
          authorization: headers.authorization ?? '',
          accept: headers.accept ?? 'application/json',
        });
        onFetched();
        await held;
        await route.fulfill({
          status: answer.status,
          contentType: answer.headers['content-type'] ?? 'application/json',
          body: answer.body,
        });
      },
    );
    return { fetched, release };
  }

  /**
   * A running `sleep` job of `queue`, and a page showing it and a job of another queue; then the
   * list for `queue` asked for and held (`holdList`).
   */
  async function listOnItsWay(queue: string) {
    const admin = { user: 'admin', role: 'admin' } as const;
    const job = await a.service.start(admin, { command: 'sleep', args: ['60'], queue });
    const other = await a.service.start(admin, { command: 'true', queue: `${queue}-other` });
    const page = await signedIn(adminToken);
    const row = page.locator(`tr[data-job-id="${job.id}"]`);
    await row.locator('.badge', { hasText: 'running' }).waitFor();
    await page.locator(`tr[data-job-id="${other.id}"]`).waitFor();
    const hold = await holdList(page, queue);
    await page.locator('input[name="queue"]').fill(queue);
    await page.locator('input[name="queue"]').press('Enter');
    await hold.fetched;
    const done = async () => {
      hold.release();
      await a.service.stop(admin, job.id).catch(() => undefined);
      await page.close();
    };
    // The held answer is shown once the other queue's job has left the page.
    const answerShown = async () => {
      hold.release();
      await page.locator(`tr[data-job-id="${other.id}"]`).waitFor({ state: 'detached' });
    };
    return { admin, job, row, answerShown, done };
  }

  it('applies to a list the end of a job that events told while the list was on its way', async () => {
    const { admin, job, row, answerShown, done } = await listOnItsWay('heard-q');
    try {
      await a.service.stop(admin, job.id);
      await a.service.waitFor(admin, job.id);
      // The row still shown (of the list before the filter) hears the end.
      await row.locator('.badge', { hasText: 'stopped' }).waitFor();
      await answerShown();
      // The answer said running; the end heard meanwhile is the newer news (it showed running for good).
      assert.equal(await row.locator('.badge').textContent(), 'stopped');
    } finally {
      await done();
    }
  });

  it('shows a pause heard while a list was on its way, though the answer said running', async () => {
    const { admin, job, row, answerShown, done } = await listOnItsWay('paused-q');
    try {
      await a.service.pause(admin, job.id);
      await row.locator('.badge', { hasText: 'paused' }).waitFor();
      await answerShown();
      // The answer (running) and the event (paused) are of one phase and cannot be ordered: the
      // job is read again, and shows paused (it showed running until its next event, if any).
      await row.locator('.badge', { hasText: 'paused' }).waitFor();
    } finally {
      await done();
    }
  });

  it('shows the answer to the latest filters when the answer to earlier ones comes late', async () => {
    const admin = { user: 'admin', role: 'admin' } as const;
    const wanted = await a.service.start(admin, { command: 'true', args: ['late-wanted'], queue: 'late-q' });
    const other = await a.service.start(admin, { command: 'true', args: ['late-other'], queue: 'late-q' });
    const page = await signedIn(adminToken);
    await page.locator(`tr[data-job-id="${other.id}"]`).waitFor();
    // The list for the queue alone is held back until the list for the queue and the text is shown.
    const { promise: held, resolve: release } = Promise.withResolvers<void>();
    const queueOnly = (url: URL) =>
      url.searchParams.get('queue') === 'late-q' && !url.searchParams.has('text');
    await page.route(
      (url) => url.pathname === '/v1/jobs' && queueOnly(url),
      async (route) => {
        await held;
        await route.continue();
      },
    );
    // Its whole body received, not only its head: the page has it to show from then on.
    const lateAnswer = page.waitForEvent('requestfinished', (req) => queueOnly(new URL(req.url())));
    await page.locator('input[name="queue"]').fill('late-q');
    await page.locator('input[name="queue"]').press('Tab');
    await page.locator('input[name="text"]').fill('late-wanted');
    await page.locator('input[name="text"]').press('Tab');
    await page.locator(`tr[data-job-id="${other.id}"]`).waitFor({ state: 'detached' });
    await page.locator(`tr[data-job-id="${wanted.id}"]`).waitFor();
    release();
    await lateAnswer;
    // Two frames after the late answer: had it been shown, its rows would be on the page by now.
    await page.evaluate(
      'new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)))',
    );
    assert.equal(await page.locator(`tr[data-job-id="${other.id}"]`).count(), 0);
    assert.equal(await page.locator('tbody tr[data-job-id]').count(), 1);
    await page.close();
  });

  it('shows a job started between the first list and the start of the event stream', async () => {
    const admin = { user: 'admin', role: 'admin' } as const;
    const before = await a.service.start(admin, { command: 'true', args: ['before-stream'] });
    const page = await context.newPage();
    // The page's event stream is held until the list is shown and a job has started meanwhile:
    // its `job:queued` went out to no one, as to a page whose stream was still connecting.
    const { promise: held, resolve: release } = Promise.withResolvers<void>();
    await page.route(
      (url) => url.pathname === '/v1/events',
      async (route) => {
        await held;
        await route.continue();
      },
    );
    try {
      await page.goto(`${a.url}/`);
      await page.getByLabel('Token').fill(adminToken);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.locator(`tr[data-job-id="${before.id}"]`).waitFor();
      const during = await a.service.start(admin, { command: 'true', args: ['during-connect'] });
      await a.service.waitFor(admin, during.id);
      release();
      await page.getByTestId('live').filter({ hasText: 'live' }).waitFor();
      // Only the stream's first `ready` can bring it: nothing else changes from here on.
      await page.locator(`tr[data-job-id="${during.id}"]`).waitFor();
    } finally {
      release();
      await page.close();
    }
  });

  it(`renders a job named ${XSS} that prints it, OSC 8 and OSC 52 sequences, as inert text`, async () => {
    const osc8 = '\x1b]8;;javascript:alert(2)\x1b\\click-me\x1b]8;;\x1b\\';
    const osc52 = `\x1b]52;c;${Buffer.from('pwned').toString('base64')}\x07`;
    const title = `\x1b]0;${XSS}\x07`;
    // 24-bit colour: xterm draws it with a style attribute (the CSP's style-src-attr).
    const truecolor = '\x1b[38;2;255;120;0mtruecolor\x1b[0m';
    const job = await a.service.start(
      { user: 'alice', role: 'user' },
      {
        name: XSS,
        command: 'printf',
        args: ['%s\n%s\n%s%s\n%s\n', XSS, osc8, osc52, title, truecolor],
        labels: { x: XSS },
      },
    );
    await h.engine.waitFor(job.id);
    const page = await signedIn(aliceToken);
    await page.locator(`tr[data-job-id="${job.id}"]`).waitFor();
    assert.equal(await page.locator(`tr[data-job-id="${job.id}"] td[data-label="Name"]`).textContent(), XSS);
    // Escape sequences in the command line show as text (`\x1b`), not as what they would do.
    const command = await page.locator(`tr[data-job-id="${job.id}"] td[data-label="Command"]`).textContent();
    assert.ok(command?.includes('\\x1b]8;;javascript:alert(2)'), command ?? '');
    await page.goto(`${a.url}/#/jobs/${job.id}`);
    await page.getByTestId('job-name').filter({ hasText: XSS }).waitFor();
    await page.locator('.xterm-rows').filter({ hasText: XSS }).waitFor();
    await page.locator('.xterm-rows').filter({ hasText: 'click-me' }).waitFor();
    await page.locator('.xterm-rows span', { hasText: 'truecolor' }).waitFor();
    // Clicking the OSC 8 link does nothing: no navigation, no dialog, no new page.
    const pages = context.pages().length;
    // The terminal's screen takes the pointer: click where the link is drawn, as a person would.
    const box = (await page.locator('.xterm-rows span', { hasText: 'click-me' }).first().boundingBox())!;
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    await page.mouse.click(box.x + box.width / 2, box.y + box.height / 2);
    assert.equal(await page.evaluate('document.querySelectorAll("img").length'), 0);
    assert.equal(await page.evaluate('document.title'), 'jobworker');
    assert.equal(context.pages().length, pages);
    assert.ok(page.url().includes(`#/jobs/${job.id}`));
    assert.deepEqual(dialogs, []);
    await page.close();
  });

  it('opens a long output at its end, reading only its tail', async () => {
    // About 15 MB: the page reads the last 512 KiB of it, whatever the size.
    const job = await a.service.start(
      { user: 'admin', role: 'admin' },
      { name: 'long', command: 'seq', args: ['1', '2000000'] },
    );
    await h.engine.waitFor(job.id);
    const head = await a.app.inject({
      method: 'HEAD',
      url: `/v1/jobs/${job.id}/output`,
      headers: { authorization: `Bearer ${adminToken}` },
    });
    const end = Number(head.headers['x-jobworker-end']);
    assert.equal(end, (await h.engine.get(job.id)).outputBytes.stdout);
    const page = await signedIn(adminToken);
    let read = 0;
    page.on('response', (res) => {
      if (res.url().includes('/output') && res.request().method() === 'GET') {
        read += Number(new URL(res.url()).searchParams.get('cursor'));
      }
    });
    await page.goto(`${a.url}/#/jobs/${job.id}`);
    await page.locator('.xterm-rows').filter({ hasText: '2000000' }).waitFor();
    await page.getByTestId('output-state').filter({ hasText: 'complete' }).waitFor();
    // It started a tail before the end: everything before was never asked for.
    assert.equal(read, end - 512 * 1024);
    await page.close();
  });

  it('has keyboard shortcuts, the queues page, and the admin pages (users and tokens, audit)', async () => {
    const page = await signedIn(adminToken);
    await page.locator('tr[data-job-id]').nth(2).waitFor();
    await shot(page, 'jobs');
    await page.keyboard.press('?');
    await page.getByRole('dialog', { name: 'Keyboard shortcuts' }).waitFor();
    await page.keyboard.press('Escape');
    await page.keyboard.press('g');
    await page.keyboard.press('q');
    await page.getByRole('heading', { name: 'Queues' }).waitFor();
    await page.locator('tr[data-queue="web"]').waitFor();
    // Change the limit of a queue from the page.
    await page.locator('tr[data-queue="web"]').getByRole('button', { name: 'Limit…' }).click();
    // Typed key by key into the field the dialog focuses, each key a render of the page (the
    // focus used to jump to Save after the first), and Enter saves.
    const limit = page.getByRole('dialog').locator('input[name="concurrency"]');
    await limit.waitFor();
    await page.keyboard.type('1x');
    await page.keyboard.press('Enter');
    // Refused in the dialog, which stays open with what was typed.
    await page.getByRole('dialog').getByRole('alert').filter({ hasText: 'whole number' }).waitFor();
    assert.equal(await limit.inputValue(), '1x');
    await page.keyboard.press('Backspace');
    await page.keyboard.type('6');
    await page.keyboard.press('Enter');
    await page.getByRole('dialog').waitFor({ state: 'detached' });
    await page.locator('tr[data-queue="web"] td[data-label="Limit"]', { hasText: '16' }).waitFor();
    assert.equal((await a.service.queue('web')).concurrency, 16);
    await shot(page, 'queues');
    await page.keyboard.press('g');
    await page.keyboard.press('u');
    await page.getByRole('heading', { name: 'Users and tokens' }).waitFor();
    await page.getByRole('cell', { name: 'alice' }).first().waitFor();
    await shot(page, 'users');
    await page.keyboard.press('g');
    await page.keyboard.press('a');
    await page.getByRole('heading', { name: 'Audit' }).waitFor();
    await page.getByRole('cell', { name: 'queue:set' }).first().waitFor();
    await shot(page, 'audit');
    await page.close();

    // A user has no admin pages.
    const user = await signedIn(aliceToken);
    assert.equal(await user.getByRole('link', { name: 'Users' }).count(), 0);
    await user.close();
  });

  it('adds a user, and the name of a removed user with jobs only when told to give them on', async () => {
    await a.accounts.addUser({ name: 'gus', role: 'user' });
    const job = await a.service.start({ user: 'gus', role: 'user' }, { command: 'true' });
    await h.engine.waitFor(job.id);
    await a.accounts.removeUser('gus');
    const page = await signedIn(adminToken);
    await page.keyboard.press('g');
    await page.keyboard.press('u');
    await page.getByRole('heading', { name: 'Users and tokens' }).waitFor();
    await page.getByRole('textbox', { name: 'Name' }).fill('gus');
    await page.getByRole('button', { name: 'Add user' }).click();
    await page.getByRole('alert').filter({ hasText: 'removed since, left jobs in the history' }).waitFor();
    assert.equal(a.accounts.user('gus'), undefined, 'not added');
    await page.getByRole('textbox', { name: 'Name' }).fill('gus');
    await page.getByLabel('Give it the jobs of a removed user of this name').check();
    await page.getByRole('button', { name: 'Add user' }).click();
    await page.getByRole('cell', { name: 'gus' }).first().waitFor();
    assert.equal(a.accounts.user('gus')?.role, 'user');
    await page.close();
  });

  it('keeps a token the server could not be asked about, and forgets one it revoked', async () => {
    const issued = await a.accounts.issueToken({ user: 'alice', lifetimeMs: null });
    const page = await signedIn(issued.token);
    const stored = () => page.evaluate("sessionStorage.getItem('jobworker.token')") as Promise<string | null>;
    // The server away as the page loads: the sign-in page says so and the token is kept, and an
    // empty sign-in tried meanwhile loses nothing (it used to erase the token).
    await page.route('**/v1/**', (route) => route.abort('connectionrefused'));
    await page.reload();
    await page.getByRole('alert').filter({ hasText: 'No answer from the server' }).waitFor();
    assert.equal(await stored(), issued.token);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').filter({ hasText: 'try again when it is back' }).waitFor();
    assert.equal(await stored(), issued.token);
    // Back: the empty field signs in with the kept token.
    await page.unroute('**/v1/**');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Jobs' }).waitFor();
    // Revoked: the next call's 401 signs the tab out and forgets the token.
    await a.accounts.revokeToken(issued.record.id);
    await page.keyboard.press('g');
    await page.keyboard.press('q');
    await page.getByRole('alert').filter({ hasText: 'expired or was revoked' }).waitFor();
    assert.equal(await stored(), null);
    await page.close();
  });

  it('fits a phone-sized screen', async () => {
    const phone = { width: 390, height: 844 };
    const page = await signedIn(adminToken, phone);
    const overflow = () =>
      page.evaluate('document.documentElement.scrollWidth - window.innerWidth') as Promise<number>;
    assert.ok((await overflow()) <= 0, 'no sideways scrolling on the list');
    await shot(page, 'jobs-phone');
    const id = (await h.engine.list({ limit: 1, name: 'ticker' })).jobs[0]!.id;
    await page.goto(`${a.url}/#/jobs/${id}`);
    await page.locator('.xterm-rows').filter({ hasText: 'tick 1' }).waitFor();
    assert.ok((await overflow()) <= 0, 'no sideways scrolling on a job');
    await shot(page, 'job-phone');
    await page.close();
  });

  it('shows the sign-in page and saw no dialog, no CSP violation and no page error anywhere', async () => {
    const page = await context.newPage();
    await page.goto(`${a.url}/`);
    await page.getByLabel('Token').waitFor();
    await shot(page, 'signin');
    await page.getByLabel('Token').fill('jw_not_a_real_token');
    await page.getByRole('button', { name: 'Sign in' }).click();
    // The server's refusal, not "no answer" (a 401 forgets the token before check() reads it).
    await page.getByRole('alert').filter({ hasText: 'Invalid token' }).waitFor();
    await page.getByLabel('Token').fill('');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').filter({ hasText: 'No client certificate was accepted' }).waitFor();
    await page.close();
    assert.deepEqual(dialogs, []);
    assert.deepEqual(cspViolations, []);
    assert.deepEqual(pageErrors, []);
  });
});
