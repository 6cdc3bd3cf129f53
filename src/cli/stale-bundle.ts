import { existsSync, readFileSync, statSync } from 'node:fs';

/** What a bundle was built from, as scripts/bundle/bundle-inputs.ts writes it. */
interface BundleInputs {
  /** When the build began (ms since the epoch): a source changed after it makes the bundle stale. */
  readonly builtAt: number;
  /** The bundle's source files, relative to the repository. */
  readonly inputs: readonly string[];
}

/**
 * The first source file newer than its bundle among `dist/<name>.cjs` of the repository at `root`
 * (or gone, or the bundle's list of inputs itself missing); undefined when all are current, or
 * when there are no sources to be newer (an install without src/). The launcher runs the
 * TypeScript sources instead of a stale bundle (bundle-entry.ts), and the bench stops a run whose
 * build went stale under it (bench/run.ts). Paths by concatenation, not node:path: its join runs
 * cold in the interpreter, and 60 of them cost ~1.4 ms of every command.
 */
export function staleInput(root: string, names: readonly string[]): string | undefined {
  if (!existsSync(`${root}/src`)) return undefined;
  for (const name of names) {
    const listFile = `${root}/dist/${name}.inputs.json`;
    let list: BundleInputs;
    try {
      list = JSON.parse(readFileSync(listFile, 'utf8')) as BundleInputs;
    } catch {
      return listFile;
    }
    for (const input of list.inputs) {
      const stats = statSync(`${root}/${input}`, { throwIfNoEntry: false });
      if (stats === undefined || stats.mtimeMs > list.builtAt) return input;
    }
  }
  return undefined;
}
