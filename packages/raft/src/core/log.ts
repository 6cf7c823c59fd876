// The in-memory Raft log: every entry after a compaction offset, the commit index, and the
// bookkeeping of what has been handed to the driver for persisting. The driver's LogStore holds the
// durable copy; the core keeps its own so that it never blocks on storage (etcd's raftLog +
// unstable, folded into one array because the whole log lives in memory here).
import type { Entry } from './types.ts';

/** Approximate wire size of an entry, used for the per-message and per-Ready byte caps. */
export function entrySize(e: Entry): number {
  // 24 bytes stand in for index, term and kind so that a run of empty entries is not "free".
  return e.data.byteLength + 24;
}

export class RaftLog {
  /** Index of the last entry compacted away (0 when nothing was). Entries start at offset + 1. */
  private offset: number;
  /** Term of the entry at `offset`, or undefined when it is not known (compacted without a snapshot
   *  boundary there). An unknown term forces a snapshot for a follower that needs to match there. */
  private offsetTerm: number | undefined;
  private ents: Entry[];
  /** Highest index known to be committed (Raft Fig. 2 commitIndex). */
  committed: number;
  /** First index not yet handed to the driver for persisting (Ready.entries). Lowered when a
   *  conflicting suffix is overwritten, so the replacement is handed out again. */
  unstableFrom: number;

  constructor(offset: number, offsetTerm: number | undefined, entries: Entry[], committed: number) {
    this.offset = offset;
    this.offsetTerm = offset === 0 ? 0 : offsetTerm;
    this.ents = entries.slice();
    this.committed = committed;
    // Whatever the driver loaded from storage is, by definition, already persisted.
    this.unstableFrom = offset + entries.length + 1;
  }

  firstIndex(): number { return this.offset + 1; }
  lastIndex(): number { return this.offset + this.ents.length; }
  lastTerm(): number { return this.term(this.lastIndex()) ?? 0; }

  /** Term of the entry at `i`, or undefined if it is compacted away or beyond the last index. */
  term(i: number): number | undefined {
    if (i === this.offset) return this.offsetTerm;
    if (i < this.offset || i > this.lastIndex()) return undefined;
    return this.ents[i - this.offset - 1]!.term;
  }

  matchTerm(i: number, t: number): boolean {
    return this.term(i) === t;
  }

  /** Raft §5.4.1: a candidate's log is at least as up-to-date as ours if its last term is higher,
   *  or equal with an index at least as large. */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const myTerm = this.lastTerm();
    return lastTerm > myTerm || (lastTerm === myTerm && lastIndex >= this.lastIndex());
  }

  entry(i: number): Entry | undefined {
    if (i <= this.offset || i > this.lastIndex()) return undefined;
    return this.ents[i - this.offset - 1];
  }

  /** Entries [lo, hi] (inclusive), at most `maxBytes` worth but always at least one when the range
   *  is non-empty. Returns undefined when lo is compacted away. */
  slice(lo: number, hi: number, maxBytes = Infinity, maxCount = Infinity): Entry[] | undefined {
    if (lo <= this.offset) return undefined;
    hi = Math.min(hi, this.lastIndex());
    const out: Entry[] = [];
    let bytes = 0;
    for (let i = lo; i <= hi && out.length < maxCount; i++) {
      const e = this.ents[i - this.offset - 1]!;
      bytes += entrySize(e);
      if (out.length > 0 && bytes > maxBytes) break;
      out.push(e);
    }
    return out;
  }

  /**
   * Appends `entries` (contiguous), first removing any suffix at or after entries[0].index.
   * Returns the index truncation started at, or undefined when nothing was removed. The caller
   * guarantees entries[0].index is in (committed, lastIndex + 1].
   */
  append(entries: readonly Entry[]): number | undefined {
    if (entries.length === 0) return undefined;
    const first = entries[0]!.index;
    let truncatedFrom: number | undefined;
    if (first <= this.lastIndex()) {
      truncatedFrom = first;
      this.ents.length = first - this.offset - 1;
      if (first < this.unstableFrom) this.unstableFrom = first;
    }
    for (const e of entries) this.ents.push(e);
    return truncatedFrom;
  }

  /** Raft §5.3: the first index in `entries` whose term differs from ours, or which we lack;
   *  0 when every entry is already present. */
  findConflict(entries: readonly Entry[]): number {
    for (const e of entries) {
      if (!this.matchTerm(e.index, e.term)) return e.index;
    }
    return 0;
  }

  commitTo(i: number): boolean {
    if (i > this.committed) {
      this.committed = i;
      return true;
    }
    return false;
  }

  /**
   * Smallest index in [firstIndex, i] whose term equals term(i); used by a follower to tell the
   * leader where its conflicting term starts, so the leader can skip the whole term (Raft §5.3,
   * the optimization the paper sketches). Terms never decrease along the log, so this bisects.
   */
  firstIndexOfTerm(i: number): number {
    const t = this.term(i);
    let lo = this.firstIndex();
    let hi = i;
    while (lo < hi) {
      const mid = Math.floor((lo + hi) / 2);
      if (this.term(mid)! < t!) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /**
   * Largest index ≤ i whose term is ≤ t, or the offset when none is in memory. A leader uses this
   * with a follower's conflict term to jump past every entry of a term the follower never saw.
   */
  lastIndexWithTermAtMost(i: number, t: number): number {
    let lo = this.offset;
    let hi = Math.min(i, this.lastIndex());
    if (hi <= lo) return hi;
    // Invariant: term(lo) ≤ t (or lo is the offset); find the largest such index.
    while (lo < hi) {
      const mid = Math.ceil((lo + hi) / 2);
      if (this.term(mid)! <= t) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** Replaces the whole log with a snapshot boundary (a follower installing a leader's snapshot). */
  restore(index: number, term: number): void {
    this.offset = index;
    this.offsetTerm = term;
    this.ents = [];
    this.committed = index;
    this.unstableFrom = index + 1;
  }

  /** Drops entries ≤ to (covered by a snapshot the driver saved). `to` ≤ committed. */
  compact(to: number): void {
    if (to <= this.offset) return;
    const t = this.term(to);
    this.ents.splice(0, to - this.offset);
    this.offset = to;
    this.offsetTerm = t;
  }

  /** Entries not yet handed to the driver for persisting. */
  unstableEntries(): Entry[] {
    if (this.unstableFrom > this.lastIndex()) return [];
    return this.ents.slice(this.unstableFrom - this.offset - 1);
  }

  markHandedOut(last: number): void {
    this.unstableFrom = Math.max(this.unstableFrom, last + 1);
  }
}
