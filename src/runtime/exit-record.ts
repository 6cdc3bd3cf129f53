import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { EXIT_FILE } from './wrapper.ts';

/** What the wrapper recorded about the command it ran. */
export type ExitRecord =
  | { readonly kind: 'status'; readonly status: number; readonly at: Date }
  | { readonly kind: 'notfound'; readonly at: Date }
  | { readonly kind: 'cgroup'; readonly at: Date }
  | { readonly kind: 'notstarted'; readonly at: Date };

/** Reads the wrapper's exit record; undefined while there is none (or it is incomplete). */
export async function readExitRecord(dir: string): Promise<ExitRecord | undefined> {
  const path = join(dir, EXIT_FILE);
  let text: string;
  let at: Date;
  try {
    [text, at] = await Promise.all([readFile(path, 'utf8'), stat(path).then((s) => s.mtime)]);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  if (!text.endsWith('\n')) return undefined;
  const line = text.trim();
  if (line === 'notfound') return { kind: 'notfound', at };
  if (line === 'cgroup') return { kind: 'cgroup', at };
  if (line === 'notstarted') return { kind: 'notstarted', at };
  const status = Number(line);
  if (!Number.isInteger(status) || status < 0 || status > 255) return undefined;
  return { kind: 'status', status, at };
}
