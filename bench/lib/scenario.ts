import type { Row } from './report.ts';

export interface BenchOptions {
  /** `--full`: the bigger sizes (each scenario says which). */
  readonly full: boolean;
  /** `--log-level=`: the servers' pino level; default `info`, as `jobworker serve` runs. */
  readonly logLevel: string;
}

/** One benchmark: measures jobworker and its baseline in the same run and returns its rows. */
export interface Scenario {
  /** The name on the command line (`npm run bench -- start-rate`). */
  readonly name: string;
  /** One line: what it measures at default and `--full` sizes. */
  readonly summary: string;
  run(options: BenchOptions, emit: (row: Row) => void): Promise<void>;
}
