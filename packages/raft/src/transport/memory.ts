// An in-process network for driver tests with real timers: every MemoryTransport made by one
// MemoryNetwork can reach the others, and the network injects the faults a real one has (partitions,
// one-way cuts, loss, latency). The seeded simulator has its own network; this one exists so the
// driver can be tested against the same Transport contract the gRPC transport implements.
import type { Entry, Message, NodeId, SnapshotMeta } from '../core/types.ts';
import type { Transport } from './types.ts';
import { TransportError, configError } from './errors.ts';

export interface MemoryNetworkOptions {
  /** Uniform in [0, 1); drives loss and latency. Seed it to make a run repeatable. Default Math.random. */
  random?: () => number;
}

export interface MemoryTransportOptions {
  /** The address peers use for this node (what setPeers maps ids to). Default: the node id itself. */
  address?: string;
}

/** Return false to drop the message. Lets a test target one kind of traffic ("lose every appResp from c"). */
export type MessageFilter = (msg: Message) => boolean;

export interface MemoryNetworkStats {
  /** Messages handed to send() by running transports. */
  sent: number;
  /** Messages that reached a handler. */
  delivered: number;
  /** Lost to partition() / cut(), at send time or while in flight. */
  droppedPartition: number;
  /** Lost to setDropRate(). */
  droppedRandom: number;
  /** Lost to setFilter(). */
  droppedFilter: number;
  /** `to` had no address in the sender's setPeers map. */
  droppedUnknownPeer: number;
  /** No running transport at the address (node stopped or never started), or the node there is not `to`. */
  droppedDown: number;
}

interface InFlight { at: number; msg: Message; fromId: NodeId; toAddress: string }

/** The FIFO of one directed link (sender id → destination address), so latency never reorders it. */
interface Link { queue: InFlight[]; timer?: NodeJS.Timeout; immediate?: NodeJS.Immediate }

interface Endpoint { id: NodeId; deliver: (msg: Message) => void }

const LINK_SEP = '\u0000';

/**
 * The hub. Faults are expressed between node ids (not addresses) because that is how tests think.
 * Partitions and cuts are checked when a message is sent and again when it would arrive, so a
 * message in flight when a partition starts is lost, as on a real network.
 */
export class MemoryNetwork {
  readonly #random: () => number;
  /** address → the running transport there. */
  readonly #endpoints = new Map<string, Endpoint>();
  /** Every id a transport was made for, for isolate(). */
  readonly #ids = new Set<NodeId>();
  /** Blocked directed links `from\0to` (node ids). */
  readonly #blocked = new Set<string>();
  readonly #links = new Map<string, Link>();
  #dropRate = 0;
  #delayMinMs = 0;
  #delayMaxMs = 0;
  #filter: MessageFilter | undefined;
  #stats: MemoryNetworkStats = {
    sent: 0, delivered: 0, droppedPartition: 0, droppedRandom: 0, droppedFilter: 0, droppedUnknownPeer: 0, droppedDown: 0,
  };

  constructor(options: MemoryNetworkOptions = {}) {
    if (options.random !== undefined && typeof options.random !== 'function') {
      throw configError('random', options.random, 'must be a function returning a number in [0, 1)');
    }
    this.#random = options.random ?? Math.random;
  }

  /** A transport for node `id`. A stopped node may be replaced by a fresh transport with the same id
   *  (a restart); two running transports at one address are refused by start(). */
  transport(id: NodeId, options: MemoryTransportOptions = {}): MemoryTransport {
    if (typeof id !== 'string' || id === '') throw configError('id', id, 'must be a non-empty string');
    const address = options.address ?? id;
    if (typeof address !== 'string' || address === '') throw configError('address', address, 'must be a non-empty string');
    this.#ids.add(id);
    return new MemoryTransport(id, address, {
      register: (ep, addr) => this.#register(ep, addr),
      unregister: (ep, addr) => this.#unregister(ep, addr),
      send: (fromId, toAddress, msg) => this.#send(fromId, toAddress, msg),
      dropUnknownPeer: () => { this.#stats.sent++; this.#stats.droppedUnknownPeer++; },
      isUp: (addr) => this.#endpoints.has(addr),
    });
  }

  /** Symmetric partition: nothing flows between any node of groupA and any node of groupB. */
  partition(groupA: NodeId[], groupB: NodeId[]): void {
    for (const a of groupA) {
      for (const b of groupB) {
        if (a === b) continue;
        this.#blocked.add(a + LINK_SEP + b);
        this.#blocked.add(b + LINK_SEP + a);
      }
    }
  }

  /** Cut `id` off from every other node this network has made a transport for. */
  isolate(id: NodeId): void {
    this.partition([id], [...this.#ids].filter((x) => x !== id));
  }

  /** One-way cut: messages from `from` to `to` are lost; the reverse direction still works. */
  cut(from: NodeId, to: NodeId): void {
    this.#blocked.add(from + LINK_SEP + to);
  }

  /** Removes every partition and cut. Loss, latency and the filter stay as set. */
  heal(): void {
    this.#blocked.clear();
  }

  /** Each message is lost independently with probability p. */
  setDropRate(p: number): void {
    if (typeof p !== 'number' || !(p >= 0 && p <= 1)) throw configError('dropRate', p, 'must be a number in [0, 1]');
    this.#dropRate = p;
  }

  /** Each message is delayed uniformly in [minMs, maxMs]. Delivery on one link stays in send order
   *  (a message never overtakes an earlier one on the same link), as over one TCP stream. */
  setDelay(minMs: number, maxMs: number): void {
    if (!Number.isFinite(minMs) || minMs < 0) throw configError('minMs', minMs, 'must be a finite number >= 0');
    if (!Number.isFinite(maxMs) || maxMs < minMs) throw configError('maxMs', maxMs, `must be a finite number >= minMs (${minMs})`);
    this.#delayMinMs = minMs;
    this.#delayMaxMs = maxMs;
  }

  setFilter(filter: MessageFilter | undefined): void {
    this.#filter = filter;
  }

  stats(): MemoryNetworkStats {
    return { ...this.#stats };
  }

  /** Drops everything in flight and cancels its timers (call at the end of a test). */
  close(): void {
    for (const link of this.#links.values()) this.#cancelLink(link);
    this.#links.clear();
  }

  #register(ep: Endpoint, address: string): void {
    const holder = this.#endpoints.get(address);
    if (holder !== undefined && holder !== ep) {
      throw new TransportError('ERR_ADDRESS_IN_USE', `memory address ${JSON.stringify(address)} is held by running node ${JSON.stringify(holder.id)}; stop it first`);
    }
    this.#endpoints.set(address, ep);
  }

  #unregister(ep: Endpoint, address: string): void {
    if (this.#endpoints.get(address) === ep) this.#endpoints.delete(address);
  }

  #isBlocked(from: NodeId, to: NodeId): boolean {
    return this.#blocked.size > 0 && this.#blocked.has(from + LINK_SEP + to);
  }

  /** Returns false when the destination is down (so the sender may report it unreachable). */
  #send(fromId: NodeId, toAddress: string, msg: Message): boolean {
    this.#stats.sent++;
    if (this.#filter !== undefined && !this.#filter(msg)) { this.#stats.droppedFilter++; return true; }
    if (this.#isBlocked(fromId, msg.to)) { this.#stats.droppedPartition++; return true; }
    if (this.#dropRate > 0 && this.#random() < this.#dropRate) { this.#stats.droppedRandom++; return true; }
    if (!this.#endpoints.has(toAddress)) { this.#stats.droppedDown++; return false; }

    const key = fromId + LINK_SEP + toAddress;
    let link = this.#links.get(key);
    if (link === undefined) { link = { queue: [] }; this.#links.set(key, link); }
    const now = Date.now();
    const delay = this.#delayMaxMs > 0 ? this.#delayMinMs + this.#random() * (this.#delayMaxMs - this.#delayMinMs) : 0;
    const tail = link.queue.length > 0 ? link.queue[link.queue.length - 1]!.at : 0;
    // Copy now: the sender may reuse or mutate its arrays after send() returns.
    link.queue.push({ at: Math.max(now + delay, tail), msg: cloneMessage(msg), fromId, toAddress });
    if (link.timer === undefined && link.immediate === undefined) this.#schedule(key, link);
    return true;
  }

  #schedule(key: string, link: Link): void {
    const head = link.queue[0];
    if (head === undefined) { this.#links.delete(key); return; }
    const wait = head.at - Date.now();
    // Never deliver inside send(): the receiver's handler would re-enter the sender's driver loop.
    // setImmediate (not a microtask) so timers and I/O interleave with traffic as on a real network.
    if (wait <= 0) link.immediate = setImmediate(() => this.#drain(key, link));
    else link.timer = setTimeout(() => this.#drain(key, link), Math.ceil(wait));
  }

  #drain(key: string, link: Link): void {
    link.timer = undefined;
    link.immediate = undefined;
    const now = Date.now();
    while (link.queue.length > 0 && link.queue[0]!.at <= now) {
      const f = link.queue.shift()!;
      this.#deliver(f);
    }
    this.#schedule(key, link);
  }

  #deliver(f: InFlight): void {
    if (this.#isBlocked(f.fromId, f.msg.to)) { this.#stats.droppedPartition++; return; }
    const ep = this.#endpoints.get(f.toAddress);
    // A different node now answers at this address (or none): a stale address, drop as a real node would.
    if (ep === undefined || ep.id !== f.msg.to) { this.#stats.droppedDown++; return; }
    this.#stats.delivered++;
    ep.deliver(f.msg);
  }

  #cancelLink(link: Link): void {
    if (link.timer !== undefined) clearTimeout(link.timer);
    if (link.immediate !== undefined) clearImmediate(link.immediate);
    link.timer = undefined;
    link.immediate = undefined;
    link.queue.length = 0;
  }
}

interface Hub {
  register(ep: Endpoint, address: string): void;
  unregister(ep: Endpoint, address: string): void;
  send(fromId: NodeId, toAddress: string, msg: Message): boolean;
  dropUnknownPeer(): void;
  isUp(address: string): boolean;
}

/**
 * One node's side of a MemoryNetwork. Follows the Transport contract: send() never throws and never
 * delivers synchronously; messages to ids missing from setPeers() are dropped; onUnreachable(peer) is
 * called once when a send finds no running node at the peer's address, and again only after a later
 * send found the peer running (one call per failure episode, as the gRPC transport does).
 * Partitions and loss are silent, like a black-holed network.
 */
export class MemoryTransport implements Transport {
  readonly id: NodeId;
  readonly #address: string;
  readonly #hub: Hub;
  #peers = new Map<NodeId, string>();
  #handler: ((msg: Message) => void) | undefined;
  #onUnreachable: ((peer: NodeId) => void) | undefined;
  #endpoint: Endpoint | undefined;
  /** Peers reported unreachable in the current failure episode. */
  readonly #reported = new Set<NodeId>();

  constructor(id: NodeId, address: string, hub: Hub) {
    this.id = id;
    this.#address = address;
    this.#hub = hub;
  }

  async start(handler: (msg: Message) => void, onUnreachable?: (peer: NodeId) => void): Promise<void> {
    if (this.#endpoint !== undefined) {
      throw new TransportError('ERR_TRANSPORT_STARTED', `memory transport ${JSON.stringify(this.id)} is already started`);
    }
    const ep: Endpoint = {
      id: this.id,
      deliver: (msg) => {
        if (this.#endpoint !== ep) return; // stopped (or restarted) while the message was in flight
        try {
          this.#handler?.(msg);
        } catch (err) {
          // The contract says handlers never throw; surface the bug without killing the network loop.
          queueMicrotask(() => { throw err; });
        }
      },
    };
    this.#hub.register(ep, this.#address);
    this.#endpoint = ep;
    this.#handler = handler;
    this.#onUnreachable = onUnreachable;
    this.#reported.clear();
  }

  send(messages: Message[]): void {
    if (this.#endpoint === undefined) return;
    for (const msg of messages) {
      const address = this.#peers.get(msg.to);
      if (address === undefined) { this.#hub.dropUnknownPeer(); continue; }
      if (this.#hub.send(this.id, address, msg)) {
        if (this.#hub.isUp(address)) this.#reported.delete(msg.to);
      } else if (!this.#reported.has(msg.to)) {
        this.#reported.add(msg.to);
        const cb = this.#onUnreachable;
        // Asynchronous like everything else a transport reports: the driver may be mid-Ready.
        if (cb !== undefined) queueMicrotask(() => { if (this.#endpoint !== undefined) cb(msg.to); });
      }
    }
  }

  setPeers(addresses: Record<NodeId, string>): void {
    this.#peers = new Map(Object.entries(addresses));
  }

  localAddress(): string {
    return this.#address;
  }

  async stop(): Promise<void> {
    const ep = this.#endpoint;
    if (ep === undefined) return;
    this.#endpoint = undefined;
    this.#handler = undefined;
    this.#onUnreachable = undefined;
    this.#hub.unregister(ep, this.#address);
  }
}

/** A copy that shares no mutable array or object with the original (byte arrays included). */
export function cloneMessage(m: Message): Message {
  const c: Message = { ...m };
  if (m.entries !== undefined) c.entries = m.entries.map(cloneEntry);
  if (m.snapshot !== undefined) {
    c.snapshot = { meta: cloneMeta(m.snapshot.meta) };
    if (m.snapshot.data !== undefined) c.snapshot.data = m.snapshot.data.slice();
  }
  return c;
}

function cloneEntry(e: Entry): Entry {
  return { term: e.term, index: e.index, kind: e.kind, data: e.data.slice() };
}

function cloneMeta(meta: SnapshotMeta): SnapshotMeta {
  const c: SnapshotMeta = { index: meta.index, term: meta.term, conf: { voters: [...meta.conf.voters], learners: [...meta.conf.learners] } };
  if (meta.addresses !== undefined) c.addresses = { ...meta.addresses };
  return c;
}
