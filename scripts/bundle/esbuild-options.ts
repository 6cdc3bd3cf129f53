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

/**
 * How a bundle that a long-running process holds is written (the server's, and the CLI's, which
 * `serve` loads first): minified, with a source map beside it, read only under
 * --enable-source-maps and without the sources' text (they are in the checkout beside dist/): a
 * map of positions and names, a third of the size. The packages' licence comments go to
 * dist/<file>.LEGAL.txt: one non-ASCII letter among them made V8 hold the whole script as
 * two-byte text, twice its size in the heap.
 */
export const MINIFIED_OUTPUT = {
  minify: true,
  sourcemap: 'linked',
  sourcesContent: false,
  legalComments: 'external',
  charset: 'ascii',
} as const;
