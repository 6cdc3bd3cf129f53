import type { JobStatus } from '../core/job.ts';

/** ANSI styling for human output: on only for a terminal, and never with NO_COLOR. */
export class Style {
  readonly enabled: boolean;

  constructor(enabled: boolean) {
    this.enabled = enabled;
  }

  static for(stream: { isTTY?: boolean }, noColor: boolean): Style {
    return new Style(stream.isTTY === true && !noColor);
  }

  bold(text: string): string {
    return this.wrap('1', text);
  }

  dim(text: string): string {
    return this.wrap('2', text);
  }

  status(status: JobStatus, text: string = status): string {
    return this.wrap(STATUS_COLOURS[status], text);
  }

  private wrap(sgr: string, text: string): string {
    return this.enabled ? `\x1b[${sgr}m${text}\x1b[0m` : text;
  }
}

const STATUS_COLOURS: Record<JobStatus, string> = {
  queued: '2',
  running: '36',
  paused: '35',
  succeeded: '32',
  failed: '31',
  stopped: '33',
  timed_out: '33',
  cancelled: '33',
  lost: '31',
};
