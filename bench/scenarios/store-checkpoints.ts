import { checkpointerPath } from '../../src/store/sqlite/wal-checkpointer.ts';
import { runNodeScript } from '../lib/node-script.ts';
import { pairedRound, pairsRatio } from '../lib/paired-rounds.ts';
import { fmt, row, skipped } from '../lib/report.ts';
import type { Scenario } from '../lib/scenario.ts';
import { BENCH_DIR } from '../lib/scratch-dirs.ts';
import { median } from '../lib/stats.ts';

const NAME = 'store-checkpoints';
const WRITER = new URL('../fixtures/store-writes.ts', import.meta.url).pathname;

interface WritesResult {
  readonly seconds: number;
  readonly maxDelayMs: number;
  readonly p99DelayMs: number;
  readonly checkpoints: number;
  readonly walBytes: number;
}

/**
 * What the checkpoint helper spares the event loop: the store's writes of a busy server (insert,
 * start and end of each job, 16 jobs at a time) with its checkpoints by the helper, against the
 * same writes with SQLite's own checkpoints inside the commits (the baseline), in turn in the same
 * run. Each side's figure is the median of its runs; the ratio the median of the pairs' ratios.
 */
export const storeCheckpoints: Scenario = {
  name: NAME,
  summary:
    '20,000 jobs written through the SQLite store (insert, start, end; 16 at a time), 3 rounds (--full: 5 of 50,000): event-loop stalls with the checkpoint helper vs SQLite checkpointing inside commits',
  async run(options, emit) {
    if (checkpointerPath() === undefined) {
      emit(
        skipped(
          NAME,
          'event-loop stalls of the store',
          'the checkpoint helper is not built (libsqlite3-dev)',
        ),
      );
      return;
    }
    const count = options.full ? 50_000 : 20_000;
    const rounds = options.full ? 5 : 3;
    const runs = { helper: [] as WritesResult[], sqlite: [] as WritesResult[] };
    const write = (mode: 'helper' | 'sqlite') => async () => {
      runs[mode].push(await runNodeScript<WritesResult>(WRITER, [String(count), mode, BENCH_DIR]));
    };
    for (let round = 0; round < rounds; round++) await pairedRound(round, write('helper'), write('sqlite'));
    const figure = (pick: (r: WritesResult) => number) => ({
      value: median(runs.helper.map(pick)),
      baseline: median(runs.sqlite.map(pick)),
      ratio: pairsRatio(runs.helper.map(pick), runs.sqlite.map(pick)),
    });
    const base = 'SQLite checkpointing in commits';
    const rows = [
      {
        metric: `longest event-loop stall, ${fmt.count(count)} jobs written`,
        pick: (r: WritesResult) => r.maxDelayMs,
      },
      { metric: 'event-loop delay p99 meanwhile', pick: (r: WritesResult) => r.p99DelayMs },
    ];
    for (const { metric, pick } of rows) {
      const { value, baseline, ratio } = figure(pick);
      emit(
        row({
          scenario: NAME,
          metric,
          value,
          format: fmt.ms,
          baseline: { name: base, value: baseline },
          ratio,
        }),
      );
    }
    const wal = figure((r) => r.walBytes);
    emit(
      row({
        scenario: NAME,
        metric: 'largest WAL file meanwhile',
        value: wal.value,
        format: fmt.mb,
        baseline: { name: base, value: wal.baseline },
        ratio: wal.ratio,
      }),
    );
    const time = figure((r) => r.seconds);
    emit(
      row({
        scenario: NAME,
        metric: `time to write them (${median(runs.helper.map((r) => r.checkpoints))} checkpoints by the helper)`,
        value: time.value * 1000,
        format: fmt.ms,
        baseline: { name: base, value: time.baseline * 1000 },
        ratio: time.ratio,
      }),
    );
  },
};
