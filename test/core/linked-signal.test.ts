import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { test } from 'node:test';
import { linkSignals } from '../../src/core/linked-signal.ts';

test('a linked signal aborts with the reason of the first of its signals to abort, and lets go of them all', () => {
  const long = new AbortController();
  const short = new AbortController();
  const linked = linkSignals([short.signal, long.signal]);
  assert.equal(linked.signal.aborted, false);
  assert.equal(getEventListeners(long.signal, 'abort').length, 1);
  short.abort(new Error('the client went away'));
  assert.equal(linked.signal.aborted, true);
  assert.equal((linked.signal.reason as Error).message, 'the client went away');
  assert.equal(getEventListeners(long.signal, 'abort').length, 0, 'nothing left on the long-lived one');
  long.abort(new Error('shutdown'));
  assert.equal((linked.signal.reason as Error).message, 'the client went away', 'the first reason stays');
});

test('a signal already aborted gives its reason at once, the first one given winning; one signal alone is itself', () => {
  const done = new AbortController();
  done.abort('first');
  const other = new AbortController();
  other.abort('second');
  const linked = linkSignals([undefined, done.signal, other.signal]);
  assert.equal(linked.signal.reason, 'first');
  const alone = new AbortController();
  assert.equal(linkSignals([undefined, alone.signal]).signal, alone.signal);
});

test('disposed after each use, 10,000 links to one long-lived signal leave it no listener', () => {
  const long = new AbortController();
  for (let i = 0; i < 10_000; i++) {
    const own = new AbortController();
    const linked = linkSignals([own.signal, long.signal]);
    linked.signal.addEventListener('abort', () => {});
    if (i % 2 === 0) own.abort();
    linked.dispose();
    linked.dispose();
  }
  assert.equal(getEventListeners(long.signal, 'abort').length, 0);
  // And the long-lived one still reaches a link made now.
  const last = linkSignals([new AbortController().signal, long.signal]);
  long.abort('shutdown');
  assert.equal(last.signal.reason, 'shutdown');
});
