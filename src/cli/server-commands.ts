/**
 * The commands that hold the server's code, `serve` and `doctor` (the host probe), as the entry of
 * their own bundle, `dist/jobworker-serve.cjs` (scripts/bundle-server.ts): the CLI's bundle loads
 * it only when one of them is asked for, so every other command loads none of the server.
 */
export { registerDoctor } from './commands/doctor.ts';
export { registerServe } from './commands/serve.ts';

/**
 * The server's `runServer`, loaded from this bundle on first call (as `serve` loads it): for the
 * benchmarks, which measure the server as users run it (bench/server-process.ts).
 */
export async function loadRunServer(): Promise<typeof import('../main.ts').runServer> {
  return (await import('../main.ts')).runServer;
}
