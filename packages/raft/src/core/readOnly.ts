// Linearizable reads without writing to the log (Raft thesis §6.4, etcd's read_only.go).
//
// The leader records its commit index when a read arrives, then proves it is still the leader by
// a round of heartbeats carrying the read's context: once a majority of voters answers, no other
// leader can have committed anything newer, and the read may be served when the state machine has
// applied the recorded index. Heartbeat acknowledgements are cumulative in time, so a quorum for
// one context also confirms every read queued before it.
import type { NodeId, ReadState } from './types.ts';

interface PendingRead {
  index: number;
  context: string;
  acks: Set<NodeId>;
}

export class ReadOnlyQueue {
  private pending = new Map<string, PendingRead>();
  private order: string[] = [];

  get size(): number { return this.order.length; }

  /** Queues a read at `index`. A duplicate context is ignored (the first one keeps its index). */
  add(index: number, context: string, self: NodeId): void {
    if (this.pending.has(context)) return;
    this.pending.set(context, { index, context, acks: new Set([self]) });
    this.order.push(context);
  }

  /** Records a heartbeat acknowledgement; returns who has acknowledged `context` so far. */
  recvAck(from: NodeId, context: string): ReadonlySet<NodeId> | undefined {
    const p = this.pending.get(context);
    if (!p) return undefined;
    p.acks.add(from);
    return p.acks;
  }

  /** Releases `context` and every read queued before it. */
  advance(context: string): ReadState[] {
    const at = this.order.indexOf(context);
    if (at < 0) return [];
    const released = this.order.splice(0, at + 1);
    const out: ReadState[] = [];
    for (const ctx of released) {
      const p = this.pending.get(ctx)!;
      this.pending.delete(ctx);
      out.push({ index: p.index, context: ctx });
    }
    return out;
  }

  /** The newest pending context: a heartbeat carrying it confirms all older ones too. */
  lastContext(): string | undefined {
    return this.order.length > 0 ? this.order[this.order.length - 1] : undefined;
  }

  reset(): void {
    this.pending.clear();
    this.order = [];
  }
}
