// The SWIM + Lifeguard membership state machine, pure: no timers, no sockets, no Math.random.
// The driver calls tick(now) when nextDeadlineMs() comes, receive(msg, now) for every message,
// and the API methods (leave, fireUserEvent, setTags, forceLeave); after each call it takes the
// outputs (messages to send, broadcasts to publish, events, warnings) with takeOutputs().
// Randomness comes from the injected `random`, time only from the `now` arguments, so a seed and
// a schedule of inputs reproduce a run exactly (the simulator relies on it).
//
// Semantics follow hashicorp/memberlist (state.go) with serf's member events and user events:
// - SWIM (Das et al. 2002): one probe per protocol period in randomized round-robin order (§4.3),
//   ping → ack within the probe timeout, then ping-req through k members (§4.2); suspicion with
//   incarnation numbers: a suspected member refutes by raising its incarnation (§4.2 "Suspicion");
//   piggybacked dissemination (§4.1), plus memberlist's periodic push-pull full state exchange.
// - Lifeguard (Dadgar et al. 2018): §4.1 local health multiplier (awareness) that stretches our
//   timeouts when acks/nacks we should have received go missing or we had to refute; nacks from
//   relays; §4.2 dynamic suspicion timeouts that shrink with independent confirmations; §4.3 the
//   buddy system (a suspect member is told so in the probe it receives).
import { Awareness } from './awareness.ts';
import { BroadcastQueue } from './broadcastQueue.ts';
import { TAGS_MAX_BYTES, tagsSize, updateSize } from './codec.ts';
import { swimConfig, type SwimConfig } from './config.ts';
import { GossipError } from './errors.ts';
import { Suspicion, suspicionMinTimeoutMs } from './suspicion.ts';
import type {
  AliveUpdate, DeadUpdate, Endpoint, ForceLeaveUpdate, GossipEvent, MemberEventType, MemberIdentity,
  MemberSnapshot, MemberState, MemberView, Message, Output, PushPullMessage, SuspectUpdate, Update,
  UserEventUpdate, WarnCode,
} from './types.ts';
import { UserEventBuffer } from './userEvents.ts';

export interface SwimCoreOptions {
  /** This member. Its tags must encode to ≤ 512 bytes. */
  self: MemberIdentity;
  config?: Partial<SwimConfig>;
  /** Uniform in [0, 1). Seeded in the simulator. */
  random: () => number;
  /** The driver's clock at creation (ms, any monotonic origin). */
  nowMs: number;
  /**
   * Members known at creation, taken as they are without events or broadcasts: a snapshot of a
   * previous run, or a simulator that starts from a converged pool.
   */
  knownMembers?: MemberSnapshot[];
  /**
   * Refuses members that must not be in this pool (Consul: another datacenter in a LAN pool).
   * Returns the reason, or undefined to accept. Called for every member learned or updated.
   */
  validateMember?: (node: MemberIdentity) => string | undefined;
  /** Emit `publish` outputs for locally originated broadcasts (real agents publish them on gossipsub). */
  publishLocalUpdates?: boolean;
  /** Starting incarnation (default 1). */
  incarnation?: number;
}

/** Counters for metrics and tests. */
export interface SwimStats {
  probes: number;
  probesFailed: number;
  /** Pings (ours or relayed) the target's host refused: nothing listened at its address any more. */
  probesRefused: number;
  indirectProbes: number;
  acksLate: number;
  nacksSent: number;
  nacksReceived: number;
  suspicionsRaised: number;
  deadDeclared: number;
  refutations: number;
  /** Our current alive spread again because a stale suspicion or death of us was still going round. */
  reannounced: number;
  /** Alive updates sent straight back to a member that sent us a stale suspicion or death. */
  staleAnswered: number;
  malformed: number;
  refused: number;
  conflicts: number;
  misdirectedPings: number;
  pushPulls: number;
  eventsDelivered: number;
  eventsDuplicate: number;
  eventsTooOld: number;
}

interface Rec {
  node: MemberIdentity;
  incarnation: number;
  state: MemberState;
  stateChangeMs: number;
  /** Index in #all (for O(1) removal), -1 for self. */
  allIndex: number;
  inProbeOrder: boolean;
  removed: boolean;
  /** A force-leave was heard for this member while it was live (MemberView.leaveIntent). */
  leaveIntent: boolean;
}

interface Probe {
  seq: number;
  target: Rec;
  /** The target's incarnation when the probe began: a failed probe suspects exactly that one. */
  incarnation: number;
  directDeadlineMs: number;
  endDeadlineMs: number;
  indirectSent: boolean;
  /** Members asked to ping-req the target. */
  relays: number;
  expectedNacks: number;
  nacks: number;
  /** The target's host refused our ping (probeRefused): the probe ends once every relay has nacked too. */
  refused: boolean;
}

interface Relay {
  requester: Endpoint;
  /** The member the requester asked us to ping, at the endpoint it named. */
  target: Endpoint;
  origSeq: number;
  deadlineMs: number;
  nack: boolean;
}

const utf8 = new TextEncoder();
/** memberlist compoundOverhead: per-update framing inside one message. */
const UPDATE_OVERHEAD_BYTES = 2;
/** Room for a probe message's own fields before its piggybacked updates. */
const MESSAGE_HEADER_BYTES = 96;
/** Pending ping-req relays kept at once: a flood of ping-reqs must not grow memory without bound. */
const MAX_RELAYS = 1024;
const U32_MAX = 0xffff_ffff;
/** memberlist pushPullScaleThreshold: above this many members, push-pull slows down logarithmically. */
const PUSH_PULL_SCALE_THRESHOLD = 32;

/** memberlist pushPullScale. */
export function pushPullIntervalFor(intervalMs: number, clusterSize: number): number {
  if (clusterSize <= PUSH_PULL_SCALE_THRESHOLD) return intervalMs;
  const mult = Math.ceil(Math.log2(clusterSize) - Math.log2(PUSH_PULL_SCALE_THRESHOLD)) + 1;
  return intervalMs * mult;
}

function sameEndpoint(a: Endpoint, b: Endpoint): boolean {
  return a.addr === b.addr && a.port === b.port && a.peerId === b.peerId;
}

function sameTags(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>): boolean {
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  for (const k of ka) if (a[k] !== b[k]) return false;
  return true;
}

function endpointOf(n: Endpoint): Endpoint {
  return { name: n.name, addr: n.addr, port: n.port, peerId: n.peerId };
}

export class SwimCore {
  readonly config: SwimConfig;
  readonly stats: SwimStats = {
    probes: 0, probesFailed: 0, probesRefused: 0, indirectProbes: 0, acksLate: 0, nacksSent: 0, nacksReceived: 0,
    suspicionsRaised: 0, deadDeclared: 0, refutations: 0, reannounced: 0, staleAnswered: 0, malformed: 0, refused: 0, conflicts: 0,
    misdirectedPings: 0, pushPulls: 0, eventsDelivered: 0, eventsDuplicate: 0, eventsTooOld: 0,
  };

  readonly #random: () => number;
  readonly #validate: ((node: MemberIdentity) => string | undefined) | undefined;
  readonly #publish: boolean;
  readonly #self: Rec;
  readonly #members = new Map<string, Rec>();
  /** Every member but self, for random selection. */
  readonly #all: Rec[] = [];
  /** Round-robin probe order (SWIM §4.3); dead and left members are dropped when it wraps. */
  #probeOrder: Rec[] = [];
  #probeIndex = 0;
  readonly #suspicions = new Map<string, Suspicion>();
  readonly #awareness: Awareness;
  readonly #queue: BroadcastQueue;
  readonly #events: UserEventBuffer;
  #outputs: Output[] = [];
  #seq = 0;
  #probe: Probe | undefined;
  readonly #relays = new Map<number, Relay>();
  /** While a message's updates are applied: members it carried stale suspicions or deaths of. */
  #stale: Rec[] | undefined;
  /**
   * While one of a member's updates is applied: the update and that member, so that passing the
   * update on does not send it back there. News of our own that it prompts (a refutation) is not
   * the update itself, and goes to the sender too.
   */
  #heard: { update: Update; from: string } | undefined;
  /** Members in state alive or suspect, self included (memberlist estNumNodes). */
  #live = 1;
  #nextProbeMs: number;
  #nextGossipMs: number;
  /** The driver's clock at the last call (the API methods and tick/receive all pass `now`). */
  #now = 0;
  #nextPushPullMs: number;
  #nextReapMs: number;
  #nextReconnectMs: number;
  #leaving = false;
  #leaveBroadcast = 0;

  constructor(opts: SwimCoreOptions) {
    this.config = swimConfig(opts.config);
    this.#random = opts.random;
    this.#validate = opts.validateMember;
    this.#publish = opts.publishLocalUpdates ?? false;
    checkTags(opts.self.tags);
    this.#awareness = new Awareness(this.config.awarenessMaxMultiplier);
    this.#queue = new BroadcastQueue(this.config.maxQueueDepth);
    this.#events = new UserEventBuffer(this.config.eventBufferSize);
    const now = opts.nowMs;
    this.#self = {
      node: opts.self, incarnation: opts.incarnation ?? 1, state: 'alive', stateChangeMs: now,
      allIndex: -1, inProbeOrder: false, removed: false, leaveIntent: false,
    };
    this.#members.set(opts.self.name, this.#self);
    for (const s of opts.knownMembers ?? []) {
      if (s.node.name === opts.self.name || this.#members.has(s.node.name)) continue;
      const rec = this.#insert(s.node, s.incarnation, s.state, now);
      if (rec.state === 'alive' || rec.state === 'suspect') this.#live++;
    }
    // Periodic work starts at a random point of its interval so members do not act in lockstep
    // (memberlist's random stagger).
    const c = this.config;
    this.#nextProbeMs = now + Math.floor(this.#random() * c.probeIntervalMs);
    this.#now = now;
    this.#nextGossipMs = now + Math.floor(this.#random() * c.gossipIntervalMs);
    this.#nextPushPullMs = c.pushPullIntervalMs > 0 ? now + Math.floor(this.#random() * c.pushPullIntervalMs) : Infinity;
    this.#nextReapMs = now + c.reapIntervalMs;
    this.#nextReconnectMs = c.reconnectIntervalMs > 0 ? now + c.reconnectIntervalMs : Infinity;
    // Announce ourselves: the broadcast rides the first messages we send once we know anyone.
    this.#broadcast({ type: 'alive', node: this.#self.node, incarnation: this.#self.incarnation }, true);
    this.#emit('member-join', this.#self);
  }

  // ------------------------------------------------------------------ reading

  get name(): string {
    return this.#self.node.name;
  }

  get incarnation(): number {
    return this.#self.incarnation;
  }

  /** Lifeguard local health score, 0 (healthy) .. awarenessMaxMultiplier - 1. */
  get healthScore(): number {
    return this.#awareness.score;
  }

  /** Members in state alive or suspect, this one included. */
  get liveMembers(): number {
    return this.#live;
  }

  get leaving(): boolean {
    return this.#leaving;
  }

  /** Broadcasts waiting to be transmitted. */
  get queueDepth(): number {
    return this.#queue.length;
  }

  /** The user event Lamport clock (next time to stamp). */
  get eventLTime(): number {
    return this.#events.clock.time();
  }

  members(): MemberView[] {
    return [...this.#members.values()].map(view);
  }

  member(name: string): MemberView | undefined {
    const r = this.#members.get(name);
    return r ? view(r) : undefined;
  }

  /** The earliest `now` at which tick() has work to do. */
  nextDeadlineMs(): number {
    // An idle pool (nothing queued to gossip) does not wake up every gossip interval for nothing;
    // the first update queued after an idle stretch restarts the gossip ticker at a random phase
    // (#broadcast), as memberlist's free-running ticker would have sent it.
    let t = this.#queue.length > 0 ? Math.min(this.#nextGossipMs, this.#nextReapMs) : this.#nextReapMs;
    if (!this.#leaving) t = Math.min(t, this.#nextPushPullMs, this.#nextReconnectMs);
    if (this.#probe) {
      t = Math.min(t, this.#probe.indirectSent ? this.#probe.endDeadlineMs : this.#probe.directDeadlineMs);
    } else if (!this.#leaving) {
      t = Math.min(t, this.#nextProbeMs);
    }
    for (const r of this.#relays.values()) t = Math.min(t, r.deadlineMs);
    for (const s of this.#suspicions.values()) t = Math.min(t, s.deadlineMs());
    return t;
  }

  /** Outputs produced since the last call, in order. */
  takeOutputs(): Output[] {
    const out = this.#outputs;
    this.#outputs = [];
    return out;
  }

  /** True once a leave has been disseminated (its broadcast fully transmitted), or nobody is left to tell. */
  leaveDone(): boolean {
    if (!this.#leaving) return false;
    if (!this.#queue.isPending(this.#leaveBroadcast)) return true;
    // After leaving we no longer count ourselves: #live is everyone else still there to tell.
    return this.#live === 0;
  }

  // ------------------------------------------------------------------ time

  /** Runs every timer due at `now`: relays' nacks, probe phases, suspicion timeouts, periodic work. */
  tick(now: number): void {
    this.#now = now;
    const c = this.config;
    for (const [seq, r] of this.#relays) {
      if (now < r.deadlineMs) continue;
      this.#relays.delete(seq);
      if (r.nack) {
        this.stats.nacksSent++;
        this.#send(r.requester, { type: 'nack', seq: r.origSeq, from: this.name, updates: this.#piggyback(r.requester.name) });
      }
    }
    const p = this.#probe;
    if (p) {
      if (!p.indirectSent && now >= p.directDeadlineMs) this.#startIndirect(p);
      if (now >= p.endDeadlineMs) this.#probeFailed(p, now);
    }
    for (const [name, s] of this.#suspicions) {
      if (now < s.deadlineMs()) continue;
      this.#suspicions.delete(name);
      const rec = this.#members.get(name);
      if (!rec || rec.state !== 'suspect') continue;
      this.stats.deadDeclared++;
      this.#deadNode({ type: 'dead', node: name, incarnation: rec.incarnation, from: this.name }, now);
    }
    if (!this.#probe && !this.#leaving && now >= this.#nextProbeMs) {
      this.#nextProbeMs = Math.max(this.#nextProbeMs + c.probeIntervalMs, now);
      this.#startProbe(now);
    }
    if (now >= this.#nextGossipMs) {
      this.#nextGossipMs = Math.max(this.#nextGossipMs + c.gossipIntervalMs, now + 1);
      this.#gossip(now);
    }
    if (!this.#leaving && now >= this.#nextPushPullMs) {
      this.#nextPushPullMs = now + pushPullIntervalFor(c.pushPullIntervalMs, this.#live);
      const [peer] = this.#kRandom(1, (r) => r.state === 'alive');
      if (peer) {
        this.stats.pushPulls++;
        this.#send(peer.node, this.#pushPullMessage(false, false));
      }
    }
    if (now >= this.#nextReapMs) {
      this.#nextReapMs = now + c.reapIntervalMs;
      this.#reap(now);
    }
    if (!this.#leaving && now >= this.#nextReconnectMs) {
      this.#nextReconnectMs = now + c.reconnectIntervalMs;
      this.#reconnect();
    }
  }

  // ------------------------------------------------------------------ messages

  /** Handles one message. Never throws for anything a peer can send. */
  receive(msg: Message, now: number): void {
    this.#now = now;
    switch (msg.type) {
      case 'ping':
        // The piggybacked updates first: when the ping carries a suspicion of us (Lifeguard's
        // buddy system) our refutation then rides on the ack, straight back to a member that
        // suspects us, rather than waiting for the next gossip round (which loss may eat).
        this.#applyUpdates(msg.from, msg.updates, now);
        // memberlist: a ping meant for another member (an address now used by someone else) is
        // not ours to answer — acking it would keep a dead member looking alive.
        if (msg.target !== this.name) {
          this.stats.misdirectedPings++;
          this.#warn('misdirected-ping', `ping from ${msg.from} was meant for ${msg.target}, not this member (${this.name}); dropped`);
        } else {
          this.#send(msg.replyTo, { type: 'ack', seq: msg.seq, from: this.name, updates: this.#piggyback(msg.replyTo.name) });
        }
        return;
      case 'ack':
        this.#handleAck(msg.seq);
        break;
      case 'nack': {
        const p = this.#probe;
        if (p && p.seq === msg.seq) {
          p.nacks++;
          this.stats.nacksReceived++;
          // Refused by the target's host, and no relay reached it either: nothing left to wait for.
          if (p.refused && p.nacks >= p.expectedNacks) this.#probeFailed(p, now, true);
        }
        break;
      }
      case 'pingReq':
        this.#relay(msg.seq, msg.replyTo, msg.target, msg.nack, now);
        break;
      case 'gossip':
        break;
      case 'pushPull':
        if (msg.reply) {
          try {
            this.mergePushPull(msg, now);
          } catch (err) {
            this.#warn('push-pull-refused', (err as Error).message);
          }
        } else {
          try {
            const reply = this.answerPushPull(msg, now);
            const requester = this.#members.get(msg.from);
            if (requester) this.#send(requester.node, reply);
          } catch (err) {
            this.#warn('push-pull-refused', (err as Error).message);
          }
        }
        return;
    }
    this.#applyUpdates(msg.from, msg.updates, now);
  }

  /**
   * Applies a message's piggybacked updates. A suspicion or death it carries about a member we
   * know alive at a newer incarnation is stale: the sender missed the refutation (lost under
   * packet loss), and unless it hears it, it will declare a live member failed when its suspicion
   * runs out. So the sender gets the newer alive straight back, in one gossip message.
   */
  #applyUpdates(from: string, updates: Update[], now: number): void {
    const stale: Rec[] = [];
    this.#stale = stale;
    try {
      for (const u of updates) this.#applyHeard(u, from, now);
    } finally {
      this.#stale = undefined;
    }
    const to = this.#members.get(from);
    if (stale.length === 0 || !to || to === this.#self || (to.state !== 'alive' && to.state !== 'suspect')) return;
    const reply: Update[] = [];
    let bytes = MESSAGE_HEADER_BYTES;
    for (const r of stale) {
      if (r.state !== 'alive' || reply.some((u) => u.type === 'alive' && u.node.name === r.node.name)) continue;
      const u: AliveUpdate = { type: 'alive', node: r.node, incarnation: r.incarnation };
      bytes += updateSize(u) + UPDATE_OVERHEAD_BYTES;
      if (bytes > this.config.maxGossipBytes) break;
      reply.push(u);
    }
    if (reply.length === 0) return;
    this.stats.staleAnswered += reply.length;
    this.#send(to.node, { type: 'gossip', from: this.name, updates: reply });
  }

  /** Counts a message that could not be decoded (the driver drops it). */
  recordMalformed(): void {
    this.stats.malformed++;
  }

  /**
   * The driver learned that the ping it sent for `seq` was refused by the target's host: nothing
   * listens at the member's address and port any more (ICMP port unreachable: a killed agent whose
   * host is up). That is evidence about the target, not about us: loss and partitions drop
   * packets, they never answer for a missing process. So the probe does not wait out its timeout:
   * - our own probe: the ping-reqs go out at once, and the probe fails as soon as every relay has
   *   nacked (they are refused too, within a round trip), without counting against our health.
   *   A relay that reaches the target still saves it (a firewall that rejects only our packets);
   *   with no relay to ask, the probe fails at once;
   * - a ping we relay for another member is answered with a nack at once, and we suspect the
   *   target ourselves: an independent confirmation the requester receives on that nack, so its
   *   Lifeguard suspicion timeout falls to the minimum instead of waiting for other members' turns
   *   in their probe rounds.
   * Unknown or finished sequence numbers are ignored (a refusal may arrive after the ack of a
   * member that restarted meanwhile, for instance).
   */
  probeRefused(seq: number, now: number): void {
    this.#now = now;
    const p = this.#probe;
    if (p && p.seq === seq) {
      if (p.refused) return;
      this.stats.probesRefused++;
      p.refused = true;
      if (!p.indirectSent) this.#startIndirect(p);
      // Without nacks (Lifeguard off) the relays' silence only tells at the probe's end.
      if (p.relays === 0 || (p.expectedNacks > 0 && p.nacks >= p.expectedNacks)) this.#probeFailed(p, now, true);
      return;
    }
    const r = this.#relays.get(seq);
    if (!r) return;
    this.#relays.delete(seq);
    this.stats.probesRefused++;
    const rec = this.#members.get(r.target.name);
    // Only a refusal at the member's current endpoint says anything about the member.
    if (rec && rec !== this.#self && sameEndpoint(rec.node, r.target) && (rec.state === 'alive' || rec.state === 'suspect')) {
      this.#suspectNode({ type: 'suspect', node: rec.node.name, incarnation: rec.incarnation, from: this.name }, now);
    }
    if (r.nack) {
      this.stats.nacksSent++;
      this.#send(r.requester, { type: 'nack', seq: r.origSeq, from: this.name, updates: this.#piggyback(r.requester.name) });
    }
  }

  /**
   * Answers a push-pull request: returns our state (built before merging, as memberlist does) and
   * merges the requester's. Throws ERR_MEMBER_REFUSED, merging nothing, when the requester's state
   * holds a member this pool refuses (Consul refuses a LAN join from another datacenter).
   */
  answerPushPull(req: PushPullMessage, now: number): PushPullMessage {
    this.#now = now;
    this.#checkRemoteState(req);
    const reply = this.#pushPullMessage(req.join, true);
    this.#mergeMembers(req, now);
    if (!req.join) this.#applyEvents(req.from, req.events, now);
    const joiner = this.#members.get(req.from);
    if (req.join && this.#publish && joiner && joiner.state === 'alive') {
      // The member answering a join is already well connected, the joiner is not yet: it hands
      // the news to the external broadcast medium on the joiner's behalf.
      this.#outputs.push({ kind: 'publish', update: { type: 'alive', node: joiner.node, incarnation: joiner.incarnation } });
    }
    return reply;
  }

  /** The request a join sends to a seed: our state, marked as a join. */
  joinRequest(): PushPullMessage {
    return this.#pushPullMessage(true, false);
  }

  /**
   * Merges a push-pull reply (a join's or a periodic one). Throws ERR_MEMBER_REFUSED, merging
   * nothing, when the remote state holds a member this pool refuses.
   */
  mergePushPull(reply: PushPullMessage, now: number): void {
    this.#now = now;
    this.#checkRemoteState(reply);
    this.#mergeMembers(reply, now);
    if (reply.eventLTime > 0) this.#events.clock.witness(reply.eventLTime - 1);
    if (reply.join) {
      // Consul joins with ignoreOld: events fired before we joined are history, not news.
      this.#events.minLTime = Math.max(this.#events.minLTime, reply.eventLTime);
      // The reply is one member's view, possibly with stale verdicts (a member it wrongly thinks
      // dead is not listed to us at all) or missing members that joined a moment ago: ask a second
      // member within 0.5–1.5 probe intervals rather than a whole push-pull interval later.
      const c = this.config;
      if (c.pushPullIntervalMs > 0) {
        this.#nextPushPullMs = Math.min(this.#nextPushPullMs, now + c.probeIntervalMs * (0.5 + this.#random()));
      }
      // Tell the pool about us again now that there is someone to tell.
      this.#broadcast({ type: 'alive', node: this.#self.node, incarnation: this.#self.incarnation }, true);
    } else {
      this.#applyEvents(reply.from, reply.events, now);
    }
  }

  // ------------------------------------------------------------------ API

  /** Graceful leave: broadcast that we left (a dead message about ourselves) and stop probing. */
  leave(now: number): void {
    this.#now = now;
    if (this.#leaving) return;
    this.#leaving = true;
    this.#probe = undefined;
    const d: DeadUpdate = { type: 'dead', node: this.name, incarnation: this.#self.incarnation, from: this.name };
    this.#setState(this.#self, 'left', now);
    this.#leaveBroadcast = this.#broadcast(d, true);
    this.#emit('member-leave', this.#self);
  }

  /**
   * consul force-leave (serf RemoveFailedNode): a failed member becomes left now instead of waiting
   * for the reaper (`prune` forgets it entirely). For a live member the same broadcast is serf's
   * leave intent: every member shows it leaving (status 2) until it refutes, which a running member
   * does at once (then it is alive again), or fails (then it is left).
   * Throws ERR_UNKNOWN_MEMBER for a name this member has never heard of.
   */
  forceLeave(name: string, prune: boolean, now: number): void {
    this.#now = now;
    const rec = this.#members.get(name);
    if (!rec) throw new GossipError('ERR_UNKNOWN_MEMBER', `No node found with name '${name}'`);
    if (rec === this.#self) {
      throw new GossipError('ERR_MEMBER_REFUSED', `cannot force-leave this agent itself (${name}): use leave`);
    }
    const u: ForceLeaveUpdate = { type: 'forceLeave', node: name, incarnation: rec.incarnation, prune, from: this.name };
    const live = rec.state === 'alive' || rec.state === 'suspect';
    // A leave intent travels by gossip only, as serf's does (no fast path): until the member's
    // refutation comes back, the cluster shows it leaving.
    if (this.#forceLeaveNode(u, now)) this.#broadcast(u, !live);
  }

  /**
   * Fires a user event to every member (serf UserEvent); delivered here too. Returns its Lamport
   * time. Throws ERR_EVENT_TOO_LARGE when name + payload exceed userEventSizeLimitBytes.
   */
  fireUserEvent(name: string, payload: Uint8Array, now: number): number {
    this.#now = now;
    if (this.#leaving) throw new GossipError('ERR_NOT_RUNNING', 'cannot fire a user event after leaving the pool');
    if (typeof name !== 'string' || name.length === 0) {
      throw new GossipError('ERR_INVALID_EVENT', 'user event name must be a non-empty string');
    }
    const size = utf8.encode(name).byteLength + payload.byteLength;
    if (size > this.config.userEventSizeLimitBytes) {
      throw new GossipError('ERR_EVENT_TOO_LARGE',
        `user event "${name}" is ${size} bytes (name + payload); the limit is ${this.config.userEventSizeLimitBytes} bytes`);
    }
    const ltime = this.#events.clock.increment();
    const u: UserEventUpdate = { type: 'userEvent', ltime, name, payload: payload.slice() };
    this.#userEvent(u, true);
    return ltime;
  }

  /** Replaces our tags and announces them with a new incarnation (serf SetTags). */
  setTags(tags: Record<string, string>, now: number): void {
    this.#now = now;
    if (this.#leaving) throw new GossipError('ERR_NOT_RUNNING', 'cannot change tags after leaving the pool');
    checkTags(tags);
    this.#self.node = { ...this.#self.node, tags: { ...tags } };
    this.#self.incarnation = this.#nextIncarnation(this.#self.incarnation);
    this.#self.stateChangeMs = now;
    this.#broadcast({ type: 'alive', node: this.#self.node, incarnation: this.#self.incarnation }, true);
    this.#emit('member-update', this.#self);
  }

  // ------------------------------------------------------------------ probing

  #startProbe(now: number): void {
    const target = this.#nextProbeTarget();
    if (!target) return;
    const c = this.config;
    // Lifeguard §4.1: a member that is itself slow waits longer before blaming others.
    const scale = c.lifeguard ? this.#awareness.score + 1 : 1;
    const seq = this.#nextSeq();
    const p: Probe = {
      seq, target, incarnation: target.incarnation,
      directDeadlineMs: now + c.probeTimeoutMs * scale,
      endDeadlineMs: now + c.probeIntervalMs * scale,
      indirectSent: false, relays: 0, expectedNacks: 0, nacks: 0, refused: false,
    };
    this.#probe = p;
    this.stats.probes++;
    const updates: Update[] = [];
    // Lifeguard §4.3 buddy system: a suspect learns of the suspicion from the probe itself and can
    // refute at once, instead of waiting for the suspicion to reach it by gossip.
    if (c.lifeguard && target.state === 'suspect') {
      updates.push({ type: 'suspect', node: target.node.name, incarnation: target.incarnation, from: this.name });
    }
    updates.push(...this.#piggyback(target.node.name));
    this.#send(target.node, { type: 'ping', seq, from: this.name, replyTo: endpointOf(this.#self.node), target: target.node.name, updates });
  }

  #nextProbeTarget(): Rec | undefined {
    for (let checked = 0; checked <= this.#probeOrder.length; checked++) {
      if (this.#probeIndex >= this.#probeOrder.length) {
        this.#resetProbeOrder();
        if (this.#probeOrder.length === 0) return undefined;
      }
      const r = this.#probeOrder[this.#probeIndex++]!;
      if (!r.removed && (r.state === 'alive' || r.state === 'suspect')) return r;
    }
    return undefined;
  }

  /** At the end of a round: drop dead, left and removed members from the order and shuffle (SWIM §4.3). */
  #resetProbeOrder(): void {
    const kept: Rec[] = [];
    for (const r of this.#probeOrder) {
      if (!r.removed && (r.state === 'alive' || r.state === 'suspect')) kept.push(r);
      else r.inProbeOrder = false;
    }
    for (let i = kept.length - 1; i > 0; i--) {
      const j = Math.floor(this.#random() * (i + 1));
      const t = kept[i]!;
      kept[i] = kept[j]!;
      kept[j] = t;
    }
    this.#probeOrder = kept;
    this.#probeIndex = 0;
  }

  #startIndirect(p: Probe): void {
    p.indirectSent = true;
    const relays = this.#kRandom(this.config.indirectChecks, (r) => r !== p.target && r.state === 'alive');
    const nack = this.config.lifeguard;
    for (const r of relays) {
      this.stats.indirectProbes++;
      p.relays++;
      if (nack) p.expectedNacks++;
      this.#send(r.node, {
        type: 'pingReq', seq: p.seq, from: this.name, replyTo: endpointOf(this.#self.node),
        target: endpointOf(p.target.node), nack, updates: this.#piggyback(r.node.name),
      });
    }
  }

  #probeFailed(p: Probe, now: number, refused = false): void {
    this.#probe = undefined;
    this.stats.probesFailed++;
    // A refused probe (probeRefused) is the target's fault: our health is not in question.
    if (this.config.lifeguard && !refused) {
      // Lifeguard §4.1: relays that neither acked nor nacked point at us, not at the target. With
      // no relay to ask, a failed probe counts against our own health once.
      this.#awareness.applyDelta(p.expectedNacks > 0 ? p.expectedNacks - p.nacks : 1);
    }
    this.#suspectNode({ type: 'suspect', node: p.target.node.name, incarnation: p.incarnation, from: this.name }, now);
  }

  #handleAck(seq: number): void {
    const p = this.#probe;
    if (p && p.seq === seq) {
      this.#probe = undefined;
      if (this.config.lifeguard) this.#awareness.applyDelta(-1);
      return;
    }
    const relay = this.#relays.get(seq);
    if (relay) {
      this.#relays.delete(seq);
      this.#send(relay.requester, { type: 'ack', seq: relay.origSeq, from: this.name, updates: this.#piggyback(relay.requester.name) });
      return;
    }
    this.stats.acksLate++;
  }

  #relay(origSeq: number, requester: Endpoint, target: Endpoint, nack: boolean, now: number): void {
    if (this.#relays.size >= MAX_RELAYS) {
      this.#warn('relay-overflow', `ping-req from ${requester.name} for ${target.name} dropped: ${MAX_RELAYS} relays already pending`);
      return;
    }
    const seq = this.#nextSeq();
    // The relay's own wait is the plain probe timeout (memberlist): the requester already scaled its own.
    this.#relays.set(seq, { requester: endpointOf(requester), target: endpointOf(target), origSeq, deadlineMs: now + this.config.probeTimeoutMs, nack });
    this.#send(target, {
      type: 'ping', seq, from: this.name, replyTo: endpointOf(this.#self.node), target: target.name, updates: this.#piggyback(target.name),
    });
  }

  // ------------------------------------------------------------------ state transitions

  /** The user events of a push-pull (what the other side remembers). */
  #applyEvents(from: string, events: UserEventUpdate[], now: number): void {
    for (const e of events) this.#applyHeard(e, from, now);
  }

  /** Applies an update that member `from` sent us. */
  #applyHeard(u: Update, from: string, now: number): void {
    this.#heard = { update: u, from };
    try {
      this.#applyUpdate(u, now, false);
    } finally {
      this.#heard = undefined;
    }
  }

  #applyUpdate(u: Update, now: number, local: boolean): void {
    switch (u.type) {
      case 'alive': this.#aliveNode(u, now); return;
      case 'suspect': this.#suspectNode(u, now); return;
      case 'dead': this.#deadNode(u, now); return;
      case 'forceLeave':
        if (this.#forceLeaveNode(u, now)) this.#broadcast(u, local);
        return;
      case 'userEvent': this.#userEvent(u, local); return;
    }
  }

  #aliveNode(a: AliveUpdate, now: number): void {
    const name = a.node.name;
    if (name === this.name) {
      if (this.#leaving) return;
      // Our own broadcast coming back, or older news about us: nothing to do.
      if (a.incarnation < this.#self.incarnation) return;
      if (a.incarnation === this.#self.incarnation && sameEndpoint(a.node, this.#self.node) && sameTags(a.node.tags, this.#self.node.tags)) return;
      // Someone spreads a version of us that is not ours (a previous run of this agent, or a
      // forgery): override it with a newer incarnation.
      this.#refute(a.incarnation);
      return;
    }
    const refusal = this.#validate?.(a.node);
    if (refusal !== undefined) {
      this.stats.refused++;
      this.#warn('member-refused', `member ${name} refused: ${refusal}`);
      return;
    }
    let rec = this.#members.get(name);
    let isNew = false;
    let endpointChanged = false;
    if (!rec) {
      isNew = true;
      rec = this.#insert(a.node, a.incarnation, 'dead', now);
    } else {
      endpointChanged = !sameEndpoint(a.node, rec.node);
      if (endpointChanged) {
        // memberlist: a name moves to a new address (or peer) only once its old holder is gone.
        const reclaimable = rec.state === 'left' ||
          (rec.state === 'dead' && now - rec.stateChangeMs >= this.config.deadNodeReclaimTimeMs);
        if (!reclaimable) {
          this.stats.conflicts++;
          this.#warn('address-conflict',
            `conflicting address for ${name}: known at ${rec.node.addr}:${rec.node.port} (${rec.node.peerId}), claimed at ${a.node.addr}:${a.node.port} (${a.node.peerId}); ignored while the known one is ${rec.state}`);
          return;
        }
      } else if (a.incarnation <= rec.incarnation) {
        return;
      }
    }
    this.#suspicions.delete(name);
    this.#broadcast(a, false);
    const old = rec.state;
    const refutedLeave = rec.leaveIntent;
    rec.leaveIntent = false;
    const tagsChanged = !sameTags(a.node.tags, rec.node.tags);
    rec.node = a.node;
    rec.incarnation = a.incarnation;
    if (old !== 'alive') this.#setState(rec, 'alive', now);
    if (isNew || old === 'dead' || old === 'left') this.#emit('member-join', rec);
    else if (tagsChanged || endpointChanged || refutedLeave) this.#emit('member-update', rec);
  }

  #suspectNode(s: SuspectUpdate, now: number): void {
    const rec = this.#members.get(s.node);
    if (!rec) return;
    if (s.incarnation < rec.incarnation) {
      this.#stale?.push(rec);
      if (rec === this.#self) this.#reannounce();
      return;
    }
    if (rec === this.#self) {
      // SWIM §4.2: a member never accepts a suspicion of itself; it refutes it.
      if (!this.#leaving) this.#refute(s.incarnation);
      return;
    }
    if (rec.state !== 'alive') {
      // Lifeguard §4.2: another member independently suspects it too — the timeout shrinks.
      const sus = this.#suspicions.get(s.node);
      if (rec.state === 'suspect' && sus && sus.confirm(s.from)) this.#broadcast(s, s.from === this.name);
      return;
    }
    this.#broadcast(s, s.from === this.name);
    rec.incarnation = s.incarnation;
    this.#setState(rec, 'suspect', now);
    if (s.from === this.name) this.stats.suspicionsRaised++;
    const c = this.config;
    const n = this.#live;
    let k = c.lifeguard ? c.suspicionMult - 2 : 0;
    // Too few members to expect k independent confirmations: fall back to the minimum timeout.
    if (n - 2 < k) k = 0;
    const minMs = suspicionMinTimeoutMs(c.suspicionMult, n, c.probeIntervalMs);
    const maxMs = c.lifeguard ? c.suspicionMaxTimeoutMult * minMs : minMs;
    this.#suspicions.set(s.node, new Suspicion(s.from, k, minMs, maxMs, now));
  }

  #deadNode(d: DeadUpdate, now: number): void {
    const rec = this.#members.get(d.node);
    if (!rec) return;
    if (d.incarnation < rec.incarnation) {
      this.#stale?.push(rec);
      if (rec === this.#self) this.#reannounce();
      return;
    }
    // A member with a leave intent that then fails has left (serf: StatusLeaving → StatusLeft).
    const graceful = d.from === d.node || rec.leaveIntent;
    // Already gone; but a member's own leave message upgrades a failure to a graceful leave.
    if (rec.state === 'left' || (rec.state === 'dead' && !graceful)) return;
    if (rec === this.#self) {
      if (!this.#leaving) this.#refute(d.incarnation);
      return;
    }
    this.#suspicions.delete(d.node);
    this.#broadcast(d, d.from === this.name);
    rec.incarnation = d.incarnation;
    rec.leaveIntent = false;
    this.#setState(rec, graceful ? 'left' : 'dead', now);
    this.#emit(graceful ? 'member-leave' : 'member-failed', rec);
  }

  /** Returns true when the update changed something (and is worth re-broadcasting). */
  #forceLeaveNode(u: ForceLeaveUpdate, now: number): boolean {
    const rec = this.#members.get(u.node);
    if (!rec || u.incarnation < rec.incarnation) return false;
    if (rec === this.#self) {
      // Serf: a running member that hears it is being forced out refutes (a newer alive), by
      // gossip like the intent itself.
      if (!this.#leaving) this.#refute(u.incarnation, false);
      return false;
    }
    if (rec.state === 'alive' || rec.state === 'suspect') {
      if (rec.leaveIntent) return false;
      rec.leaveIntent = true;
      this.#emit('member-update', rec);
      return true;
    }
    if (rec.state === 'dead') {
      this.#setState(rec, 'left', now);
      this.#emit('member-leave', rec);
      if (u.prune) this.#remove(rec);
      return true;
    }
    if (rec.state === 'left' && u.prune) {
      this.#remove(rec);
      return true;
    }
    return false;
  }

  #userEvent(u: UserEventUpdate, local: boolean): void {
    const verdict = this.#events.admit(u);
    if (verdict === 'duplicate') {
      this.stats.eventsDuplicate++;
      return;
    }
    if (verdict !== 'new') {
      this.stats.eventsTooOld++;
      return;
    }
    this.stats.eventsDelivered++;
    this.#outputs.push({ kind: 'event', event: { type: 'user', ltime: u.ltime, name: u.name, payload: u.payload } });
    this.#broadcast(u, local);
  }

  #refute(accused: number, publish = true): void {
    this.stats.refutations++;
    this.#self.incarnation = this.#nextIncarnation(accused);
    // Lifeguard §4.1: being suspected is a sign that we are the slow one.
    if (this.config.lifeguard) this.#awareness.applyDelta(1);
    this.#broadcast({ type: 'alive', node: this.#self.node, incarnation: this.#self.incarnation }, publish);
  }

  /**
   * Someone still spreads a suspicion (or death) of us that we already refuted: the refutation did
   * not reach everyone (loss), and whoever has not heard it will declare us failed when its
   * suspicion runs out. Spread our current alive again, at the same incarnation: it is the same
   * news, so it costs no incarnation and is not a refutation; the queue keeps one copy of it.
   */
  #reannounce(): void {
    if (this.#leaving) return;
    this.stats.reannounced++;
    this.#broadcast({ type: 'alive', node: this.#self.node, incarnation: this.#self.incarnation }, false);
  }

  #nextIncarnation(atLeastAbove: number): number {
    const next = Math.max(this.#self.incarnation, atLeastAbove) + 1;
    // uint32 on the wire (memberlist); past it a refutation is impossible, so stay at the top.
    return Math.min(next, U32_MAX);
  }

  // ------------------------------------------------------------------ push-pull

  #pushPullMessage(join: boolean, reply: boolean): PushPullMessage {
    const members: MemberSnapshot[] = [];
    for (const r of this.#members.values()) members.push({ node: r.node, incarnation: r.incarnation, state: r.state });
    return {
      type: 'pushPull', from: this.name, join, reply, members,
      eventLTime: this.#events.clock.time(),
      // A joiner ignores events from before its join, so a join exchange carries none.
      events: join ? [] : this.#events.recent(),
    };
  }

  #checkRemoteState(pp: PushPullMessage): void {
    if (!this.#validate) return;
    for (const s of pp.members) {
      if (s.state !== 'alive') continue;
      const why = this.#validate(s.node);
      if (why !== undefined) {
        this.stats.refused++;
        throw new GossipError('ERR_MEMBER_REFUSED', `push-pull from ${pp.from} refused: member ${s.node.name} ${why}`);
      }
    }
  }

  #mergeMembers(pp: PushPullMessage, now: number): void {
    for (const s of pp.members) {
      switch (s.state) {
        case 'alive':
          this.#aliveNode({ type: 'alive', node: s.node, incarnation: s.incarnation }, now);
          break;
        case 'left':
          this.#deadNode({ type: 'dead', node: s.node.name, incarnation: s.incarnation, from: s.node.name }, now);
          break;
        case 'suspect':
        case 'dead':
          if (s.state === 'suspect' && !this.#members.has(s.node.name)) {
            // A member we have never heard of that the remote merely suspects is a member: learn
            // it (memberlist would ignore it until gossip about it happened to come by); our own
            // probes will judge it.
            this.#aliveNode({ type: 'alive', node: s.node, incarnation: s.incarnation }, now);
            break;
          }
          // memberlist: another member's verdict of death only makes us suspect; our own timer
          // (and the member's chance to refute) decides. Unknown dead members stay unknown, as in
          // Consul: a new agent does not list failures that happened before it joined.
          this.#suspectNode({ type: 'suspect', node: s.node.name, incarnation: s.incarnation, from: this.name }, now);
          break;
      }
    }
  }

  // ------------------------------------------------------------------ periodic

  #gossip(now: number): void {
    if (this.#queue.length === 0) return;
    const deadline = now - this.config.gossipToTheDeadTimeMs;
    // Dead and left members still hear gossip for a while, so a falsely accused one learns of it.
    const targets = this.#kRandom(this.config.gossipNodes,
      (r) => r.state === 'alive' || r.state === 'suspect' || r.stateChangeMs > deadline);
    for (const t of targets) {
      // An empty take for one target (it already had everything) may still leave news for the next.
      const updates = this.#piggyback(t.node.name);
      if (updates.length === 0) continue;
      this.#send(t.node, { type: 'gossip', from: this.name, updates });
    }
  }

  #reap(now: number): void {
    const c = this.config;
    for (const r of [...this.#all]) {
      if (r.state === 'dead' && now - r.stateChangeMs > c.reconnectTimeoutMs) this.#remove(r);
      else if (r.state === 'left' && now - r.stateChangeMs > c.tombstoneTimeoutMs) this.#remove(r);
    }
  }

  /** serf handleReconnect: now and then try a failed member again, in case it was a partition. */
  #reconnect(): void {
    let failed = 0;
    for (const r of this.#all) if (r.state === 'dead') failed++;
    if (failed === 0) return;
    if (this.#random() > failed / Math.max(1, this.#live)) return;
    const [peer] = this.#kRandom(1, (r) => r.state === 'dead');
    if (peer) this.#send(peer.node, this.#pushPullMessage(false, false));
  }

  // ------------------------------------------------------------------ bookkeeping

  #insert(node: MemberIdentity, incarnation: number, state: MemberState, now: number): Rec {
    const rec: Rec = { node, incarnation, state, stateChangeMs: now, allIndex: this.#all.length, inProbeOrder: false, removed: false, leaveIntent: false };
    this.#members.set(node.name, rec);
    this.#all.push(rec);
    if (state === 'alive' || state === 'suspect') this.#addToProbeOrder(rec);
    return rec;
  }

  /** memberlist: a new member goes to a random place in the order, so failure detection time stays bounded on average. */
  #addToProbeOrder(rec: Rec): void {
    if (rec.inProbeOrder) return;
    rec.inProbeOrder = true;
    const order = this.#probeOrder;
    const offset = Math.floor(this.#random() * (order.length + 1));
    order.push(rec);
    const t = order[offset]!;
    order[offset] = rec;
    order[order.length - 1] = t;
  }

  #setState(rec: Rec, state: MemberState, now: number): void {
    const wasLive = rec.state === 'alive' || rec.state === 'suspect';
    const isLive = state === 'alive' || state === 'suspect';
    if (wasLive && !isLive) this.#live--;
    if (!wasLive && isLive) {
      this.#live++;
      if (rec !== this.#self) this.#addToProbeOrder(rec);
    }
    rec.state = state;
    rec.stateChangeMs = now;
  }

  #remove(rec: Rec): void {
    if (rec.state === 'alive' || rec.state === 'suspect') this.#live--;
    rec.removed = true;
    this.#members.delete(rec.node.name);
    this.#suspicions.delete(rec.node.name);
    const last = this.#all.pop()!;
    if (last !== rec) {
      this.#all[rec.allIndex] = last;
      last.allIndex = rec.allIndex;
    }
    this.#emit('member-reap', rec);
  }

  /** Up to k distinct members (never self) that pass `ok`, chosen at random (memberlist kRandomNodes). */
  #kRandom(k: number, ok: (r: Rec) => boolean): Rec[] {
    const n = this.#all.length;
    const out: Rec[] = [];
    if (k <= 0 || n === 0) return out;
    for (let i = 0; i < 3 * n && out.length < k; i++) {
      const r = this.#all[Math.floor(this.#random() * n)]!;
      if (!ok(r) || out.includes(r)) continue;
      out.push(r);
    }
    return out;
  }

  #nextSeq(): number {
    this.#seq = this.#seq >= U32_MAX ? 1 : this.#seq + 1;
    return this.#seq;
  }

  /** Queued broadcasts to ride on a message to `to`. */
  #piggyback(to: string): Update[] {
    return this.#queue.take(UPDATE_OVERHEAD_BYTES, this.config.maxGossipBytes - MESSAGE_HEADER_BYTES, this.#live, this.config.retransmitMult, to);
  }

  /** Queues a broadcast (and, when it originated here, hands it out for publishing). Returns its queue id. */
  #broadcast(u: Update, local: boolean): number {
    const interval = this.config.gossipIntervalMs;
    if (this.#queue.length === 0 && this.#nextGossipMs < this.#now) {
      this.#nextGossipMs = this.#now + Math.floor(this.#random() * interval);
    }
    const key = u.type === 'userEvent' ? undefined : u.type === 'alive' ? u.node.name : u.node;
    const heardFrom = !local && this.#heard?.update === u ? this.#heard.from : undefined;
    const id = this.#queue.push(u, key, updateSize(u), heardFrom);
    if (local && this.#publish) this.#outputs.push({ kind: 'publish', update: u });
    return id;
  }

  #send(to: Endpoint, msg: Message): void {
    this.#outputs.push({ kind: 'send', to, msg });
  }

  #emit(type: MemberEventType, rec: Rec): void {
    const event: GossipEvent = { type, member: view(rec) };
    this.#outputs.push({ kind: 'event', event });
  }

  #warn(code: WarnCode, message: string): void {
    this.#outputs.push({ kind: 'warn', code, message });
  }
}

function view(r: Rec): MemberView {
  const n = r.node;
  return {
    name: n.name, addr: n.addr, port: n.port, peerId: n.peerId, tags: n.tags,
    incarnation: r.incarnation, state: r.state, stateChangeMs: r.stateChangeMs,
    ...(r.leaveIntent ? { leaveIntent: true } : {}),
  };
}

function checkTags(tags: Readonly<Record<string, string>>): void {
  for (const [k, v] of Object.entries(tags)) {
    if (typeof v !== 'string' || k.length === 0) {
      throw new GossipError('ERR_INVALID_TAGS', `member tag ${JSON.stringify(k)} is invalid: tag keys must be non-empty and values strings`);
    }
  }
  const size = tagsSize(tags);
  if (size > TAGS_MAX_BYTES) {
    throw new GossipError('ERR_TAGS_TOO_LARGE', `encoded length of tags is ${size} bytes, which exceeds the limit of ${TAGS_MAX_BYTES} bytes`);
  }
}
