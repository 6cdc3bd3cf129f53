import { startJob, waitNoneRunning } from '../lib/jobs.ts';
import { runPool, sleep } from '../lib/pool.ts';
import { fmt, row } from '../lib/report.ts';
import type { Scenario } from '../lib/scenario.ts';
import { ServeProcess } from '../lib/serve-process.ts';

const NAME = 'idle-memory';
const CONCURRENCY = 16;
/** How long the server is left alone before its RSS is read: what a user sees a moment later (after its memory relief, 2 s into a quiet spell). */
const SETTLE_MS = 5000;

/**
 * The RSS of `jobworker serve` (started by `bin/jobworker`, as a user starts it: no forced
 * collection) idle after start, then idle again after N `/bin/true` jobs have run to their end;
 * on plain HTTP, like the bench's other servers. Then (INFO) idle after start with TLS, `serve`'s
 * default, which loads Node's TLS and HTTP/2 modules a server on plain HTTP never loads: at its
 * first start, which makes its CA and certificate (and so loads what signs them), and again on
 * the same data directory, as most starts are, which signs nothing.
 */
export const idleMemory: Scenario = {
  name: NAME,
  summary:
    'RSS of `jobworker serve` idle after start and after 10,000 finished jobs (--full: 50,000), and idle with TLS',
  async run(options, emit) {
    const jobs = options.full ? 50_000 : 10_000;
    const server = await ServeProcess.start({ logLevel: options.logLevel });
    let idle = 0;
    let after = 0;
    let idleTls = 0;
    try {
      await sleep(SETTLE_MS);
      idle = server.rss();
      await runPool(
        jobs,
        CONCURRENCY,
        async () => void (await startJob(server.api, { command: '/bin/true' })),
      );
      await waitNoneRunning(server.api, 50, 600_000);
      await sleep(SETTLE_MS);
      after = server.rss();
    } finally {
      await server.close();
    }
    const tls = await ServeProcess.start({ logLevel: options.logLevel, tls: true });
    try {
      await sleep(SETTLE_MS);
      idleTls = tls.rss();
    } finally {
      await tls.close();
    }
    // Started again on the same data directory: its CA and certificate are on disk and current.
    const again = await ServeProcess.start({ logLevel: options.logLevel, tls: true, dataDir: tls.dataDir });
    let idleTlsAgain = 0;
    try {
      await sleep(SETTLE_MS);
      idleTlsAgain = again.rss();
    } finally {
      await again.close();
    }
    emit(
      row({
        scenario: NAME,
        metric: 'server RSS idle after start',
        value: idle,
        format: fmt.mb,
        budget: { text: '< 70 MB', pass: idle < 70e6 },
      }),
    );
    emit(
      row({
        scenario: NAME,
        metric: `server RSS idle after ${fmt.count(jobs)} finished jobs`,
        value: after,
        format: fmt.mb,
        budget: { text: '< 90 MB', pass: after < 90e6 },
      }),
    );
    emit(
      row({
        scenario: NAME,
        metric: "server RSS idle after start, with TLS (`serve`'s default; its first start: it makes its CA)",
        value: idleTls,
        format: fmt.mb,
      }),
    );
    emit(
      row({
        scenario: NAME,
        metric: 'server RSS idle after a restart, with TLS (CA and certificate on disk: nothing signed)',
        value: idleTlsAgain,
        format: fmt.mb,
      }),
    );
  },
};
