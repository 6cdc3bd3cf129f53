import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { appendFile, cp, mkdir, mkdtemp, rm, stat, symlink, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';

const run = promisify(execFile);
const repo = join(import.meta.dirname, '..', '..');

/** The native parts' sources, as the script names them (relative to the repository). */
const sources = [
  'src/runtime/native/jobworker-spawner.c',
  'src/memory/native/malloc-trim.c',
  'src/api/rest/native/send-file.c',
  'src/output/native/file-sizes.c',
  'src/store/sqlite/native/jobworker-checkpointer.c',
  'src/core/native/napi-helpers.h',
];

/** Runs the script in the copy; what it said it built, by file name. */
async function build(root: string, env: Record<string, string> = {}): Promise<string[]> {
  const { stderr } = await run('bash', [join(root, 'scripts', 'build-native.sh')], {
    cwd: root,
    env: { ...process.env, ...env },
  });
  return [...stderr.matchAll(/build-native: built \S+\/([^/\s]+)$/gm)].map((m) => m[1] ?? '');
}

/**
 * scripts/build-native.sh decides what to compile. It used to compare file dates: a `dist/` copied
 * or restored after a source was edited was newer than it, and the old binary stayed (a stale
 * spawner made tests fail in a worktree). It now compares what each output was built from.
 */
describe('scripts/build-native.sh', () => {
  let root: string;
  before(async () => {
    // A copy of the parts the script reads, so that editing a source touches no real checkout.
    root = await mkdtemp(join(tmpdir(), 'jw-build-native-'));
    await mkdir(join(root, 'scripts'));
    await cp(join(repo, 'scripts', 'build-native.sh'), join(root, 'scripts', 'build-native.sh'));
    for (const source of sources) {
      await mkdir(dirname(join(root, source)), { recursive: true });
      await cp(join(repo, source), join(root, source));
    }
    await symlink(join(repo, 'node_modules'), join(root, 'node_modules'));
  });
  after(() => rm(root, { recursive: true, force: true }));

  it('rebuilds an output whose source changed even when the output is newer', async () => {
    const first = await build(root);
    assert.ok(first.includes('jobworker-spawner'), `first build: ${first.join(', ')}`);
    assert.deepEqual(await build(root), [], 'a second run with nothing changed builds nothing');
    // Nor needs a compiler: a machine without one (a copied build) finds it all current.
    assert.deepEqual(await build(root, { CC: join(root, 'no-such-compiler') }), []);

    // An edit whose file is older than the binary: what a copied dist/ looks like.
    const spawnerSource = join(root, 'src/runtime/native/jobworker-spawner.c');
    await appendFile(spawnerSource, '\n/* edited */\n');
    const binary = await stat(join(root, 'dist/native/jobworker-spawner'));
    const older = new Date(binary.mtimeMs - 60_000);
    await utimes(spawnerSource, older, older);
    assert.deepEqual(await build(root), ['jobworker-spawner']);
  });

  it('rebuilds every addon when the header they share changed, and nothing when only a date did', async () => {
    await build(root);
    const addons = ['malloc-trim.node', 'send-file.node', 'file-sizes.node'];
    const built = new Set(await build(root));
    assert.equal(built.size, 0);

    const now = new Date();
    for (const source of sources) await utimes(join(root, source), now, now);
    assert.deepEqual(await build(root), [], 'a source touched but not changed is not rebuilt');

    await appendFile(join(root, 'src/core/native/napi-helpers.h'), '\n/* edited */\n');
    const rebuilt = await build(root);
    // An addon is only built where the compiler and headers are; the spawner always is.
    const present = [];
    for (const addon of addons) {
      if (await stat(join(root, 'dist/native', addon)).catch(() => undefined)) present.push(addon);
    }
    assert.ok(present.length > 0, 'this machine builds the addons');
    assert.deepEqual(rebuilt.sort(), present.sort());
  });
});
