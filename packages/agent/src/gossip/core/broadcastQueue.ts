// The transmit-limited broadcast queue (memberlist queue.go). Every broadcast is piggybacked on
// outgoing messages until it has been sent retransmitMult × ceil(log10(N + 1)) times: enough for
// an epidemic to reach every member with high probability (SWIM §4.1, infection-style
// dissemination), and no more, so the cost per update stays O(log N) per member.
//
// Broadcasts about a member carry the member's name as their key: a newer one (alive after suspect,
// a confirmation after the first suspicion) replaces the older one still in the queue, because
// only the newest state is worth spreading. User events have no key and never replace each other.
//
// Unlike memberlist, each broadcast remembers whom it went to (and whom it came from) and is not
// sent to them again while members remain that have not had it from us: memberlist picks carriers
// at random, so in a small pool (8 members: 4 transmissions each) a repeat to the same member
// wastes a transmission, and in the simulator 6.7% of user events missed a member until the next
// push-pull. Once every other member has had it, repeats are allowed again (a 2-member pool still
// sends its 4 copies, which is what loss needs). See retransmitLimit for small pools.
import type { Update } from './types.ts';

interface Item {
  readonly id: number;
  readonly update: Update;
  readonly key: string | undefined;
  readonly bytes: number;
  transmits: number;
  /** Members this broadcast went to, and the one it came from. */
  readonly sentTo: Set<string>;
}

/**
 * memberlist retransmitLimit, mult × ceil(log10(n + 1)), except that a pool of fewer than 10
 * members may spend what memberlist gives 10 (2 × mult) to reach every other member once: with
 * each copy going to a member that has not had it, the epidemic then cannot miss anyone short of
 * packet loss. (memberlist's 4 copies in an 8-member pool missed a member until the next push-pull
 * for 6.7% of user events in the simulator; 0.8% with distinct recipients alone.)
 */
export function retransmitLimit(retransmitMult: number, clusterSize: number): number {
  const epidemic = retransmitMult * Math.ceil(Math.log10(clusterSize + 1));
  return Math.max(epidemic, Math.min(clusterSize - 1, 2 * retransmitMult));
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

  /**
   * Queues `update` (replacing any queued broadcast with the same key); returns its id.
   * `heardFrom` is the member that sent it to us: it is not sent back there.
   */
  push(update: Update, key: string | undefined, bytes: number, heardFrom?: string): number {
    if (key !== undefined) this.#items = this.#items.filter((i) => i.key !== key);
    const id = this.#nextId++;
    const sentTo = new Set<string>();
    if (heardFrom !== undefined) sentTo.add(heardFrom);
    this.#items.push({ id, update, key, bytes, transmits: 0, sentTo });
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
   * first and newest first among equals, and counts one transmission for each. A broadcast that
   * `recipient` already had from us (or sent us) is skipped while fewer than `clusterSize - 1`
   * members have had it.
   */
  take(overheadBytes: number, limitBytes: number, clusterSize: number, retransmitMult: number, recipient: string): Update[] {
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
      if (item.sentTo.has(recipient) && item.sentTo.size < clusterSize - 1) continue;
      used += cost;
      out.push(item.update);
      item.transmits++;
      item.sentTo.add(recipient);
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
