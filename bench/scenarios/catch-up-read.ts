import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { runCaptureJob } from '../lib/capture-job.ts';
import { ChildHandle } from '../lib/child-handle.ts';
import { runNodeScript } from '../lib/node-script.ts';
import { OUTPUT_SIZE } from '../lib/output-sizes.ts';
import type { RawRead } from '../lib/raw-http-read.ts';
import { fmt, row } from '../lib/report.ts';
import type { Scenario } from '../lib/scenario.ts';
import { ServerHandle } from '../lib/server-handle.ts';
import { median } from '../lib/stats.ts';

const NAME = 'catch-up-read';
const LAUNCHER = new URL('../../bin/jobworker', import.meta.url).pathname;
const LOOPBACK_SENDER = new URL('../baselines/loopback-sender.ts', import.meta.url).pathname;
const RAW_READER = new URL('../lib/raw-http-read.ts', import.meta.url).pathname;

export const catchUpRead: Scenario = {
  name: NAME,
  summary:
    'read a finished 1G job output from cursor 0 over HTTP vs `cat file > /dev/null` and vs a bare loopback sender (3 rounds, --full: 5)',
  async run(options, emit) {
    const { bytes, headArg } = OUTPUT_SIZE;
    const rounds = options.full ? 5 : 3;
    const server = await ServerHandle.start({ logLevel: options.logLevel });
    const rates = {
      all: [] as number[],
      stdout: [] as number[],
      nodeHttp: [] as number[],
      logs: [] as number[],
      logsSocket: [] as number[],
      cat: [] as number[],
      transport: [] as number[],
    };
    let sender: ChildHandle | undefined;
    try {
      const { id } = await runCaptureJob(server);
      const file = join(server.jobDir(id), 'stdout');
      // Both read from a warm page cache, and the server's read path is compiled before it is
      // timed (cat has nothing to compile): the first read of a fresh server ran ~20 % slower.
      await catSeconds(file);
      await rawReadSeconds(server, id, 'all', bytes);
      // The same bytes from memory through a bare sender to the same client: what loopback TCP
      // carries here for a plain Node server.
      sender = await ChildHandle.start(LOOPBACK_SENDER, [file]);
      await transportSeconds(sender.ready.url, bytes);
      for (let round = 0; round < rounds; round++) {
        rates.transport.push(bytes / 1e6 / (await transportSeconds(sender.ready.url, bytes)));
        rates.all.push(bytes / 1e6 / (await rawReadSeconds(server, id, 'all', bytes)));
        rates.stdout.push(bytes / 1e6 / (await rawReadSeconds(server, id, 'stdout', bytes)));
        rates.nodeHttp.push(bytes / 1e6 / (await readSeconds(server, id, 'all', bytes)));
        rates.logs.push(bytes / 1e6 / (await logsSeconds(server, id, 'url')));
        rates.logsSocket.push(bytes / 1e6 / (await logsSeconds(server, id, 'socket')));
        rates.cat.push(bytes / 1e6 / (await catSeconds(file)));
      }
    } finally {
      try {
        await sender?.close();
      } finally {
        await server.close();
      }
    }
    const cat = median(rates.cat);
    const all = median(rates.all);
    emit(
      row({
        scenario: NAME,
        metric: `GET output (default view \`all\`), ${headArg} from cursor 0, raw HTTP client`,
        value: all,
        format: fmt.mbps,
        baseline: { name: 'cat > /dev/null', value: cat },
        budget: { text: '>= 0.50x', pass: all >= 0.5 * cat },
      }),
    );
    const transport = median(rates.transport);
    emit(
      row({
        scenario: NAME,
        metric:
          'the same bytes written from memory by a bare Node server to the same raw client (loopback TCP here)',
        value: transport,
        format: fmt.mbps,
        baseline: { name: 'cat > /dev/null', value: cat },
      }),
    );
    emit(
      row({
        scenario: NAME,
        metric: 'GET output (`all`), raw HTTP client, against the bare Node server',
        value: all,
        format: fmt.mbps,
        baseline: { name: 'bare Node server', value: transport },
      }),
    );
    emit(
      row({
        scenario: NAME,
        metric: 'GET output ?stream=stdout, same bytes',
        value: median(rates.stdout),
        format: fmt.mbps,
        baseline: { name: 'cat > /dev/null', value: cat },
      }),
    );
    emit(
      row({
        scenario: NAME,
        metric: 'GET output (`all`) through node:http in the bench process, same bytes',
        value: median(rates.nodeHttp),
        format: fmt.mbps,
        baseline: { name: 'cat > /dev/null', value: cat },
      }),
    );
    // The budget's command as typed beside `cat`, on the server's machine: there the CLI reads
    // through the server's Unix socket unless told an address.
    const logs = median(rates.logsSocket);
    emit(
      row({
        scenario: NAME,
        metric:
          "`jobworker logs ID > /dev/null`, same bytes (the whole CLI process; on the server's machine, through its Unix socket, the CLI's default there)",
        value: logs,
        format: fmt.mbps,
        baseline: { name: 'cat > /dev/null', value: cat },
        budget: { text: '>= 0.40x', pass: logs >= 0.4 * cat },
      }),
    );
    emit(
      row({
        scenario: NAME,
        metric: "`jobworker logs ID > /dev/null` over the server's TCP address (as from another machine)",
        value: median(rates.logs),
        format: fmt.mbps,
        baseline: { name: 'cat > /dev/null', value: cat },
      }),
    );
  },
};

/**
 * Reads the whole view with the raw HTTP client (bench/lib/raw-http-read.ts) in a process of its
 * own, as `cat` runs in its own; seconds from its connection's start to the body's last byte.
 */
async function rawReadSeconds(server: ServerHandle, id: string, stream: string, expected: number) {
  const result = await runNodeScript<RawRead>(RAW_READER, [
    `${server.url}/v1/jobs/${id}/output?stream=${stream}`,
    server.token,
  ]);
  const status = result.trailers['x-jobworker-status'];
  if (result.status !== 200 || result.bytes !== expected || status !== 'succeeded') {
    throw new Error(
      `GET output answered ${result.status} with ${result.bytes} bytes (job ${status}), expected ${expected}`,
    );
  }
  return result.seconds;
}

/** Reads the bare sender's answer with the same raw client, in a process of its own. */
async function transportSeconds(url: string, expected: number): Promise<number> {
  const result = await runNodeScript<RawRead>(RAW_READER, [`${url}/`, '-']);
  if (result.status !== 200 || result.bytes !== expected) {
    throw new Error(
      `The bare sender answered ${result.status} with ${result.bytes} bytes, expected ${expected}`,
    );
  }
  return result.seconds;
}

/** Reads the whole view through node:http in this process, counting bytes; seconds from request to the last byte. */
async function readSeconds(server: ServerHandle, id: string, stream: string, expected: number) {
  const started = performance.now();
  const res = await server.api.open('GET', `/v1/jobs/${id}/output?stream=${stream}`);
  let received = 0;
  for await (const chunk of res) received += (chunk as Buffer).length;
  const seconds = (performance.now() - started) / 1000;
  if (res.statusCode !== 200 || received !== expected) {
    throw new Error(`GET output answered ${res.statusCode} with ${received} bytes, expected ${expected}`);
  }
  return seconds;
}

/**
 * `jobworker logs ID > /dev/null` as a user runs it (bin/jobworker); seconds to its exit. `url`:
 * over the server's address with its token, as from another machine; `socket`: as on the server's
 * own machine, through its socket (`<data-dir>/server-http.sock`: the benchmarks serve plain HTTP)
 * with the admin token file beside it.
 */
async function logsSeconds(server: ServerHandle, id: string, via: 'url' | 'socket'): Promise<number> {
  const { JOBWORKER_URL: _url, JOBWORKER_TOKEN: _token, ...inherited } = process.env;
  const env =
    via === 'url'
      ? { ...inherited, JOBWORKER_URL: server.url, JOBWORKER_TOKEN: server.token }
      : { ...inherited, JOBWORKER_DATA_DIR: server.dataDir };
  const started = performance.now();
  const child = spawn('/bin/sh', ['-c', `'${LAUNCHER}' logs '${id}' > /dev/null`], { stdio: 'ignore', env });
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  if (code !== 0) throw new Error(`jobworker logs (${via}) exited with ${code}`);
  return (performance.now() - started) / 1000;
}

async function catSeconds(file: string): Promise<number> {
  const started = performance.now();
  const child = spawn('/bin/sh', ['-c', `cat '${file}' > /dev/null`], { stdio: 'ignore' });
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  if (code !== 0) throw new Error(`cat exited with ${code}`);
  return (performance.now() - started) / 1000;
}
