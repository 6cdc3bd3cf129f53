import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { runCaptureJob, runShellCapture } from '../lib/capture-job.ts';
import { OUTPUT_SIZE } from '../lib/output-sizes.ts';
import { pairedRound, pairsRatio } from '../lib/paired-rounds.ts';
import { fmt, row } from '../lib/report.ts';
import type { Scenario } from '../lib/scenario.ts';
import { ServerHandle } from '../lib/server-handle.ts';
import { median } from '../lib/stats.ts';

const NAME = 'output-capture';

export const outputCapture: Scenario = {
  name: NAME,
  summary:
    "one job `head -c 1G /dev/zero` to finished vs the shell redirecting to a file (7 rounds, --full: 11; the ratio is the median of the rounds' ratios)",
  async run(options, emit) {
    const { bytes, headArg } = OUTPUT_SIZE;
    // The host's page-cache work for the same gigabyte varies by ±30 % from one write to the next
    // (0.73-1.39 s for the shell alone here): with 3 rounds the verdict swung between 1.0x and
    // 1.25x. Rounds are pairs in turn, and the ratio is the median of the pairs' ratios, as in
    // api-get: a slow spell of the host lands on both sides of a pair.
    const rounds = options.full ? 11 : 7;
    const server = await ServerHandle.start({ logLevel: options.logLevel });
    const baselineFile = join(server.dataDir, 'baseline-output');
    const jw: number[] = [];
    const shell: number[] = [];
    const cpu: number[] = [];
    try {
      // Alternating rounds, each file deleted before the next, so both see the same page cache state.
      // The pair's order turns every round (AB BA ...), so that neither side always follows the other.
      const runJob = async () => {
        const job = await runCaptureJob(server);
        jw.push(job.seconds);
        cpu.push(job.serverCpuSeconds);
        await rm(server.jobDir(job.id), { recursive: true, force: true });
      };
      const runShell = async () => {
        shell.push(await runShellCapture(baselineFile));
        await rm(baselineFile, { force: true });
      };
      for (let round = 0; round < rounds; round++) await pairedRound(round, runJob, runShell);
    } finally {
      await server.close();
    }
    const value = median(jw);
    const baseline = median(shell);
    const ratio = pairsRatio(jw, shell);
    emit(
      row({
        scenario: NAME,
        metric: `time to finished, ${headArg} to stdout (${rounds} paired rounds, medians; ratio: the pairs' median)`,
        value,
        format: fmt.s,
        baseline: { name: 'sh: head > file', value: baseline },
        ratio,
        budget: { text: '<= 1.05x', pass: ratio <= 1.05 },
      }),
    );
    emit(
      row({
        scenario: NAME,
        metric: 'server CPU while capturing, per GiB',
        value: (median(cpu) / bytes) * 1024 ** 3,
        format: fmt.s,
      }),
    );
  },
};
