import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, readdirSync, readlinkSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import type { OutputStream } from '../../src/core/job.ts';
import { openOutputFiles } from '../../src/output/output-files.ts';
import type { OutputMonitor } from '../../src/output/output-monitor.ts';
import { readOutput } from '../../src/output/output-reader.ts';
import type { OutputEvent, OutputSelector } from '../../src/output/output-types.ts';

export const fixture = (name: string): string => new URL(`../fixtures/${name}`, import.meta.url).pathname;

/** A fresh job directory, removed when the test ends. */
export async function jobDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'jobworker-output-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

export interface Job {
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
}

/** Starts `argv` with its stdout and stderr on the job's output files, as the runtime does. */
export async function startJob(
  dir: string,
  argv: string[],
  stdin: 'ignore' | 'pipe' = 'ignore',
): Promise<Job> {
  const fds = await openOutputFiles(dir);
  const [command, ...args] = argv;
  let child: ChildProcess;
  try {
    child = spawn(command!, args, { stdio: [stdin, fds.stdout, fds.stderr] });
  } finally {
    closeSync(fds.stdout);
    closeSync(fds.stderr);
  }
  const exited = new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => resolve(code));
  });
  return { child, exited };
}

export const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

/** The data of `events` from one stream (or all of them), concatenated. */
export function bytesOf(events: readonly OutputEvent[], stream?: OutputStream): Buffer {
  const parts: Buffer[] = [];
  for (const event of events) {
    if (event.type === 'data' && (stream === undefined || event.stream === stream)) parts.push(event.data);
  }
  return Buffer.concat(parts);
}

/** Reads a whole view page by page, checking each page's cursor bookkeeping on the way. */
export async function readAll(
  dir: string,
  selector: OutputSelector,
  pageBytes: number,
  from = 0,
): Promise<OutputEvent[]> {
  const events: OutputEvent[] = [];
  let cursor = from;
  for (;;) {
    const page = await readOutput(dir, { selector, cursor, limitBytes: pageBytes });
    if (bytesOf(page.events).length > pageBytes) throw new Error('page larger than its limit');
    events.push(...page.events);
    if (page.events.length === 0) {
      if (page.cursor !== page.end) throw new Error('an empty page before the end');
      return events;
    }
    cursor = page.cursor;
  }
}

/** Collects every batch a follower yields. */
export async function collect(batches: AsyncIterable<OutputEvent[]>): Promise<OutputEvent[]> {
  const events: OutputEvent[] = [];
  for await (const batch of batches) events.push(...batch);
  return events;
}

/** Resolves once `check` holds, re-checking after each notice of the monitor (no polling). */
export async function until(
  monitor: OutputMonitor,
  jobId: string,
  check: () => Promise<boolean>,
): Promise<void> {
  let notice: () => void = () => {};
  const unsubscribe = monitor.subscribe(jobId, () => notice());
  try {
    for (;;) {
      const next = new Promise<void>((resolve) => {
        notice = resolve;
      });
      if (await check()) return;
      await next;
    }
  } finally {
    unsubscribe?.();
  }
}

/** This process's descriptors open on files of `dir`, by file name. */
export function openIn(dir: string): string[] {
  const names: string[] = [];
  for (const fd of readdirSync('/proc/self/fd')) {
    let target: string;
    try {
      target = readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      continue; // the descriptor readdir itself used, closed by now
    }
    if (target.startsWith(`${dir}/`)) names.push(target.slice(dir.length + 1));
  }
  return names.sort();
}
