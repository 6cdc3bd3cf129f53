import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { normalizeSpec } from '../../src/core/spec.ts';
import { jobSpawnRequest } from '../../src/runtime/job-spawn-request.ts';
import { SpawnerClient } from '../../src/runtime/spawner-client.ts';

/**
 * A spawner binary built from other sources than the server's (a checkout updated without running
 * setup): one from before requests began with their kind took the kind for the request's id, and
 * answered each request under that id. Every start then waited for ever, without a word.
 */
describe('a spawner that speaks another protocol', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'jw-old-spawner-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('refuses a start saying to rebuild it, rather than leave it waiting for ever', async () => {
    // What that spawner answered to every request of this protocol, whose first field is its kind.
    const old = join(dir, 'old-spawner');
    await writeFile(
      old,
      '#!/bin/sh\nwhile :; do dd bs=1 count=1 status=none >/dev/null || exit 0; printf "err start request 22 malformed start request\\n"; sleep 60; done\n',
    );
    await chmod(old, 0o755);
    const logged: string[] = [];
    const client = new SpawnerClient({ path: old, log: (line) => logged.push(line) });
    try {
      const spec = normalizeSpec({ command: 'true' }, { cwd: dir });
      const reply = await client.start(jobSpawnRequest(spec, 'old-1', dir, []));
      assert.equal(reply.kind, 'refused');
      assert.match(
        reply.kind === 'refused' ? reply.reason : '',
        /speaks another protocol than this server \(it answered "malformed start request"\).*rebuild it with scripts\/build-native\.sh/,
      );
      assert.ok(logged.some((line) => line.includes('speaks another protocol')));
    } finally {
      client.close();
    }
  });
});
