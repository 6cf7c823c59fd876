// Storage contracts. The driver relies on exactly these guarantees; every implementation is tested
// against them by the same contract suite (test/storage.contract.ts).
import type { Entry, HardState, Snapshot, SnapshotMeta } from '../core/types.ts';

/**
 * The durable Raft log and hard state.
 *
 * - `save(entries, hardState, sync)` is atomic: after a crash, either all of it is visible or none.
 *   If entries[0].index ≤ lastIndex(), every stored entry at or after entries[0].index is removed
 *   first (a leader overwrote a conflicting suffix). Entries are contiguous and ascending.
 *   When `sync` is true the call resolves only once the write is on stable storage (fsync).
 * - `load()` returns what a restart must see: the hard state and every entry after `compactedTo`.
 *   Every entry's checksum is verified on load; a mismatch rejects with CorruptionError naming the
 *   file and index. It never drops data silently.
 * - `compact(index)` removes entries ≤ index (they are covered by a snapshot). Idempotent.
 * - `reset(index)` removes EVERY entry and records compactedTo = index, atomically and synced: a
 *   snapshot from the leader replaced this node's log (entries after it may belong to a divergent
 *   history and must not survive a restart, or log matching could break).
 * - `entries(lo, hi)` returns [lo, hi) from storage (used rarely: the core keeps the log in memory).
 */
export interface LogStore {
  open(): Promise<void>;
  load(): Promise<{ hardState: HardState; entries: Entry[]; compactedTo: number }>;
  save(entries: Entry[], hardState: HardState | undefined, sync: boolean): Promise<void>;
  compact(index: number): Promise<void>;
  reset(index: number): Promise<void>;
  entries(lo: number, hi: number): Promise<Entry[]>;
  close(): Promise<void>;
}

/**
 * Snapshots of the state machine.
 *
 * - `save(snapshot)` writes to a temporary name, syncs, renames into place, syncs the directory;
 *   then the snapshot is the latest. Older snapshots beyond `retain` (default 2) are deleted.
 *   A checksum covers meta and data.
 * - `latest()` returns the newest snapshot whose checksum verifies, or undefined if none exist.
 *   If the newest is corrupt it rejects with CorruptionError naming the file (no silent fallback
 *   that could lose committed data the log no longer holds).
 * - `latestMeta()` as latest() without reading the data into memory.
 */
export interface SnapshotStore {
  open(): Promise<void>;
  save(snapshot: Snapshot): Promise<void>;
  latest(): Promise<Snapshot | undefined>;
  latestMeta(): Promise<SnapshotMeta | undefined>;
  close(): Promise<void>;
}
