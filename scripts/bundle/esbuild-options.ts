/**
 * The esbuild options every bundle of scripts/build.sh shares: one CommonJS file for Node 24, with
 * the metafile that lists its inputs (written to dist/<name>.inputs.json by bundle-inputs.ts).
 */
export function commonBuildOptions(root: string) {
  return {
    absWorkingDir: root,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node24',
    logLevel: 'warning',
    metafile: true,
  } as const;
}
