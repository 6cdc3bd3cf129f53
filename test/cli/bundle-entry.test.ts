import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { REPO } from './cli-harness.ts';

const run = promisify(execFile);
const ENTRY = join(REPO, 'dist/jobworker.cjs');

/**
 * The bundle's staleness check (src/cli/bundle-entry.ts), on a copy of the real entry in a
 * stand-in checkout whose bundles and sources only say which of them ran: a stale build must
 * never run silently, and a current one must not be second-guessed.
 */
describe('dist/jobworker.cjs: the bundle or the sources', { skip: !existsSync(ENTRY) && 'no build' }, () => {
  let root: string;
  const builtAt = Date.now() - 60_000;
  const before1 = new Date(builtAt - 30_000);
  const after1 = new Date(builtAt + 30_000);

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'jw-entry-'));
    mkdirSync(join(root, 'dist'));
    mkdirSync(join(root, 'src/cli'), { recursive: true });
    copyFileSync(ENTRY, join(root, 'dist/jobworker.cjs'));
    writeFileSync(join(root, 'dist/jobworker-cli.cjs'), "process.stdout.write('bundle');\n");
    writeFileSync(join(root, 'src/cli/main.ts'), "process.stdout.write('sources');\n");
    for (const [name, inputs] of [
      ['jobworker-cli', ['src/cli/main.ts', 'src/a.ts']],
      ['jobworker-serve', ['src/server.ts']],
    ] as const) {
      writeFileSync(join(root, `dist/${name}.inputs.json`), JSON.stringify({ builtAt, inputs }));
    }
    for (const file of ['src/cli/main.ts', 'src/a.ts', 'src/server.ts']) setSource(file, before1);
  });
  after(() => rm(root, { recursive: true, force: true }));

  function setSource(file: string, mtime: Date): void {
    if (!existsSync(join(root, file))) writeFileSync(join(root, file), '');
    utimesSync(join(root, file), mtime, mtime);
  }

  async function ran(...args: string[]): Promise<string> {
    const { stdout } = await run(process.execPath, [join(root, 'dist/jobworker.cjs'), ...args]);
    return stdout;
  }

  it('runs the bundle while every input is older than the build', async () => {
    assert.equal(await ran('status', 'x'), 'bundle');
    assert.equal(await ran('serve'), 'bundle');
  });

  it('runs the sources once an input changed after the build', async () => {
    setSource('src/a.ts', after1);
    try {
      assert.equal(await ran('status', 'x'), 'sources');
      assert.equal(await ran('--help'), 'sources');
    } finally {
      setSource('src/a.ts', before1);
    }
  });

  it('runs the sources once an input is gone', async () => {
    rmSync(join(root, 'src/a.ts'));
    try {
      assert.equal(await ran('list'), 'sources');
    } finally {
      setSource('src/a.ts', before1);
    }
  });

  it("checks the server's inputs for serve and doctor only", async () => {
    setSource('src/server.ts', after1);
    try {
      assert.equal(await ran('serve'), 'sources');
      assert.equal(await ran('doctor'), 'sources');
      assert.equal(await ran('status', 'x'), 'bundle');
    } finally {
      setSource('src/server.ts', before1);
    }
  });

  it('runs the sources when the list of inputs is missing', async () => {
    const list = join(root, 'dist/jobworker-cli.inputs.json');
    const saved = join(root, 'saved.json');
    copyFileSync(list, saved);
    rmSync(list);
    try {
      assert.equal(await ran('status', 'x'), 'sources');
    } finally {
      copyFileSync(saved, list);
    }
  });

  it('runs a command with the code cache of its last run, and never with a cache of another bundle', async () => {
    const cache = join(root, 'dist/code-cache/jobworker-cli.list.bin');
    rmSync(join(root, 'dist/code-cache'), { recursive: true, force: true });
    assert.equal(await ran('list'), 'bundle');
    assert.ok(existsSync(cache), 'the first run wrote its cache');
    assert.equal(await ran('list'), 'bundle');
    // A rebuilt bundle of the very same length (which V8's own check of a cache would accept).
    const bundle = join(root, 'dist/jobworker-cli.cjs');
    writeFileSync(bundle, "process.stdout.write('BUNDLE');\n");
    utimesSync(bundle, after1, after1);
    try {
      assert.equal(await ran('list'), 'BUNDLE');
      assert.equal(await ran('list'), 'BUNDLE');
    } finally {
      writeFileSync(bundle, "process.stdout.write('bundle');\n");
    }
  });

  it("writes its cache for the bundle's owner alone, and never uses one that others could have written", async () => {
    const dir = join(root, 'dist/code-cache');
    const cache = join(dir, 'jobworker-cli.prune.bin');
    const bundle = join(root, 'dist/jobworker-cli.cjs');
    rmSync(dir, { recursive: true, force: true });
    // Made as the owner's, whatever the umask (a server or CI running with umask 0).
    const umask = process.umask(0);
    try {
      assert.equal(await ran('prune'), 'bundle');
    } finally {
      process.umask(umask);
    }
    assert.equal(statSync(dir).mode & 0o777, 0o755);
    assert.equal(statSync(cache).mode & 0o777, 0o644);
    // A forged cache: the code of another bundle of the same length, under this bundle's stamp.
    const stamp = readFileSync(cache).subarray(0, readFileSync(cache).indexOf(0x0a) + 1);
    writeFileSync(bundle, "process.stdout.write('FORGED');\n");
    rmSync(cache);
    try {
      assert.equal(await ran('prune'), 'FORGED');
      const forged = readFileSync(cache);
      const code = forged.subarray(forged.indexOf(0x0a) + 1);
      writeFileSync(bundle, "process.stdout.write('bundle');\n");
      const stats = statSync(bundle);
      const now = Buffer.from(`${stats.size}:${stats.mtimeMs}\n`);
      assert.notDeepEqual(now, stamp, 'the bundle was rewritten');
      writeFileSync(cache, Buffer.concat([now, code]));
      // Written by the owner alone, it is trusted as the bundle is (and so it runs).
      chmodSync(cache, 0o644);
      assert.equal(await ran('prune'), 'FORGED');
      writeFileSync(cache, Buffer.concat([now, code]));
      // Writable by others, or in a directory others may write to: never used.
      chmodSync(cache, 0o666);
      assert.equal(await ran('prune'), 'bundle');
      writeFileSync(cache, Buffer.concat([now, code]));
      chmodSync(cache, 0o644);
      chmodSync(dir, 0o777);
      assert.equal(await ran('prune'), 'bundle');
    } finally {
      chmodSync(dir, 0o755);
      writeFileSync(bundle, "process.stdout.write('bundle');\n");
    }
  });

  it('checks nothing in an install without sources', async () => {
    const src = join(root, 'src');
    const moved = join(root, 'src-away');
    setSource('src/a.ts', after1);
    await rm(moved, { recursive: true, force: true });
    renameSync(src, moved);
    try {
      assert.equal(await ran('status', 'x'), 'bundle');
    } finally {
      renameSync(moved, src);
      setSource('src/a.ts', before1);
    }
  });
});
