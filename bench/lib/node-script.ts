import { spawn } from 'node:child_process';

/** Runs a bench script in a fresh Node process and parses the one JSON document it prints. */
export async function runNodeScript<T>(
  module: string,
  args: readonly string[],
  execArgv: readonly string[] = [],
): Promise<T> {
  const child = spawn(process.execPath, [...execArgv, module, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const chunks: Buffer[] = [];
  child.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', resolve);
  });
  if (code !== 0) throw new Error(`${module} exited with ${code}`);
  return JSON.parse(Buffer.concat(chunks).toString('utf8')) as T;
}

/** Runs a command to its exit; resolves with its stdout, rejects on a non-zero exit. */
export async function runCommand(
  command: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<string> {
  const child = spawn(command, [...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
  child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', resolve);
  });
  if (code !== 0) {
    throw new Error(`${command} ${args.join(' ')} exited with ${code}: ${Buffer.concat(err).toString()}`);
  }
  return Buffer.concat(out).toString('utf8');
}

/** Whether `command` is found on PATH. */
export async function hasCommand(command: string): Promise<boolean> {
  try {
    await runCommand('/bin/sh', ['-c', `command -v ${command}`]);
    return true;
  } catch {
    return false;
  }
}
