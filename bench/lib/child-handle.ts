import { type ChildProcess, fork } from 'node:child_process';
import { once } from 'node:events';
import type { ChildReply, ChildRequest } from './child-protocol.ts';

/** A server-like child process that speaks `child-protocol.ts` over IPC. */
export class ChildHandle {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly ready: Extract<ChildReply, { type: 'ready' }>;

  private constructor(child: ChildProcess, ready: Extract<ChildReply, { type: 'ready' }>) {
    this.child = child;
    this.pid = child.pid!;
    this.ready = ready;
  }

  /** Forks `module` with `args` (and `env` added) and waits for its `ready` message. Its stdout goes to /dev/null. */
  static async start(
    module: string,
    args: readonly string[],
    execArgv: readonly string[] = [],
    env: Readonly<Record<string, string>> = {},
  ) {
    const child = fork(module, [...args], {
      execArgv: [...execArgv],
      env: { ...process.env, ...env },
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    });
    const ready = await new Promise<Extract<ChildReply, { type: 'ready' }>>((resolve, reject) => {
      child.once('exit', (code, signal) => reject(new Error(`${module} exited early (${code ?? signal})`)));
      child.once('error', reject);
      const onMessage = (message: ChildReply) => {
        if (message.type !== 'ready') return;
        child.off('message', onMessage);
        resolve(message);
      };
      child.on('message', onMessage);
    });
    child.removeAllListeners('exit');
    return new ChildHandle(child, ready);
  }

  /** Sends a request and resolves with the reply of type `expect`. */
  async ask<T extends ChildReply['type']>(
    request: ChildRequest,
    expect: T,
  ): Promise<Extract<ChildReply, { type: T }>> {
    const reply = new Promise<Extract<ChildReply, { type: T }>>((resolve) => {
      const onMessage = (message: ChildReply) => {
        if (message.type !== expect) return;
        this.child.off('message', onMessage);
        resolve(message as Extract<ChildReply, { type: T }>);
      };
      this.child.on('message', onMessage);
    });
    this.child.send(request);
    return reply;
  }

  /** Asks the child to close and waits for it to exit; kills it after `timeoutMs`. */
  async close(timeoutMs = 30_000): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = once(this.child, 'exit');
    const kill = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    this.child.send({ type: 'close' } satisfies ChildRequest);
    await exited;
    clearTimeout(kill);
  }
}
