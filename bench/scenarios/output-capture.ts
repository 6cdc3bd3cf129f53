import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { runCaptureJob, runShellCapture } from '../lib/capture-job.ts';
import { OUTPUT_SIZE } from '../lib/output-sizes.ts';
import { fmt, row } from '../lib/report.ts';
import type { Scenario } from '../lib/scenario.ts';
import { ServerHandle } from '../lib/server-handle.ts';
import { median } from '../lib/stats.ts';

const NAME = 'output-capture';

export const outputCapture: Scenario = {
  name: NAME,
  summary:
    'one job `head -c 1G /dev/zero` to finished vs the shell redirecting to a file (3 rounds, --full: 5)',
  async run(options, emit) {
    const { bytes, headArg } = OUTPUT_SIZE;
    const rounds = options.full ? 5 : 3;
    const server = await ServerHandle.start({ logLevel: options.logLevel });
    const baselineFile = join(server.dataDir, 'baseline-output');
    const jw: number[] = [];
    const shell: number[] = [];
    const cpu: number[] = [];
    try {
      // Alternating rounds, each file deleted before the next, so both see the same page cache state.
      for (let round = 0; round < rounds; round++) {
        const job = await runCaptureJob(server);
        jw.push(job.seconds);
        cpu.push(job.serverCpuSeconds);
        await rm(server.jobDir(job.id), { recursive: true, force: true });
        shell.push(await runShellCapture(baselineFile));
        await rm(baselineFile, { force: true });
      }
    } finally {
      await server.close();
    }
    const value = median(jw);
    const baseline = median(shell);
    emit(
      row({
        scenario: NAME,
        metric: `time to finished, ${headArg} to stdout (median of ${rounds})`,
        value,
        format: fmt.s,
        baseline: { name: 'sh: head > file', value: baseline },
        budget: { text: '<= 1.05x', pass: value <= 1.05 * baseline },
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
