/**
 * Runs the CLI's bundle with a V8 code cache taken after a whole run of the same command, for
 * bundle-entry.ts. Node's compile cache (module.enableCompileCache) stores a module's code as
 * compiled before it runs: only its top level, so every function a command calls (commander's
 * parsing, the request, the formatting) was compiled again on every run. A cache made by V8 after
 * the run holds those functions too: `jobworker status ID` ~5 ms sooner on the development
 * machine (docs/performance.md).
 *
 * One cache per command (the first argument: `status`, `list`, `--help`, ...; an odd one shares
 * one), `dist/code-cache/jobworker-cli.<command>.bin`, written at the exit of the command's first
 * successful run after a build, atomically (a temporary file renamed). It starts with the
 * bundle's size and modification time: a rebuilt bundle (also one of the same length, which V8's
 * own check would take) makes it stale, and V8 rejects one from another Node or other flags. A
 * stale or rejected cache is written again at that run's exit; one that cannot be written (a
 * read-only install) leaves the command as fast as without it.
 */
import { mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';

export function runWithCodeCache(file: string, command: string | undefined): void {
  const vm = process.getBuiltinModule('node:vm');
  const dir = file.slice(0, file.lastIndexOf('/'));
  const name = file.slice(dir.length + 1).replace(/\.cjs$/, '');
  // `--version` and `--help` have their own: the cache of a run that set up every command (help)
  // would make `--version`, which sets up none, deserialize all of it.
  const word = command?.replace(/^-{1,2}/, '');
  const key = word !== undefined && /^[a-zA-Z][a-z-]{0,31}$/.test(word) ? word : '-';
  const cacheFile = `${dir}/code-cache/${name}.${key}.bin`;
  const stats = statSync(file);
  const stamp = Buffer.from(`${stats.size}:${stats.mtimeMs}\n`);
  const cachedData = readCache(cacheFile, stamp);
  // Node's own CommonJS wrapper, on the source's first line so that line numbers stay right.
  const source = `(function (exports, require, module, __filename, __dirname) { ${readFileSync(file, 'utf8')}\n})`;
  const script = new vm.Script(source, {
    filename: file,
    cachedData,
    // `import()` inside the bundle (the server's bundle, for serve and doctor) as in any module.
    importModuleDynamically: vm.constants.USE_MAIN_CONTEXT_DEFAULT_LOADER,
  });
  if (cachedData === undefined || script.cachedDataRejected === true) {
    process.once('exit', (code) => {
      if (code === 0) saveCache(cacheFile, stamp, () => script.createCachedData());
    });
  }
  const run = script.runInThisContext() as (...args: unknown[]) => void;
  const module = { exports: {} };
  run.call(module.exports, module.exports, createRequire(file), module, file, dir);
}

/** The cache's V8 data when it was made from this very bundle; undefined otherwise. */
function readCache(cacheFile: string, stamp: Buffer): Buffer | undefined {
  let data: Buffer;
  try {
    data = readFileSync(cacheFile);
  } catch {
    return undefined;
  }
  return data.subarray(0, stamp.length).equals(stamp) ? data.subarray(stamp.length) : undefined;
}

function saveCache(cacheFile: string, stamp: Buffer, make: () => Buffer): void {
  const temporary = `${cacheFile}.${process.pid}`;
  try {
    mkdirSync(cacheFile.slice(0, cacheFile.lastIndexOf('/')), { recursive: true });
    writeFileSync(temporary, Buffer.concat([stamp, make()]));
    renameSync(temporary, cacheFile);
  } catch {
    // A read-only install, a full disk: the next run compiles as it would without a cache.
    rmSync(temporary, { force: true });
  }
}
