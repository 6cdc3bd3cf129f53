import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cp, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { Code } from '@connectrpc/connect';
import { GRPC_STATUS } from '../../../src/api/rpc/rpc-errors.ts';
import { ERROR_CODES } from '../../../src/core/errors.ts';

const ROOT = new URL('../../../', import.meta.url).pathname;
const BUF = join(ROOT, 'node_modules/.bin/buf');
const run = promisify(execFile);

async function files(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    out.set(relative(dir, path), await readFile(path, 'utf8'));
  }
  return out;
}

describe('the RPC contract', () => {
  it('has its generated code current: buf generate from proto/ gives exactly src/api/rpc/gen', async () => {
    const out = await mkdtemp(join(tmpdir(), 'jw-buf-gen-'));
    try {
      await run(BUF, ['generate', '-o', out], { cwd: ROOT });
      const fresh = await files(join(out, 'src/api/rpc/gen'));
      const committed = await files(join(ROOT, 'src/api/rpc/gen'));
      assert.deepEqual([...committed.keys()].sort(), [...fresh.keys()].sort());
      for (const [path, text] of fresh) {
        assert.ok(committed.get(path) === text, `${path} is stale: run scripts/proto.sh generate`);
      }
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  });

  it('buf breaking against the baseline catches a renumbered field', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'jw-buf-breaking-'));
    try {
      await cp(join(ROOT, 'proto'), join(dir, 'proto'), { recursive: true });
      await writeFile(join(dir, 'buf.yaml'), await readFile(join(ROOT, 'buf.yaml')));
      const file = join(dir, 'proto/jobworker/v1/job_service.proto');
      const text = await readFile(file, 'utf8');
      await writeFile(file, text.replace('string ref = 1;', 'string ref = 9;'));
      const baseline = join(ROOT, 'proto/baseline.binpb');
      const broken = await run(BUF, ['breaking', '--against', baseline], { cwd: dir }).then(
        () => undefined,
        (err: { stdout: string }) => err.stdout,
      );
      assert.match(broken ?? 'no failure', /ResolveRequest/);
      await writeFile(file, text);
      await run(BUF, ['breaking', '--against', baseline], { cwd: dir });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('maps every error code to the gRPC status docs/errors.md gives it', async () => {
    const docs = await readFile(join(ROOT, 'docs/errors.md'), 'utf8');
    const documented = new Map(
      [...docs.matchAll(/^\| `([A-Z_]+)` \| \d{3} \| `([A-Z_]+)` \|/gm)].map((m) => [m[1], m[2]] as const),
    );
    assert.deepEqual(Object.keys(GRPC_STATUS).sort(), Object.keys(ERROR_CODES).sort());
    for (const [code, status] of Object.entries(GRPC_STATUS)) {
      const name = Code[status]!.replace(/([a-z])([A-Z])/g, '$1_$2').toUpperCase();
      assert.equal(documented.get(code), name, code);
    }
  });
});
