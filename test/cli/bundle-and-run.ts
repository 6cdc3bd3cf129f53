import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { promisify } from 'node:util';
import { type BuildOptions, build, type Plugin } from 'esbuild';
import { commonBuildOptions } from '../../scripts/bundle/esbuild-options.ts';
import { REPO } from './cli-harness.ts';

const run = promisify(execFile);
const dirs: string[] = [];
after(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

/** A new directory in the temp directory, removed once the test file is done. */
export async function scratchDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}

/**
 * The options the bundle tests build with: the bundles' own (scripts/bundle/esbuild-options.ts),
 * with the packages found from the repository's node_modules wherever the entry is.
 */
export const TEST_BUILD_OPTIONS: BuildOptions = {
  ...commonBuildOptions(REPO),
  logLevel: 'silent',
  nodePaths: [join(REPO, 'node_modules')],
};

/**
 * Writes `files` (ES modules, `entry.mjs` among them) to a new directory, bundles `entry.mjs` into
 * `out.cjs` with `plugins`, lets `beside` build more bundles next to it, runs `out.cjs` there and
 * returns its stdout lines (the tests of scripts/bundle's plugins).
 */
export async function bundleAndRun(
  files: Readonly<Record<string, string>>,
  plugins: Plugin[],
  beside?: (dir: string) => Promise<void>,
): Promise<string[]> {
  const dir = await scratchDir('jw-bundle-');
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
  await build({
    ...TEST_BUILD_OPTIONS,
    entryPoints: [join(dir, 'entry.mjs')],
    outfile: join(dir, 'out.cjs'),
    plugins,
  });
  await beside?.(dir);
  const { stdout } = await run(process.execPath, [join(dir, 'out.cjs')], { cwd: dir });
  return stdout.trimEnd().split('\n');
}
