/**
 * What a bundle was built from, for its staleness check at run time (src/cli/bundle-entry.ts):
 * `dist/<name>.inputs.json` lists the repository's own source files among esbuild's metafile
 * inputs (packages in node_modules change only with an install, which runs the build; a module a
 * plugin makes, named `namespace:path`, is listed as the plugin's own file, which makes it) with
 * the time the build began: the stamp scripts/build.sh touches before it starts, so that a file
 * edited while the build ran counts as newer.
 */
import { statSync, writeFileSync } from 'node:fs';
import type { Metafile } from 'esbuild';
import { LAZY_BUILTIN_NAMESPACE } from './lazy-builtins.ts';
import { LAZY_PACKAGE_NAMESPACE } from './lazy-packages.ts';

/** The source file of each plugin that makes modules of its own, by their namespace. */
const PLUGIN_FILES: Readonly<Record<string, string>> = {
  [LAZY_BUILTIN_NAMESPACE]: 'scripts/bundle/lazy-builtins.ts',
  [LAZY_PACKAGE_NAMESPACE]: 'scripts/bundle/lazy-packages.ts',
};

export function buildStartedAt(root: string): number {
  return statSync(`${root}dist/.built.next`, { throwIfNoEntry: false })?.mtimeMs ?? Date.now();
}

/** `script`: the script that made the bundle (relative to `root`), an input too. */
export function writeBundleInputs(
  root: string,
  name: string,
  script: string,
  builtAt: number,
  metafiles: Metafile[],
): void {
  // The script that made the bundle chooses what goes in it (its plugins, which built-ins are lazy).
  const inputs = new Set<string>([script]);
  for (const metafile of metafiles) {
    for (const input of Object.keys(metafile.inputs)) {
      const namespace = /^([a-z-]+):/.exec(input)?.[1];
      if (namespace !== undefined) {
        const file = PLUGIN_FILES[namespace];
        if (file === undefined)
          throw new Error(`bundle-inputs: no source file known for namespace ${namespace}`);
        inputs.add(file);
      } else if (!input.includes('node_modules/') && !input.startsWith('<')) {
        inputs.add(input);
      }
    }
  }
  writeFileSync(
    `${root}dist/${name}.inputs.json`,
    `${JSON.stringify({ builtAt, inputs: [...inputs].sort() })}\n`,
  );
}
