import assert from 'node:assert/strict';
import type { LookupAddress } from 'node:dns';
import { describe, it } from 'node:test';
import { readServerConfig } from '../../src/config.ts';
import { LookupGate, lookupsFor } from '../../src/webhooks/lookup-gate.ts';

type Callback = (err: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void;

/** A gate over a resolver that answers only when the test says so. */
function heldGate(max: number) {
  const asked: { hostname: string; answer: Callback }[] = [];
  const gate = new LookupGate(max, (hostname, _options, answer) => {
    asked.push({ hostname, answer });
  });
  return { gate, asked };
}

const ADDRESS: LookupAddress[] = [{ address: '192.0.2.1', family: 4 }];

describe('LookupGate', () => {
  it('runs at most max lookups at once, the others in the order they came as places free up', () => {
    const { gate, asked } = heldGate(2);
    const answered: string[] = [];
    for (const name of ['a', 'b', 'c', 'd']) {
      gate.lookup(name, { all: true }, (err, addresses) =>
        answered.push(`${name}:${err?.code ?? addresses[0]?.address}`),
      );
    }
    assert.deepEqual(
      asked.map((a) => a.hostname),
      ['a', 'b'],
    );
    assert.deepEqual([gate.running, gate.waiting], [2, 2]);
    asked[1]!.answer(null, ADDRESS);
    assert.deepEqual(
      asked.map((a) => a.hostname),
      ['a', 'b', 'c'],
    );
    asked[0]!.answer(Object.assign(new Error('no such name'), { code: 'ENOTFOUND' }), []);
    asked[2]!.answer(null, ADDRESS);
    asked[3]!.answer(null, ADDRESS);
    assert.deepEqual(answered, ['b:192.0.2.1', 'a:ENOTFOUND', 'c:192.0.2.1', 'd:192.0.2.1']);
    assert.deepEqual([gate.running, gate.waiting], [0, 0]);
  });

  it('never makes a lookup whose asker left before its turn, and never answers it', () => {
    const { gate, asked } = heldGate(1);
    const left = new AbortController();
    const answered: string[] = [];
    gate.lookup('first', { all: true }, () => answered.push('first'));
    gate.lookup('gone', { all: true }, () => answered.push('gone'), left.signal);
    gate.lookup('next', { all: true }, () => answered.push('next'));
    left.abort();
    assert.equal(gate.waiting, 1);
    asked[0]!.answer(null, ADDRESS);
    asked[1]!.answer(null, ADDRESS);
    assert.deepEqual(
      asked.map((a) => a.hostname),
      ['first', 'next'],
    );
    assert.deepEqual(answered, ['first', 'next']);
    // Already left: not even queued.
    gate.lookup('late', { all: true }, () => answered.push('late'), left.signal);
    assert.deepEqual([gate.running, gate.waiting, asked.length], [0, 0, 2]);
  });

  it('looks a name many ask for at once up once, and answers each of them; one who left is not answered', () => {
    const { gate, asked } = heldGate(2);
    const answered: string[] = [];
    const left = new AbortController();
    gate.lookup('slow.example', { all: true }, () => answered.push('first'));
    gate.lookup('slow.example', { all: true }, () => answered.push('second'));
    gate.lookup('slow.example', { all: true }, () => answered.push('left'), left.signal);
    gate.lookup('slow.example', { all: true, family: 6 }, () => answered.push('IPv6 only'));
    gate.lookup('other.example', { all: true }, () => answered.push('other'));
    assert.deepEqual(
      asked.map((a) => a.hostname),
      ['slow.example', 'slow.example'],
      'one lookup per name and options; the other name waits its turn',
    );
    left.abort();
    asked[0]!.answer(null, ADDRESS);
    assert.deepEqual(answered, ['first', 'second']);
    assert.deepEqual(
      asked.map((a) => a.hostname),
      ['slow.example', 'slow.example', 'other.example'],
    );
    // Asked for again once answered: a new lookup.
    gate.lookup('slow.example', { all: true }, () => answered.push('again'));
    assert.equal(asked.length, 3, 'waits: both places are taken');
    asked[1]!.answer(null, ADDRESS);
    asked[2]!.answer(null, ADDRESS);
    asked[3]!.answer(null, ADDRESS);
    assert.deepEqual(answered, ['first', 'second', 'IPv6 only', 'other', 'again']);
    assert.deepEqual([gate.running, gate.waiting], [0, 0]);
  });

  it('never makes a lookup of a name everyone who asked for left before its turn', () => {
    const { gate, asked } = heldGate(1);
    const a = new AbortController();
    const b = new AbortController();
    gate.lookup('first', { all: true }, () => undefined);
    gate.lookup('gone', { all: true }, () => undefined, a.signal);
    gate.lookup('gone', { all: true }, () => undefined, b.signal);
    a.abort();
    assert.equal(gate.waiting, 1, 'one asker is still there');
    b.abort();
    assert.equal(gate.waiting, 0);
    asked[0]!.answer(null, ADDRESS);
    assert.deepEqual(
      asked.map((x) => x.hostname),
      ['first'],
    );
  });

  it("takes half of libuv's threads as the server's configuration reads them, at least one", () => {
    const lookups = (env: NodeJS.ProcessEnv) => lookupsFor(readServerConfig(env).threadPoolSize);
    assert.equal(lookups({}), 2);
    assert.equal(lookups({ UV_THREADPOOL_SIZE: '16' }), 8);
    assert.equal(lookups({ UV_THREADPOOL_SIZE: '1' }), 1);
    assert.equal(lookups({ UV_THREADPOOL_SIZE: 'lots' }), 2);
    assert.equal(lookups({ UV_THREADPOOL_SIZE: '2000' }), 2);
  });

  it('answers every asker of a lookup, whatever one of them throws', () => {
    const { gate, asked } = heldGate(1);
    const answered: string[] = [];
    gate.lookup('x', { all: true }, () => {
      throw new Error('boom');
    });
    gate.lookup('x', { all: true }, () => answered.push('second'));
    gate.lookup('y', { all: true }, () => answered.push('next'));
    assert.throws(() => asked[0]!.answer(null, ADDRESS), /boom/);
    assert.deepEqual(answered, ['second']);
    assert.deepEqual(
      asked.map((a) => a.hostname),
      ['x', 'y'],
      'the place was given on',
    );
    asked[1]!.answer(null, ADDRESS);
    assert.deepEqual(answered, ['second', 'next']);
  });

  it("answers a lookup's askers, and gives its place on, even when the next lookup's answer throws at once", () => {
    const held: Callback[] = [];
    // `cached.example` is answered at once (from a cache, say); the others when the test says so.
    const gate = new LookupGate(1, (hostname, _options, answer) => {
      if (hostname === 'cached.example') answer(null, ADDRESS);
      else held.push(answer);
    });
    const answered: string[] = [];
    gate.lookup('first.example', { all: true }, () => answered.push('first'));
    gate.lookup('cached.example', { all: true }, () => {
      throw new Error('boom');
    });
    gate.lookup('last.example', { all: true }, () => answered.push('last'));
    assert.throws(() => held[0]!(null, ADDRESS), /boom/);
    assert.deepEqual(answered, ['first'], "the first lookup's asker was answered");
    assert.equal(held.length, 2, 'and the last lookup began');
    held[1]!(null, ADDRESS);
    assert.deepEqual(answered, ['first', 'last']);
    assert.deepEqual([gate.running, gate.waiting], [0, 0]);
  });

  it('gives the place back when the resolver throws instead of calling back', () => {
    const gate = new LookupGate(1, () => {
      throw Object.assign(new TypeError('The "hostname" argument must be of type string'), {
        code: 'ERR_INVALID_ARG_TYPE',
      });
    });
    const errors: string[] = [];
    gate.lookup('x', { all: true }, (err) => errors.push(err?.code ?? ''));
    gate.lookup('y', { all: true }, (err) => errors.push(err?.code ?? ''));
    assert.deepEqual(errors, ['ERR_INVALID_ARG_TYPE', 'ERR_INVALID_ARG_TYPE']);
    assert.equal(gate.running, 0);
  });

  it('looks names up through dns.lookup by default', async () => {
    const gate = new LookupGate();
    const addresses = await new Promise<LookupAddress[]>((resolve, reject) =>
      gate.lookup('localhost', { all: true }, (err, found) => (err ? reject(err) : resolve(found))),
    );
    assert.ok(
      addresses.some((a) => a.address === '127.0.0.1' || a.address === '::1'),
      JSON.stringify(addresses),
    );
  });

  it('refuses a max that is not a whole number of at least 1', () => {
    for (const max of [0, -1, 1.5, Number.NaN]) {
      assert.throws(() => new LookupGate(max), /max must be a whole number >= 1/);
    }
  });
});
