import { readFile } from 'node:fs/promises';
import { type Command, InvalidArgumentError, Option } from 'commander';
import type { ApiDelivery, ApiWebhook } from '../../client/api-types.ts';
import { DELIVERY_STATUSES, WEBHOOK_EVENTS } from '../../core/webhook.ts';
import { addCommonOptions, type CliContext, commonOptions, connect, printJson } from '../cli-context.ts';
import { UsageError } from '../errors.ts';
import { parsePageLimit } from '../option-parsers.ts';
import { writeTo } from '../output-writer.ts';
import { renderTable } from '../table.ts';

/** `webhook add|list|rm|deliveries`: server-wide webhooks (admins) and deliveries (docs/webhooks.md). */
export function registerWebhook(program: Command, ctx: CliContext): void {
  const webhook = program
    .command('webhook')
    .summary('server-wide webhooks (admins only) and their deliveries')
    .description(
      "A server-wide webhook gets the events it names of every job, POSTed as JSON and signed with its secret. A job's own webhook is `start --notify URL`.",
    );

  const add = webhook
    .command('add')
    .summary('add a webhook; prints its secret once')
    .argument('<url>', 'http(s) URL to POST the events to')
    .option(
      '--events <list>',
      'comma-separated: job:queued, job:started, job:progress, job:finished (default: job:finished)',
      parseEvents,
    )
    .option(
      '--secret-file <file>',
      'the signing secret, 16 to 256 characters, from this file (a final newline is not part of it)',
    )
    .option(
      '--secret <secret>',
      'the signing secret on the command line, where `ps` shows it: prefer --secret-file',
    );
  addCommonOptions(add).action(
    async (url: string, options: { events?: string[]; secret?: string; secretFile?: string }) => {
      const common = commonOptions(add);
      if (options.secret !== undefined && options.secretFile !== undefined) {
        throw new UsageError('Expected --secret or --secret-file, not both');
      }
      if (options.secret !== undefined) {
        // Always, not a terminal's note only: a script is where it matters most.
        ctx.stderr.write(
          'jobworker: warning: --secret is readable by every local account while this runs (ps); use --secret-file\n',
        );
      }
      const secret =
        options.secretFile === undefined ? options.secret : await readSecretFile(options.secretFile);
      if (secret !== undefined)
        checkSecret(secret, options.secretFile === undefined ? '--secret' : '--secret-file');
      const created = await (await connect(ctx, common)).addWebhook({
        url,
        ...(options.events === undefined ? {} : { events: options.events }),
        ...(secret === undefined ? {} : { secret }),
      });
      if (common.json === true) return printJson(ctx, created);
      await writeTo(
        ctx.stdout,
        `Added webhook ${created.webhook.id} for ${created.webhook.events.join(', ')} to ${created.webhook.url}\n` +
          (secret === undefined ? `Its signing secret (shown once): ${created.secret}\n` : ''),
      );
    },
  );

  const list = webhook.command('list').alias('ls').summary('the server-wide webhooks (never their secrets)');
  addCommonOptions(list).action(async () => {
    const common = commonOptions(list);
    const found = await (await connect(ctx, common)).listWebhooks();
    if (common.json === true) return printJson(ctx, { webhooks: found });
    if (found.length === 0) return writeTo(ctx.stdout, 'No webhooks.\n');
    await writeTo(ctx.stdout, webhookTable(found));
  });

  const rm = webhook
    .command('rm')
    .summary('remove a webhook; its pending deliveries fail')
    .argument('<id>', 'the webhook id (see `webhook list`)');
  addCommonOptions(rm).action(async (id: string) => {
    const common = commonOptions(rm);
    const removed = await (await connect(ctx, common)).removeWebhook(id);
    if (common.json === true) return printJson(ctx, removed);
    await writeTo(ctx.stdout, `Removed webhook ${removed.id} (${removed.url})\n`);
  });

  const deliveries = webhook
    .command('deliveries')
    .summary('deliveries, newest first, with their attempts and last answer')
    .option('--job <id>', "only this job's")
    .option('--webhook <id>', "only this webhook's")
    .addOption(new Option('--status <status>', 'only deliveries in this state').choices(DELIVERY_STATUSES))
    .option('--limit <n>', 'at most this many, 1 to 1000 (default 50)', parsePageLimit);
  addCommonOptions(deliveries).action(
    async (options: { job?: string; webhook?: string; status?: string; limit?: number }) => {
      const common = commonOptions(deliveries);
      const page = await (await connect(ctx, common)).listDeliveries({
        ...(options.job === undefined ? {} : { jobId: options.job }),
        ...(options.webhook === undefined ? {} : { webhookId: options.webhook }),
        ...(options.status === undefined ? {} : { status: options.status }),
        ...(options.limit === undefined ? {} : { limit: options.limit }),
      });
      if (common.json === true) return printJson(ctx, page);
      if (page.deliveries.length === 0) return writeTo(ctx.stdout, 'No deliveries.\n');
      await writeTo(ctx.stdout, deliveryTable(page.deliveries));
    },
  );
}

function webhookTable(webhooks: readonly ApiWebhook[]): string {
  return renderTable(
    ['ID', 'URL', 'EVENTS', 'CREATED', 'BY'].map((header) => ({ header })),
    webhooks.map((w) => [w.id, w.url, w.events.join(','), w.createdAt, w.createdBy]),
  );
}

function deliveryTable(deliveries: readonly ApiDelivery[]): string {
  return renderTable(
    ['ID', 'EVENT', 'JOB', 'STATUS', 'ATTEMPTS', 'LAST', 'NEXT', 'URL'].map((header) => ({ header })),
    deliveries.map((d) => [
      d.id,
      d.event,
      d.jobId,
      d.status,
      String(d.attempts),
      d.lastStatus !== null ? String(d.lastStatus) : (d.lastError ?? '-'),
      d.nextAttemptAt ?? '-',
      d.url,
    ]),
  );
}

/** `--events`: names checked here, so that a wrong one is a usage error (exit 2), not the server's 400. */
function parseEvents(text: string): string[] {
  const events = text
    .split(',')
    .map((e) => e.trim())
    .filter(Boolean);
  const unknown = events.find((e) => !(WEBHOOK_EVENTS as readonly string[]).includes(e));
  if (events.length === 0 || unknown !== undefined) {
    throw new InvalidArgumentError(
      `Expected events among ${WEBHOOK_EVENTS.join(', ')}, separated by commas, got ${JSON.stringify(text)}.`,
    );
  }
  return events;
}

/** The secret in `file`, without the newline an editor or `echo` ends it with. */
async function readSecretFile(file: string): Promise<string> {
  try {
    return (await readFile(file, 'utf8')).replace(/\r?\n$/, '');
  } catch (err) {
    throw new UsageError(
      `Expected --secret-file to be a readable file, got ${JSON.stringify(file)}: ${(err as Error).message}`,
    );
  }
}

function checkSecret(secret: string, option: string): void {
  if (secret.length < 16 || secret.length > 256) {
    throw new UsageError(`Expected ${option} to hold 16 to 256 characters, got ${secret.length}`);
  }
}
