// A seeded, discrete-event simulator that runs the real SWIM core (../core) for thousands of
// members on a simulated network: per-message latency and loss, crashes, graceful leaves, joins,
// and "stalled" members — members with a starved CPU that process their incoming messages late
// while their timers still fire on time (the situation Lifeguard was designed for: such a member
// misses acks it has in fact received, and would blame healthy peers).
//
// Push-pull (a TCP exchange in memberlist) is delivered reliably; everything else is a datagram
// that may be lost. The same seed and the same calls reproduce a run exactly (STYLE §2): every
// member's core, the network and the fault schedule draw from their own streams of the seed.
import { SwimCore } from '../core/swim.ts';
import type { SwimConfig } from '../core/config.ts';
import type { GossipEvent, MemberIdentity, MemberSnapshot, Message, Output } from '../core/types.ts';
import { EventQueue } from './eventQueue.ts';
import { SimRng } from './rng.ts';

export interface SimOptions {
  seed: number;
  /** Members at the start, all alive and knowing each other (a converged pool). */
  members: number;
  swim?: Partial<SwimConfig>;
  /** One-way latency of a message, uniform in [min, max) ms. Default [0.2, 2] (a LAN). */
  latencyMs?: [number, number];
  /** Probability that a datagram (anything but push-pull) is lost. */
  lossRate?: number;
  /** Fraction of the members that are stalled (slow CPU). */
  stalledFraction?: number;
  /**
   * How late a stalled member processes what it receives: each stalled member gets a delay uniform
   * in [min, max) ms; its messages are handled in arrival order that much later, its timers on time.
   */
  stallDelayMs?: [number, number];
}

export interface SimMember {
  readonly index: number;
  readonly name: string;
  readonly core: SwimCore;
  crashed: boolean;
  stalled: boolean;
  /** Extra processing delay for a stalled member. */
  stallDelayMs: number;
  /** The latest time this member is busy until (FIFO processing of a stalled member's queue). */
  busyUntil: number;
  wakeAt: number;
  leaving: boolean;
}

type SimEvent =
  | { at: number; seq: number; kind: 'wake'; member: number }
  | { at: number; seq: number; kind: 'deliver'; member: number; msg: Message }
  | { at: number; seq: number; kind: 'process'; member: number; msg: Message };

export interface FalsePositive {
  at: number;
  observer: string;
  victim: string;
  observerStalled: boolean;
  victimStalled: boolean;
}

export interface SimStats {
  datagrams: number;
  lost: number;
  pushPulls: number;
  events: number;
}

/** Observations of one subject: when each member first saw it join / fail / leave. */
export interface Watch {
  subject: string;
  seen: Map<string, Map<string, number>>;
}

export class GossipSim {
  now = 0;
  readonly members: SimMember[] = [];
  readonly byName = new Map<string, SimMember>();
  readonly falsePositives: FalsePositive[] = [];
  readonly stats: SimStats = { datagrams: 0, lost: 0, pushPulls: 0, events: 0 };
  readonly swim: Partial<SwimConfig>;
  readonly #queue = new EventQueue<SimEvent>();
  readonly #net: SimRng;
  readonly #faults: SimRng;
  readonly #seed: number;
  readonly #latency: [number, number];
  readonly #loss: number;
  readonly #stallDelay: [number, number];
  readonly #watches = new Map<string, Watch>();
  /** Called for every event every member emits (tests use it; keep it cheap). */
  onEvent: ((observer: SimMember, event: GossipEvent, at: number) => void) | undefined;

  constructor(o: SimOptions) {
    this.#seed = o.seed;
    this.swim = o.swim ?? {};
    this.#net = new SimRng(o.seed, 1);
    this.#faults = new SimRng(o.seed, 2);
    this.#latency = o.latencyMs ?? [0.2, 2];
    this.#loss = o.lossRate ?? 0;
    this.#stallDelay = o.stallDelayMs ?? [1000, 15_000];
    const known: MemberSnapshot[] = [];
    for (let i = 0; i < o.members; i++) known.push({ node: identity(memberName(i)), incarnation: 1, state: 'alive' });
    for (let i = 0; i < o.members; i++) this.#create(known[i]!.node, known);
    const stalled = Math.round((o.stalledFraction ?? 0) * o.members);
    // Which members are stalled is drawn from the fault stream, so it is the same for a seed
    // whatever the protocol settings (Lifeguard on or off compare the same cluster).
    const order = this.members.map((m) => m.index);
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(this.#faults.float() * (i + 1));
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    for (const i of order.slice(0, stalled)) {
      const m = this.members[i]!;
      m.stalled = true;
      m.stallDelayMs = this.#faults.between(this.#stallDelay[0], this.#stallDelay[1]);
    }
  }

  // ------------------------------------------------------------------ scenario API

  /** A new member (not yet in the pool) — join() it afterwards. */
  addMember(name: string): SimMember {
    return this.#create(identity(name), undefined);
  }

  /** `joiner` sends a join push-pull to `seed`. */
  join(joiner: string, seed: string): void {
    const j = this.#member(joiner);
    this.#deliver(j, this.#member(seed), j.core.joinRequest(), true);
  }

  crash(name: string): void {
    this.#member(name).crashed = true;
  }

  leave(name: string): void {
    const m = this.#member(name);
    m.leaving = true;
    m.core.leave(this.now);
    this.#flush(m);
  }

  /** Starts recording when each member first sees `subject` join, fail or leave. */
  watch(subject: string): Watch {
    const w: Watch = { subject, seen: new Map() };
    this.#watches.set(subject, w);
    return w;
  }

  /** Makes `observer` suspect `victim` as if its probe had failed (for refutation tests). */
  injectSuspicion(observer: string, victim: string): void {
    const o = this.#member(observer);
    const v = o.core.member(victim);
    if (!v) throw new Error(`${observer} does not know ${victim}`);
    o.core.receive({ type: 'gossip', from: observer, updates: [{ type: 'suspect', node: victim, incarnation: v.incarnation, from: observer }] }, this.now);
    this.#flush(o);
  }

  /** Live members: not crashed, not gone after leaving. */
  live(): SimMember[] {
    return this.members.filter((m) => !m.crashed);
  }

  runFor(ms: number): void {
    this.runUntil(this.now + ms);
  }

  runUntil(t: number): void {
    for (;;) {
      const e = this.#queue.peek();
      if (!e || e.at > t) break;
      this.#queue.pop();
      this.now = e.at;
      const m = this.members[e.member]!;
      if (m.crashed) continue;
      switch (e.kind) {
        case 'wake':
          if (e.at !== m.wakeAt) continue; // superseded by a later reschedule
          m.wakeAt = Infinity;
          m.core.tick(this.now);
          this.#flush(m);
          break;
        case 'deliver':
          if (m.stalled) {
            // A slow CPU: the message waits its turn behind everything received before it.
            const at = Math.max(this.now + m.stallDelayMs, m.busyUntil);
            m.busyUntil = at;
            this.#queue.push({ at, seq: this.#queue.nextSeq(), kind: 'process', member: m.index, msg: e.msg });
            break;
          }
          m.core.receive(e.msg, this.now);
          this.#flush(m);
          break;
        case 'process':
          m.core.receive(e.msg, this.now);
          this.#flush(m);
          break;
      }
    }
    this.now = Math.max(this.now, t);
  }

  /**
   * Runs until `done()` holds (checked every `stepMs`) or `maxMs` passes; returns the simulated
   * time it took, or undefined when it did not happen.
   */
  runUntilTrue(done: () => boolean, maxMs: number, stepMs = 50): number | undefined {
    const start = this.now;
    while (this.now - start < maxMs) {
      this.runFor(stepMs);
      if (done()) return this.now - start;
    }
    return undefined;
  }

  // ------------------------------------------------------------------ internals

  #member(name: string): SimMember {
    const m = this.byName.get(name);
    if (!m) throw new Error(`no simulated member ${name}`);
    return m;
  }

  #create(node: MemberIdentity, known: MemberSnapshot[] | undefined): SimMember {
    const index = this.members.length;
    const rng = new SimRng(this.#seed, 1000 + index);
    const core = new SwimCore({ self: node, config: this.swim, random: rng.fn(), nowMs: this.now, knownMembers: known });
    const m: SimMember = { index, name: node.name, core, crashed: false, stalled: false, stallDelayMs: 0, busyUntil: 0, wakeAt: Infinity, leaving: false };
    this.members.push(m);
    this.byName.set(node.name, m);
    if (known) core.takeOutputs(); // a converged start: everyone already knows everyone
    this.#flush(m);
    return m;
  }

  #flush(m: SimMember): void {
    for (const o of m.core.takeOutputs()) this.#act(m, o);
    if (m.leaving && m.core.leaveDone()) {
      // The agent stops once its leave is out (what GossipPool.leave() then stop() do).
      m.crashed = true;
      return;
    }
    // A deadline already passed (the core was busy with a message meanwhile) wakes it right now.
    const at = Math.max(m.core.nextDeadlineMs(), this.now);
    if (at < m.wakeAt) {
      m.wakeAt = at;
      this.#queue.push({ at, seq: this.#queue.nextSeq(), kind: 'wake', member: m.index });
    }
  }

  #act(m: SimMember, o: Output): void {
    switch (o.kind) {
      case 'send': {
        const to = this.byName.get(o.to.name);
        if (!to) return;
        this.#deliver(m, to, o.msg, o.msg.type === 'pushPull');
        return;
      }
      case 'event':
        this.stats.events++;
        this.#observe(m, o.event);
        return;
      case 'publish':
      case 'warn':
        return;
    }
  }

  #deliver(from: SimMember, to: SimMember, msg: Message, reliable: boolean): void {
    if (reliable) {
      this.stats.pushPulls++;
    } else {
      this.stats.datagrams++;
      if (this.#net.chance(this.#loss)) {
        this.stats.lost++;
        return;
      }
    }
    void from;
    const at = this.now + this.#net.between(this.#latency[0], this.#latency[1]);
    this.#queue.push({ at, seq: this.#queue.nextSeq(), kind: 'deliver', member: to.index, msg });
  }

  #observe(m: SimMember, ev: GossipEvent): void {
    this.onEvent?.(m, ev, this.now);
    if (ev.type === 'user') return;
    const subject = ev.member.name;
    if (ev.type === 'member-failed' && subject !== m.name) {
      const victim = this.byName.get(subject);
      if (victim && !victim.crashed && !victim.leaving) {
        this.falsePositives.push({ at: this.now, observer: m.name, victim: subject, observerStalled: m.stalled, victimStalled: victim.stalled });
      }
    }
    const w = this.#watches.get(subject);
    if (!w || subject === m.name) return;
    let byType = w.seen.get(ev.type);
    if (!byType) w.seen.set(ev.type, (byType = new Map()));
    if (!byType.has(m.name)) byType.set(m.name, this.now);
  }
}

export function memberName(i: number): string {
  return `m${i}`;
}

function identity(name: string): MemberIdentity {
  return { name, addr: '10.0.0.1', port: 8301, peerId: name, tags: {} };
}
