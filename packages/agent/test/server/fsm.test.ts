// The server's state machine: snapshot restore as Raft entries (begin / chunks / end), the index
// offset that keeps store indexes monotonic after restoring a snapshot from a longer history, and
// Raft snapshots taken in the middle of a restore.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { Entry } from '@trellis/raft';
import { StateStore, encodeCommand, type Command } from '../../src/state/index.ts';
import { ClusterFsm, restoreEntries } from '../../src/server/fsm.ts';

const entry = (index: number, data: Uint8Array): Entry => ({ index, term: 1, kind: 'normal', data });
const kvSet = (Key: string, value: string): Command => ({ type: 'kvSet', Key, Value: new TextEncoder().encode(value), now: 1 });
const kvGet = (store: StateStore, key: string) => {
  const v = store.kvGet(key).value;
  return v ? { value: new TextDecoder().decode(v.Value ?? new Uint8Array()), modify: v.ModifyIndex } : undefined;
};

/** A state snapshot holding `keys`, whose last index is `lastIndex` (applied at 1..n, then padded). */
function stateWith(keys: Record<string, string>, firstIndex = 1): Uint8Array {
  const s = new StateStore();
  let i = firstIndex;
  for (const [k, v] of Object.entries(keys)) s.apply(i++, kvSet(k, v));
  return s.snapshot();
}

/** Feeds a whole restore to `fsm` starting at Raft index `at`; returns the next free index and the end result. */
function restore(fsm: ClusterFsm, at: number, state: Uint8Array, opts: { chunk?: number; sha?: string; id?: string } = {}) {
  const id = opts.id ?? 'r1';
  const chunk = opts.chunk ?? 64;
  const sha256 = opts.sha ?? createHash('sha256').update(state).digest('hex');
  const results = [fsm.apply(entry(at++, restoreEntries.begin({ id, bytes: state.byteLength, sha256 })))];
  for (let off = 0; off < state.byteLength; off += chunk) results.push(fsm.apply(entry(at++, restoreEntries.chunk(id, off, state.subarray(off, off + chunk)))));
  const end = fsm.apply(entry(at++, restoreEntries.end(id)));
  return { next: at, end, results };
}

describe('ClusterFsm', () => {
  test('ordinary commands apply at their Raft index (no offset until a restore needs one)', () => {
    const store = new StateStore();
    const fsm = new ClusterFsm(store);
    assert.equal(fsm.apply(entry(1, encodeCommand(kvSet('a', '1')))).ok, true);
    assert.equal(fsm.apply(entry(2, encodeCommand(kvSet('a', '2')))).ok, true);
    assert.deepEqual(kvGet(store, 'a'), { value: '2', modify: 2 });
    // Without an offset or a restore in progress, snapshots are the store's own bytes.
    assert.deepEqual(Buffer.from(fsm.snapshot()), Buffer.from(store.snapshot()));
  });

  test('a restore in chunks replaces the whole state at its end entry, and not before', () => {
    const store = new StateStore();
    const fsm = new ClusterFsm(store);
    fsm.apply(entry(1, encodeCommand(kvSet('old', 'x'))));
    const state = stateWith({ a: 'restored-a', b: 'restored-b' });
    let at = 2;
    const sha256 = createHash('sha256').update(state).digest('hex');
    fsm.apply(entry(at++, restoreEntries.begin({ id: 'r', bytes: state.byteLength, sha256 })));
    fsm.apply(entry(at++, restoreEntries.chunk('r', 0, state.subarray(0, 100))));
    assert.deepEqual(kvGet(store, 'old')?.value, 'x', 'unchanged while chunks arrive');
    fsm.apply(entry(at++, restoreEntries.chunk('r', 100, state.subarray(100))));
    const end = fsm.apply(entry(at++, restoreEntries.end('r')));
    assert.equal(end.ok, true);
    assert.equal(kvGet(store, 'old'), undefined);
    assert.equal(kvGet(store, 'a')?.value, 'restored-a');
  });

  test('a checksum mismatch fails the end entry and leaves the state untouched', () => {
    const store = new StateStore();
    const fsm = new ClusterFsm(store);
    fsm.apply(entry(1, encodeCommand(kvSet('keep', 'me'))));
    const { end } = restore(fsm, 2, stateWith({ a: '1' }), { sha: '0'.repeat(64) });
    assert.equal(end.ok, false);
    assert.match(!end.ok ? end.error.message : '', /checksum mismatch/);
    assert.equal(kvGet(store, 'keep')?.value, 'me');
  });

  test('chunks out of order abandon the restore; an end without a begin fails', () => {
    const fsm = new ClusterFsm(new StateStore());
    const state = stateWith({ a: '1' });
    fsm.apply(entry(1, restoreEntries.begin({ id: 'r', bytes: state.byteLength, sha256: 'x' })));
    const bad = fsm.apply(entry(2, restoreEntries.chunk('r', 10, state.subarray(10, 20))));
    assert.equal(bad.ok, false);
    assert.equal(fsm.apply(entry(3, restoreEntries.end('r'))).ok, false);
    assert.equal(fsm.apply(entry(4, restoreEntries.end('never-begun'))).ok, false);
  });

  test('a snapshot from a longer history moves the store index past its own last index', () => {
    const store = new StateStore();
    const fsm = new ClusterFsm(store);
    fsm.apply(entry(1, encodeCommand(kvSet('a', 'before'))));
    // Taken on another cluster at index ~1000.
    const state = stateWith({ big: 'history' }, 1000);
    const { next, end } = restore(fsm, 2, state);
    assert.equal(end.ok, true);
    assert.equal(end.index, 1000);
    const after = fsm.apply(entry(next, encodeCommand(kvSet('new', 'write'))));
    assert.equal(after.ok, true, 'not refused as a re-applied index');
    assert.equal(after.index, 1001, 'the first write after the restore lands just above the restored state');
    assert.equal(kvGet(store, 'new')?.modify, 1001);
    assert.equal(fsm.indexOffset, 1000 - (next - 1));
  });

  test('an older snapshot makes indexes go back to it, then continue from the Raft index', () => {
    const store = new StateStore();
    const fsm = new ClusterFsm(store);
    for (let i = 1; i <= 50; i++) fsm.apply(entry(i, encodeCommand(kvSet(`k${i}`, 'v'))));
    const { next, end } = restore(fsm, 51, stateWith({ small: 'state' }));
    assert.equal(end.ok, true);
    assert.equal(end.index, 1, 'the restored state keeps its own (lower) index');
    assert.equal(fsm.indexOffset, 0);
    assert.equal(fsm.apply(entry(next, encodeCommand(kvSet('x', 'y')))).index, next);
  });

  test('a Raft snapshot taken mid-restore carries the chunks and the offset: replicas converge', () => {
    const state = stateWith({ a: 'A', b: 'B', c: 'C' }, 500);
    const sha256 = createHash('sha256').update(state).digest('hex');
    const entries: Entry[] = [entry(1, encodeCommand(kvSet('pre', '1')))];
    let at = 2;
    entries.push(entry(at++, restoreEntries.begin({ id: 'r', bytes: state.byteLength, sha256 })));
    for (let off = 0; off < state.byteLength; off += 50) entries.push(entry(at++, restoreEntries.chunk('r', off, state.subarray(off, off + 50))));
    entries.push(entry(at++, restoreEntries.end('r')));
    entries.push(entry(at++, encodeCommand(kvSet('post', '2'))));

    const full = new ClusterFsm(new StateStore());
    for (const e of entries) full.apply(e);

    for (const cut of [2, 3, Math.floor(entries.length / 2), entries.length - 2, entries.length - 1]) {
      const a = new ClusterFsm(new StateStore());
      for (const e of entries.slice(0, cut)) a.apply(e);
      const snap = a.snapshot();
      const b = new ClusterFsm(new StateStore());
      b.restore(snap);
      for (const e of entries.slice(cut)) b.apply(e);
      assert.deepEqual(Buffer.from(b.snapshot()), Buffer.from(full.snapshot()), `replica restored from a snapshot after ${cut} entries`);
    }
  });
});
