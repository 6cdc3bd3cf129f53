import { spawn } from 'node:child_process';
import { OUTPUT_SIZE } from './output-sizes.ts';
import type { ServerHandle } from './server-handle.ts';

export interface CaptureResult {
  readonly id: string;
  /** From the request until the server answered that the job had ended. */
  readonly seconds: number;
  /** Server CPU time used meanwhile. */
  readonly serverCpuSeconds: number;
}

/**
 * Runs `head -c SIZE /dev/zero` as a job through `POST /run`, which answers once the job has
 * ended: the time to its response headers is the time to finished. The body (the output) is
 * not read; the connection is cut.
 */
export async function runCaptureJob(server: ServerHandle): Promise<CaptureResult> {
  const { headArg } = OUTPUT_SIZE;
  const cpu = server.cpu();
  const started = performance.now();
  const res = await server.api.open('POST', '/run', {
    body: { command: 'head', args: ['-c', headArg, '/dev/zero'] },
    agent: false,
  });
  const seconds = (performance.now() - started) / 1000;
  const serverCpuSeconds = server.cpu() - cpu;
  res.destroy();
  const status = res.headers['x-jobworker-status'];
  const id = res.headers['x-jobworker-job-id'];
  if (res.statusCode !== 200 || status !== 'succeeded' || typeof id !== 'string') {
    throw new Error(`POST /run answered ${res.statusCode} with status ${String(status)}`);
  }
  return { id, seconds, serverCpuSeconds };
}

/** The baseline: the same command, its stdout redirected to `file` by the shell. Seconds to exit. */
export async function runShellCapture(file: string): Promise<number> {
  const { headArg } = OUTPUT_SIZE;
  const started = performance.now();
  const child = spawn('/bin/sh', ['-c', `head -c ${headArg} /dev/zero > '${file}'`], { stdio: 'ignore' });
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', resolve);
  });
  if (code !== 0) throw new Error(`head exited with ${code}`);
  return (performance.now() - started) / 1000;
}
