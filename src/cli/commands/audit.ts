import { type Command, InvalidArgumentError } from 'commander';
import { auditTable } from '../account-format.ts';
import { addCommonOptions, type CliContext, commonOptions, connect, printJson } from '../cli-context.ts';
import { parsePageLimit } from '../option-parsers.ts';
import { writeTo } from '../output-writer.ts';
import { parseTime } from '../schedule-options.ts';

const AGO = /^([0-9]{1,7})(s|m|h|d)$/;
const UNIT_MS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** `audit`: the audit trail, newest first (admins only). */
export function registerAudit(program: Command, ctx: CliContext): void {
  const audit = program
    .command('audit')
    .summary('who did what, from where, when (admins only)')
    .description(
      'The audit trail, newest first: every state-changing call (allowed or refused) and every ' +
        'failed authentication, with its user, source address, action, target and result.',
    )
    .option('--user <name>', 'only calls of this user')
    .option('--action <action>', 'only this action, e.g. job:stop, token:create, auth:fail')
    .option('--since <time>', 'an ISO 8601 time, or a duration ago such as 1h or 7d', parseSince)
    .option('--limit <n>', 'at most this many entries, 1 to 1000 (default 50)', parsePageLimit);
  addCommonOptions(audit).action(
    async (options: { user?: string; action?: string; since?: string; limit?: number }) => {
      const common = commonOptions(audit);
      const page = await (await connect(ctx, common)).listAudit({
        ...(options.user === undefined ? {} : { user: options.user }),
        ...(options.action === undefined ? {} : { action: options.action }),
        ...(options.since === undefined ? {} : { since: options.since }),
        ...(options.limit === undefined ? {} : { limit: options.limit }),
      });
      if (common.json === true) return printJson(ctx, page);
      if (page.entries.length === 0) return writeTo(ctx.stdout, 'No audit entries.\n');
      const width =
        ctx.stdout.isTTY === true && (ctx.stdout.columns ?? 0) > 0 ? ctx.stdout.columns : undefined;
      await writeTo(ctx.stdout, auditTable(page.entries, width));
    },
  );
}

/**
 * `1h`/`7d` as the time that long ago, or an ISO 8601 time read as `start --at` reads it: without
 * a zone in local time (`2026-12-01` is local midnight, not UTC's, as `Date.parse` would have it
 * for a date alone while it reads a date with a time as local), and a day not in the calendar
 * refused.
 */
export function parseSince(text: string): string {
  const ago = AGO.exec(text);
  if (ago)
    return new Date(Date.now() - Number(ago[1]) * UNIT_MS[ago[2] as keyof typeof UNIT_MS]).toISOString();
  try {
    return parseTime(text);
  } catch {
    throw new InvalidArgumentError(
      `Expected an ISO 8601 time (2026-12-01T03:00:00Z, or 2026-12-01 03:00 in local time) or a duration such as 1h or 7d, got ${JSON.stringify(text)}.`,
    );
  }
}
