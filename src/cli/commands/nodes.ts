import type { Command } from 'commander';
import type { ApiNode } from '../../client/api-types.ts';
import { addCommonOptions, type CliContext, commonOptions, connect, printJson } from '../cli-context.ts';
import { formatAgo } from '../durations.ts';
import { writeTo } from '../output-writer.ts';
import { renderTable } from '../table.ts';

/** `nodes`: the nodes of the cluster, their state and load (docs/cluster.md). */
export function registerNodes(program: Command, ctx: CliContext): void {
  const nodes = program
    .command('nodes')
    .summary('the nodes of the cluster: state, running jobs, last heartbeat')
    .description(
      "List the nodes of the cluster that shares this server's PostgreSQL store (admins and viewers); " +
        'a server on SQLite is a node alone. The node that answered is marked with *. Drain one with ' +
        '`jobworker --server URL drain` (docs/cluster.md).',
    );
  addCommonOptions(nodes).action(async () => {
    const common = commonOptions(nodes);
    const list = await (await connect(ctx, common)).listNodes();
    if (common.json === true) return printJson(ctx, { nodes: list });
    const width = ctx.stdout.isTTY === true && (ctx.stdout.columns ?? 0) > 0 ? ctx.stdout.columns : undefined;
    await writeTo(ctx.stdout, nodeTable(list, new Date(), width));
  });
}

/** The nodes as a table, the answering node marked `*`; a lost or left node's reason under it. */
export function nodeTable(list: readonly ApiNode[], now: Date, maxWidth?: number): string {
  const rows = list.map((node) => [
    `${node.id}${node.self ? ' *' : ''}`,
    node.state,
    String(node.running),
    formatAgo(new Date(node.heartbeatAt), now),
    node.url,
    node.reason ?? '',
  ]);
  return renderTable(
    [
      { header: 'NODE' },
      { header: 'STATE' },
      { header: 'RUNNING' },
      { header: 'HEARTBEAT' },
      { header: 'URL', shrink: true },
      { header: 'REASON', shrink: true, optional: true },
    ],
    rows,
    maxWidth === undefined ? {} : { maxWidth },
  );
}
