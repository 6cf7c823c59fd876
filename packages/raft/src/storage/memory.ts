// In-memory stores for unit tests and the simulator. They keep the LogStore / SnapshotStore
// contracts exactly (same validation as the durable stores), and MemoryLogStore models what a crash
// does to a disk: writes that were never synced may be gone.
import type { Entry, HardState, Snapshot, SnapshotMeta } from '../core/types.ts';
import { LogUnavailableError, StaleSnapshotError, StoreClosedError } from '../errors.ts';
import { checkCompact, checkReset, EMPTY_HARD_STATE, planSave, rangeAvailable } from './logWrite.ts';
import { compareSnapshotMeta, decodeSnapshot, encodeSnapshot, snapshotFileName } from './snapshotFormat.ts';
import { assertSameSnapshot, checkChunkBytes, checkRetain } from './snapshotStream.ts';
import type { SnapshotReader, SnapshotWriter, StreamingSnapshotStore } from './snapshotStream.ts';
import type { LogStore } from './types.ts';

/** How to take back one unsynced save: the entries array is cut at `at`, then `removed` goes back. */
interface UndoSave {
  at: number;
  removed: Entry[];
  hardState: HardState;
}

/**
 * A LogStore in memory. The object is the "disk": it outlives close()/open(), so a restarted node
 * handed the same instance sees what a real restart would.
 *
 * Crash model: like a write-ahead log, writes reach the disk in order, and a synced save (or a
 * compaction or reset, which the durable store always syncs) makes itself and everything before it
 * durable.
 * `crash()` forgets the unsynced saves made since the last sync point, as a power loss may.
 */
export class MemoryLogStore implements LogStore {
  readonly name: string;
  #isOpen = false;
  /** entries[i].index === compactedTo + 1 + i */
  #entries: Entry[] = [];
  #compactedTo = 0;
  #hardState: HardState = { ...EMPTY_HARD_STATE };
  /** Unsynced saves since the last sync point, oldest first. */
  #undo: UndoSave[] = [];

  constructor(name = 'memory log store') {
    this.name = name;
  }

  /** Saves made with sync=false since the last sync point: what crash() would lose. */
  get unsyncedSaves(): number { return this.#undo.length; }

  get isOpen(): boolean { return this.#isOpen; }

  async open(): Promise<void> {
    this.#isOpen = true;
  }

  async load(): Promise<{ hardState: HardState; entries: Entry[]; compactedTo: number }> {
    this.#assertOpen();
    return { hardState: { ...this.#hardState }, entries: this.#entries.map(copyEntry), compactedTo: this.#compactedTo };
  }

  async save(entries: Entry[], hardState: HardState | undefined, sync: boolean): Promise<void> {
    this.#assertOpen();
    const plan = planSave(this.#compactedTo, this.#lastIndex(), entries, hardState);
    const at = plan.truncateFrom !== undefined ? plan.truncateFrom - this.#compactedTo - 1 : this.#entries.length;
    const removed = this.#entries.splice(at);
    if (sync) {
      // Everything written so far, this save included, is now durable.
      this.#undo.length = 0;
    } else if (entries.length > 0 || hardState !== undefined) {
      this.#undo.push({ at, removed, hardState: this.#hardState });
    }
    for (const e of entries) this.#entries.push(copyEntry(e));
    if (hardState !== undefined) this.#hardState = { term: hardState.term, vote: hardState.vote, commit: hardState.commit };
  }

  async compact(index: number): Promise<void> {
    this.#assertOpen();
    checkCompact(index);
    // A sync point: the durable store writes its compaction marker with sync, flushing earlier writes.
    this.#undo.length = 0;
    if (index <= this.#compactedTo) return;
    // Compacting past the last index is how a node adopts a snapshot newer than its whole log.
    this.#entries.splice(0, Math.min(index - this.#compactedTo, this.#entries.length));
    this.#compactedTo = index;
  }

  async reset(index: number): Promise<void> {
    this.#assertOpen();
    checkReset(index, this.#hardState);
    this.#undo.length = 0; // synced, like every reset
    this.#entries.length = 0;
    this.#compactedTo = index;
  }

  async entries(lo: number, hi: number): Promise<Entry[]> {
    this.#assertOpen();
    const last = this.#lastIndex();
    if (!rangeAvailable(this.#compactedTo, last, lo, hi)) throw new LogUnavailableError(lo, hi, this.#compactedTo + 1, last);
    const base = this.#compactedTo + 1;
    return this.#entries.slice(lo - base, hi - base).map(copyEntry);
  }

  async close(): Promise<void> {
    this.#isOpen = false;
  }

  /**
   * Simulates a crash: the store closes (calls from the dead process are refused) and the newest
   * unsynced saves are lost. `keepUnsynced` of the oldest unsynced saves survive, as when the OS
   * happened to flush some of them; saves reach disk in order, so survivors are always a prefix.
   * Returns how many saves were lost.
   */
  crash(keepUnsynced = 0): number {
    this.#isOpen = false;
    const keep = Math.max(0, Math.min(keepUnsynced, this.#undo.length));
    const lost = this.#undo.length - keep;
    for (let i = this.#undo.length - 1; i >= keep; i--) {
      const u = this.#undo[i]!;
      this.#entries.length = u.at;
      for (const e of u.removed) this.#entries.push(e);
      this.#hardState = u.hardState;
    }
    this.#undo.length = 0;
    return lost;
  }

  #lastIndex(): number {
    return this.#compactedTo + this.#entries.length;
  }

  #assertOpen(): void {
    if (!this.#isOpen) throw new StoreClosedError(this.name);
  }
}

export interface MemorySnapshotStoreOptions {
  /** How many snapshots to keep (default 2, at least 1). */
  retain?: number;
  name?: string;
}

/** A SnapshotStore in memory with the same rules as the file store (retention, staleness, chunked
 *  transfer in the same byte format). Every save is durable: there is nothing to crash. */
export class MemorySnapshotStore implements StreamingSnapshotStore {
  readonly name: string;
  readonly retain: number;
  #isOpen = false;
  /** Oldest first. */
  #snapshots: Snapshot[] = [];

  constructor(opts: MemorySnapshotStoreOptions = {}) {
    this.retain = checkRetain(opts.retain);
    this.name = opts.name ?? 'memory snapshot store';
  }

  async open(): Promise<void> {
    this.#isOpen = true;
  }

  async save(snapshot: Snapshot): Promise<void> {
    this.#assertOpen();
    this.#assertNotStale(snapshot.meta);
    this.#put({ meta: copyMeta(snapshot.meta), data: new Uint8Array(snapshot.data) });
  }

  async latest(): Promise<Snapshot | undefined> {
    this.#assertOpen();
    const s = this.#snapshots.at(-1);
    return s && { meta: copyMeta(s.meta), data: new Uint8Array(s.data) };
  }

  async latestMeta(): Promise<SnapshotMeta | undefined> {
    this.#assertOpen();
    const s = this.#snapshots.at(-1);
    return s && copyMeta(s.meta);
  }

  async openWriter(meta: SnapshotMeta): Promise<SnapshotWriter> {
    this.#assertOpen();
    this.#assertNotStale(meta);
    const chunks: Uint8Array[] = [];
    let state: 'open' | 'committed' | 'aborted' = 'open';
    const label = `${this.name}: incoming ${snapshotFileName(meta)}`;
    return {
      meta,
      write: async (chunk) => {
        if (state !== 'open') throw new StoreClosedError(`snapshot writer for ${snapshotFileName(meta)}`, `is ${state}`);
        chunks.push(new Uint8Array(chunk));
      },
      commit: async () => {
        if (state !== 'open') throw new StoreClosedError(`snapshot writer for ${snapshotFileName(meta)}`, `is ${state}`);
        state = 'aborted'; // whatever happens next, this writer is finished
        const snap = decodeSnapshot(Buffer.concat(chunks), label);
        chunks.length = 0;
        assertSameSnapshot(snap.meta, meta, label);
        this.#assertOpen();
        this.#assertNotStale(snap.meta);
        this.#put(snap);
        state = 'committed';
        return copyMeta(snap.meta);
      },
      abort: async () => {
        if (state === 'open') state = 'aborted';
        chunks.length = 0;
      },
    };
  }

  async openReader(): Promise<SnapshotReader | undefined> {
    this.#assertOpen();
    const s = this.#snapshots.at(-1);
    if (!s) return undefined;
    const bytes = encodeSnapshot(s);
    let used = false;
    return {
      meta: copyMeta(s.meta),
      sizeBytes: bytes.length,
      async *readChunks(chunkBytes: number) {
        checkChunkBytes(chunkBytes);
        if (used) throw new Error('SnapshotReader.readChunks can be iterated only once');
        used = true;
        for (let at = 0; at < bytes.length; at += chunkBytes) yield bytes.slice(at, at + chunkBytes);
      },
      close: async () => { used = true; },
    };
  }

  async list(): Promise<Array<{ index: number; term: number }>> {
    this.#assertOpen();
    return this.#snapshots.map((s) => ({ index: s.meta.index, term: s.meta.term })).reverse();
  }

  async close(): Promise<void> {
    this.#isOpen = false;
  }

  #put(snapshot: Snapshot): void {
    const i = this.#snapshots.findIndex((s) => compareSnapshotMeta(s.meta, snapshot.meta) === 0);
    if (i >= 0) this.#snapshots.splice(i, 1);
    this.#snapshots.push(snapshot);
    this.#snapshots.sort((a, b) => compareSnapshotMeta(a.meta, b.meta));
    if (this.#snapshots.length > this.retain) this.#snapshots.splice(0, this.#snapshots.length - this.retain);
  }

  #assertNotStale(meta: SnapshotMeta): void {
    const latest = this.#snapshots.at(-1);
    if (latest && compareSnapshotMeta(meta, latest.meta) < 0) {
      throw new StaleSnapshotError(meta.index, meta.term, latest.meta.index, latest.meta.term);
    }
  }

  #assertOpen(): void {
    if (!this.#isOpen) throw new StoreClosedError(this.name);
  }
}

function copyEntry(e: Entry): Entry {
  return { term: e.term, index: e.index, kind: e.kind, data: new Uint8Array(e.data) };
}

function copyMeta(m: SnapshotMeta): SnapshotMeta {
  return {
    index: m.index,
    term: m.term,
    conf: { voters: [...m.conf.voters], learners: [...m.conf.learners] },
    ...(m.addresses !== undefined ? { addresses: { ...m.addresses } } : {}),
  };
}
