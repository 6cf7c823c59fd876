// One simulated node's disk: the Raft log, hard state and latest snapshot, with the difference
// between written and synced that a real disk has. Writes land in `current` at once (what the
// running node reads back) and in `durable` only when synced; a crash keeps `durable` plus some
// prefix of the unsynced writes (each write is atomic, as LogStore.save promises) and loses the rest.
import type { ConfState, Entry, HardState, Snapshot } from '../core/types.ts';
import type { InitialState } from '../core/config.ts';
import type { Rng } from './rng.ts';

/** A storage contract breach by the caller (the core's Ready asked for something impossible). */
export class StorageContractError extends Error {
  readonly code = 'ERR_SIM_STORAGE_CONTRACT';
  constructor(message: string) {
    super(message);
    this.name = 'StorageContractError';
  }
}

export interface DiskState {
  hardState: HardState;
  snapshot: Snapshot | undefined;
  /** Entries ≤ compactedTo are gone (covered by the snapshot, whose index is ≥ compactedTo). */
  compactedTo: number;
  /** Entries compactedTo+1 .. compactedTo+entries.length. */
  entries: Entry[];
}

type Write =
  | { kind: 'save'; snapshot?: Snapshot; entries: Entry[]; hardState?: HardState }
  | { kind: 'compact'; index: number }
  | { kind: 'reset'; index: number };

/** Storage faults the simulator can inject on purpose, to prove its checkers catch what they cause. */
export type StorageBug =
  /** A crash forgets the vote (as a store that did not persist HardState.vote would). */
  | 'forgetVoteOnCrash'
  /** Never syncs: acknowledged entries can vanish in a crash. */
  | 'ignoreSync';

function emptyState(): DiskState {
  return { hardState: { term: 0, vote: '', commit: 0 }, snapshot: undefined, compactedTo: 0, entries: [] };
}

function cloneState(s: DiskState): DiskState {
  return { hardState: { ...s.hardState }, snapshot: s.snapshot, compactedTo: s.compactedTo, entries: s.entries.slice() };
}

export function lastIndexOf(s: DiskState): number {
  return s.compactedTo + s.entries.length;
}

/** Term of the entry at `index` in this state, 0 for index 0, undefined if not held. */
export function termAt(s: DiskState, index: number): number | undefined {
  if (index === 0) return 0;
  if (index > s.compactedTo) return s.entries[index - s.compactedTo - 1]?.term;
  if (s.snapshot && index === s.snapshot.meta.index) return s.snapshot.meta.term;
  return undefined;
}

export function entryAt(s: DiskState, index: number): Entry | undefined {
  return index > s.compactedTo ? s.entries[index - s.compactedTo - 1] : undefined;
}

/** Highest index covered by the snapshot (0 if none). */
export function snapshotIndexOf(s: DiskState): number {
  return s.snapshot?.meta.index ?? 0;
}

function applyWrite(s: DiskState, w: Write): void {
  if (w.kind === 'reset') {
    // LogStore.reset: every entry goes; the log restarts after `index` (a snapshot covers it).
    s.entries = [];
    s.compactedTo = w.index;
    return;
  }
  if (w.kind === 'compact') {
    const to = Math.min(w.index, lastIndexOf(s));
    if (to > s.compactedTo) {
      s.entries.splice(0, to - s.compactedTo);
      s.compactedTo = to;
    }
    return;
  }
  if (w.snapshot) {
    // LogStore.reset: a snapshot from the leader replaces the whole log; no suffix may survive it.
    s.snapshot = w.snapshot;
    s.compactedTo = w.snapshot.meta.index;
    s.entries = [];
  }
  if (w.entries.length > 0) {
    const first = w.entries[0]!.index;
    const keep = first - s.compactedTo - 1;
    s.entries.length = Math.max(0, Math.min(keep, s.entries.length));
    s.entries.push(...w.entries);
  }
  if (w.hardState) s.hardState = { ...w.hardState };
}

export class SimStorage {
  /** What the running node sees. */
  current: DiskState = emptyState();
  /** What survives a crash. */
  durable: DiskState = emptyState();
  private unsynced: Write[] = [];
  private staged: { write: Write; view: DiskState } | undefined;
  private readonly bug: StorageBug | undefined;
  /** The checker's ledger of every vote this disk ever recorded, by term (not part of the modelled
   *  disk: a crash does not touch it, so a vote the disk forgot is still caught). */
  readonly votes = new Map<number, string>();
  /** Counts for the run's statistics. */
  syncs = 0;
  lostWrites = 0;
  /** Saves that overwrote a conflicting suffix of the log. */
  truncations = 0;

  constructor(bug?: StorageBug) {
    this.bug = bug;
  }

  /**
   * The bootstrap of a new cluster (config.ts: one addVoter conf entry per member at term 1, indexes
   * 1..n, commit n), written and synced before the node first starts.
   */
  bootstrap(voters: readonly string[], encode: (node: string) => Uint8Array): void {
    const entries: Entry[] = voters.map((node, i) => ({ term: 1, index: i + 1, kind: 'conf', data: encode(node) }));
    this.save({ entries, hardState: { term: 1, vote: '', commit: voters.length } }, true);
    // Bootstrap is the operator's doing, not the Ready path an injected sync bug stands for.
    this.sync();
  }

  /**
   * Ready step 1: snapshot (resets the log), then entries (overwriting a conflicting suffix), then
   * hard state, as one atomic write; synced when `sync`. Throws StorageContractError if the entries
   * would leave a gap or rewrite compacted history.
   */
  save(w: { snapshot?: Snapshot; entries: Entry[]; hardState?: HardState }, sync: boolean): void {
    if (this.staged) throw new StorageContractError('save() while a staged write is in flight');
    const write = this.check(w, this.current);
    applyWrite(this.current, write);
    this.unsynced.push(write);
    if (sync && this.bug !== 'ignoreSync') this.sync();
  }

  /**
   * Starts a write that completes later (fsync latency): `view()` shows it at once, as the node's
   * own memory does, but the disk (`current`, `durable`) only gets it at completeStaged(). A crash
   * before then loses it whole. One write at a time, as a driver persists one Ready at a time.
   */
  stage(w: { snapshot?: Snapshot; entries: Entry[]; hardState?: HardState }): void {
    if (this.staged) throw new StorageContractError('a second write staged while one is in flight');
    const write = this.check(w, this.current);
    const view = cloneState(this.current);
    applyWrite(view, write);
    this.staged = { write, view };
  }

  completeStaged(sync: boolean): void {
    const st = this.staged;
    if (!st) throw new StorageContractError('no staged write to complete');
    this.staged = undefined;
    applyWrite(this.current, st.write);
    this.unsynced.push(st.write);
    if (sync && this.bug !== 'ignoreSync') this.sync();
  }

  /** The process stopped with a write in flight: it never reached the disk. */
  hasStaged(): boolean {
    return this.staged !== undefined;
  }

  dropStaged(): void {
    if (this.staged) this.lostWrites++;
    this.staged = undefined;
  }

  /** The log as the running node knows it: the disk plus a write in flight. */
  view(): DiskState {
    return this.staged?.view ?? this.current;
  }

  private check(w: { snapshot?: Snapshot; entries: Entry[]; hardState?: HardState }, base: DiskState): Write {
    const after = w.snapshot ? w.snapshot.meta.index : base.compactedTo;
    const last = w.snapshot ? w.snapshot.meta.index : lastIndexOf(base);
    for (let i = 0; i < w.entries.length; i++) {
      const e = w.entries[i]!;
      if (i > 0 && e.index !== w.entries[i - 1]!.index + 1) {
        throw new StorageContractError(`Ready.entries not contiguous: index ${w.entries[i - 1]!.index} then ${e.index}`);
      }
    }
    if (w.entries.length > 0) {
      const first = w.entries[0]!.index;
      if (first > last + 1) throw new StorageContractError(`Ready.entries start at ${first} but the log ends at ${last}: a gap`);
      if (first <= after) throw new StorageContractError(`Ready.entries start at ${first}, at or below the compacted/snapshot index ${after}`);
    }
    if (w.entries.length > 0 && w.entries[0]!.index <= last) this.truncations++;
    return { kind: 'save', snapshot: w.snapshot, entries: w.entries.slice(), hardState: w.hardState };
  }

  /** A snapshot the node took itself: SnapshotStore.save is durable on return (write, fsync, rename),
   *  then the log below `compactTo` (≤ snapshot index) is compacted. */
  saveLocalSnapshot(snapshot: Snapshot, compactTo: number): void {
    if (this.staged) throw new StorageContractError('local snapshot while a write is in flight');
    if (compactTo > snapshot.meta.index) {
      throw new StorageContractError(`compactTo ${compactTo} is above the snapshot index ${snapshot.meta.index}`);
    }
    this.current.snapshot = snapshot;
    this.durable.snapshot = snapshot;
    const write: Write = { kind: 'compact', index: compactTo };
    applyWrite(this.current, write);
    this.unsynced.push(write);
  }

  /** SnapshotStore.save: the file is written, synced and renamed into place before it returns. */
  saveSnapshotFile(snapshot: Snapshot): void {
    if (this.staged) throw new StorageContractError('snapshot saved while a log write is in flight');
    const latest = this.current.snapshot?.meta.index ?? 0;
    if (snapshot.meta.index < latest) throw new StorageContractError(`snapshot ${snapshot.meta.index} is older than the stored ${latest}`);
    this.current.snapshot = snapshot;
    this.durable.snapshot = snapshot;
  }

  /** LogStore.reset(index): synced, atomic. */
  reset(index: number): void {
    if (this.staged) throw new StorageContractError('log reset while a write is in flight');
    if (index > (this.current.snapshot?.meta.index ?? 0)) throw new StorageContractError(`log reset to ${index}, beyond the stored snapshot`);
    const write: Write = { kind: 'reset', index };
    applyWrite(this.current, write);
    this.unsynced.push(write);
    if (this.bug !== 'ignoreSync') this.sync();
  }

  /** LogStore.compact(index): entries ≤ index go (not synced: losing it in a crash only keeps more). */
  compact(index: number): void {
    if (this.staged) throw new StorageContractError('compaction while a write is in flight');
    if (index > (this.current.snapshot?.meta.index ?? 0)) throw new StorageContractError(`compaction to ${index}, beyond the stored snapshot`);
    const write: Write = { kind: 'compact', index };
    applyWrite(this.current, write);
    this.unsynced.push(write);
  }

  sync(): void {
    for (const w of this.unsynced) applyWrite(this.durable, w);
    this.unsynced = [];
    this.syncs++;
  }

  /** Power loss: durable plus a random prefix of the unsynced writes survives. */
  crash(rng: Rng): void {
    if (this.staged) this.lostWrites++;
    this.staged = undefined;
    const keep = this.unsynced.length === 0 ? 0 : rng.int(this.unsynced.length + 1);
    for (let i = 0; i < keep; i++) applyWrite(this.durable, this.unsynced[i]!);
    this.lostWrites += this.unsynced.length - keep;
    this.unsynced = [];
    if (this.bug === 'forgetVoteOnCrash') this.durable.hardState = { ...this.durable.hardState, vote: '' };
    this.current = cloneState(this.durable);
  }

  /** What a restarting node is given (config.initial). Entries kept below the snapshot index by a
   *  compaction that left a tail are passed too (the InitialState contract allows it), so the core's
   *  handling of that overlap runs. */
  initialState(): InitialState {
    const s = this.durable;
    const snap = s.snapshot;
    const entries = s.entries.slice();
    // Membership lives in the log and the snapshot; a node that has neither starts with none.
    const conf: ConfState = { voters: [], learners: [] };
    return {
      hardState: { ...s.hardState },
      snapshot: snap?.meta,
      entries,
      conf,
      applied: snap?.meta.index ?? 0,
    };
  }
}
