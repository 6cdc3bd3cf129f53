/**
 * What a bundle was built from, for its staleness check at run time (src/cli/bundle-entry.ts):
 * `dist/<name>.inputs.json` lists the repository's own source files among esbuild's metafile
 * inputs (packages in node_modules change only with an install, which runs the build; modules a
 * plugin makes, named `namespace:path`, are no files) with the time the build began: the stamp
 * scripts/build.sh touches before it starts, so that a file edited while the build ran counts as
 * newer.
 */
import { statSync, writeFileSync } from 'node:fs';
import type { Metafile } from 'esbuild';

export function buildStartedAt(root: string): number {
  return statSync(`${root}dist/.built.next`, { throwIfNoEntry: false })?.mtimeMs ?? Date.now();
}

export function writeBundleInputs(root: string, name: string, builtAt: number, metafiles: Metafile[]): void {
  const inputs = new Set<string>();
  for (const metafile of metafiles) {
    for (const input of Object.keys(metafile.inputs)) {
      if (!input.includes('node_modules/') && !input.startsWith('<') && !/^[a-z-]+:/.test(input))
        inputs.add(input);
    }
  }
  writeFileSync(
    `${root}dist/${name}.inputs.json`,
    `${JSON.stringify({ builtAt, inputs: [...inputs].sort() })}\n`,
  );
}
