import type { Command } from 'commander';
import type { ApiClient } from '../../client/api-client.ts';
import type { DrainState } from '../../client/api-types.ts';
import { pauseOn, systemClock } from '../../core/clock.ts';
import { addCommonOptions, type CliContext, commonOptions, connect, printJson } from '../cli-context.ts';
import { writeTo } from '../output-writer.ts';

/** How often `drain` asks for the running count while it waits, to print it as it falls. */
const POLL_MS = 1000;

/** `drain` and `undrain`: stop and restart dispatching on the server, for upgrades. */
export function registerDrain(program: Command, ctx: CliContext): void {
  const drain = program
    .command('drain')
    .summary('start no more jobs on the server; wait for the running ones to end')
    .description(
      'Stop dispatching on the server (admins only): queued jobs stay queued, running jobs go on. ' +
        'Waits until none runs, printing the count as it falls, unless --no-wait. A restarted ' +
        'server dispatches again; so does `undrain`.',
    )
    .option('--no-wait', 'return at once');
  addCommonOptions(drain).action(async (options: { wait: boolean }) => {
    const common = commonOptions(drain);
    const json = common.json === true;
    const client = await connect(ctx, common);
    let state = await client.drain(false);
    if (!json) await writeTo(ctx.stdout, `draining: ${runningJobs(state.running)}\n`);
    if (options.wait && state.running > 0) {
      state = await waitForDrained(ctx, client, state.running, json);
    }
    if (json) return printJson(ctx, state);
    if (state.running === 0) await writeTo(ctx.stdout, 'drained\n');
  });

  const undrain = program.command('undrain').summary('start dispatching jobs on the server again');
  addCommonOptions(undrain).action(async () => {
    const common = commonOptions(undrain);
    const state = await (await connect(ctx, common)).undrain();
    if (common.json === true) return printJson(ctx, state);
    await writeTo(ctx.stdout, 'dispatching again\n');
  });
}

/** The long `{wait: true}` request gives the end; a poll beside it shows the count on the way. */
async function waitForDrained(
  ctx: CliContext,
  client: ApiClient,
  running: number,
  json: boolean,
): Promise<DrainState> {
  const done = client.drain(true);
  if (json) return done;
  const clock = ctx.clock ?? systemClock;
  // Aborted once the long request has its answer: it ends the pause between two asks at once.
  const answered = new AbortController();
  const poll = (async () => {
    let last = running;
    for (;;) {
      const paused = await pauseOn(clock, POLL_MS, answered.signal).then(
        () => true,
        () => false,
      );
      if (!paused) return;
      const now = await client.drainState().catch(() => null);
      if (!answered.signal.aborted && now !== null && now.running !== last && now.running > 0) {
        last = now.running;
        await writeTo(ctx.stdout, `draining: ${runningJobs(now.running)}\n`);
      }
    }
  })();
  try {
    return await done;
  } finally {
    answered.abort();
    await poll;
  }
}

function runningJobs(n: number): string {
  return `${n} running job${n === 1 ? '' : 's'}`;
}
