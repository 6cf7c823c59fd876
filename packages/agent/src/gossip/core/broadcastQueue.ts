// The transmit-limited broadcast queue (memberlist queue.go). Every broadcast is piggybacked on
// outgoing messages until it has been sent retransmitMult × ceil(log10(N + 1)) times: enough for
// an epidemic to reach every member with high probability (SWIM §4.1, infection-style
// dissemination), and no more, so the cost per update stays O(log N) per member.
//
// Broadcasts about a member carry the member's name as their key: a newer one (alive after suspect,
// a confirmation after the first suspicion) replaces the older one still in the queue, because
// only the newest state is worth spreading. User events have no key and never replace each other.
import type { Update } from './types.ts';

interface Item {
  readonly id: number;
  readonly update: Update;
  readonly key: string | undefined;
  readonly bytes: number;
  transmits: number;
}

/** memberlist retransmitLimit: mult × ceil(log10(n + 1)). */
export function retransmitLimit(retransmitMult: number, clusterSize: number): number {
  return retransmitMult * Math.ceil(Math.log10(clusterSize + 1));
}

export class BroadcastQueue {
  #items: Item[] = [];
  #nextId = 1;
  #sorted = true;
  readonly #maxDepth: number;
  /** Broadcasts dropped by the depth limit (a sign of a pool that churns faster than it gossips). */
  #pruned = 0;

  constructor(maxDepth: number) {
    this.#maxDepth = maxDepth;
  }

  get length(): number {
    return this.#items.length;
  }

  /** Broadcasts dropped because the queue was over its depth limit. */
  get pruned(): number {
    return this.#pruned;
  }

  /** Queues `update` (replacing any queued broadcast with the same key); returns its id. */
  push(update: Update, key: string | undefined, bytes: number): number {
    if (key !== undefined) this.#items = this.#items.filter((i) => i.key !== key);
    const id = this.#nextId++;
    this.#items.push({ id, update, key, bytes, transmits: 0 });
    this.#sorted = false;
    if (this.#items.length > this.#maxDepth) {
      // Oldest first: they have had the most chances to spread already (memberlist Prune).
      this.#items.sort((a, b) => a.id - b.id);
      const drop = this.#items.length - this.#maxDepth;
      this.#items.splice(0, drop);
      this.#pruned += drop;
    }
    return id;
  }

  /** True while the broadcast `id` is still waiting to be (re)transmitted. */
  isPending(id: number): boolean {
    return this.#items.some((i) => i.id === id);
  }

  /**
   * Takes broadcasts whose sizes (plus `overheadBytes` each) fit in `limitBytes`, fewest transmits
   * first and newest first among equals, and counts one transmission for each.
   */
  take(overheadBytes: number, limitBytes: number, clusterSize: number, retransmitMult: number): Update[] {
    if (this.#items.length === 0) return [];
    if (!this.#sorted) {
      this.#items.sort((a, b) => a.transmits - b.transmits || b.id - a.id);
      this.#sorted = true;
    }
    const limit = retransmitLimit(retransmitMult, clusterSize);
    const out: Update[] = [];
    let used = 0;
    let anyDone = false;
    for (const item of this.#items) {
      const cost = item.bytes + overheadBytes;
      if (used + cost > limitBytes) continue;
      used += cost;
      out.push(item.update);
      item.transmits++;
      if (item.transmits >= limit) anyDone = true;
      this.#sorted = false;
      if (limitBytes - used < overheadBytes + 8) break;
    }
    if (anyDone) this.#items = this.#items.filter((i) => i.transmits < limit);
    return out;
  }

  /** Drops everything (after leaving, nothing of ours is worth sending). */
  clear(): void {
    this.#items = [];
  }
}
