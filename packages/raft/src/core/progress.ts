// What a leader knows about one peer's copy of the log, and how it paces appends to it
// (etcd's tracker.Progress and tracker.Inflights).
//
//  probe      the leader does not know where the follower's log matches; it sends one append at a
//             time and waits for the answer (or the next heartbeat response) before the next.
//  replicate  the follower's log is known to match up to `match`; appends are pipelined,
//             optimistically advancing `next`, with at most `maxInflight` unacknowledged at once.
//  snapshot   the follower needs entries the leader has compacted; the leader sent a snapshot and
//             sends nothing else until the follower acknowledges it (or the attempt times out).
import type { NodeId, PeerProgress } from './types.ts';

/**
 * A FIFO of the last index carried by each unacknowledged append. Acknowledgements are cumulative
 * (an appResp for index i covers every append ending at or before i), so freeing pops a prefix.
 */
export class Inflights {
  readonly capacity: number;
  private buf: number[] = [];
  private head = 0;

  constructor(capacity: number) {
    this.capacity = capacity;
  }

  get count(): number { return this.buf.length - this.head; }
  full(): boolean { return this.count >= this.capacity; }

  add(lastIndex: number): void {
    this.buf.push(lastIndex);
  }

  /** Frees every append whose last index is ≤ index. */
  freeLE(index: number): void {
    while (this.head < this.buf.length && this.buf[this.head]! <= index) this.head++;
    // Compact occasionally so the array does not grow without bound.
    if (this.head > 64 && this.head * 2 > this.buf.length) {
      this.buf = this.buf.slice(this.head);
      this.head = 0;
    }
  }

  freeFirst(): void {
    if (this.head < this.buf.length) this.freeLE(this.buf[this.head]!);
  }

  reset(): void {
    this.buf = [];
    this.head = 0;
  }
}

export type ProgressState = 'probe' | 'replicate' | 'snapshot';

export class Progress {
  readonly id: NodeId;
  /** Highest index known to match the leader's log. */
  match = 0;
  /** Next index to send. */
  next: number;
  state: ProgressState = 'probe';
  learner: boolean;
  /** Heard from within the current check-quorum window (thesis §6.2). */
  recentActive = false;
  /** In probe state: an append is outstanding. In replicate state: the inflight window was full
   *  when the last append went out. Cleared by a heartbeat response so a lost message cannot stall
   *  the peer forever. */
  paused = false;
  /** Snapshot index being installed (snapshot state only). */
  pendingSnapshot = 0;
  /** Commit index carried by the last append sent, so a commit broadcast skips peers that have it. */
  sentCommit = -1;
  /** Ticks spent in snapshot state without an acknowledgement. */
  snapshotTicks = 0;
  readonly inflights: Inflights;

  constructor(id: NodeId, next: number, maxInflight: number, learner: boolean) {
    this.id = id;
    this.next = next;
    this.learner = learner;
    this.inflights = new Inflights(maxInflight);
  }

  private resetState(state: ProgressState): void {
    this.state = state;
    this.paused = false;
    this.pendingSnapshot = 0;
    this.snapshotTicks = 0;
    this.inflights.reset();
  }

  becomeProbe(): void {
    // Coming back from a snapshot, resume after the snapshot: the follower has it (or will say
    // otherwise, and the probe walks back from there).
    const afterSnapshot = this.state === 'snapshot' ? this.pendingSnapshot + 1 : 0;
    this.resetState('probe');
    this.next = Math.max(this.match + 1, afterSnapshot);
  }

  becomeReplicate(): void {
    this.resetState('replicate');
    this.next = this.match + 1;
  }

  becomeSnapshot(snapshotIndex: number): void {
    this.resetState('snapshot');
    this.pendingSnapshot = snapshotIndex;
    this.next = snapshotIndex + 1;
  }

  /** An append acknowledged through `n`. Returns true if that is news (match moved). */
  maybeUpdate(n: number): boolean {
    if (n <= this.match) return false;
    this.match = n;
    this.next = Math.max(this.next, n + 1);
    this.paused = false;
    return true;
  }

  /**
   * The follower rejected an append whose preceding entry was at `rejected`; `matchHint` is the
   * highest index that may still match (derived from the follower's conflict hint). Returns false
   * when the rejection is stale (answers a message from before we moved `next`).
   */
  maybeDecrTo(rejected: number, matchHint: number): boolean {
    if (this.state === 'replicate') {
      // In replicate state everything up to match is known good: restart right after it.
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1);
    this.paused = false;
    return true;
  }

  /** Records an append carrying entries up to `lastIndex` (count = number of entries). */
  sentEntries(count: number, lastIndex: number): void {
    if (this.state === 'replicate') {
      if (count > 0) {
        this.next = lastIndex + 1;
        this.inflights.add(lastIndex);
      }
      this.paused = this.inflights.full();
    } else if (this.state === 'probe') {
      this.paused = true;
    }
  }

  isPaused(): boolean {
    if (this.state === 'snapshot') return true;
    return this.paused;
  }

  toStatus(): PeerProgress {
    return { id: this.id, match: this.match, next: this.next, state: this.state, learner: this.learner, recentActive: this.recentActive };
  }
}
