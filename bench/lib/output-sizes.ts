/**
 * The output the capture and catch-up scenarios write: the 1 GiB that issue 9's budgets name
 * ("output capture, 1 GiB", "catch-up read of a finished 1 GiB output"), at every size. With
 * 256 MiB, which earlier runs used to save time, the fixed cost of a job's start and end (12-16 ms,
 * `run-latency`) and of the CLI's own start weighed four times as much against the same budgets
 * (output-capture 1.07x at 256 MiB, 1.00x at 1 GiB in one session). Each scenario stays under half
 * a minute; `--full` runs more rounds.
 */
export const OUTPUT_SIZE = { headArg: '1G', bytes: 1024 ** 3 } as const;
