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
 *
 * A cache is code: V8 runs the bytecode in it without checking it against the source (only its
 * length). So it is trusted only as far as the bundle itself: only the bundle's owner writes one
 * (other users run without), with modes of its own (0755 and 0644, whatever the umask), never
 * through a link; and one is used only when it and its directory belong to the bundle's owner and
 * no one else may write to them. Anyone who could plant a cache could change the bundle anyway.
 */
import {
  closeSync,
  constants,
  fstatSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  type Stats,
  statSync,
  writeFileSync,
} from 'node:fs';
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
  const cachedData = readCache(cacheFile, stamp, stats.uid);
  // Node's own CommonJS wrapper, on the source's first line so that line numbers stay right.
  const source = `(function (exports, require, module, __filename, __dirname) { ${readFileSync(file, 'utf8')}\n})`;
  // No `importModuleDynamically`: the bundle has no import() (it loads the server's bundle with
  // require, scripts/bundle-cli.ts), and vm's USE_MAIN_CONTEXT_DEFAULT_LOADER prints an
  // ExperimentalWarning on stderr, where `--json` errors and a job's exact stderr go.
  const script = new vm.Script(source, { filename: file, cachedData });
  if (cachedData === undefined || script.cachedDataRejected === true) {
    process.once('exit', (code) => {
      if (code === 0 && process.getuid?.() === stats.uid) {
        saveCache(cacheFile, stamp, stats.uid, () => script.createCachedData());
      }
    });
  }
  const run = script.runInThisContext() as (...args: unknown[]) => void;
  const module = { exports: {} };
  run.call(module.exports, module.exports, createRequire(file), module, file, dir);
}

/** Whether only `owner` may change it: owned by them, not writable by group or others. */
function ownedAlone(stats: Stats, owner: number): boolean {
  return stats.uid === owner && (stats.mode & 0o022) === 0;
}

/** The cache's V8 data when it was made from this very bundle and is trusted; undefined otherwise. */
function readCache(cacheFile: string, stamp: Buffer, owner: number): Buffer | undefined {
  let data: Buffer;
  let fd: number | undefined;
  try {
    const dir = lstatSync(cacheFile.slice(0, cacheFile.lastIndexOf('/')));
    if (!dir.isDirectory() || !ownedAlone(dir, owner)) return undefined;
    // The descriptor's own stat: what is read is what was checked (no link, no swap in between).
    fd = openSync(cacheFile, constants.O_RDONLY | constants.O_NOFOLLOW);
    const file = fstatSync(fd);
    if (!file.isFile() || !ownedAlone(file, owner)) return undefined;
    data = readFileSync(fd);
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
  return data.subarray(0, stamp.length).equals(stamp) ? data.subarray(stamp.length) : undefined;
}

function saveCache(cacheFile: string, stamp: Buffer, owner: number, make: () => Buffer): void {
  const dir = cacheFile.slice(0, cacheFile.lastIndexOf('/'));
  const temporary = `${cacheFile}.${process.pid}`;
  let created = false;
  try {
    mkdirSync(dir, { mode: 0o755 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') return;
  }
  try {
    const stats = lstatSync(dir);
    if (!stats.isDirectory() || !ownedAlone(stats, owner)) return;
    // `wx`: a file (or a link) already at the temporary name is never written through.
    writeFileSync(temporary, Buffer.concat([stamp, make()]), { mode: 0o644, flag: 'wx' });
    created = true;
    renameSync(temporary, cacheFile);
  } catch {
    // A read-only install, a full disk: the next run compiles as it would without a cache.
    if (created) rmSync(temporary, { force: true });
  }
}
