import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ApiDelivery, ApiJob, ApiWebhook } from '../../src/client/api-types.ts';
import { WebhookReceiver } from '../helpers/webhook-receiver.ts';
import { startTestServer, type TestServer } from './cli-harness.ts';
import { runCliInProcess } from './cli-in-process.ts';

let t: TestServer;
let receiver: WebhookReceiver;
before(async () => {
  t = await startTestServer();
  receiver = await WebhookReceiver.open();
});
after(async () => {
  await t.close();
  await receiver.close();
});

const cli = (args: readonly string[]) => runCliInProcess(args, t.env);
async function json<T>(args: readonly string[]): Promise<T> {
  const result = await cli(['--json', ...args]);
  assert.equal(result.code, 0, `${args.join(' ')}: ${result.stderr}`);
  return JSON.parse(result.stdout) as T;
}

/** Polls `find` every 10 ms until it finds something, for at most 20 s (a condition, not a sleep). */
async function until<T>(find: () => T | undefined): Promise<T> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const found = find();
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error('timed out waiting for the delivery');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('jobworker webhook and start --notify', () => {
  it('adds a webhook (printing a generated secret once), lists it, and removes it', async () => {
    const added = await cli(['webhook', 'add', receiver.url('/cli'), '--events', 'job:started,job:finished']);
    assert.equal(added.code, 0, added.stderr);
    const [, id] = /^Added webhook (\S+) for job:started, job:finished to /.exec(added.stdout) ?? [];
    assert.ok(id, added.stdout);
    assert.match(added.stdout, /Its signing secret \(shown once\): whsec_[0-9a-f]{48}\n$/);

    const table = await cli(['webhook', 'list']);
    assert.match(table.stdout, /^ID +URL +EVENTS +CREATED +BY\n/);
    assert.doesNotMatch(table.stdout, /whsec_/);
    const listed = await json<{ webhooks: ApiWebhook[] }>(['webhook', 'list']);
    assert.deepEqual(
      listed.webhooks.map((w) => [w.id, w.events]),
      [[id, ['job:started', 'job:finished']]],
    );

    const bad = await cli(['webhook', 'add', 'gopher://example.com/']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /Expected `url` to be an http: or https: URL/);

    const removed = await cli(['webhook', 'rm', id!]);
    assert.equal(removed.stdout, `Removed webhook ${id} (${receiver.url('/cli')})\n`);
    assert.equal((await cli(['webhook', 'list'])).stdout, 'No webhooks.\n');
  });

  it('start --notify sends the job its own webhook; webhook deliveries shows the attempts', async () => {
    const job = await json<ApiJob>([
      'start',
      '--notify',
      receiver.url('/own'),
      '--notify-event',
      'job:queued',
      '--notify-event',
      'job:finished',
      '--',
      'true',
    ]);
    const first = await receiver.nth(1);
    const second = await receiver.nth(2);
    assert.deepEqual([first, second].map((r) => r.headers['jobworker-event']).sort(), [
      'job:finished',
      'job:queued',
    ]);
    await t.server.diagnostics.webhooksSettled();
    const page = await json<{ deliveries: ApiDelivery[] }>(['webhook', 'deliveries', '--job', job.id]);
    assert.deepEqual(
      page.deliveries.map((d) => [d.status, d.attempts, d.lastStatus]),
      [
        ['delivered', 1, 200],
        ['delivered', 1, 200],
      ],
    );
    const table = await cli(['webhook', 'deliveries', '--job', job.id]);
    assert.match(table.stdout, /^ID +EVENT +JOB +STATUS +ATTEMPTS +LAST +NEXT +URL\n/);
    assert.match(table.stdout, / job:finished +\S+ +delivered +1 +200 +- +http/);

    const lonely = await cli(['start', '--notify-event', 'job:finished', '--', 'true']);
    assert.equal(lonely.code, 2);
    assert.match(lonely.stderr, /--notify-event needs --notify URL/);
  });

  it('refuses a bad --limit, --status or --notify-event as a usage error naming it, sending nothing', async () => {
    for (const [args, option] of [
      [['webhook', 'deliveries', '--limit', 'abc'], '--limit'],
      [['webhook', 'deliveries', '--limit', '0'], '--limit'],
      [['webhook', 'deliveries', '--status', 'bogus'], '--status'],
      [['webhook', 'add', 'https://ci.example.com/h', '--events', 'job:finishd'], '--events'],
      [['webhook', 'add', 'https://ci.example.com/h', '--secret', 'short'], '--secret'],
      [
        [
          'webhook',
          'add',
          'https://ci.example.com/h',
          '--secret',
          'x'.repeat(20),
          '--secret-file',
          '/dev/null',
        ],
        '--secret',
      ],
      [['webhook', 'add', 'https://ci.example.com/h', '--secret-file', '/no/such/file'], '--secret-file'],
      [
        [
          'start',
          '--name',
          'never-sent',
          '--notify',
          'https://ci.example.com/h',
          '--notify-event',
          'job:finishd',
          '--',
          'true',
        ],
        '--notify-event',
      ],
    ] as const) {
      const bad = await cli(args);
      assert.equal(bad.code, 2, `${args.join(' ')}: ${bad.stderr}`);
      assert.match(bad.stderr, new RegExp(option));
    }
    const listed = await json<{ jobs: ApiJob[] }>(['list', '--name', 'never-sent']);
    assert.deepEqual(listed.jobs, [], 'the job with a misspelt event was not made');
  });

  it('takes the secret from --secret-file (off the command line), and signs with it; --secret warns', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'jw-cli-secret-'));
    // A receiver of its own: the next test reads the first POST its receiver gets.
    const receiver = await WebhookReceiver.open();
    try {
      const file = join(dir, 'secret');
      const secret = 'a-secret-of-32-characters-long!!';
      await writeFile(file, `${secret}\n`, { mode: 0o600 });
      const added = await cli(['webhook', 'add', receiver.url('/from-file'), '--secret-file', file]);
      assert.equal(added.code, 0, added.stderr);
      assert.doesNotMatch(added.stdout, /shown once/);
      assert.equal(added.stderr, '');
      const id = /^Added webhook (\S+) /.exec(added.stdout)![1]!;
      const job = await json<ApiJob>(['start', '--', 'true']);
      const got = await until(() =>
        receiver.received.find((r) => r.path === '/from-file' && r.body.includes(job.id)),
      );
      const [t, v1] = String(got.headers['jobworker-signature'])
        .split(',')
        .map((part) => part.split('=', 2)[1]!);
      const expected = createHmac('sha256', secret).update(`${t}.${got.body}`).digest('hex');
      assert.equal(v1, expected, "signed with the file's secret, without its newline");
      assert.equal((await cli(['webhook', 'rm', id])).code, 0);

      const warned = await cli(['webhook', 'add', receiver.url('/argv'), '--secret', secret]);
      assert.equal(warned.code, 0, warned.stderr);
      assert.match(warned.stderr, /--secret is readable by every local account .*use --secret-file/);
      const warnedId = /^Added webhook (\S+) /.exec(warned.stdout)![1]!;
      assert.equal((await cli(['webhook', 'rm', warnedId])).code, 0);
    } finally {
      await receiver.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
