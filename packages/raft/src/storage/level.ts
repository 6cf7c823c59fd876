// The durable Raft log on LevelDB (level 10 / classic-level).
//
// Layout (keys are bytes; one-letter prefixes keep the kinds apart and in a fixed order):
//   'v'                      format marker, so a future layout change is detected, not misread
//   'c'                      compactedTo: crc32 | index
//   'e' + uint64 BE index    entry: crc32 | index | term | kind | data
//   'h'                      hard state: crc32 | term | commit | vote (UTF-8)
// Big-endian fixed-width index keys make LevelDB's byte order the numeric order, so the log is one
// contiguous key range and the last entry is one reverse seek away.
//
// Every save() is one LevelDB write batch (its own WAL record), so a crash leaves all of it or none
// of it: the deletes of a conflicting suffix, the new entries and the hard state land together.
// Every value carries a crc32 over its own bytes (index included, so a value under the wrong key is
// caught too); load() checks them all and refuses to start on any damage instead of repairing it.
import { mkdir } from 'node:fs/promises';
import { crc32 } from 'node:zlib';
import { Level } from 'level';
import type { Entry, EntryKind, HardState } from '../core/types.ts';
import { CorruptionError, LogUnavailableError, StorageIOError, StoreClosedError } from '../errors.ts';
import { checkCompact, checkReset, EMPTY_HARD_STATE, planSave, rangeAvailable } from './logWrite.ts';
import type { LogStore } from './types.ts';

const FORMAT = 'trellis-raft-log/1';
const KEY_FORMAT = Uint8Array.of(0x76); // 'v'
const KEY_COMPACTED = Uint8Array.of(0x63); // 'c'
const KEY_HARD_STATE = Uint8Array.of(0x68); // 'h'
const ENTRY_PREFIX = 0x65; // 'e'
const ENTRY_KEY_BYTES = 9;
/** Just past every entry key: 'f'. */
const ENTRY_RANGE_END = Uint8Array.of(ENTRY_PREFIX + 1);
/** crc32 (4) + index (8) + term (8) + kind (1) */
const ENTRY_HEADER_BYTES = 21;
const HARD_STATE_HEADER_BYTES = 20;
const KIND_CODES: Record<EntryKind, number> = { normal: 0, conf: 1 };
const KINDS: readonly EntryKind[] = ['normal', 'conf'];
/** Entries fetched per native call when scanning. */
const SCAN_BATCH = 1024;

type Db = Level<Uint8Array, Uint8Array>;
type BatchOp = { type: 'put'; key: Uint8Array; value: Uint8Array } | { type: 'del'; key: Uint8Array };

/**
 * LogStore on LevelDB in directory `dir` (created if missing). One process at a time: LevelDB's
 * lock file makes a second open fail.
 *
 * Calls are serialized in arrival order. If a write fails, the store refuses every later call with
 * that StorageIOError (what reached the disk is unknown); restart the node to re-read and verify.
 */
export class LevelLogStore implements LogStore {
  readonly dir: string;
  #db: Db | undefined;
  #failure: StorageIOError | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  #compactedTo = 0;
  #lastIndex = 0;
  #hardState: HardState = { ...EMPTY_HARD_STATE };
  /** An unsynced write is pending: a later save([], undefined, true) must still reach the disk. */
  #dirty = false;

  constructor(dir: string) {
    this.dir = dir;
  }

  async open(): Promise<void> {
    return this.#serial(async () => {
      if (this.#db) return;
      const db: Db = new Level<Uint8Array, Uint8Array>(this.dir, { keyEncoding: 'view', valueEncoding: 'view' });
      try {
        await mkdir(this.dir, { recursive: true });
        await db.open();
      } catch (err) {
        throw new StorageIOError(this.dir, 'opening the raft log', err);
      }
      try {
        await this.#readState(db);
      } catch (err) {
        await db.close();
        throw err;
      }
      this.#db = db;
      this.#failure = undefined;
      this.#dirty = false;
    });
  }

  async load(): Promise<{ hardState: HardState; entries: Entry[]; compactedTo: number }> {
    return this.#serial(async () => {
      const db = this.#usable();
      const entries = await this.#scan(db, this.#compactedTo + 1, undefined);
      const last = entries.length > 0 ? entries[entries.length - 1]!.index : this.#compactedTo;
      if (last !== this.#lastIndex) {
        // #scan proved the range contiguous, so this can only mean keys changed under us.
        throw new CorruptionError(this.dir, `the log ends at ${last} but its last key is ${this.#lastIndex}`, last);
      }
      if (this.#hardState.commit > last) {
        throw new CorruptionError(this.dir, `hard state commit ${this.#hardState.commit} is beyond the last entry ${last}; entries the cluster committed are missing`, last + 1);
      }
      return { hardState: { ...this.#hardState }, entries, compactedTo: this.#compactedTo };
    });
  }

  async save(entries: Entry[], hardState: HardState | undefined, sync: boolean): Promise<void> {
    return this.#serial(async () => {
      const db = this.#usable();
      const plan = planSave(this.#compactedTo, this.#lastIndex, entries, hardState);
      const ops: BatchOp[] = [];
      if (plan.truncateFrom !== undefined) {
        // Entries from truncateFrom up to the new end are overwritten by the puts below; only the
        // part of the old suffix beyond the new end needs deleting.
        for (let i = plan.lastIndex + 1; i <= this.#lastIndex; i++) ops.push({ type: 'del', key: entryKey(i) });
      }
      for (const e of entries) ops.push({ type: 'put', key: entryKey(e.index), value: encodeEntry(e) });
      if (hardState !== undefined) ops.push({ type: 'put', key: KEY_HARD_STATE, value: encodeHardState(hardState) });
      if (ops.length === 0) {
        if (!sync || !this.#dirty) return;
        // A sync barrier: LevelDB skips empty batches, so rewrite the hard state to force the fsync
        // that makes the earlier unsynced writes durable.
        ops.push({ type: 'put', key: KEY_HARD_STATE, value: encodeHardState(this.#hardState) });
      }
      await this.#write(db, ops, sync, 'saving raft log entries');
      this.#lastIndex = plan.lastIndex;
      if (hardState !== undefined) this.#hardState = { term: hardState.term, vote: hardState.vote, commit: hardState.commit };
    });
  }

  async compact(index: number): Promise<void> {
    return this.#serial(async () => {
      const db = this.#usable();
      checkCompact(index);
      if (index <= this.#compactedTo) return;
      // The marker goes first (synced), then the range is cleared. A crash in between leaves
      // entries at or below compactedTo, which load() never reads and the next compaction clears.
      await this.#write(db, [{ type: 'put', key: KEY_COMPACTED, value: encodeIndex(index) }], true, 'recording log compaction');
      this.#compactedTo = index;
      this.#lastIndex = Math.max(this.#lastIndex, index);
      try {
        await db.clear({ gte: entryKey(0), lte: entryKey(index) });
      } catch (err) {
        this.#failure = new StorageIOError(this.dir, 'deleting compacted raft log entries', err);
        throw this.#failure;
      }
    });
  }

  async reset(index: number): Promise<void> {
    return this.#serial(async () => {
      const db = this.#usable();
      checkReset(index, this.#hardState);
      try {
        // Leftovers of an interrupted compaction are invisible only while they stay at or below
        // compactedTo; clear them first in case the reset moves compactedTo down.
        await db.clear({ gte: entryKey(0), lte: entryKey(this.#compactedTo) });
      } catch (err) {
        this.#failure = new StorageIOError(this.dir, 'deleting compacted raft log entries', err);
        throw this.#failure;
      }
      // Every visible entry goes in the same batch as the new marker: a divergent suffix must not
      // survive a crash halfway through.
      const ops: BatchOp[] = [];
      for (let i = this.#compactedTo + 1; i <= this.#lastIndex; i++) ops.push({ type: 'del', key: entryKey(i) });
      ops.push({ type: 'put', key: KEY_COMPACTED, value: encodeIndex(index) });
      await this.#write(db, ops, true, 'resetting the raft log');
      this.#compactedTo = index;
      this.#lastIndex = index;
    });
  }

  async entries(lo: number, hi: number): Promise<Entry[]> {
    return this.#serial(async () => {
      const db = this.#usable();
      if (!rangeAvailable(this.#compactedTo, this.#lastIndex, lo, hi)) {
        throw new LogUnavailableError(lo, hi, this.#compactedTo + 1, this.#lastIndex);
      }
      return this.#scan(db, lo, hi);
    });
  }

  async close(): Promise<void> {
    return this.#serial(async () => {
      const db = this.#db;
      this.#db = undefined;
      if (db) await db.close();
    });
  }

  /** Runs fn after every earlier call has settled, so each sees the effects of the ones before. */
  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn);
    this.#queue = run.catch(() => undefined); // the caller gets the error; the queue moves on
    return run;
  }

  #usable(): Db {
    if (this.#failure) throw this.#failure;
    if (!this.#db) throw new StoreClosedError(`raft log store at ${this.dir}`);
    return this.#db;
  }

  async #write(db: Db, ops: BatchOp[], sync: boolean, what: string): Promise<void> {
    try {
      await db.batch(ops, { sync });
    } catch (err) {
      this.#failure = new StorageIOError(this.dir, what, err);
      throw this.#failure;
    }
    this.#dirty = !sync;
  }

  /** Reads the small keys and the last entry's index at open; entries are verified by load(). */
  async #readState(db: Db): Promise<void> {
    const format = await db.get(KEY_FORMAT);
    if (format === undefined) {
      const any = await db.keys({ limit: 1 }).all();
      if (any.length > 0) throw new CorruptionError(this.dir, 'the database has no format marker, so it is not a raft log written by Trellis');
      await db.put(KEY_FORMAT, new TextEncoder().encode(FORMAT), { sync: true });
    } else if (new TextDecoder().decode(format) !== FORMAT) {
      throw new CorruptionError(this.dir, `unknown log format ${JSON.stringify(new TextDecoder().decode(format))} (this build reads ${FORMAT})`);
    }
    const compacted = await db.get(KEY_COMPACTED);
    this.#compactedTo = compacted === undefined ? 0 : decodeIndex(compacted, this.dir);
    const hard = await db.get(KEY_HARD_STATE);
    this.#hardState = hard === undefined ? { ...EMPTY_HARD_STATE } : decodeHardState(hard, this.dir);
    const lastKey = await db.keys({ gt: entryKey(this.#compactedTo), lt: ENTRY_RANGE_END, reverse: true, limit: 1 }).all();
    this.#lastIndex = lastKey.length > 0 ? keyIndex(lastKey[0]!, this.dir) : this.#compactedTo;
  }

  /** Reads entries from lo (up to hi, exclusive, or to the end), verifying each and contiguity. */
  async #scan(db: Db, lo: number, hi: number | undefined): Promise<Entry[]> {
    const out: Entry[] = [];
    const it = db.iterator({ gte: entryKey(lo), lt: hi === undefined ? ENTRY_RANGE_END : entryKey(hi) });
    try {
      let expect = lo;
      for (;;) {
        const batch = await it.nextv(SCAN_BATCH);
        if (batch.length === 0) break;
        for (const [key, value] of batch) {
          const index = keyIndex(key, this.dir);
          if (index !== expect) {
            throw new CorruptionError(this.dir, `entries ${expect}${index - 1 > expect ? `..${index - 1}` : ''} are missing (a gap before entry ${index})`, expect);
          }
          out.push(decodeEntry(value, index, this.dir));
          expect++;
        }
      }
      if (hi !== undefined && expect !== hi) {
        throw new CorruptionError(this.dir, `entries ${expect}..${hi - 1} are missing`, expect);
      }
    } finally {
      await it.close();
    }
    return out;
  }
}

function entryKey(index: number): Uint8Array {
  const key = new Uint8Array(ENTRY_KEY_BYTES);
  key[0] = ENTRY_PREFIX;
  writeUint64(new DataView(key.buffer), 1, index);
  return key;
}

function keyIndex(key: Uint8Array, dir: string): number {
  if (key.length !== ENTRY_KEY_BYTES || key[0] !== ENTRY_PREFIX) throw new CorruptionError(dir, `malformed entry key of ${key.length} bytes`);
  return readUint64(new DataView(key.buffer, key.byteOffset, key.byteLength), 1);
}

function encodeEntry(e: Entry): Uint8Array {
  const out = new Uint8Array(ENTRY_HEADER_BYTES + e.data.length);
  const dv = new DataView(out.buffer);
  writeUint64(dv, 4, e.index);
  writeUint64(dv, 12, e.term);
  out[20] = KIND_CODES[e.kind];
  out.set(e.data, ENTRY_HEADER_BYTES);
  dv.setUint32(0, crc32(out.subarray(4)));
  return out;
}

function decodeEntry(value: Uint8Array, index: number, dir: string): Entry {
  if (value.length < ENTRY_HEADER_BYTES) {
    throw new CorruptionError(dir, `entry value is ${value.length} bytes, shorter than its ${ENTRY_HEADER_BYTES}-byte header`, index);
  }
  const dv = new DataView(value.buffer, value.byteOffset, value.byteLength);
  const stored = dv.getUint32(0);
  const actual = crc32(value.subarray(4));
  if (stored !== actual) throw new CorruptionError(dir, `entry checksum mismatch (stored ${hex(stored)}, computed ${hex(actual)})`, index);
  const own = readUint64(dv, 4);
  if (own !== index) throw new CorruptionError(dir, `the entry stored under index ${index} is entry ${own}`, index);
  const kind = KINDS[value[20]!];
  if (kind === undefined) throw new CorruptionError(dir, `entry has unknown kind code ${value[20]}`, index);
  // A view, not a copy: each value is its own buffer, read fresh from LevelDB.
  const data = new Uint8Array(value.buffer, value.byteOffset + ENTRY_HEADER_BYTES, value.length - ENTRY_HEADER_BYTES);
  return { index, term: readUint64(dv, 12), kind, data };
}

function encodeHardState(hs: HardState): Uint8Array {
  const vote = new TextEncoder().encode(hs.vote);
  const out = new Uint8Array(HARD_STATE_HEADER_BYTES + vote.length);
  const dv = new DataView(out.buffer);
  writeUint64(dv, 4, hs.term);
  writeUint64(dv, 12, hs.commit);
  out.set(vote, HARD_STATE_HEADER_BYTES);
  dv.setUint32(0, crc32(out.subarray(4)));
  return out;
}

function decodeHardState(value: Uint8Array, dir: string): HardState {
  if (value.length < HARD_STATE_HEADER_BYTES) throw new CorruptionError(dir, `hard state is ${value.length} bytes, shorter than its header`);
  const dv = new DataView(value.buffer, value.byteOffset, value.byteLength);
  const stored = dv.getUint32(0);
  const actual = crc32(value.subarray(4));
  if (stored !== actual) throw new CorruptionError(dir, `hard state checksum mismatch (stored ${hex(stored)}, computed ${hex(actual)})`);
  let vote: string;
  try {
    vote = new TextDecoder('utf-8', { fatal: true }).decode(value.subarray(HARD_STATE_HEADER_BYTES));
  } catch {
    // The checksum matched, so these bytes are what was written: a writer bug, reported as damage.
    throw new CorruptionError(dir, 'hard state vote is not valid UTF-8');
  }
  return { term: readUint64(dv, 4), vote, commit: readUint64(dv, 12) };
}

function encodeIndex(index: number): Uint8Array {
  const out = new Uint8Array(12);
  const dv = new DataView(out.buffer);
  writeUint64(dv, 4, index);
  dv.setUint32(0, crc32(out.subarray(4)));
  return out;
}

function decodeIndex(value: Uint8Array, dir: string): number {
  if (value.length !== 12) throw new CorruptionError(dir, `compaction marker is ${value.length} bytes, expected 12`);
  const dv = new DataView(value.buffer, value.byteOffset, value.byteLength);
  const stored = dv.getUint32(0);
  const actual = crc32(value.subarray(4));
  if (stored !== actual) throw new CorruptionError(dir, `compaction marker checksum mismatch (stored ${hex(stored)}, computed ${hex(actual)})`);
  return readUint64(dv, 4);
}

// Indexes and terms stay below 2^53, so a uint64 is written as two uint32 halves without BigInt.
function writeUint64(dv: DataView, at: number, n: number): void {
  dv.setUint32(at, Math.floor(n / 0x1_0000_0000));
  dv.setUint32(at + 4, n >>> 0);
}

function readUint64(dv: DataView, at: number): number {
  return dv.getUint32(at) * 0x1_0000_0000 + dv.getUint32(at + 4);
}

function hex(n: number): string { return `0x${n.toString(16).padStart(8, '0')}`; }
