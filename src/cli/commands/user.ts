import { type Command, InvalidArgumentError } from 'commander';
import type { JobIsolation } from '../../core/job.ts';
import { describeLimits } from '../../core/limits.ts';
import { userTable } from '../account-format.ts';
import { addCommonOptions, type CliContext, commonOptions, connect, printJson } from '../cli-context.ts';
import { UsageError } from '../errors.ts';
import { parseIsolationJson } from '../isolation-options.ts';
import { addLimitOptions, limitsFromOptions, mergeLimits } from '../limit-options.ts';
import { writeTo } from '../output-writer.ts';

const ROLES = ['admin', 'user', 'viewer'];

/** `user add|list|set|disable|enable|rm`: manage who may call the server (admins only, over the API). */
export function registerUser(program: Command, ctx: CliContext): void {
  const user = program
    .command('user')
    .summary('add, list, change, disable, enable and remove users (admins only)')
    .description(
      "Users live in the server's store; every change goes through the API, so it works remotely " +
        'and takes effect on the next request. Roles: admin (everything), user (starts jobs; sees and ' +
        'acts on its own), viewer (reads every job, its output and the queues; changes nothing). A new ' +
        'user has no token: `jobworker token create --user NAME`.',
    );
  const width = () =>
    ctx.stdout.isTTY === true && (ctx.stdout.columns ?? 0) > 0 ? ctx.stdout.columns : undefined;

  const add = user
    .command('add')
    .summary('add a user')
    .argument('<name>', 'the user name (letters, digits, _ . @ -)')
    .requiredOption('--role <role>', `one of ${ROLES.join(', ')}`, parseRole)
    .option('--run-as <account>', 'the OS account its jobs run as')
    .option(
      '--reuse-name',
      'the name of a user removed that left jobs or a pool account: the new user owns them',
    );
  addCommonOptions(add).action(
    async (name: string, options: { role: string; runAs?: string; reuseName?: boolean }) => {
      const common = commonOptions(add);
      const created = await (await connect(ctx, common)).addUser({
        name,
        role: options.role,
        ...(options.runAs === undefined ? {} : { runAs: options.runAs }),
        ...(options.reuseName === true ? { reuseName: true } : {}),
      });
      if (common.json === true) return printJson(ctx, created);
      await writeTo(ctx.stdout, `added user ${created.name} (${created.role})\n`);
    },
  );

  const list = user.command('list').alias('ls').summary('every user with its role and state');
  addCommonOptions(list).action(async () => {
    const common = commonOptions(list);
    const users = await (await connect(ctx, common)).listUsers();
    if (common.json === true) return printJson(ctx, { users });
    await writeTo(ctx.stdout, userTable(users, width()));
  });

  for (const verb of ['disable', 'enable'] as const) {
    const sub = user
      .command(verb)
      .summary(
        verb === 'disable'
          ? 'refuse every credential of a user (its tokens are kept)'
          : 'accept a disabled user again',
      )
      .argument('<name>', 'the user');
    addCommonOptions(sub).action(async (name: string) => {
      const common = commonOptions(sub);
      const changed = await (await connect(ctx, common)).setUser(name, { disabled: verb === 'disable' });
      if (common.json === true) return printJson(ctx, changed);
      await writeTo(ctx.stdout, `${verb}d user ${changed.name}\n`);
    });
  }

  const setLimits = user
    .command('set-limits')
    .summary("set a user's default and maximum job limits")
    .description(
      "A user's defaults apply to its jobs that set a limit neither themselves nor through their queue; " +
        'its maxima bound every job it starts (a job over one is refused, one without the limit gets the ' +
        'maximum). Each flag changes its own limit; --clear removes them all first (docs/isolation.md).',
    )
    .argument('<name>', 'the user')
    .option('--clear', "remove the user's default and maximum limits (before any given here)");
  addLimitOptions(setLimits, 'default', 'limit its jobs get where they set none');
  addLimitOptions(setLimits, 'max', 'limit none of its jobs may exceed');
  addCommonOptions(setLimits).action(async (name: string, options: { clear?: boolean }) => {
    const common = commonOptions(setLimits);
    const defaults = limitsFromOptions(options, 'default');
    const maxima = limitsFromOptions(options, 'max');
    if (defaults === undefined && maxima === undefined && options.clear !== true) {
      throw new UsageError('Expected --clear, or at least one --default-<limit> or --max-<limit>');
    }
    const client = await connect(ctx, common);
    const current =
      options.clear === true ? undefined : (await client.listUsers()).find((u) => u.name === name);
    const changed = await client.setUser(name, {
      defaultLimits: mergeLimits(current?.defaultLimits, defaults),
      maxLimits: mergeLimits(current?.maxLimits, maxima),
    });
    if (common.json === true) return printJson(ctx, changed);
    await writeTo(
      ctx.stdout,
      `user ${changed.name}: default limits ${describeLimits(changed.defaultLimits ?? {})}; ` +
        `max limits ${describeLimits(changed.maxLimits ?? {})}\n`,
    );
  });

  const set = user
    .command('set')
    .summary("change a user's default isolation")
    .argument('<name>', 'the user')
    .requiredOption(
      '--isolation <isolation>',
      'namespaces of its jobs when neither their spec nor their queue names one: isolate (as start --isolate), none, or the JSON of an isolation object',
      parseIsolationJson,
    );
  addCommonOptions(set).action(async (name: string, options: { isolation: JobIsolation | 'none' }) => {
    const common = commonOptions(set);
    const isolation = options.isolation === 'none' ? null : options.isolation;
    const changed = await (await connect(ctx, common)).setUser(name, { isolation });
    if (common.json === true) return printJson(ctx, changed);
    await writeTo(
      ctx.stdout,
      `user ${changed.name}: default isolation ${changed.isolation ? JSON.stringify(changed.isolation) : 'none'}\n`,
    );
  });

  const rm = user
    .command('rm')
    .summary('remove a user and revoke its tokens; its jobs stay in the history')
    .argument('<name>', 'the user');
  addCommonOptions(rm).action(async (name: string) => {
    const common = commonOptions(rm);
    const removed = await (await connect(ctx, common)).removeUser(name);
    if (common.json === true) return printJson(ctx, removed);
    await writeTo(ctx.stdout, `removed user ${removed.name}; its tokens are revoked\n`);
  });
}

function parseRole(text: string): string {
  if (!ROLES.includes(text)) {
    throw new InvalidArgumentError(`Expected one of ${ROLES.join(', ')}, got ${JSON.stringify(text)}.`);
  }
  return text;
}
