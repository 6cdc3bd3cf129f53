import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { loadMallocTrim } from '../../src/memory/malloc-trim.ts';
import { releaseThisProcess } from '../../src/memory/memory-relief.ts';

const run = promisify(execFile);
const RELIEF = new URL('../../src/memory/memory-relief.ts', import.meta.url).href;

test('the malloc-trim addon is built by setup and loads on this glibc machine', () => {
  const loaded = loadMallocTrim();
  assert.ok('trim' in loaded, `expected the addon, got: ${'reason' in loaded ? loaded.reason : ''}`);
  assert.equal(typeof loaded.trim(), 'boolean');
});

test('without the addon, loading says it is not built and how to build it', () => {
  const loaded = loadMallocTrim(['./no-such-dir/malloc-trim.node']);
  assert.deepEqual(loaded, { reason: 'malloc-trim.node: not built (scripts/build-native.sh)' });
});

test('an addon that is there but does not load is named, not taken for one not built', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'jw-trim-'));
  try {
    const broken = join(dir, 'malloc-trim.node');
    await writeFile(broken, 'not an ELF file');
    const loaded = loadMallocTrim([broken, join(dir, 'missing', 'malloc-trim.node')]);
    assert.ok('reason' in loaded);
    assert.doesNotMatch(loaded.reason, /not built/);
    assert.match(loaded.reason, /malloc-trim\.node: .*(invalid ELF|too short)/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('no relief in a process without gc exposed (a server embedded in another program)', () => {
  assert.equal(typeof (globalThis as { gc?: unknown }).gc, 'undefined', 'the test runner has no --expose-gc');
  assert.equal(releaseThisProcess(), undefined);
});

/**
 * In a process of its own (its malloc state is the point): 40 MB of small buffers, freed but for
 * the last one allocated, which pins the top of malloc's heap so that glibc cannot give the
 * rest back by itself. The relief must: its malloc_trim hands back the free pages below.
 */
test('the relief gives back malloc memory that freeing left resident below a block in use', async () => {
  const script = `
    import { readFileSync } from 'node:fs';
    import { releaseThisProcess } from ${JSON.stringify(RELIEF)};
    const rssAnon = () => Number(/RssAnon:\\s+(\\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))[1]) * 1024;
    const messages = [];
    const release = releaseThisProcess({ log: (m) => messages.push(m) });
    let buffers = Array.from({ length: 20000 }, () => Buffer.alloc(2048, 1));
    const pin = buffers.at(-1);
    buffers = undefined;
    // V8 frees array buffers' memory after a collection, possibly on another thread: wait until
    // it is accounted as freed. The relief's own collection then has nothing left to give back.
    while (process.memoryUsage().arrayBuffers > 8 * 1024 * 1024) {
      globalThis.gc({ type: 'major', execution: 'sync', flavor: 'last-resort' });
      await new Promise((resolve) => setImmediate(resolve));
    }
    const before = rssAnon();
    await release();
    const after = rssAnon();
    console.log(JSON.stringify({ before, after, messages, pinned: pin.length }));
  `;
  const { stdout } = await run(process.execPath, ['--expose-gc', '--input-type=module', '-e', script], {
    // glibc's defaults (bin/jobworker sets its own thresholds; the point here is the trim itself).
    env: { PATH: process.env.PATH ?? '' },
  });
  const { before, after, messages } = JSON.parse(stdout) as {
    before: number;
    after: number;
    messages: string[];
  };
  assert.deepEqual(messages, [], 'the addon loaded');
  const givenBack = before - after;
  assert.ok(
    givenBack > 20 * 1024 * 1024,
    `expected > 20 MB given back of ~40 MB freed, got ${givenBack} bytes`,
  );
});

test('the relief releases the caches first; one that fails is logged and the rest still runs; busy skips the rest', async () => {
  const script = `
    import { releaseThisProcess } from ${JSON.stringify(RELIEF)};
    const events = [];
    const realGc = globalThis.gc;
    globalThis.gc = (options) => { events.push('gc ' + options.flavor); realGc(options); };
    const ok = releaseThisProcess({ log: (m) => events.push(m), caches: async () => { events.push('caches'); } });
    await ok();
    const failing = releaseThisProcess({ log: (m) => events.push(m), caches: async () => { throw new Error('database is closed'); } });
    await failing();
    // A follow opened while the caches were released: no collection to pause it.
    let followed = false;
    const busy = releaseThisProcess({ caches: async () => { followed = true; }, busy: () => followed });
    await busy();
    events.push('after busy');
    console.log(JSON.stringify(events));
  `;
  const { stdout } = await run(process.execPath, ['--expose-gc', '--input-type=module', '-e', script]);
  assert.deepEqual(JSON.parse(stdout), [
    'caches',
    'gc last-resort',
    'memory relief: the caches could not be released: database is closed',
    'gc last-resort',
    'after busy',
  ]);
});
