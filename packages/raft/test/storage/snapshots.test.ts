import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, truncate, writeFile, rename } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileSnapshotStore } from '../../src/storage/snapshots.ts';
import { encodeSnapshot, snapshotFileName } from '../../src/storage/snapshotFormat.ts';
import { CorruptionError } from '../../src/errors.ts';
import { MemorySnapshotStore } from '../../src/storage/memory.ts';
import { plainSnap, snap, snapshotStoreContract, transfer } from './snapshotStore.contract.ts';

const root = await mkdtemp(join(tmpdir(), 'trellis-snap-'));
after(() => rm(root, { recursive: true, force: true }));
let seq = 0;
const freshDir = () => join(root, `dir-${++seq}`);

snapshotStoreContract('FileSnapshotStore', async () => {
  const dir = freshDir();
  return { handle: () => new FileSnapshotStore(dir, { retain: 2 }), cleanup: () => rm(dir, { recursive: true, force: true }) };
});

async function storeWith(...snaps: ReturnType<typeof snap>[]): Promise<{ dir: string; store: FileSnapshotStore }> {
  const dir = freshDir();
  const store = new FileSnapshotStore(dir);
  await store.open();
  for (const s of snaps) await store.save(s);
  return { dir, store };
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(() => undefined, (err: unknown) => err);
}

describe('FileSnapshotStore files', () => {
  test('files are named snap-<term>-<index>.snap, zero-padded so that names sort, and hold the documented format', async () => {
    const a = snap(9, 2);
    const b = snap(10, 2);
    const { dir, store } = await storeWith(a, b);
    await store.close();
    assert.equal(snapshotFileName(a.meta), 'snap-0000000000000002-0000000000000009.snap');
    assert.deepEqual(await readdir(dir), [snapshotFileName(a.meta), snapshotFileName(b.meta)]);
    const bytes = await readFile(join(dir, snapshotFileName(b.meta)));
    assert.deepEqual(new Uint8Array(bytes), encodeSnapshot(b));
    assert.equal(bytes.subarray(0, 4).toString('latin1'), 'TRSN');
  });

  test('only the newest `retain` snapshots stay on disk', async () => {
    const dir = freshDir();
    const store = new FileSnapshotStore(dir, { retain: 3 });
    await store.open();
    for (let i = 1; i <= 6; i++) await store.save(snap(i * 10, 1));
    await store.close();
    assert.deepEqual(await readdir(dir), [40, 50, 60].map((i) => snapshotFileName({ index: i, term: 1 })));
  });

  test('leftover .tmp files are deleted on open and never listed', async () => {
    const { dir, store } = await storeWith(snap(5, 1));
    await store.close();
    const leftover = snapshotFileName({ index: 7, term: 1 }) + '.tmp';
    await writeFile(join(dir, leftover), encodeSnapshot(snap(7, 1)).subarray(0, 50));
    await writeFile(join(dir, 'other.tmp'), 'x');
    const reopened = new FileSnapshotStore(dir);
    await reopened.open();
    assert.deepEqual(await readdir(dir), [snapshotFileName({ index: 5, term: 1 })]);
    assert.equal((await reopened.latestMeta())?.index, 5);
    await reopened.close();
  });

  test('file and memory stores stream to each other (one byte format)', async () => {
    const a = snap(30, 4, 70_000);
    const { store: file } = await storeWith(a);
    const mem = new MemorySnapshotStore();
    await mem.open();
    assert.deepEqual(await transfer(file, mem, 16 * 1024), a.meta);
    assert.deepEqual(plainSnap(await mem.latest()), plainSnap(a));
    const b = snap(31, 4, 5000);
    await mem.save(b);
    assert.deepEqual(await transfer(mem, file, 1000), b.meta);
    assert.deepEqual(plainSnap(await file.latest()), plainSnap(b));
    await file.close();
    await mem.close();
  });

  test('open prunes extra snapshots left by a crash between a rename and the pruning', async () => {
    const dir = freshDir();
    const store = new FileSnapshotStore(dir, { retain: 5 });
    await store.open();
    for (let i = 1; i <= 4; i++) await store.save(snap(i, 1));
    await store.close();
    const strict = new FileSnapshotStore(dir, { retain: 2 });
    await strict.open();
    assert.deepEqual(await strict.list(), [{ index: 4, term: 1 }, { index: 3, term: 1 }]);
    assert.equal((await readdir(dir)).length, 2);
    await strict.close();
  });
});

describe('FileSnapshotStore refuses a damaged newest snapshot with CorruptionError naming the file', () => {
  const damage: Array<[string, (path: string) => Promise<void>]> = [
    ['truncated mid-data', (p) => truncate(p, 200)],
    ['truncated inside the header', (p) => truncate(p, 12)],
    ['truncated to nothing', (p) => truncate(p, 0)],
    ['one flipped bit in the data', async (p) => { const b = await readFile(p); b[b.length - 100]! ^= 0x10; await writeFile(p, b); }],
    ['one flipped bit in the meta', async (p) => { const b = await readFile(p); b[20]! ^= 0x01; await writeFile(p, b); }],
    ['a damaged checksum', async (p) => { const b = await readFile(p); b[b.length - 1]! ^= 0xff; await writeFile(p, b); }],
    ['bad magic bytes', async (p) => { const b = await readFile(p); b[0] = 0; await writeFile(p, b); }],
  ];
  for (const [what, hurt] of damage) {
    test(what, async () => {
      const older = snap(5, 1);
      const { dir, store } = await storeWith(older, snap(10, 1, 1000));
      const path = join(dir, snapshotFileName({ index: 10, term: 1 }));
      await store.close();
      await hurt(path);
      const s = new FileSnapshotStore(dir);
      await s.open();
      try {
        for (const [call, p] of [['latest', s.latest()], ['latestMeta', s.latestMeta()]] as const) {
          const err = await rejection(p);
          assert.ok(err instanceof CorruptionError, `${call}: expected CorruptionError, got ${String(err)}`);
          assert.equal(err.file, path);
          assert.ok(err.message.includes(path), `${call}: the message names the file`);
        }
        // No silent fallback to the older, intact snapshot.
        assert.deepEqual(await s.list(), [{ index: 10, term: 1 }, { index: 5, term: 1 }]);
      } finally {
        await s.close();
      }
    });
  }

  test('a snapshot file renamed to another index', async () => {
    const { dir, store } = await storeWith(snap(5, 1));
    await store.close();
    const wrong = join(dir, snapshotFileName({ index: 6, term: 1 }));
    await rename(join(dir, snapshotFileName({ index: 5, term: 1 })), wrong);
    const s = new FileSnapshotStore(dir);
    await s.open();
    const err = await rejection(s.latest());
    assert.ok(err instanceof CorruptionError && err.file === wrong);
    assert.match(err.message, /file name says index 6 term 1 but the snapshot inside is index 5 term 1/);
    await s.close();
  });

  test('a sender reading a damaged snapshot in chunks learns it at the end of the stream', async () => {
    const { dir, store } = await storeWith(snap(10, 1, 5000));
    const path = join(dir, snapshotFileName({ index: 10, term: 1 }));
    const b = await readFile(path);
    b[3000]! ^= 0x01;
    await writeFile(path, b);
    const reader = (await store.openReader())!;
    let bytes = 0;
    const err = await rejection((async () => { for await (const c of reader.readChunks(1024)) bytes += c.length; })());
    assert.ok(err instanceof CorruptionError && err.file === path);
    assert.equal(bytes, reader.sizeBytes);
    await store.close();
  });
});
