import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ValidationError } from '../../src/core/errors.ts';
import {
  ISOLATE_PRESET,
  isIsolated,
  mergeIsolation,
  namespacesOf,
  normalizeIsolation,
} from '../../src/core/isolation.ts';
import { normalizeSpec } from '../../src/core/spec.ts';

describe('isolation in a spec', () => {
  it('is normalized: what asks for nothing is left out, paths lose trailing slashes', () => {
    assert.deepEqual(
      normalizeIsolation({
        pid: true,
        network: 'none',
        mount: { privateTmp: true, readOnly: ['/etc/', '/usr'], hide: [] },
        hostname: 'job-1.example',
      }),
      {
        pid: true,
        network: 'none',
        mount: { privateTmp: true, readOnly: ['/etc', '/usr'] },
        hostname: 'job-1.example',
      },
    );
    assert.deepEqual(normalizeIsolation({ pid: false, network: 'host', mount: { privateTmp: false } }), {});
    assert.equal(isIsolated(normalizeIsolation({ network: 'host' })), false);
  });

  it('bad values name the field and say what was expected', () => {
    const cases: [unknown, string, RegExp][] = [
      ['yes', 'isolation', /an object/],
      [{ pid: 1 }, 'isolation.pid', /a boolean, got `?1/],
      [{ network: 'bridge' }, 'isolation.network', /"none" or "host"/],
      [{ mount: [] }, 'isolation.mount', /an object/],
      [{ mount: { readOnly: '/etc' } }, 'isolation.mount.readOnly', /an array of absolute paths/],
      [{ mount: { readOnly: ['/etc', 'tmp'] } }, 'isolation.mount.readOnly[1]', /absolute path/],
      [{ mount: { hide: ['/a/../etc'] } }, 'isolation.mount.hide[0]', /without `.` or `..`/],
      [{ mount: { hide: ['/'] } }, 'isolation.mount.hide[0]', /other than `\/`/],
      [{ mount: { tmp: true } }, 'isolation.mount.tmp', /Unknown field/],
      [{ hostname: '-bad' }, 'isolation.hostname', /host name/],
      [{ hostname: 'x'.repeat(65) }, 'isolation.hostname', /at most 64/],
      [{ user: true }, 'isolation.user', /Unknown field/],
    ];
    for (const [value, field, message] of cases) {
      assert.throws(
        () => normalizeSpec({ command: 'true', isolation: value }, { cwd: '/' }),
        (err: unknown) => err instanceof ValidationError && err.field === field && message.test(err.message),
        `${JSON.stringify(value)} → ${field}`,
      );
    }
  });

  it('a spec keeps an explicit `{}` (none, over any default) and has no isolation when it names none', () => {
    assert.deepEqual(normalizeSpec({ command: 'true', isolation: {} }, { cwd: '/' }).isolation, {});
    assert.equal('isolation' in normalizeSpec({ command: 'true' }, { cwd: '/' }), false);
  });

  it('mergeIsolation is the union of both (the first one’s host name wins)', () => {
    assert.deepEqual(
      mergeIsolation(
        { network: 'none', mount: { readOnly: ['/etc'] }, hostname: 'a' },
        { ...ISOLATE_PRESET, mount: { privateTmp: true, readOnly: ['/etc', '/usr'] }, hostname: 'b' },
      ),
      { pid: true, network: 'none', mount: { privateTmp: true, readOnly: ['/etc', '/usr'] }, hostname: 'a' },
    );
    assert.deepEqual(mergeIsolation(undefined, ISOLATE_PRESET), ISOLATE_PRESET);
    assert.equal(mergeIsolation(null, undefined), undefined);
  });

  it('names the namespaces each part needs', () => {
    assert.deepEqual(namespacesOf(ISOLATE_PRESET), ['pid', 'net', 'mnt']);
    assert.deepEqual(namespacesOf({ hostname: 'x' }), ['uts']);
    assert.deepEqual(namespacesOf({ mount: { hide: ['/root'] } }), ['mnt']);
  });
});
