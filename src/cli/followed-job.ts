import { writeSync } from 'node:fs';
import { EXIT } from './errors.ts';

/**
 * The job this CLI process follows (`start -f`, `logs -f`: the attempt it is on), and whether the
 * follow saw it end, for what ends the process from outside the command: a closed pipe (main.ts,
 * bundle-main.ts). Null in a process that follows nothing.
 */
let followed: { id: string; ended: boolean } | null = null;
/** Whether the closed pipe's note was written: the command and the stream's handler may both see it. */
let told = false;

/** Called by a follow as it moves to a job (each attempt of a retried one). */
export function setFollowedJob(id: string): void {
  followed = { id, ended: false };
  told = false;
}

/** Called once the follow has the job's end: from then on, nothing of it is left to say. */
export function followedJobEnded(): void {
  if (followed !== null) followed.ended = true;
}

/**
 * Says once, through `write`, that the follow stopped and its job is left as it was: running, if
 * it still was (the follow may be reading an ended job's output before its end); nothing once the
 * follow had the job's end.
 */
export function noteClosedPipe(write: (text: string) => void): void {
  if (followed === null || followed.ended || told) return;
  told = true;
  const { id } = followed;
  try {
    write(
      `jobworker: the reader of the output went away; stopped following job ${id}, which is left ` +
        `running if it still was (jobworker logs -f ${id}, jobworker stop ${id})\n`,
    );
  } catch {
    // stderr went to the same closed pipe: the exit status alone says it.
  }
}

/**
 * The end of the process when a reader of its stdout or stderr went away (EPIPE). A command that
 * only prints has done what was asked: 0 (`jobworker logs ID | head`). A follow has not: the
 * reader did not get all of it, and its job may not have ended, let alone succeeded, so it exits
 * as a shell reports a process SIGPIPE killed (141), which `set -o pipefail` sees, and says on
 * stderr, if that still has a reader, that the job was left running.
 */
export function exitOnClosedPipe(): never {
  if (followed === null) process.exit(EXIT.ok);
  noteClosedPipe((text) => writeSync(2, text));
  process.exit(EXIT.closedPipe);
}
