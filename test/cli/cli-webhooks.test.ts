import assert from 'node:assert/strict';
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
});
