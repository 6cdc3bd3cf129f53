import { type Command, InvalidArgumentError } from 'commander';
import { tokenTable } from '../account-format.ts';
import {
  addCommonOptions,
  type CliContext,
  commonOptions,
  connect,
  note,
  printJson,
} from '../cli-context.ts';
import { writeTo } from '../output-writer.ts';

/** `token create|list|revoke`: bearer tokens of users (admins only, over the API). */
export function registerToken(program: Command, ctx: CliContext): void {
  const token = program
    .command('token')
    .summary('create, list and revoke tokens (admins only)')
    .description(
      'A token is shown once, when it is created; the server keeps only its SHA-256. A revoked ' +
        'token is refused from the next request on.',
    );

  const create = token
    .command('create')
    .summary('issue a token for a user and print it (once)')
    .requiredOption('--user <name>', 'the user it authenticates')
    .option('--name <label>', 'what it is for (shown by `token list`)')
    .option('--expires <lifetime>', 'a lifetime such as 30d, 12h or 90m (default: never)', parseLifetime);
  addCommonOptions(create).action(async (options: { user: string; name?: string; expires?: string }) => {
    const common = commonOptions(create);
    const issued = await (await connect(ctx, common)).createToken({
      user: options.user,
      ...(options.name === undefined ? {} : { label: options.name }),
      ...(options.expires === undefined ? {} : { expiresIn: options.expires }),
    });
    if (common.json === true) return printJson(ctx, issued);
    // The token alone on stdout, so that `$(jobworker token create ...)` is the token.
    await writeTo(ctx.stdout, `${issued.token}\n`);
    note(
      ctx,
      `token ${issued.id} for ${issued.user}, ${issued.expiresAt === null ? 'never expires' : `expires ${issued.expiresAt}`}; ` +
        'it is shown only now',
    );
  });

  const list = token
    .command('list')
    .alias('ls')
    .summary('tokens with their user, label, use and state (never the secret)')
    .option('--user <name>', "only this user's tokens");
  addCommonOptions(list).action(async (options: { user?: string }) => {
    const common = commonOptions(list);
    const tokens = await (await connect(ctx, common)).listTokens(options.user);
    if (common.json === true) return printJson(ctx, { tokens });
    if (tokens.length === 0) return writeTo(ctx.stdout, 'No tokens.\n');
    const width = ctx.stdout.isTTY === true && (ctx.stdout.columns ?? 0) > 0 ? ctx.stdout.columns : undefined;
    await writeTo(ctx.stdout, tokenTable(tokens, width));
  });

  const revoke = token
    .command('revoke')
    .summary('revoke a token: refused from the next request on')
    .argument('<id>', 'the token id, as `token list` shows it');
  addCommonOptions(revoke).action(async (id: string) => {
    const common = commonOptions(revoke);
    const revoked = await (await connect(ctx, common)).revokeToken(id);
    if (common.json === true) return printJson(ctx, revoked);
    await writeTo(ctx.stdout, `revoked token ${revoked.id} of ${revoked.user}\n`);
  });
}

function parseLifetime(text: string): string {
  if (!/^[0-9]{1,7}[smhd]$/.test(text)) {
    throw new InvalidArgumentError(
      `Expected a lifetime such as 30d, 12h, 90m or 3600s, got ${JSON.stringify(text)}.`,
    );
  }
  return text;
}
