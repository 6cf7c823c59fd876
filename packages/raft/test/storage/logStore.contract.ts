// The LogStore contract (src/storage/types.ts) as one suite, run against every implementation.
// A harness stands for one "disk": handle() returns a store over it (a new handle, or for the memory
// store the same object), so closing one handle and opening the next is a process restart.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { Entry, EntryKind, HardState } from '../../src/core/types.ts';
import type { LogStore } from '../../src/storage/types.ts';
import { InvalidLogWriteError, LogUnavailableError, StoreClosedError } from '../../src/errors.ts';

export interface LogStoreHarness {
  handle(): LogStore;
  cleanup(): Promise<void>;
}

export interface ContractOptions {
  /** fast-check runs for the model test; durable stores pay a database open per run. */
  propertyRuns: number;
}

const enc = new TextEncoder();

export function ent(index: number, term: number, data = `e${index}t${term}`, kind: EntryKind = 'normal'): Entry {
  return { index, term, kind, data: enc.encode(data) };
}

export function range(lo: number, hi: number, term: number): Entry[] {
  const out: Entry[] = [];
  for (let i = lo; i <= hi; i++) out.push(ent(i, term));
  return out;
}

/** Entries compared as plain values (stores may hand back Buffers or views). */
export function plain(entries: readonly Entry[]): Array<{ index: number; term: number; kind: EntryKind; data: number[] }> {
  return entries.map((e) => ({ index: e.index, term: e.term, kind: e.kind, data: Array.from(e.data) }));
}

async function opened(h: LogStoreHarness): Promise<LogStore> {
  const s = h.handle();
  await s.open();
  return s;
}

/** Closes `s` and opens the next handle on the same disk. */
async function restart(h: LogStoreHarness, s: LogStore): Promise<LogStore> {
  await s.close();
  return opened(h);
}

export function logStoreContract(name: string, makeHarness: () => Promise<LogStoreHarness>, opts: ContractOptions): void {
  describe(`LogStore contract: ${name}`, () => {
    const withStore = (title: string, fn: (h: LogStoreHarness, s: LogStore) => Promise<LogStore | void>) =>
      test(title, async () => {
        const h = await makeHarness();
        let s = await opened(h);
        try {
          s = (await fn(h, s)) ?? s;
        } finally {
          await s.close();
          await h.cleanup();
        }
      });

    withStore('an empty store loads the zero hard state and no entries', async (_h, s) => {
      const l = await s.load();
      assert.deepEqual(l, { hardState: { term: 0, vote: '', commit: 0 }, entries: [], compactedTo: 0 });
    });

    withStore('save then load round-trips entries of both kinds, empty and binary data, and the hard state', async (h, s) => {
      const entries: Entry[] = [
        { index: 1, term: 1, kind: 'normal', data: new Uint8Array(0) },
        { index: 2, term: 1, kind: 'conf', data: enc.encode('{"type":"addVoter","node":"b"}') },
        { index: 3, term: 2, kind: 'normal', data: Uint8Array.from({ length: 300 }, (_, i) => (i * 7) & 0xff) },
        { index: 4, term: 2 ** 40, kind: 'normal', data: enc.encode('big term') },
      ];
      const hs: HardState = { term: 2 ** 40, vote: 'node-ü', commit: 3 };
      await s.save(entries, hs, true);
      const l1 = await s.load();
      assert.deepEqual(plain(l1.entries), plain(entries));
      assert.deepEqual(l1.hardState, hs);
      assert.equal(l1.compactedTo, 0);
      s = await restart(h, s);
      const l2 = await s.load();
      assert.deepEqual(plain(l2.entries), plain(entries));
      assert.deepEqual(l2.hardState, hs);
      return s;
    });

    withStore('the store keeps its own copy: mutating saved or loaded data changes nothing stored', async (_h, s) => {
      const e = ent(1, 1, 'abc');
      await s.save([e], undefined, false);
      e.data[0] = 0x7a;
      const l = await s.load();
      assert.deepEqual(Array.from(l.entries[0]!.data), Array.from(enc.encode('abc')));
      l.entries[0]!.data[0] = 0x7a;
      assert.deepEqual(Array.from((await s.load()).entries[0]!.data), Array.from(enc.encode('abc')));
    });

    withStore('appends accumulate across saves and restarts', async (h, s) => {
      await s.save(range(1, 3, 1), undefined, true);
      s = await restart(h, s);
      await s.save(range(4, 6, 1), { term: 1, vote: 'a', commit: 5 }, true);
      s = await restart(h, s);
      const l = await s.load();
      assert.deepEqual(plain(l.entries), plain(range(1, 6, 1)));
      assert.deepEqual(l.hardState, { term: 1, vote: 'a', commit: 5 });
      return s;
    });

    withStore('a save starting inside the log replaces the conflicting suffix, even a longer one (Raft §5.3)', async (h, s) => {
      await s.save(range(1, 6, 1), undefined, true);
      await s.save(range(3, 4, 2), undefined, true);
      let l = await s.load();
      assert.deepEqual(plain(l.entries), plain([...range(1, 2, 1), ...range(3, 4, 2)]));
      // Entries 5 and 6 of term 1 must not come back after a restart either.
      s = await restart(h, s);
      l = await s.load();
      assert.deepEqual(plain(l.entries), plain([...range(1, 2, 1), ...range(3, 4, 2)]));
      assert.deepEqual(await s.entries(1, 5), l.entries);
      // Overwriting from index 1 replaces everything.
      await s.save(range(1, 2, 3), undefined, true);
      assert.deepEqual(plain((await s.load()).entries), plain(range(1, 2, 3)));
      // And the log may grow past its old end in the same save.
      await s.save(range(2, 9, 4), undefined, true);
      s = await restart(h, s);
      assert.deepEqual(plain((await s.load()).entries), plain([ent(1, 3), ...range(2, 9, 4)]));
      return s;
    });

    withStore('the hard state is saved with the entries, kept when a save omits it, and saved alone', async (h, s) => {
      await s.save(range(1, 2, 1), { term: 1, vote: 'a', commit: 1 }, true);
      await s.save(range(3, 3, 1), undefined, true);
      assert.deepEqual((await s.load()).hardState, { term: 1, vote: 'a', commit: 1 });
      await s.save([], { term: 2, vote: '', commit: 3 }, true);
      s = await restart(h, s);
      const l = await s.load();
      assert.deepEqual(l.hardState, { term: 2, vote: '', commit: 3 });
      assert.deepEqual(plain(l.entries), plain(range(1, 3, 1)));
      return s;
    });

    withStore('writes that break the log are refused with InvalidLogWriteError and change nothing', async (h, s) => {
      await s.save(range(1, 4, 1), { term: 1, vote: 'a', commit: 2 }, true);
      await s.compact(1);
      const before = await s.load();
      const refused: Array<[string, Entry[], HardState | undefined]> = [
        ['a gap after the last index', [ent(6, 1)], undefined],
        ['non-contiguous entries', [ent(5, 1), ent(7, 1)], undefined],
        ['descending entries', [ent(4, 1), ent(3, 1)], undefined],
        ['an overwrite of compacted entries', [ent(1, 2), ent(2, 2)], undefined],
        ['a commit beyond the last index', [ent(5, 1)], { term: 1, vote: 'a', commit: 6 }],
        ['a commit beyond the last index after a truncation', [ent(3, 2)], { term: 2, vote: '', commit: 4 }],
        ['an index that is not an integer', [{ ...ent(5, 1), index: 5.5 }], undefined],
        ['an unknown kind', [{ ...ent(5, 1), kind: 'bogus' as EntryKind }], undefined],
      ];
      for (const [what, entries, hs] of refused) {
        await assert.rejects(s.save(entries, hs, true), InvalidLogWriteError, what);
      }
      assert.deepEqual(await s.load(), before);
      s = await restart(h, s);
      const after = await s.load();
      assert.deepEqual({ ...after, entries: plain(after.entries) }, { ...before, entries: plain(before.entries) });
      return s;
    });

    withStore('compact removes entries up to the index, is idempotent, and survives a restart', async (h, s) => {
      await s.save(range(1, 6, 1), { term: 1, vote: '', commit: 6 }, true);
      await s.compact(3);
      let l = await s.load();
      assert.equal(l.compactedTo, 3);
      assert.deepEqual(plain(l.entries), plain(range(4, 6, 1)));
      await s.compact(3);
      await s.compact(2);
      s = await restart(h, s);
      l = await s.load();
      assert.equal(l.compactedTo, 3);
      assert.deepEqual(plain(l.entries), plain(range(4, 6, 1)));
      assert.deepEqual(l.hardState, { term: 1, vote: '', commit: 6 });
      await assert.rejects(s.entries(3, 5), LogUnavailableError);
      // Compacting everything leaves an empty log that continues after the compacted index.
      await s.compact(6);
      await s.save(range(7, 8, 2), undefined, true);
      s = await restart(h, s);
      l = await s.load();
      assert.equal(l.compactedTo, 6);
      assert.deepEqual(plain(l.entries), plain(range(7, 8, 2)));
      return s;
    });

    withStore('compacting past the last index (adopting a newer snapshot) empties the log and moves its start', async (h, s) => {
      await s.save(range(1, 3, 1), undefined, true);
      await s.compact(10);
      s = await restart(h, s);
      const l = await s.load();
      assert.deepEqual({ entries: l.entries, compactedTo: l.compactedTo }, { entries: [], compactedTo: 10 });
      await assert.rejects(s.save([ent(5, 2)], undefined, true), InvalidLogWriteError);
      await assert.rejects(s.save([ent(12, 2)], undefined, true), InvalidLogWriteError);
      await s.save([ent(11, 2)], { term: 2, vote: '', commit: 11 }, true);
      assert.deepEqual(plain((await s.load()).entries), plain([ent(11, 2)]));
      return s;
    });

    withStore('reset drops every entry, even past the new start, and moves the start (snapshot install)', async (h, s) => {
      await s.save(range(1, 8, 1), { term: 2, vote: 'b', commit: 3 }, true);
      await s.compact(2);
      // The leader's snapshot at 5 does not match this log: entries 6..8 may be a divergent history.
      await s.reset(5);
      s = await restart(h, s);
      let l = await s.load();
      assert.deepEqual({ entries: l.entries, compactedTo: l.compactedTo }, { entries: [], compactedTo: 5 });
      assert.deepEqual(l.hardState, { term: 2, vote: 'b', commit: 3 }, 'reset leaves the hard state alone');
      await assert.rejects(s.entries(6, 7), LogUnavailableError);
      await assert.rejects(s.save([ent(7, 2)], undefined, true), InvalidLogWriteError);
      await s.save(range(6, 7, 2), undefined, true);
      // Reset beyond the whole log, too.
      await s.reset(20);
      s = await restart(h, s);
      l = await s.load();
      assert.deepEqual({ entries: l.entries, compactedTo: l.compactedTo }, { entries: [], compactedTo: 20 });
      // A reset below the stored commit would make the store unloadable: refused.
      await s.save([ent(21, 3)], { term: 3, vote: '', commit: 21 }, true);
      await assert.rejects(s.reset(20), InvalidLogWriteError);
      assert.deepEqual(plain((await s.load()).entries), plain([ent(21, 3)]));
      return s;
    });

    withStore('entries(lo, hi) returns [lo, hi) and refuses ranges the store does not hold', async (_h, s) => {
      await s.save(range(1, 10, 1), undefined, true);
      await s.compact(2);
      assert.deepEqual(plain(await s.entries(3, 11)), plain(range(3, 10, 1)));
      assert.deepEqual(plain(await s.entries(5, 7)), plain(range(5, 6, 1)));
      assert.deepEqual(await s.entries(6, 6), []);
      const err = await s.entries(2, 5).then(() => undefined, (e: unknown) => e);
      assert.ok(err instanceof LogUnavailableError, 'a compacted start is refused');
      assert.equal(err.firstIndex, 3);
      assert.equal(err.lastIndex, 10);
      await assert.rejects(s.entries(9, 12), LogUnavailableError, 'an end beyond lastIndex + 1 is refused');
      await assert.rejects(s.entries(7, 5), LogUnavailableError, 'an inverted range is refused');
    });

    withStore('a closed store refuses calls with StoreClosedError', async (h, s) => {
      await s.save(range(1, 1, 1), undefined, true);
      await s.close();
      await assert.rejects(s.load(), StoreClosedError);
      await assert.rejects(s.save(range(2, 2, 1), undefined, true), StoreClosedError);
      return opened(h);
    });

    test('a random history of saves (with truncations), compactions, resets and restarts matches an array model', async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 30 }), async (ops) => {
          const h = await makeHarness();
          let s = await opened(h);
          const m = new LogModel();
          try {
            for (const op of ops) {
              if (op.t === 'save') {
                const { entries, hardState } = m.plan(op);
                await s.save(entries, hardState, op.sync);
                m.apply(entries, hardState);
              } else if (op.t === 'compact') {
                const index = Math.floor(op.frac * (m.lastIndex() + 3));
                await s.compact(index);
                m.compact(index);
              } else if (op.t === 'reset') {
                const index = Math.max(m.hardState.commit, Math.floor(op.frac * (m.lastIndex() + 3)));
                await s.reset(index);
                m.reset(index);
              } else if (op.t === 'read') {
                const lo = m.compactedTo + 1 + Math.floor(op.a * (m.lastIndex() - m.compactedTo));
                const hi = lo + Math.floor(op.b * (m.lastIndex() + 1 - lo));
                assert.deepEqual(plain(await s.entries(lo, hi)), plain(m.slice(lo, hi)));
              } else {
                s = await restart(h, s);
              }
            }
            s = await restart(h, s);
            const l = await s.load();
            assert.equal(l.compactedTo, m.compactedTo);
            assert.deepEqual(l.hardState, m.hardState);
            assert.deepEqual(plain(l.entries), plain(m.entries));
          } finally {
            await s.close();
            await h.cleanup();
          }
        }),
        { numRuns: opts.propertyRuns },
      );
    });
  });
}

export type SaveOp = { t: 'save'; back: number; count: number; termBump: number; hard: boolean; commitFrac: number; sync: boolean };
export type Op =
  | SaveOp
  | { t: 'compact'; frac: number }
  | { t: 'reset'; frac: number }
  | { t: 'read'; a: number; b: number }
  | { t: 'restart' };

const unit = fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true });

export const saveArb: fc.Arbitrary<SaveOp> = fc.record({
  t: fc.constant('save' as const),
  back: fc.nat({ max: 6 }),
  count: fc.integer({ min: 0, max: 6 }),
  termBump: fc.nat({ max: 2 }),
  hard: fc.boolean(),
  commitFrac: unit,
  sync: fc.boolean(),
});

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: saveArb },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('compact' as const), frac: unit }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('reset' as const), frac: unit }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('read' as const), a: unit, b: unit }) },
  { weight: 1, arbitrary: fc.constant({ t: 'restart' as const }) },
);

/** The oracle: a plain array of entries after `compactedTo`. Plans only writes a Raft node could
 *  make (terms never decrease along the log; commit never beyond the log, never backwards, and no
 *  committed entry overwritten). */
export class LogModel {
  entries: Entry[] = [];
  compactedTo = 0;
  hardState: HardState = { term: 0, vote: '', commit: 0 };
  #seq = 0;

  lastIndex(): number { return this.compactedTo + this.entries.length; }

  plan(op: SaveOp): { entries: Entry[]; hardState: HardState | undefined } {
    const last = this.lastIndex();
    // A Raft node never overwrites a committed entry: truncation stops above the commit index.
    const first = Math.max(this.compactedTo + 1, last + 1 - op.back, this.hardState.commit + 1);
    const prevTerm = first - 1 > this.compactedTo ? this.entries[first - 1 - this.compactedTo - 1]!.term : 0;
    const term = Math.max(prevTerm, this.hardState.term) + op.termBump;
    const entries: Entry[] = [];
    for (let i = 0; i < op.count; i++) {
      this.#seq++;
      entries.push(ent(first + i, term, `w${this.#seq}`, this.#seq % 5 === 0 ? 'conf' : 'normal'));
    }
    const newLast = entries.length > 0 ? first + entries.length - 1 : last;
    const hardState = op.hard || entries.length === 0
      ? { term: Math.max(term, this.hardState.term), vote: `n${op.termBump}`, commit: Math.max(this.hardState.commit, Math.floor(op.commitFrac * (newLast + 1))) }
      : undefined;
    return { entries, hardState };
  }

  apply(entries: readonly Entry[], hardState: HardState | undefined): void {
    if (entries.length > 0) {
      this.entries.length = entries[0]!.index - this.compactedTo - 1;
      this.entries.push(...entries);
    }
    if (hardState) this.hardState = { ...hardState };
  }

  compact(index: number): void {
    if (index <= this.compactedTo) return;
    this.entries.splice(0, Math.min(this.entries.length, index - this.compactedTo));
    this.compactedTo = index;
  }

  reset(index: number): void {
    this.entries = [];
    this.compactedTo = index;
  }

  slice(lo: number, hi: number): Entry[] {
    return this.entries.slice(lo - this.compactedTo - 1, hi - this.compactedTo - 1);
  }

  clone(): LogModel {
    const c = new LogModel();
    c.entries = [...this.entries];
    c.compactedTo = this.compactedTo;
    c.hardState = { ...this.hardState };
    c.#seq = this.#seq;
    return c;
  }
}
