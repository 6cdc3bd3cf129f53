import type { ApiClient } from '../client/api-client.ts';
import type { ApiJob, OutputView } from '../client/api-types.ts';
import { type OutputEvent, readOutputEvents } from '../client/output-events.ts';
import { type CliContext, note, printJson } from './cli-context.ts';
import type { CliEnvironment } from './cli-env.ts';
import { parsePositiveDuration } from './durations.ts';
import { CliError, EXIT, UsageError } from './errors.ts';
import { jobExitStatus } from './exit-status.ts';
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
}

/** `--json` form of a job's output: exact bytes in base64, as the API sends them. */
interface OutputDocument {
  job: ApiJob;
  view: OutputView;
  cursor: string | null;
  output: { stream: 'stdout' | 'stderr'; data: string; cursor: string }[];
  truncated: { stream: string | null; skippedBytes: number | null; cursor: string }[];
}

/**
 * Prints a job's output (`logs`, `start -f`). Following, it returns the job's exit status;
 * Ctrl-C stops following (the job keeps running) and returns 130.
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
  const writer = new OutputWriter({
    stdout: ctx.stdout,
    stderr: ctx.stderr,
    raw: options.raw,
    allToStdout: options.allToStdout === true || options.view !== 'all',
  });
  const doc: Omit<OutputDocument, 'job'> = { view: options.view, cursor: null, output: [], truncated: [] };
  let job: ApiJob | null = null;
  try {
    const events = readOutputEvents(client, id, {
      view: options.view,
      follow: options.follow,
      signal: abort.signal,
      ...(options.reconnectForMs === undefined ? {} : { reconnectForMs: options.reconnectForMs }),
      ...(options.reconnectSetting === undefined ? {} : { reconnectSetting: options.reconnectSetting }),
      // Written to a descriptor before the next event is asked for: no copy of each read needed.
      borrowData: !options.json && writer.writesAtOnce,
      // The server's (or a proxy's) words: their control characters escaped, as every message's.
      onRetry: (attempt, error) => note(ctx, `${printable(error.message)}; reconnecting (${attempt})`),
    });
    for await (const event of events) {
      if (event.type === 'end') job = event.job;
      else if (options.json) collect(doc, event);
      else await print(ctx, writer, event);
    }
  } catch (error) {
    if (!abort.signal.aborted) throw error;
    await writer.end();
    ctx.stderr.write(
      `jobworker: stopped following; job ${id} keeps running (jobworker stop ${id} ends it)\n`,
    );
    return 130;
  } finally {
    process.off('SIGINT', onInterrupt);
  }
  await writer.end();
  // Not reached without the `end` event (the reader resumes a cut read, then gives up with an
  // error): an output that ended without it is not known to be whole.
  if (job === null) throw new CliError(`The output of job ${id} ended without its final status`);
  if (options.json) await printJson(ctx, { job: job ?? (await client.getJob(id)), ...doc });
  else if (options.follow && job !== null && job.status !== 'succeeded' && job.reason) {
    // The exit status alone does not say why (a job that never ran exits 127 like a missing command).
    note(ctx, `job ${id} ${job.status}: ${printable(job.reason)}`);
  }
  return options.follow && job !== null ? jobExitStatus(job) : EXIT.ok;
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

function collect(doc: Omit<OutputDocument, 'job'>, event: Exclude<OutputEvent, { type: 'end' }>): void {
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
