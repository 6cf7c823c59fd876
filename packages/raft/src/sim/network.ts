// The simulated network between nodes: every message is held until its delivery step, and may be
// lost, duplicated, delayed (which reorders it behind later messages) or cut off by a partition.
// Partitions are directed links, so one-way faults (a hears b, b does not hear a) are expressible.
import type { Message, NodeId } from '../core/types.ts';
import type { Rng } from './rng.ts';

export interface NetworkFaults {
  /** Probability that a message is dropped. */
  lossRate: number;
  /** Probability that a message is delivered twice (each copy with its own delay). */
  duplicateRate: number;
  /** Delivery delay in steps, uniform in [minDelay, maxDelay]. */
  minDelay: number;
  maxDelay: number;
  /** Probability that a message may overtake earlier ones on its link. Otherwise a link is FIFO,
   *  as a TCP stream is (a message is never delivered before one sent earlier on the same link). */
  reorderRate: number;
}

interface InFlight {
  deliverAt: number;
  /** Random tiebreak among messages due in the same step: reordering within a step. */
  order: number;
  msg: Message;
}

export class SimNetwork {
  faults: NetworkFaults;
  private queue: InFlight[] = [];
  /** Tiebreaks for FIFO messages: increasing, and above every random one (2^32 + n), so within a
   *  step FIFO messages keep their send order (random ones may still slip in before them). */
  private fifoOrder = 0x1_0000_0000;
  /** Per link ("from>to"): the latest delivery step given to a FIFO message. */
  private readonly linkTail = new Map<string, number>();
  /** Blocked directed links, as "from>to". */
  private readonly cut = new Set<string>();
  private readonly rng: Rng;
  readonly stats = { sent: 0, delivered: 0, dropped: 0, duplicated: 0, cutOff: 0 };

  constructor(rng: Rng, faults: NetworkFaults) {
    this.rng = rng;
    this.faults = faults;
  }

  send(msg: Message, now: number): void {
    this.stats.sent++;
    if (this.rng.chance(this.faults.lossRate)) {
      this.stats.dropped++;
      return;
    }
    this.enqueue(msg, now);
    if (this.rng.chance(this.faults.duplicateRate)) {
      this.stats.duplicated++;
      this.enqueue(msg, now);
    }
  }

  private enqueue(msg: Message, now: number): void {
    const delay = this.faults.minDelay + this.rng.int(this.faults.maxDelay - this.faults.minDelay + 1);
    // At least one step: a reply is never delivered within the step that caused it.
    let at = now + Math.max(1, delay);
    let order = this.rng.u32();
    if (!this.rng.chance(this.faults.reorderRate)) {
      // FIFO: not before the previous message on this link; same step → after it (order grows).
      const link = `${msg.from}>${msg.to}`;
      const tail = this.linkTail.get(link) ?? 0;
      if (at <= tail) at = tail;
      this.linkTail.set(link, at);
      order = this.fifoOrder++;
    }
    this.queue.push({ deliverAt: at, order, msg });
  }

  /** Messages due at `now`, in delivery order; messages over a cut link are dropped here (a
   *  partition that begins while a message is in flight catches it). */
  due(now: number): Message[] {
    const ready: InFlight[] = [];
    const later: InFlight[] = [];
    for (const f of this.queue) (f.deliverAt <= now ? ready : later).push(f);
    this.queue = later;
    ready.sort((a, b) => a.deliverAt - b.deliverAt || a.order - b.order);
    const out: Message[] = [];
    for (const f of ready) {
      if (this.cut.has(`${f.msg.from}>${f.msg.to}`)) {
        this.stats.cutOff++;
        continue;
      }
      this.stats.delivered++;
      out.push(f.msg);
    }
    return out;
  }

  /** Holds a due message back until `at` (its receiver is paused: it sits in a socket buffer). */
  holdUntil(msg: Message, at: number): void {
    this.queue.push({ deliverAt: at, order: this.fifoOrder++, msg });
  }

  inFlight(): number {
    return this.queue.length;
  }

  /** Blocks from → to (one way). */
  block(from: NodeId, to: NodeId): void {
    this.cut.add(`${from}>${to}`);
  }

  /** Cuts every link between the two sides, both ways. */
  partition(a: readonly NodeId[], b: readonly NodeId[]): void {
    for (const x of a) {
      for (const y of b) {
        this.block(x, y);
        this.block(y, x);
      }
    }
  }

  healAll(): void {
    this.cut.clear();
  }

  isCut(from: NodeId, to: NodeId): boolean {
    return this.cut.has(`${from}>${to}`);
  }

  describeCuts(): string {
    return this.cut.size === 0 ? 'none' : [...this.cut].sort().join(' ');
  }
}
