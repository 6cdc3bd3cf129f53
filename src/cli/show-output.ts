import type { ApiClient } from '../client/api-client.ts';
import type { ApiJob, OutputView } from '../client/api-types.ts';
import { type OutputEvent, readOutputEvents } from '../client/output-events.ts';
import { systemClock } from '../core/clock.ts';
import { formatDuration } from '../core/format-duration.ts';
import { type CliContext, note, printJson } from './cli-context.ts';
import type { CliEnvironment } from './cli-env.ts';
import { parsePositiveDuration } from './durations.ts';
import { ApiError, CliError, EXIT, FollowError, UsageError } from './errors.ts';
import { jobExitStatus } from './exit-status.ts';
import { followedJobEnded, noteClosedPipe, setFollowedJob } from './followed-job.ts';
import { OutputWriter } from './output-writer.ts';
import { printable } from './terminal-sanitizer.ts';

export interface ShowOutputOptions {
  readonly view: OutputView;
  readonly follow: boolean;
  readonly raw: boolean;
  readonly json: boolean;
  /** How long to keep reconnecting while the server cannot be reached (or cut the read short). Default 60 s. */
  readonly reconnectForMs?: number;
  /** What sets `reconnectForMs`, as the give-up message names it. Default `--reconnect-for`. */
  readonly reconnectSetting?: string;
  /** Both streams of the `all` view to stdout (the workerctl design's `output:`); default: each to its own. */
  readonly allToStdout?: boolean;
  /** The job was just made (`start -f`): it exists, and a follow that fails says it runs on. */
  readonly made?: boolean;
}

/** One job's output in the `--json` document: exact bytes in base64, as the API sends them. */
interface AttemptDocument {
  job: ApiJob;
  cursor: string | null;
  output: { stream: 'stdout' | 'stderr'; data: string; cursor: string }[];
  truncated: { stream: string | null; skippedBytes: number | null; cursor: string }[];
}

/**
 * `--json` form of a job's output. A follow that went on through retries has the last attempt's
 * here and the ones before it in `earlierAttempts`, oldest first.
 */
interface OutputDocument extends AttemptDocument {
  view: OutputView;
  earlierAttempts?: AttemptDocument[];
}

/** What a follow whose reader went away (EPIPE) comes to. */
const CLOSED: unique symbol = Symbol('closed pipe');

/**
 * Prints a job's output (`logs`, `start -f`). Following, it goes on to the job's next attempt
 * whenever the one it followed ended and was retried (`retriedAs`, which the end's job carries:
 * the server records the retry in the transaction that records the end, docs/queues.md), and
 * returns the exit status of the attempt that ends the chain; Ctrl-C stops following (the job
 * keeps running) and returns 130. A follow that fails once the job is known to exist (made, or
 * heard of) throws a `FollowError` naming the attempt it was on, which runs on; unless the job is
 * gone (404). A reader that goes away (EPIPE) ends it with 141, as SIGPIPE would (docs/cli.md).
 */
export async function showOutput(
  ctx: CliContext,
  client: ApiClient,
  id: string,
  options: ShowOutputOptions,
): Promise<number> {
  const abort = new AbortController();
  const onInterrupt = () => abort.abort();
  if (options.follow) process.once('SIGINT', onInterrupt);
  const earlier: AttemptDocument[] = [];
  let current = id;
  const heard = { of: options.made === true };
  try {
    for (;;) {
      if (options.follow) setFollowedJob(current);
      const shown = await showAttempt(ctx, client, current, options, abort.signal, heard).catch(
        (error: unknown): typeof CLOSED => {
          // The reader went away (`start -f ... | head -1`): the follow ends, not the job.
          if (options.follow && (error as NodeJS.ErrnoException | null)?.code === 'EPIPE') return CLOSED;
          if (!options.follow || !heard.of || !(error instanceof Error)) throw error;
          if (error instanceof ApiError && error.status === 404) throw error;
          throw new FollowError(error, current);
        },
      );
      if (shown === CLOSED) {
        noteClosedPipe((text) => ctx.stderr.write(text));
        return EXIT.closedPipe;
      }
      if (shown === null) {
        ctx.stderr.write(
          `jobworker: stopped following; job ${current} keeps running (jobworker stop ${current} ends it)\n`,
        );
        return 130;
      }
      const { job, doc } = shown;
      // Without -f: the job as it is now, for --json only (a follow's is the `end` event's).
      if (job === null) {
        if (options.json) {
          const document: OutputDocument = { job: await client.getJob(id), view: options.view, ...doc };
          await printJson(ctx, document);
        }
        return EXIT.ok;
      }
      // (A server from before retries sends no `retriedAs`.)
      const next = job.retriedAs ?? null;
      if (next === null) {
        if (options.follow) followedJobEnded();
        const earlierAttempts = earlier.length === 0 ? {} : { earlierAttempts: earlier };
        const document: OutputDocument = { job, view: options.view, ...doc, ...earlierAttempts };
        if (options.json) await printJson(ctx, document);
        return jobExitStatus(job);
      }
      if (options.json) earlier.push({ job, ...doc });
      else await noteRetry(ctx, client, job, next);
      current = next;
    }
  } finally {
    process.off('SIGINT', onInterrupt);
  }
}

/**
 * One job's output, printed (or collected for `--json`) to its end, with the final job when
 * following (the `end` event's; null without -f); null when Ctrl-C stopped it.
 */
async function showAttempt(
  ctx: CliContext,
  client: ApiClient,
  id: string,
  options: ShowOutputOptions,
  signal: AbortSignal,
  /** Set once the server sent anything of the job: it exists. */
  heard: { of: boolean },
): Promise<{ job: ApiJob | null; doc: Omit<AttemptDocument, 'job'> } | null> {
  // A writer per attempt: a sanitizer's state (an escape sequence cut short) is one job's own.
  const writer = new OutputWriter({
    stdout: ctx.stdout,
    stderr: ctx.stderr,
    raw: options.raw,
    allToStdout: options.allToStdout === true || options.view !== 'all',
  });
  const doc: Omit<AttemptDocument, 'job'> = { cursor: null, output: [], truncated: [] };
  let job: ApiJob | null = null;
  try {
    const events = readOutputEvents(client, id, {
      view: options.view,
      follow: options.follow,
      signal,
      ...(options.reconnectForMs === undefined ? {} : { reconnectForMs: options.reconnectForMs }),
      ...(options.reconnectSetting === undefined ? {} : { reconnectSetting: options.reconnectSetting }),
      // Written to a descriptor before the next event is asked for: no copy of each read needed.
      borrowData: !options.json && writer.writesAtOnce,
      // The server's (or a proxy's) words: their control characters escaped, as every message's.
      onRetry: (attempt, error) => note(ctx, `${printable(error.message)}; reconnecting (${attempt})`),
    });
    for await (const event of events) {
      heard.of = true;
      if (event.type === 'end') job = event.job;
      else if (options.json) collect(doc, event);
      else await print(ctx, writer, event);
    }
  } catch (error) {
    if (!signal.aborted) throw error;
    await writer.end();
    return null;
  }
  await writer.end();
  // Not reached without the `end` event (the reader resumes a cut read, then gives up with an
  // error): an output that ended without it is not known to be whole.
  if (job === null) throw new CliError(`The output of job ${id} ended without its final status`);
  if (!options.json && options.follow && job.status !== 'succeeded' && job.reason) {
    // The exit status alone does not say why (a job that never ran exits 127 like a missing command).
    note(ctx, `job ${id} ${job.status}: ${printable(job.reason)}`);
  }
  return { job: options.follow ? job : null, doc };
}

/**
 * On a terminal, where a follow goes on after a failed attempt (whose reason the end's note gave:
 * `attempt 1 of 3, retried as ...`) and when the next one is due, as its backoff set it.
 */
async function noteRetry(ctx: CliContext, client: ApiClient, ended: ApiJob, next: string): Promise<void> {
  if (ctx.stderr.isTTY !== true) return;
  const due = await client.getJob(next).then(
    (job) => (job.runAt === null ? null : Date.parse(job.runAt) - (ctx.clock ?? systemClock).now().getTime()),
    // Only a note: the follow of the next attempt says whatever keeps it from being read.
    () => null,
  );
  const when = due !== null && due > 0 ? `, due in ${formatDuration(due)}` : '';
  note(ctx, `following attempt ${ended.attempt + 1} of ${ended.maxAttempts}, job ${next}${when}`);
}

/** `JOBWORKER_RECONNECT_FOR`, or undefined for the default; a bad value is a usage error naming it. */
export function reconnectForFromEnv(env: CliEnvironment): number | undefined {
  if (env.reconnectFor === undefined) return undefined;
  try {
    return parsePositiveDuration(env.reconnectFor);
  } catch (error) {
    throw new UsageError(
      `JOBWORKER_RECONNECT_FOR: ${(error as Error).message} Got ${JSON.stringify(env.reconnectFor)}.`,
    );
  }
}

function collect(doc: Omit<AttemptDocument, 'job'>, event: Exclude<OutputEvent, { type: 'end' }>): void {
  doc.cursor = event.cursor;
  if (event.type === 'output') {
    doc.output.push({ stream: event.stream, data: event.data.toString('base64'), cursor: event.cursor });
  } else {
    doc.truncated.push({ stream: event.stream, skippedBytes: event.skippedBytes, cursor: event.cursor });
  }
}

async function print(ctx: CliContext, writer: OutputWriter, event: Exclude<OutputEvent, { type: 'end' }>) {
  if (event.type === 'output') {
    await writer.write(event.stream, event.data);
  } else {
    // The marker does not say why: retention dropped the bytes, or the job truncated its own file.
    const what =
      event.skippedBytes === null ? 'Earlier output' : `${event.skippedBytes} bytes of earlier output`;
    const of = event.stream ? ` (${event.stream})` : '';
    note(ctx, `[${what}${of} no longer kept: dropped by retention, or truncated by the job itself]`);
  }
}
