import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { MemoryLogStore, MemorySnapshotStore } from '../../src/storage/memory.ts';
import { StoreClosedError } from '../../src/errors.ts';
import { LogModel, logStoreContract, plain, range, saveArb } from './logStore.contract.ts';
import type { SaveOp } from './logStore.contract.ts';
import { snapshotStoreContract } from './snapshotStore.contract.ts';

logStoreContract('MemoryLogStore', async () => {
  // The object is the disk: every handle is the same store.
  const store = new MemoryLogStore();
  return { handle: () => store, cleanup: async () => {} };
}, { propertyRuns: 200 });

snapshotStoreContract('MemorySnapshotStore', async () => {
  const store = new MemorySnapshotStore({ retain: 2 });
  return { handle: () => store, cleanup: async () => {} };
});

describe('MemoryLogStore crash model', () => {
  test('a crash loses unsynced saves after the last synced one and keeps everything synced', async () => {
    const s = new MemoryLogStore();
    await s.open();
    await s.save(range(1, 3, 1), { term: 1, vote: 'a', commit: 1 }, true);
    await s.save(range(4, 5, 1), { term: 1, vote: 'a', commit: 4 }, false);
    await s.save(range(3, 3, 2), { term: 2, vote: '', commit: 2 }, false);
    assert.equal(s.unsyncedSaves, 2);
    assert.equal(s.crash(), 2);
    await assert.rejects(s.load(), StoreClosedError, 'the crashed process can no longer use the store');
    await s.open();
    const l = await s.load();
    assert.deepEqual(plain(l.entries), plain(range(1, 3, 1)));
    assert.deepEqual(l.hardState, { term: 1, vote: 'a', commit: 1 });
  });

  test('a synced save makes the unsynced saves before it durable', async () => {
    const s = new MemoryLogStore();
    await s.open();
    await s.save(range(1, 2, 1), undefined, false);
    await s.save([], { term: 1, vote: '', commit: 0 }, true);
    await s.save(range(3, 3, 1), undefined, false);
    assert.equal(s.crash(), 1);
    await s.open();
    assert.deepEqual(plain((await s.load()).entries), plain(range(1, 2, 1)));
  });

  test('a truncating unsynced save is undone entirely, bringing back the overwritten suffix', async () => {
    const s = new MemoryLogStore();
    await s.open();
    await s.save(range(1, 5, 1), undefined, true);
    await s.save(range(2, 2, 2), undefined, false);
    s.crash();
    await s.open();
    assert.deepEqual(plain((await s.load()).entries), plain(range(1, 5, 1)));
  });

  test('compaction is a sync point', async () => {
    const s = new MemoryLogStore();
    await s.open();
    await s.save(range(1, 5, 1), undefined, false);
    await s.compact(2);
    await s.save(range(6, 6, 1), undefined, false);
    assert.equal(s.crash(), 1);
    await s.open();
    const l = await s.load();
    assert.equal(l.compactedTo, 2);
    assert.deepEqual(plain(l.entries), plain(range(3, 5, 1)));
  });

  test('reset is a sync point', async () => {
    const s = new MemoryLogStore();
    await s.open();
    await s.save(range(1, 5, 1), undefined, false);
    await s.reset(7);
    assert.equal(s.crash(), 0);
    await s.open();
    assert.deepEqual((await s.load()).compactedTo, 7);
  });

  test('random saves and crashes: what survives is the state after the last sync point plus the kept unsynced prefix', async () => {
    const opArb = fc.oneof(
      { weight: 5, arbitrary: saveArb },
      { weight: 1, arbitrary: fc.record({ t: fc.constant('crash' as const), keep: fc.nat({ max: 3 }) }) },
    );
    await fc.assert(fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 40 }), async (ops) => {
      const s = new MemoryLogStore();
      await s.open();
      let m = new LogModel();
      // Models after the last sync point and after each unsynced save since.
      let history: LogModel[] = [m.clone()];
      for (const op of ops) {
        if (op.t === 'save') {
          const { entries, hardState } = m.plan(op as SaveOp);
          await s.save(entries, hardState, op.sync);
          m.apply(entries, hardState);
          const wrote = entries.length > 0 || hardState !== undefined;
          if (op.sync) history = [m.clone()];
          else if (wrote) history.push(m.clone());
        } else {
          const lost = s.crash(op.keep);
          const keep = Math.min(op.keep, history.length - 1);
          assert.equal(lost, history.length - 1 - keep);
          m = history[keep]!.clone();
          history = [m.clone()];
          await s.open();
          const l = await s.load();
          assert.deepEqual(l.hardState, m.hardState);
          assert.deepEqual(plain(l.entries), plain(m.entries));
        }
      }
    }), { numRuns: 300 });
  });
});
