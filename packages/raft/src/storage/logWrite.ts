// The rules every LogStore applies to save() before touching storage, shared so that the memory and
// level stores accept and refuse exactly the same writes (the contract suite runs against both).
import type { Entry, HardState } from '../core/types.ts';
import { InvalidLogWriteError } from '../errors.ts';

export const EMPTY_HARD_STATE: Readonly<HardState> = Object.freeze({ term: 0, vote: '', commit: 0 });

/** What a valid save() does to a log that currently holds (compactedTo, lastIndex]. */
export interface SavePlan {
  /** Stored entries at or after this index are replaced or removed; undefined when only appending. */
  truncateFrom?: number;
  /** Last index once the save is applied. */
  lastIndex: number;
}

/**
 * Checks a save against the log's bounds and returns what it changes. Throws InvalidLogWriteError
 * (before anything is written) for a write no correct caller makes: it would leave a hole, rewrite
 * entries already folded into a snapshot, or persist a commit index the log cannot back.
 */
export function planSave(compactedTo: number, lastIndex: number, entries: readonly Entry[], hardState: HardState | undefined): SavePlan {
  let plan: SavePlan = { lastIndex };
  if (entries.length > 0) {
    const first = entries[0]!.index;
    if (!Number.isSafeInteger(first) || first < 1) {
      throw new InvalidLogWriteError(`entry index ${first} is not a positive integer`);
    }
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      if (e.index !== first + i) {
        throw new InvalidLogWriteError(`entries must be contiguous and ascending, but entry ${i} has index ${e.index} where ${first + i} was expected`);
      }
      if (!Number.isSafeInteger(e.term) || e.term < 0) {
        throw new InvalidLogWriteError(`entry ${e.index} has term ${e.term}, which is not a non-negative integer`);
      }
      if (e.kind !== 'normal' && e.kind !== 'conf') {
        throw new InvalidLogWriteError(`entry ${e.index} has unknown kind ${JSON.stringify(e.kind)}`);
      }
    }
    if (first <= compactedTo) {
      // Raft never rewrites entries covered by a snapshot: they are committed. A caller sending them
      // has lost track of the snapshot, and silently trimming would hide that.
      throw new InvalidLogWriteError(`entries start at index ${first}, but the log is compacted up to ${compactedTo}`);
    }
    if (first > lastIndex + 1) {
      throw new InvalidLogWriteError(`entries start at index ${first}, leaving a gap after the last index ${lastIndex}`);
    }
    plan = { lastIndex: entries[entries.length - 1]!.index, ...(first <= lastIndex ? { truncateFrom: first } : {}) };
  }
  if (hardState !== undefined) {
    if (!Number.isSafeInteger(hardState.term) || hardState.term < 0 || !Number.isSafeInteger(hardState.commit) || hardState.commit < 0) {
      throw new InvalidLogWriteError(`hard state ${JSON.stringify(hardState)} must hold non-negative integer term and commit`);
    }
    if (typeof hardState.vote !== 'string') {
      throw new InvalidLogWriteError(`hard state vote must be a node id string ('' for none), got ${typeof hardState.vote}`);
    }
    if (hardState.commit > plan.lastIndex) {
      // load() treats this as corruption, so refuse to write it in the first place.
      throw new InvalidLogWriteError(`hard state commit ${hardState.commit} is beyond the last index ${plan.lastIndex} the log would hold`);
    }
  }
  return plan;
}

/** Checks entries(lo, hi) bounds: the range must lie within (compactedTo, lastIndex + 1]. */
export function rangeAvailable(compactedTo: number, lastIndex: number, lo: number, hi: number): boolean {
  return Number.isSafeInteger(lo) && Number.isSafeInteger(hi) && lo <= hi && lo > compactedTo && hi <= lastIndex + 1;
}

/**
 * reset(index) empties the log and moves its start to index + 1. The stored commit must stay within
 * the (now empty) log: a node adopts a leader's snapshot only when it is ahead of its own commit.
 */
export function checkReset(index: number, hardState: HardState): void {
  if (!Number.isSafeInteger(index) || index < 0) throw new InvalidLogWriteError(`reset index ${index} is not a non-negative integer`);
  if (hardState.commit > index) {
    throw new InvalidLogWriteError(`reset to index ${index} would leave the stored commit ${hardState.commit} beyond the log; a snapshot behind the commit index is never installed`);
  }
}

export function checkCompact(index: number): void {
  if (!Number.isSafeInteger(index) || index < 0) throw new InvalidLogWriteError(`compact index ${index} is not a non-negative integer`);
}
