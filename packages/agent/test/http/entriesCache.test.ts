// EntriesCache (http/entriesCache.ts): the first get() waits for the first fill, later ones answer
// from memory while a blocking read waits; the first fill's failure reaches its callers; after
// that a failed refresh keeps the last value and retries; close() ends the watch.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EntriesCache, type EntriesPage } from '../../src/http/entriesCache.ts';
import type { ConfigEntry } from '../../src/state/types.ts';

const entry = (name: string): ConfigEntry => ({ Kind: 'service-intentions', Name: name, CreateIndex: 1, ModifyIndex: 1 }) as ConfigEntry;

/** A scripted server: each fetch waits for the test to answer it. */
function scripted() {
  const calls: Array<{ minIndex: number; answer: (p: EntriesPage) => void; fail: (e: Error) => void; signal: AbortSignal }> = [];
  let notify: (() => void) | undefined;
  const fetch = (minIndex: number, signal: AbortSignal): Promise<EntriesPage> => new Promise((answer, fail) => {
    calls.push({ minIndex, answer, fail, signal });
    notify?.();
  });
  const next = async (n: number) => {
    const deadline = Date.now() + 5000;
    while (calls.length < n && Date.now() < deadline) await new Promise<void>((r) => { notify = r; setTimeout(r, 50); });
    assert.ok(calls.length >= n, `fetch #${n} was made`);
    return calls[n - 1]!;
  };
  return { fetch, calls, next };
}

test('first fill, then answers from memory while the blocking read waits; follows a change', async () => {
  const s = scripted();
  const cache = new EntriesCache(s.fetch, { retryMinMs: 5 });
  try {
    const first = cache.get();
    const c1 = await s.next(1);
    assert.equal(c1.minIndex, 0);
    c1.answer({ index: 7, entries: [entry('db')] });
    assert.deepEqual((await first).map((e) => e.Name), ['db']);
    const c2 = await s.next(2);
    assert.equal(c2.minIndex, 7, 'the next read blocks on the index it has');
    assert.deepEqual((await cache.get()).map((e) => e.Name), ['db']);
    assert.equal(s.calls.length, 2, 'a warm get() makes no request');
    c2.answer({ index: 9, entries: [entry('db'), entry('api')] });
    const c3 = await s.next(3);
    assert.equal(c3.minIndex, 9);
    assert.deepEqual((await cache.get()).map((e) => e.Name), ['db', 'api']);
  } finally {
    cache.close();
  }
  assert.ok(s.calls[2]!.signal.aborted, 'close() aborts the waiting read');
});

test('the first fill\'s failure reaches the caller; a later failure keeps the last value and retries', async () => {
  const s = scripted();
  const errors: number[] = [];
  const cache = new EntriesCache(s.fetch, { retryMinMs: 5, onError: (_e, n) => errors.push(n) });
  try {
    const first = cache.get();
    (await s.next(1)).fail(new Error('No cluster leader'));
    await assert.rejects(first, /No cluster leader/);
    const second = cache.get();
    (await s.next(2)).answer({ index: 3, entries: [entry('db')] });
    assert.equal((await second).length, 1);
    (await s.next(3)).fail(new Error('server gone'));
    // Served from memory meanwhile, and the watch tries again.
    assert.equal((await cache.get()).length, 1);
    const retry = await s.next(4);
    assert.equal(retry.minIndex, 3);
    assert.deepEqual(errors, [1, 1]);
  } finally {
    cache.close();
  }
});
