import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { resolveCommand } from '../../src/runtime/preflight.ts';

describe('resolveCommand (the preflight: what execvp would run)', () => {
  let root = '';
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'jw-resolve-'));
  });
  after(() => rm(root, { recursive: true, force: true }));

  it('skips PATH entries that are missing, hold no file, hold a directory or a file it cannot execute', async () => {
    const [missing, empty, withDir, notExecutable, found] = ['missing', 'empty', 'dir', 'plain', 'found'].map(
      (name) => join(root, name),
    ) as [string, string, string, string, string];
    await mkdir(empty);
    await mkdir(join(withDir, 'tool'), { recursive: true });
    await mkdir(notExecutable);
    await writeFile(join(notExecutable, 'tool'), '#!/bin/sh\n');
    await chmod(join(notExecutable, 'tool'), 0o644);
    await mkdir(found);
    await writeFile(join(found, 'tool'), '#!/bin/sh\n');
    await chmod(join(found, 'tool'), 0o755);
    const path = [missing, empty, withDir, notExecutable, found].join(':');
    // As root, access(X_OK) passes for a file with any x bit only: the 0644 file is skipped there too.
    assert.equal(resolveCommand('tool', root, path), join(found, 'tool'));
    assert.equal(resolveCommand('tool', root, [missing, empty, withDir].join(':')), undefined);
    // A relative PATH entry is taken from the job's working directory; an empty one is that directory.
    assert.equal(resolveCommand('tool', root, 'missing:found'), join(found, 'tool'));
    assert.equal(resolveCommand('tool', found, ':'), join(found, 'tool'));
  });

  it('takes a command with a slash as a path, from the working directory when relative', async () => {
    const dir = join(root, 'bin');
    await mkdir(dir);
    await writeFile(join(dir, 'run'), '#!/bin/sh\n');
    await chmod(join(dir, 'run'), 0o755);
    assert.equal(resolveCommand('bin/run', root, ''), join(dir, 'run'));
    assert.equal(resolveCommand(join(dir, 'run'), '/', ''), join(dir, 'run'));
    assert.equal(resolveCommand('bin/absent', root, dir), undefined);
    assert.equal(resolveCommand('bin', root, ''), undefined, 'a directory is not a command');
  });
});
