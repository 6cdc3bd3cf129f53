import { createRequire, syncBuiltinESMExports } from 'node:module';

/** Every way a Node process starts another (each forks it, whatever its heap). */
const STARTERS = ['spawn', 'spawnSync', 'exec', 'execSync', 'execFile', 'execFileSync', 'fork'] as const;

/** What this process started while the spy was on, each as `starter file`. */
export interface SpawnSpy {
  readonly calls: readonly string[];
  /** Puts the real functions back. */
  restore(): void;
}

/**
 * Records every child process this process starts through `node:child_process` (the only way
 * Node starts one), from now until `restore`: for tests that prove the server forks nothing for
 * some work. The functions are replaced on the module, and `syncBuiltinESMExports` carries that
 * to the named imports of every ES module (`import { spawn } from 'node:child_process'`). The
 * calls still go through: only what was started is noted.
 */
export function spySpawns(): SpawnSpy {
  const childProcess = createRequire(import.meta.url)('node:child_process') as Record<string, unknown>;
  const real = new Map<string, unknown>();
  const calls: string[] = [];
  for (const name of STARTERS) {
    const original = childProcess[name] as (...args: unknown[]) => unknown;
    real.set(name, original);
    childProcess[name] = function (this: unknown, ...args: unknown[]) {
      calls.push(`${name} ${String(args[0])}`);
      return original.apply(this, args);
    };
  }
  syncBuiltinESMExports();
  return {
    calls,
    restore() {
      for (const [name, original] of real) childProcess[name] = original;
      syncBuiltinESMExports();
    },
  };
}
