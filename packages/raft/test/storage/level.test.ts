import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Level } from 'level';
import { LevelLogStore } from '../../src/storage/level.ts';
import { CorruptionError, InvalidLogWriteError, StorageIOError } from '../../src/errors.ts';
import { ent, logStoreContract, plain, range } from './logStore.contract.ts';

const root = await mkdtemp(join(tmpdir(), 'trellis-level-'));
after(() => rm(root, { recursive: true, force: true }));
let seq = 0;
const freshDir = () => join(root, `db-${++seq}`);

logStoreContract('LevelLogStore', async () => {
  const dir = freshDir();
  return { handle: () => new LevelLogStore(dir), cleanup: () => rm(dir, { recursive: true, force: true }) };
}, { propertyRuns: 40 });

/** Opens the store's directory with a plain Level handle (the store must be closed). */
async function raw<T>(dir: string, fn: (db: Level<Uint8Array, Uint8Array>) => Promise<T>): Promise<T> {
  const db = new Level<Uint8Array, Uint8Array>(dir, { keyEncoding: 'view', valueEncoding: 'view' });
  await db.open();
  try {
    return await fn(db);
  } finally {
    await db.close();
  }
}

const entryKey = (index: number) => Uint8Array.of(0x65, 0, 0, 0, 0, 0, 0, 0, index);

async function withLog(entries = range(1, 5, 1)): Promise<string> {
  const dir = freshDir();
  const s = new LevelLogStore(dir);
  await s.open();
  await s.save(entries, { term: 1, vote: 'a', commit: Math.min(2, entries.length) }, true);
  await s.close();
  return dir;
}

async function loadError(dir: string): Promise<unknown> {
  const s = new LevelLogStore(dir);
  try {
    await s.open();
    await s.load();
    return undefined;
  } catch (err) {
    return err;
  } finally {
    await s.close();
  }
}

describe('LevelLogStore refuses damaged data with CorruptionError naming the directory and index', () => {
  test('one flipped byte in an entry value', async () => {
    const dir = await withLog();
    await raw(dir, async (db) => {
      const v = (await db.get(entryKey(3)))!;
      const bad = new Uint8Array(v);
      bad[bad.length - 1]! ^= 0x40;
      await db.put(entryKey(3), bad);
    });
    const err = await loadError(dir);
    assert.ok(err instanceof CorruptionError, `expected CorruptionError, got ${String(err)}`);
    assert.equal(err.code, 'ERR_CORRUPT');
    assert.equal(err.file, dir);
    assert.equal(err.index, 3);
    assert.match(err.message, new RegExp(`${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} at index 3: entry checksum mismatch`));
  });

  test('every single-byte flip anywhere in an entry value is caught', async () => {
    const dir = await withLog([ent(1, 7, 'payload', 'conf')]);
    const original = await raw(dir, async (db) => (await db.get(entryKey(1)))!);
    for (let at = 0; at < original.length; at++) {
      await raw(dir, (db) => {
        const bad = new Uint8Array(original);
        bad[at]! ^= 0x01;
        return db.put(entryKey(1), bad);
      });
      const err = await loadError(dir);
      assert.ok(err instanceof CorruptionError && err.index === 1, `flip at byte ${at} not caught: ${String(err)}`);
    }
  });

  test('a missing entry in the middle (a gap)', async () => {
    const dir = await withLog();
    await raw(dir, (db) => db.del(entryKey(3)));
    const err = await loadError(dir);
    assert.ok(err instanceof CorruptionError);
    assert.equal(err.index, 3);
    assert.match(err.message, /entries 3 are missing|gap before entry 4/);
    assert.ok(err.message.includes(dir));
  });

  test('a missing first entry (the log does not start right after compactedTo)', async () => {
    const dir = await withLog();
    await raw(dir, (db) => db.del(entryKey(1)));
    const err = await loadError(dir);
    assert.ok(err instanceof CorruptionError);
    assert.equal(err.index, 1);
  });

  test('a value moved under another index', async () => {
    const dir = await withLog();
    await raw(dir, async (db) => db.put(entryKey(4), (await db.get(entryKey(2)))!));
    const err = await loadError(dir);
    assert.ok(err instanceof CorruptionError);
    assert.equal(err.index, 4);
    assert.match(err.message, /stored under index 4 is entry 2/);
  });

  test('lost tail entries that the hard state says were committed', async () => {
    const dir = await withLog();
    await raw(dir, async (db) => { for (const i of [2, 3, 4, 5]) await db.del(entryKey(i)); });
    const err = await loadError(dir);
    assert.ok(err instanceof CorruptionError);
    assert.match(err.message, /hard state commit 2 is beyond the last entry 1/);
  });

  test('a damaged hard state', async () => {
    const dir = await withLog();
    await raw(dir, async (db) => {
      const v = new Uint8Array((await db.get(Uint8Array.of(0x68)))!);
      v[6]! ^= 0xff;
      await db.put(Uint8Array.of(0x68), v);
    });
    const err = await loadError(dir);
    assert.ok(err instanceof CorruptionError);
    assert.match(err.message, /hard state checksum mismatch/);
  });

  test('a database that is not a Trellis raft log', async () => {
    const dir = freshDir();
    await raw(dir, (db) => db.put(Uint8Array.of(1), Uint8Array.of(2)));
    const err = await loadError(dir);
    assert.ok(err instanceof CorruptionError);
    assert.match(err.message, /not a raft log written by Trellis/);
  });
});

describe('LevelLogStore specifics', () => {
  test('an entry value is a compact binary record: 21 header bytes plus the data', async () => {
    const dir = await withLog([ent(1, 1, 'x'.repeat(64))]);
    const v = await raw(dir, async (db) => (await db.get(entryKey(1)))!);
    assert.equal(v.length, 21 + 64);
  });

  test('a second open of the same directory fails while the first holds it', async () => {
    const dir = await withLog();
    const a = new LevelLogStore(dir);
    await a.open();
    try {
      await assert.rejects(new LevelLogStore(dir).open(), (err: unknown) => err instanceof StorageIOError && err.message.includes(dir));
    } finally {
      await a.close();
    }
  });

  test('a compaction interrupted before its range delete leaves entries that load ignores and the next compaction removes', async () => {
    const dir = await withLog(range(1, 6, 1));
    const s = new LevelLogStore(dir);
    await s.open();
    await s.compact(3);
    await s.close();
    // Put back entries 2 and 3 as if the crash came between the marker and the delete.
    const donor = await withLog(range(1, 6, 1));
    const vals = await raw(donor, async (db) => [await db.get(entryKey(2)), await db.get(entryKey(3))]);
    await raw(dir, async (db) => { await db.put(entryKey(2), vals[0]!); await db.put(entryKey(3), vals[1]!); });
    await s.open();
    assert.deepEqual(plain((await s.load()).entries), plain(range(4, 6, 1)));
    await s.compact(4);
    await s.close();
    assert.equal(await raw(dir, async (db) => (await db.keys({ gte: entryKey(0), lte: entryKey(4) }).all()).length), 0);
  });

  test('calls are serialized: unawaited saves apply in order', async () => {
    const dir = freshDir();
    const s = new LevelLogStore(dir);
    await s.open();
    const writes = [s.save(range(1, 4, 1), undefined, false), s.save(range(3, 5, 2), undefined, false), s.save([ent(6, 2)], { term: 2, vote: '', commit: 6 }, true)];
    await Promise.all(writes);
    assert.deepEqual(plain((await s.load()).entries), plain([...range(1, 2, 1), ...range(3, 6, 2)]));
    // A refused write does not stall the queue.
    await assert.rejects(s.save([ent(9, 2)], undefined, true), InvalidLogWriteError);
    assert.equal((await s.entries(6, 7)).length, 1);
    await s.close();
  });

  // Throughput is measured by `node packages/raft/bench/storage.ts`, not here: this checks that
  // synced saves of every batch size the driver makes are all there, in order, after a reopen.
  test('synced saves in batches of 1 to 256 entries all load back after a reopen', async () => {
    const dir = freshDir();
    const s = new LevelLogStore(dir);
    await s.open();
    let next = 1;
    for (const batch of [1, 16, 64, 256]) {
      for (let r = 0; r < 5; r++) {
        const entries = [];
        for (let i = 0; i < batch; i++) entries.push({ index: next, term: 1, kind: 'normal' as const, data: new TextEncoder().encode(`entry-${next++}`) });
        await s.save(entries, { term: 1, vote: 'a', commit: next - 1 }, true);
      }
    }
    await s.close();
    const again = new LevelLogStore(dir);
    await again.open();
    const { hardState, entries } = await again.load();
    await again.close();
    const total = 5 * (1 + 16 + 64 + 256);
    assert.deepEqual(hardState, { term: 1, vote: 'a', commit: total });
    assert.equal(entries.length, total);
    entries.forEach((e, k) => {
      assert.equal(e.index, k + 1);
      assert.equal(new TextDecoder().decode(e.data), `entry-${k + 1}`);
    });
  });
});
