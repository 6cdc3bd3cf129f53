import { spawn } from 'node:child_process';
import { watch } from 'node:fs';
import { open, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LineLatency, nowMicros } from '../lib/line-latency.ts';
import { makeScratchDir } from '../lib/scratch-dirs.ts';

const TICK_WRITER = new URL('../fixtures/tick-writer.ts', import.meta.url).pathname;

/**
 * Baseline of the follow latency: the tick writer's stdout is a file, as in a job; this process
 * watches the file's directory (one kernel watch, as the server does) and reads what grew
 * through a descriptor it keeps open. What is left over this is jobworker's own cost.
 */
export async function followWatchedFile(intervalMs: number, durationMs: number, lineBytes: number) {
  const dir = await makeScratchDir('jw-bench-watch-');
  const out = join(dir, 'stdout');
  const goFile = join(dir, 'go');
  const lines = new LineLatency();
  try {
    const writeFd = await open(out, 'a');
    const child = spawn(
      process.execPath,
      [TICK_WRITER, goFile, String(intervalMs), String(durationMs), String(lineBytes)],
      {
        stdio: ['ignore', writeFd.fd, 'inherit'],
      },
    );
    await writeFd.close();
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const reader = await open(out, 'r');
    let position = 0;
    let inflight: Promise<void> | undefined;
    let again = false;
    const buffer = Buffer.allocUnsafe(1024 * 1024);
    const drain = async (): Promise<void> => {
      do {
        again = false;
        for (;;) {
          const { bytesRead } = await reader.read(buffer, 0, buffer.length, position);
          if (bytesRead === 0) break;
          position += bytesRead;
          lines.push(buffer.toString('latin1', 0, bytesRead), nowMicros());
        }
      } while (again);
    };
    // Reads never overlap; an event during a read asks for one more.
    const readNew = (): Promise<void> => {
      if (inflight) {
        again = true;
        return inflight;
      }
      inflight = drain().finally(() => {
        inflight = undefined;
      });
      return inflight;
    };
    const watcher = watch(dir, (_event, name) => {
      if (name === 'stdout') void readNew();
    });
    await writeFile(goFile, '');
    await exited;
    watcher.close();
    await readNew();
    await readNew();
    await reader.close();
    return lines;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
