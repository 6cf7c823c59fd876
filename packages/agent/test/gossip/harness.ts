// A tiny deterministic network of SwimCores for protocol tests: messages are delivered in order
// after `latencyMs`, links can be cut, members crashed, and a fake clock advances deadline by
// deadline. The simulator (src/gossip/sim) does the same at scale; this one keeps tests readable.
import { SwimCore, type SwimConfig } from '../../src/gossip/core/index.ts';
import type { GossipEvent, Message, MemberIdentity, Output } from '../../src/gossip/core/index.ts';
import { mulberry32 } from '../../../../test/support/random.ts';

/** Deterministic PRNG so a test run is reproducible. */
export const seeded = mulberry32;

export function ident(name: string, tags: Record<string, string> = {}): MemberIdentity {
  return { name, addr: '10.0.0.1', port: 8301, peerId: `peer-${name}`, tags };
}

interface InFlight { at: number; seq: number; from: string; to: string; msg: Message }

export class TestNet {
  now = 0;
  readonly cores = new Map<string, SwimCore>();
  readonly events: { at: number; at_node: string; event: GossipEvent }[] = [];
  readonly sent: { at: number; from: string; to: string; msg: Message }[] = [];
  readonly published: { from: string; output: Output }[] = [];
  readonly warnings: { node: string; code: string; message: string }[] = [];
  readonly crashed = new Set<string>();
  /**
   * Crashed members whose host is still up: a ping to one is answered by its host's "port
   * unreachable", which reaches the pinger one latency later as the driver's probeRefused(seq).
   * "a>f": pings from a to f are refused that way although f runs (a firewall rejecting a's packets).
   */
  readonly refusing = new Set<string>();
  #refusals: { at: number; to: string; seq: number }[] = [];
  /** "a>b" cuts messages from a to b; "a>b:gossip" only those of one message type. */
  readonly cut = new Set<string>();
  latencyMs = 1;
  #inflight: InFlight[] = [];
  #seq = 0;
  readonly #random: () => number;

  constructor(seed = 1) {
    this.#random = seeded(seed);
  }

  add(name: string, config: Partial<SwimConfig> = {}, opts: { tags?: Record<string, string>; validate?: (n: MemberIdentity) => string | undefined; publish?: boolean } = {}): SwimCore {
    const core = new SwimCore({
      self: ident(name, opts.tags), config, random: this.#random, nowMs: this.now,
      validateMember: opts.validate, publishLocalUpdates: opts.publish,
    });
    this.cores.set(name, core);
    this.flush(name);
    return core;
  }

  /** Creates `names` already knowing each other (a converged pool). */
  addConverged(names: string[], config: Partial<SwimConfig> = {}): void {
    const known = names.map((n) => ({ node: ident(n), incarnation: 1, state: 'alive' as const }));
    for (const name of names) {
      const core = new SwimCore({ self: ident(name), config, random: this.#random, nowMs: this.now, knownMembers: known });
      this.cores.set(name, core);
      core.takeOutputs(); // creation announcements: everybody already knows
    }
  }

  core(name: string): SwimCore {
    const c = this.cores.get(name);
    if (!c) throw new Error(`no core ${name}`);
    return c;
  }

  /** Takes a core's outputs: sends go in flight, events and warnings are recorded. */
  flush(name: string): void {
    const core = this.core(name);
    for (const o of core.takeOutputs()) {
      if (o.kind === 'send') {
        this.sent.push({ at: this.now, from: name, to: o.to.name, msg: o.msg });
        if (this.crashed.has(name) || this.cut.has(`${name}>${o.to.name}`) || this.cut.has(`${name}>${o.to.name}:${o.msg.type}`)) continue;
        this.#inflight.push({ at: this.now + this.latencyMs, seq: this.#seq++, from: name, to: o.to.name, msg: o.msg });
      } else if (o.kind === 'event') {
        this.events.push({ at: this.now, at_node: name, event: o.event });
      } else if (o.kind === 'publish') {
        this.published.push({ from: name, output: o });
      } else {
        this.warnings.push({ node: name, code: o.code, message: o.message });
      }
    }
  }

  /** Delivers `msg` to `to` right now, as if it arrived from the network. */
  deliver(to: string, msg: Message): void {
    if (this.crashed.has(to)) return;
    this.core(to).receive(msg, this.now);
    this.flush(to);
  }

  /** Runs the network until `until` (absolute ms), processing deadlines and deliveries in time order. */
  runUntil(until: number): void {
    for (;;) {
      let next = Infinity;
      for (const [name, c] of this.cores) if (!this.crashed.has(name)) next = Math.min(next, c.nextDeadlineMs());
      for (const f of this.#inflight) next = Math.min(next, f.at);
      for (const r of this.#refusals) next = Math.min(next, r.at);
      if (next > until) {
        this.now = Math.max(this.now, until);
        return;
      }
      this.now = Math.max(this.now, next);
      const due = this.#inflight.filter((f) => f.at <= this.now).sort((a, b) => a.at - b.at || a.seq - b.seq);
      this.#inflight = this.#inflight.filter((f) => f.at > this.now);
      const refusals = this.#refusals.filter((r) => r.at <= this.now);
      this.#refusals = this.#refusals.filter((r) => r.at > this.now);
      for (const r of refusals) {
        if (this.crashed.has(r.to)) continue;
        this.core(r.to).probeRefused(r.seq, this.now);
        this.flush(r.to);
      }
      for (const f of due) {
        const rejected = this.refusing.has(`${f.from}>${f.to}`);
        if (f.msg.type === 'ping' && (rejected || (this.crashed.has(f.to) && this.refusing.has(f.to)))) {
          this.#refusals.push({ at: this.now + this.latencyMs, to: f.from, seq: f.msg.seq });
          if (rejected) continue;
        }
        if (this.crashed.has(f.to) || !this.cores.has(f.to)) continue;
        this.core(f.to).receive(f.msg, this.now);
        this.flush(f.to);
      }
      for (const [name, c] of this.cores) {
        if (this.crashed.has(name) || c.nextDeadlineMs() > this.now) continue;
        c.tick(this.now);
        this.flush(name);
      }
    }
  }

  run(ms: number): void {
    this.runUntil(this.now + ms);
  }

  /** Connects `joiner` to `seed` through a join push-pull, the way a driver does. */
  join(joiner: string, seed: string): void {
    const req = this.core(joiner).joinRequest();
    const reply = this.core(seed).answerPushPull(req, this.now);
    this.flush(seed);
    this.core(joiner).mergePushPull(reply, this.now);
    this.flush(joiner);
  }

  stateOf(observer: string, member: string): string | undefined {
    return this.core(observer).member(member)?.state;
  }

  eventsOf(type: string, member?: string): { at: number; at_node: string; event: GossipEvent }[] {
    return this.events.filter((e) => e.event.type === type && (member === undefined || (e.event.type !== 'user' && e.event.member.name === member)));
  }
}
