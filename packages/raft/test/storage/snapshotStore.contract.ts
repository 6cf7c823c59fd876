// The SnapshotStore contract (src/storage/types.ts) plus chunked transfer, run against every
// implementation. handle() returns a store over the harness's "disk".
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Snapshot, SnapshotMeta } from '../../src/core/types.ts';
import type { StreamingSnapshotStore } from '../../src/storage/snapshotStream.ts';
import { CorruptionError, SnapshotMismatchError, StaleSnapshotError } from '../../src/errors.ts';

export interface SnapshotStoreHarness {
  handle(): StreamingSnapshotStore;
  cleanup(): Promise<void>;
}

export function snap(index: number, term: number, bytes = 100, seed = index): Snapshot {
  return {
    meta: { index, term, conf: { voters: ['a', 'b', 'c'], learners: ['d'] }, addresses: { a: '10.0.0.1:8300', b: '10.0.0.2:8300' } },
    data: Uint8Array.from({ length: bytes }, (_, i) => (i * 31 + seed) & 0xff),
  };
}

export function plainSnap(s: Snapshot | undefined): { meta: SnapshotMeta; data: number[] } | undefined {
  return s && { meta: s.meta, data: Array.from(s.data) };
}

async function collect(gen: AsyncIterable<Uint8Array>): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for await (const c of gen) out.push(c);
  return out;
}

/** Streams the latest snapshot of `from` into `to` in chunks of chunkBytes. */
export async function transfer(from: StreamingSnapshotStore, to: StreamingSnapshotStore, chunkBytes: number): Promise<SnapshotMeta> {
  const reader = await from.openReader();
  assert.ok(reader, 'the sender has a snapshot');
  const writer = await to.openWriter(reader.meta);
  try {
    for await (const chunk of reader.readChunks(chunkBytes)) await writer.write(chunk);
    return await writer.commit();
  } catch (err) {
    await writer.abort();
    throw err;
  } finally {
    await reader.close();
  }
}

export function snapshotStoreContract(name: string, makeHarness: () => Promise<SnapshotStoreHarness>): void {
  describe(`SnapshotStore contract: ${name}`, () => {
    const withStore = (title: string, fn: (h: SnapshotStoreHarness, s: StreamingSnapshotStore) => Promise<StreamingSnapshotStore | void>) =>
      test(title, async () => {
        const h = await makeHarness();
        let s = h.handle();
        await s.open();
        try {
          s = (await fn(h, s)) ?? s;
        } finally {
          await s.close();
          await h.cleanup();
        }
      });
    const restart = async (h: SnapshotStoreHarness, s: StreamingSnapshotStore) => {
      await s.close();
      const next = h.handle();
      await next.open();
      return next;
    };

    withStore('an empty store has no latest snapshot and nothing to read', async (_h, s) => {
      assert.equal(await s.latest(), undefined);
      assert.equal(await s.latestMeta(), undefined);
      assert.equal(await s.openReader(), undefined);
    });

    withStore('save then latest round-trips meta and data, also after a restart', async (h, s) => {
      const a = snap(10, 2, 5000);
      await s.save(a);
      assert.deepEqual(plainSnap(await s.latest()), plainSnap(a));
      s = await restart(h, s);
      assert.deepEqual(plainSnap(await s.latest()), plainSnap(a));
      assert.deepEqual(await s.latestMeta(), a.meta);
      const noAddresses: Snapshot = { meta: { index: 11, term: 2, conf: { voters: ['a'], learners: [] } }, data: new Uint8Array(0) };
      await s.save(noAddresses);
      assert.deepEqual(plainSnap(await s.latest()), plainSnap(noAddresses));
      return s;
    });

    withStore('the newest snapshot is the latest; older ones beyond retain are dropped', async (h, s) => {
      for (const [i, t] of [[5, 1], [9, 1], [20, 3]] as const) await s.save(snap(i, t));
      assert.deepEqual((await s.latestMeta())?.index, 20);
      assert.deepEqual(await s.list(), [{ index: 20, term: 3 }, { index: 9, term: 1 }]);
      s = await restart(h, s);
      assert.deepEqual(await s.list(), [{ index: 20, term: 3 }, { index: 9, term: 1 }]);
      return s;
    });

    withStore('a snapshot older than the latest is refused; saving the same one again replaces it', async (_h, s) => {
      await s.save(snap(20, 3));
      await assert.rejects(s.save(snap(19, 3)), StaleSnapshotError);
      await assert.rejects(s.openWriter(snap(19, 3).meta), StaleSnapshotError);
      const again = snap(20, 3, 64, 99);
      await s.save(again);
      assert.deepEqual(plainSnap(await s.latest()), plainSnap(again));
      assert.equal((await s.list()).length, 1);
    });

    for (const chunkBytes of [3, 1000, 1 << 20]) {
      withStore(`a snapshot streamed in ${chunkBytes}-byte chunks arrives intact in another store`, async (_h, s) => {
        const h2 = await makeHarness();
        const to = h2.handle();
        await to.open();
        try {
          const a = snap(42, 7, 4096);
          await s.save(a);
          const reader = await s.openReader();
          assert.ok(reader);
          assert.deepEqual(reader.meta, a.meta);
          const chunks = await collect(reader.readChunks(chunkBytes));
          assert.ok(chunks.every((c) => c.length <= chunkBytes));
          assert.equal(chunks.reduce((n, c) => n + c.length, 0), reader.sizeBytes);
          assert.deepEqual(await transfer(s, to, chunkBytes), a.meta);
          assert.deepEqual(plainSnap(await to.latest()), plainSnap(a));
        } finally {
          await to.close();
          await h2.cleanup();
        }
      });
    }

    withStore('a damaged stream is refused with CorruptionError and leaves the latest snapshot as it was', async (_h, s) => {
      const h2 = await makeHarness();
      const to = h2.handle();
      await to.open();
      try {
        await s.save(snap(42, 7, 4096));
        const before = snap(3, 1);
        await to.save(before);
        const reader = (await s.openReader())!;
        const writer = await to.openWriter(reader.meta);
        let n = 0;
        for await (const chunk of reader.readChunks(512)) {
          const c = new Uint8Array(chunk);
          if (n++ === 3) c[100] = c[100]! ^ 0x01; // one bit flipped in transit
          await writer.write(c);
        }
        await assert.rejects(writer.commit(), CorruptionError);
        assert.deepEqual(plainSnap(await to.latest()), plainSnap(before));
        // A stream cut short is refused the same way.
        const reader2 = (await s.openReader())!;
        const writer2 = await to.openWriter(reader2.meta);
        const chunks = await collect(reader2.readChunks(512));
        for (const c of chunks.slice(0, -1)) await writer2.write(c);
        await assert.rejects(writer2.commit(), CorruptionError);
        assert.deepEqual(plainSnap(await to.latest()), plainSnap(before));
      } finally {
        await to.close();
        await h2.cleanup();
      }
    });

    withStore('a stream that is not the announced snapshot is refused; an aborted one leaves no trace', async (_h, s) => {
      const h2 = await makeHarness();
      const to = h2.handle();
      await to.open();
      try {
        await s.save(snap(42, 7));
        const reader = (await s.openReader())!;
        const writer = await to.openWriter({ ...reader.meta, index: 43 });
        for await (const c of reader.readChunks(64)) await writer.write(c);
        await assert.rejects(writer.commit(), SnapshotMismatchError);
        assert.equal(await to.latest(), undefined);

        const reader2 = (await s.openReader())!;
        const writer2 = await to.openWriter(reader2.meta);
        for await (const c of reader2.readChunks(64)) { await writer2.write(c); break; }
        await writer2.abort();
        await writer2.abort();
        assert.equal(await to.latest(), undefined);
        assert.deepEqual(await to.list(), []);
      } finally {
        await to.close();
        await h2.cleanup();
      }
    });

    withStore('a reader keeps reading the snapshot it opened while newer ones replace it', async (_h, s) => {
      const a = snap(10, 1, 3000);
      await s.save(a);
      const reader = (await s.openReader())!;
      await s.save(snap(20, 1));
      await s.save(snap(30, 1)); // with retain 2, snapshot 10 is gone from the store now
      const bytes = Buffer.concat(await collect(reader.readChunks(100)));
      assert.equal(bytes.length, reader.sizeBytes);
      assert.ok(bytes.includes(Buffer.from(a.data)), 'the stream carries the data of the snapshot it opened');
    });
  });
}
