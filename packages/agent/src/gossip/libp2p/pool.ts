// The libp2p driver: runs the pure SWIM core (../core) against real time and a libp2p 3 node.
//
//   SWIM         ping / ack / nack / ping-req / gossip as UDP packets on the serf port, as memberlist
//                sends them (datagram.ts): no connection per member, no handshake per new member;
//                with -encrypt each packet is sealed with AES-GCM under the gossip key.
//   push-pull    full state exchange over libp2p on the same port number, TCP: noise, yamux (no
//                identify, no gossipsub: see create()), with -encrypt a private network (pre-shared
//                key via @libp2p/pnet: a peer without the key never completes a handshake). Its own
//                request/response protocol (/trellis/pushpull/1.0.0), used by join and periodically.
//   broadcasts   piggybacked on SWIM packets and sent to `gossipNodes` random members every gossip
//                interval, as memberlist does; push-pull is the slow, sure path.
//
//   routed       with a GossipRouter (the WAN pool under WAN federation through mesh gateways,
//                server/wanGossip.ts), packets and push-pulls to the members the router claims go
//                through it instead (TLS through the mesh gateways, as Consul's wanfed transport);
//                what it receives comes back in through ingestPacket() and answerPushPull().
//
// The driver owns timers, sockets and files; every protocol decision is the core's. After each
// call into the core it takes the outputs and acts on them (send, emit, log).
import { EventEmitter } from 'node:events';
import { isIPv4, isIPv6 } from 'node:net';
import { lookup } from 'node:dns/promises';
import { networkInterfaces } from 'node:os';
import { createLibp2p, type Libp2p } from 'libp2p';
import { tcp, type TCPSocketOptions } from '@libp2p/tcp';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import { preSharedKey } from '@libp2p/pnet';
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr';
import pino from 'pino';
import type { Logger } from '../../logger.ts';
import { decodeMessage, encodeMessage } from '../core/codec.ts';
import { LAN_DEFAULTS, WAN_DEFAULTS, type SwimConfig } from '../core/config.ts';
import { GossipError } from '../core/errors.ts';
import { SwimCore, type SwimStats } from '../core/swim.ts';
import type { Endpoint, MemberEventType, MemberIdentity, MemberView, Message, PushPullMessage } from '../core/types.ts';
import { memberRow, type AgentMemberRow } from '../tags.ts';
import { FrameDecoder, frame } from './framing.ts';
import { loadOrCreatePeerKey, pskFromEncryptKey } from './keys.ts';
import { DatagramSocket, MAX_DATAGRAM_BYTES, checkPortRefuses, datagramKey, open, plainAddress, seal, type DatagramSender } from './datagram.ts';

export const PUSH_PULL_PROTOCOL = '/trellis/pushpull/1.0.0';
/** A push-pull carries the whole pool (~200 bytes a member). */
const PUSH_PULL_MAX_FRAME_BYTES = 16 * 1024 * 1024;
/** A timer that fires this close before its deadline counts as on time (see #onTimer). */
const TIMER_SLACK_MS = 2;
const PP_OK = 0;
const PP_REFUSED = 1;

const MEMBER_EVENT_TYPES: readonly MemberEventType[] = ['member-join', 'member-update', 'member-failed', 'member-leave', 'member-reap'];

/** @libp2p/tcp passes dialOpts on to net.connect, which takes a localAddress (its type lists a subset). */
function dialsFrom(bindAddr: string): { dialOpts?: TCPSocketOptions } {
  if (bindAddr === '0.0.0.0' || bindAddr === '::') return {};
  return { dialOpts: { localAddress: bindAddr } as TCPSocketOptions };
}

/**
 * Another way to reach some members (Consul's wanfed.Transport for the WAN pool): packets and
 * push-pulls to the members it routes go through it, not UDP and libp2p. Bytes are as the pool
 * would put them on the wire (sealed with the gossip key when -encrypt is set).
 */
export interface GossipRouter {
  /** Does traffic to this member go through the router? */
  routes(to: Endpoint): boolean;
  /** Sends one packet (best effort, as UDP: a failure is counted and forgotten). */
  sendPacket(to: Endpoint, packet: Uint8Array): void;
  /** One push-pull exchange with the member: sends the request, resolves with the reply. */
  exchange(to: Endpoint, request: Uint8Array, timeoutMs: number): Promise<Uint8Array>;
}

export interface GossipPoolOptions {
  /** Member name (Consul node name; on the WAN pool `<node>.<dc>`). */
  nodeName: string;
  datacenter: string;
  /** Address to listen on (Consul -bind), e.g. 0.0.0.0 or 127.0.0.1. */
  bindAddr: string;
  /** TCP port (serf LAN 8301 / WAN 8302); 0 picks a free one (tests). */
  port: number;
  /** Address other members use to reach this one (Consul -advertise); default: bindAddr, or the first private IPv4 when binding 0.0.0.0. */
  advertiseAddr?: string;
  /** Serf tags (see tags.ts). `dc` is always set to `datacenter`. */
  tags?: Record<string, string>;
  /** Keeps the peer key in `<dataDir>/gossip/peer-key`; without it (-dev) the identity is new each start. */
  dataDir?: string;
  /** Consul -encrypt: base64 of 32 bytes. Turns the pool into a libp2p private network. */
  encryptKey?: string;
  /** SWIM / Lifeguard settings over the pool's defaults (Consul LAN or WAN). */
  config?: Partial<SwimConfig>;
  /** Logs go here as they are: pass e.g. logger.child({ component: 'agent.gossip.lan' }). */
  logger?: Logger;
  pool?: 'lan' | 'wan';
  /** A join attempt (dial + handshake + push-pull) that takes longer fails. Default 5000. */
  joinTimeoutMs?: number;
  /** leave() waits at most this long for the leave to be disseminated (serf BroadcastTimeout). Default 5000. */
  leaveTimeoutMs?: number;
  /**
   * libp2p connection manager: connections kept before the least useful are pruned. SWIM probes
   * every member in turn, so a pool tends toward a full mesh (~0.25 MB per connection here);
   * beyond this the pruned ones are redialled on demand. Default 256.
   */
  maxConnections?: number;
  /** Inbound connections accepted per second from one host (libp2p's default of 5 is too low for agents sharing an address). Default 500. */
  inboundConnectionThreshold?: number;
  /** Randomness for the core (default Math.random). */
  random?: () => number;
  /** Routes traffic to some members another way (see GossipRouter). */
  router?: GossipRouter;
}

/** A user event as delivered on the 'event' event. */
export interface PoolUserEvent {
  name: string;
  payload: Uint8Array;
  ltime: number;
}

export interface GossipPoolEvents {
  'member-join': [AgentMemberRow, MemberView];
  'member-update': [AgentMemberRow, MemberView];
  'member-failed': [AgentMemberRow, MemberView];
  'member-leave': [AgentMemberRow, MemberView];
  'member-reap': [AgentMemberRow, MemberView];
  event: [PoolUserEvent];
}

export interface GossipPoolStats extends SwimStats {
  /** Packets refused before the core: not sealed with our key, push-pull in a packet, bad push-pull streams. */
  framesRefused: number;
  /** Packets whose claimed address is not the one they came from (see #checkSender). */
  spoofed: number;
  /** Push-pull dials that failed. */
  dialFailures: number;
  /** Packets not sent (socket closed, too large, refused by the OS). */
  framesDropped: number;
  healthScore: number;
  members: number;
  liveMembers: number;
}

type SwimStream = Awaited<ReturnType<Libp2p['dialProtocol']>>;
type PoolNode = Libp2p;

function chunkBytes(data: Uint8Array | { subarray(): Uint8Array }): Uint8Array {
  return data instanceof Uint8Array ? data : data.subarray();
}

/** Resolves with the first complete frame on `stream`; rejects on close, abort, oversize or timeout. */
function readOneFrame(stream: SwimStream, maxBytes: number, signal: AbortSignal): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const decoder = new FrameDecoder(maxBytes);
    const cleanup = (): void => {
      stream.removeEventListener('message', onMessage);
      stream.removeEventListener('close', onClose);
      signal.removeEventListener('abort', onAbort);
    };
    const onMessage = (e: { data: Uint8Array | { subarray(): Uint8Array } }): void => {
      try {
        const frames = decoder.push(chunkBytes(e.data));
        if (frames.length > 0) {
          cleanup();
          resolve(frames[0]!);
        }
      } catch (err) {
        cleanup();
        stream.abort(err as Error);
        reject(err);
      }
    };
    const onClose = (): void => {
      cleanup();
      reject(new Error('stream closed before a complete reply'));
    };
    const onAbort = (): void => {
      cleanup();
      stream.abort(signal.reason instanceof Error ? signal.reason : new Error('timed out'));
      reject(signal.reason);
    };
    if (signal.aborted) return onAbort();
    stream.addEventListener('message', onMessage);
    stream.addEventListener('close', onClose);
    signal.addEventListener('abort', onAbort);
  });
}

function endpointAddr(e: Endpoint): Multiaddr {
  const proto = isIPv6(e.addr) ? 'ip6' : 'ip4';
  return multiaddr(`/${proto}/${e.addr}/tcp/${e.port}${e.peerId ? `/p2p/${e.peerId}` : ''}`);
}

/** Consul join addresses: "host", "host:port", "[v6]:port", "v6", or a multiaddr. */
export async function parseJoinAddress(addr: string, defaultPort: number): Promise<Multiaddr> {
  const a = addr.trim();
  if (a.startsWith('/')) return multiaddr(a);
  let host = a;
  let port = defaultPort;
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(a);
  if (v6) {
    host = v6[1]!;
    if (v6[2]) port = Number(v6[2]);
  } else if (a.split(':').length === 2) {
    const [h, p] = a.split(':');
    host = h!;
    port = Number(p);
  }
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new GossipError('ERR_JOIN_FAILED', `join address "${addr}" has an invalid port`);
  }
  if (!isIPv4(host) && !isIPv6(host)) host = (await lookup(host)).address;
  return multiaddr(`/${isIPv6(host) ? 'ip6' : 'ip4'}/${host}/tcp/${port}`);
}

function defaultAdvertise(bindAddr: string): string {
  if (bindAddr !== '0.0.0.0' && bindAddr !== '::') return bindAddr;
  for (const list of Object.values(networkInterfaces())) {
    for (const i of list ?? []) if (i.family === 'IPv4' && !i.internal) return i.address;
  }
  return '127.0.0.1';
}

/** Nobody listens at the address, or it cannot be routed to: not a key problem. */
function isUnreachable(err: unknown): boolean {
  return /ECONNREFUSED|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|EADDRNOTAVAIL|dial self|self/i.test(String((err as Error)?.message ?? ''));
}

function isTimeout(err: unknown): boolean {
  const name = (err as { name?: string })?.name;
  return name === 'TimeoutError' || name === 'AbortError';
}

export class GossipPool extends EventEmitter<GossipPoolEvents> {
  readonly #opts: GossipPoolOptions;
  readonly #node: PoolNode;
  readonly #log: Logger;
  readonly #config: Partial<SwimConfig>;
  /** AES-GCM key of sealed datagrams (-encrypt), or none: plaintext packets, as Consul's without a key. */
  readonly #packetKey: Buffer | undefined;
  #socket: DatagramSocket | undefined;
  #core: SwimCore | undefined;
  #timer: NodeJS.Timeout | undefined;
  /** The core deadline the timer is armed for. */
  #armedForMs = Infinity;
  #running = false;
  readonly #counters = { framesRefused: 0, spoofed: 0, dialFailures: 0, framesDropped: 0 };

  private constructor(opts: GossipPoolOptions, node: PoolNode, log: Logger) {
    super();
    this.#opts = opts;
    this.#node = node;
    this.#log = log;
    const pool = opts.pool ?? 'lan';
    this.#config = { ...(pool === 'lan' ? LAN_DEFAULTS : WAN_DEFAULTS), ...opts.config };
    this.#packetKey = opts.encryptKey ? datagramKey(opts.encryptKey) : undefined;
  }

  /** Builds the libp2p node (keys, transports, private network); start() opens the port. */
  static async create(opts: GossipPoolOptions): Promise<GossipPool> {
    const log = opts.logger ?? pino({ level: 'silent' });
    const psk = opts.encryptKey ? pskFromEncryptKey(opts.encryptKey) : undefined;
    const privateKey = await loadOrCreatePeerKey(opts.dataDir);
    const listen = isIPv6(opts.bindAddr) ? `/ip6/${opts.bindAddr}/tcp/${opts.port}` : `/ip4/${opts.bindAddr}/tcp/${opts.port}`;
    const node = await createLibp2p({
      privateKey,
      start: false,
      addresses: { listen: [listen] },
      // Dial from the bind address, as serf does (firewalls and partition tests see that address).
      transports: [tcp(dialsFrom(opts.bindAddr))],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
      ...(psk ? { connectionProtector: preSharedKey({ psk }) } : {}),
      connectionManager: {
        maxConnections: opts.maxConnections ?? 256,
        inboundConnectionThreshold: opts.inboundConnectionThreshold ?? 500,
        maxIncomingPendingConnections: 64,
        dialTimeout: opts.joinTimeoutMs ?? 5000,
      },
      // SWIM is the liveness check: libp2p's own monitor would open a stream to every connected
      // peer every 10 s for a ping protocol we do not serve (measurable idle CPU in a full mesh).
      connectionMonitor: { enabled: false },
      // No identify and no gossipsub: SWIM needs neither (peers are addressed by multiaddr and
      // peer id, broadcasts ride on SWIM's own gossip as in memberlist), and together they were
      // ~60% of every connection's setup CPU (identify's signed peer record and peer-store writes,
      // gossipsub's streams, subscriptions and grafts) plus a heartbeat per agent per second.
      // Measured: 32 ms of CPU per new connection (both sides) with them, 13 ms without.
      services: {},
    });
    return new GossipPool(opts, node, log);
  }

  /** Starts listening and the protocol; this member is then alive in a pool of one until it joins. */
  async start(): Promise<void> {
    if (this.#running) return;
    const node = this.#node;
    let port = this.#opts.port;
    // TCP and UDP on one port number. With port 0 the TCP listener picks a free TCP port, which
    // some UDP socket may hold: then listen again on another (a fixed port fails at once, naming it).
    for (let attempt = 1; ; attempt++) {
      await node.start();
      const listening = node.getMultiaddrs()[0];
      port = listening ? Number(listening.toString().split('/')[4]) : this.#opts.port;
      try {
        this.#socket = await DatagramSocket.bind(this.#opts.bindAddr, port,
          (bytes, from) => this.#onDatagram(bytes, from),
          (err) => this.#log.warn({ err: err.message }, 'gossip packet socket error'));
        break;
      } catch (err) {
        await node.stop();
        const inUse = (err as GossipError).cause && ((err as GossipError).cause as NodeJS.ErrnoException).code === 'EADDRINUSE';
        if (this.#opts.port !== 0 || !inUse || attempt >= 5) throw err;
      }
    }
    this.#running = true;
    const self: MemberIdentity = {
      name: this.#opts.nodeName,
      addr: this.#opts.advertiseAddr ?? defaultAdvertise(this.#opts.bindAddr),
      port,
      peerId: node.peerId.toString(),
      tags: { ...this.#opts.tags, dc: this.#opts.datacenter },
    };
    const dc = this.#opts.datacenter;
    const lan = (this.#opts.pool ?? 'lan') === 'lan';
    this.#core = new SwimCore({
      self,
      config: this.#config,
      random: this.#opts.random ?? Math.random,
      nowMs: performance.now(),
      // Nothing to publish on: locally originated news goes out as SWIM gossip like any other.
      publishLocalUpdates: false,
      // Consul's lanMergeDelegate: a LAN pool holds one datacenter only.
      // Consul's wanMergeDelegate: the WAN pool holds servers only, each named <node>.<dc>.
      validateMember: lan
        ? (m) => (m.tags.dc === dc ? undefined : `is in datacenter "${m.tags.dc ?? ''}", this LAN pool is "${dc}"`)
        : (m) => (m.tags.role !== 'consul' ? 'is not a server: only servers join the WAN pool'
          : !m.tags.dc || !m.name.endsWith(`.${m.tags.dc}`) ? `is not named <node>.<dc> for its datacenter "${m.tags.dc ?? ''}"` : undefined),
    });
    await node.handle(PUSH_PULL_PROTOCOL, (stream) => this.#servePushPull(stream), { maxInboundStreams: 4 });
    this.#log.info({ name: self.name, addr: `${self.addr}:${port}`, peerId: self.peerId }, 'gossip pool started');
    this.#flush();
  }

  /**
   * Joins the pool through the members at `addrs` (Consul semantics: each address gets a
   * push-pull; resolves with how many answered, rejects with ERR_JOIN_FAILED when none did).
   */
  async join(addrs: string[]): Promise<number> {
    const core = this.#requireCore();
    if (core.leaving) throw new GossipError('ERR_NOT_RUNNING', 'cannot join after leaving the pool');
    const timeoutMs = this.#opts.joinTimeoutMs ?? 5000;
    const results = await Promise.allSettled(addrs.map(async (addr) => {
      const target = await parseJoinAddress(addr, this.#opts.port || 8301);
      let reply: PushPullMessage;
      try {
        reply = await this.#pushPull(target, core.joinRequest(), timeoutMs);
      } catch (err) {
        if (isTimeout(err)) {
          throw new GossipError('ERR_KEY_MISMATCH',
            `no answer within ${timeoutMs} ms — the connection handshake stalled (gossip key mismatch?)`, { cause: err });
        }
        throw err;
      }
      core.mergePushPull(reply, performance.now());
      this.#flush();
    }));
    const joined = results.filter((r) => r.status === 'fulfilled').length;
    const errors = results.flatMap((r, i) => (r.status === 'rejected' ? [`${addrs[i]}: ${(r.reason as Error).message}`] : []));
    for (const e of errors) this.#log.warn({ error: e }, 'join attempt failed');
    if (joined === 0) {
      const keyHint = results.some((r) => r.status === 'rejected' && (r.reason as GossipError).code === 'ERR_KEY_MISMATCH');
      throw new GossipError(keyHint ? 'ERR_KEY_MISMATCH' : 'ERR_JOIN_FAILED',
        addrs.length === 0 ? 'no addresses to join' : `failed to join any of ${addrs.length} address(es): ${errors.join('; ')}`);
    }
    this.#log.info({ joined, addrs }, 'joined gossip pool');
    return joined;
  }

  /** Graceful leave: announces it and waits (at most leaveTimeoutMs) until it has been disseminated. */
  async leave(): Promise<void> {
    const core = this.#requireCore();
    if (core.leaving) return;
    core.leave(performance.now());
    this.#flush();
    const deadline = performance.now() + (this.#opts.leaveTimeoutMs ?? 5000);
    while (!core.leaveDone() && performance.now() < deadline && this.#running) {
      await new Promise((r) => setTimeout(r, Math.min(50, core.config.gossipIntervalMs)));
    }
    if (!core.leaveDone()) this.#log.warn('timeout while waiting for graceful leave');
    else this.#log.info('left the gossip pool');
  }

  /** Stops everything. Without leave() first, the others will detect this member as failed. */
  async stop(): Promise<void> {
    if (!this.#running) return;
    this.#running = false;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#socket?.close();
    this.#socket = undefined;
    await this.#node.stop();
  }

  // ------------------------------------------------------------------ API for the agent

  /** Every known member (alive, failed and left until reaped), as `GET /v1/agent/members` rows. */
  members(): AgentMemberRow[] {
    const core = this.#core;
    if (!core) return [];
    return core.members().map((m) => memberRow(m, m.name === core.name && core.leaving && !core.leaveDone()));
  }

  /**
   * Calls `fn` after every member event (join, update, failed, leave, reap), for readers that just
   * look at memberViews() again; returns the function that unsubscribes.
   */
  onMembershipChange(fn: () => void): () => void {
    for (const e of MEMBER_EVENT_TYPES) this.on(e, fn);
    return () => {
      for (const e of MEMBER_EVENT_TYPES) this.off(e, fn);
    };
  }

  /** Members with the core's detail (state, incarnation, peer id). */
  memberViews(): MemberView[] {
    return this.#core?.members() ?? [];
  }

  localMember(): AgentMemberRow {
    const core = this.#requireCore();
    return memberRow(core.member(core.name)!, core.leaving && !core.leaveDone());
  }

  /** consul force-leave: a failed member becomes left (prune: forgotten). Throws ERR_UNKNOWN_MEMBER. */
  forceLeave(name: string, prune = false): void {
    const core = this.#requireCore();
    core.forceLeave(name, prune, performance.now());
    this.#flush();
  }

  /** Fires a user event to the whole pool; returns its Lamport time. Throws ERR_EVENT_TOO_LARGE. */
  fireEvent(name: string, payload: Uint8Array): number {
    const core = this.#requireCore();
    const ltime = core.fireUserEvent(name, payload, performance.now());
    this.#flush();
    return ltime;
  }

  /** Replaces this member's tags (dc stays the pool's datacenter). Throws ERR_TAGS_TOO_LARGE. */
  setTags(tags: Record<string, string>): void {
    const core = this.#requireCore();
    core.setTags({ ...tags, dc: this.#opts.datacenter }, performance.now());
    this.#flush();
  }

  get peerId(): string {
    return this.#node.peerId.toString();
  }

  /** Multiaddrs this agent listens on (with /p2p/<peerId>). */
  get listenAddrs(): string[] {
    return this.#node.getMultiaddrs().map(String);
  }

  /** "addr:port" other agents can join. */
  get joinAddress(): string {
    const me = this.#requireCore().member(this.#opts.nodeName)!;
    return isIPv6(me.addr) ? `[${me.addr}]:${me.port}` : `${me.addr}:${me.port}`;
  }

  stats(): GossipPoolStats {
    const core = this.#requireCore();
    return {
      ...core.stats, ...this.#counters, healthScore: core.healthScore,
      members: core.members().length, liveMembers: core.liveMembers,
    };
  }

  // ------------------------------------------------------------------ the loop

  #requireCore(): SwimCore {
    if (!this.#core || !this.#running) throw new GossipError('ERR_NOT_RUNNING', 'the gossip pool is not running (start() it first)');
    return this.#core;
  }

  #onTimer(): void {
    const due = this.#armedForMs;
    this.#timer = undefined;
    this.#armedForMs = Infinity;
    if (!this.#running || !this.#core) return;
    const now = performance.now();
    // Node measures a timer from the event loop's cached clock, so it can fire a little before
    // performance.now() reaches the deadline it was armed for. Ticking at the real time would then
    // find nothing due and re-arm for the remaining fraction of a millisecond: a second wake-up for
    // every deadline (half of an idle agent's wake-ups). A timer that fires within TIMER_SLACK_MS
    // of its deadline is on time.
    this.#core.tick(due > now && due - now <= TIMER_SLACK_MS ? due : now);
    this.#flush();
  }

  /** Acts on everything the core produced, then re-arms the timer for its next deadline. */
  #flush(): void {
    const core = this.#core;
    if (!core || !this.#running) return;
    for (const o of core.takeOutputs()) {
      switch (o.kind) {
        case 'send':
          if (o.msg.type === 'pushPull') {
            this.#periodicPushPull(o.to, o.msg);
          } else if (this.#opts.router?.routes(o.to)) {
            // No port check: the member's address is not reachable from here (that is why it is routed).
            this.#sendRouted(o.to, encodeMessage(o.msg));
          } else {
            this.#sendPacket(o.to, encodeMessage(o.msg));
            if (o.msg.type === 'ping') this.#checkPort(o.to, o.msg.seq);
          }
          break;
        case 'publish':
          break; // not asked for (publishLocalUpdates: false)
        case 'event':
          if (o.event.type === 'user') {
            this.#emitSafe('event', { name: o.event.name, payload: o.event.payload, ltime: o.event.ltime });
          } else {
            const m = o.event.member;
            this.#log.info({ member: m.name, addr: `${m.addr}:${m.port}` }, `EventMember${o.event.type.slice(7, 8).toUpperCase()}${o.event.type.slice(8)}`);
            this.#emitSafe(o.event.type as MemberEventType, memberRow(m), m);
          }
          break;
        case 'warn':
          this.#log.warn({ code: o.code }, o.message);
          break;
      }
    }
    this.#arm(core.nextDeadlineMs());
  }

  /** Arms the timer for the core's next deadline; a timer already armed for it is kept (every frame ends in a flush). */
  #arm(due: number): void {
    if (this.#timer && due === this.#armedForMs) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#armedForMs = due;
    const delay = Math.max(0, Math.min(Math.ceil(due - performance.now()), 60_000));
    // The tick runs in setImmediate, after the event loop's I/O phase: when the process was
    // stalled (GC, CPU starvation) and a deadline passed meanwhile, the acks that did arrive are
    // read before the deadline is judged. Node runs expired timers *before* polling sockets, so
    // a tick straight from the timer would blame peers for our own stall. A flush between the
    // timer and its setImmediate may have armed another timer: then that one is the tick.
    const timer = setTimeout(() => setImmediate(() => {
      if (this.#timer === timer) this.#onTimer();
    }), delay);
    timer.unref();
    this.#timer = timer;
  }

  #emitSafe<K extends keyof GossipPoolEvents>(event: K, ...args: GossipPoolEvents[K]): void {
    try {
      (this.emit as (e: K, ...a: GossipPoolEvents[K]) => boolean)(event, ...args);
    } catch (err) {
      // A listener's bug must not stop the protocol loop; it is the listener's to fix.
      this.#log.error({ err, event }, 'gossip event listener threw');
    }
  }

  // ------------------------------------------------------------------ SWIM frames

  /**
   * Checks a packet's claims against the address it came from. A ping or ping-req is answered at
   * that address whatever reply address it names: the pool never sends traffic to a third party
   * on a stranger's word. A message naming a live member but sent from another address is counted
   * and still processed: UDP senders are not authenticated (memberlist does not check at all;
   * -encrypt is what authenticates them), and refusing would cut off members whose packets leave
   * from another address than they advertise (NAT, an advertise address on another interface).
   * Returns the message to process.
   */
  #checkSender(msg: Message, from: DatagramSender): Message {
    const at = (e: { addr: string; port: number }): boolean => plainAddress(e.addr) === from.address && e.port === from.port;
    if ((msg.type === 'ping' || msg.type === 'pingReq') && !at(msg.replyTo)) {
      this.#spoofed(msg, from, `asks for its answer at ${msg.replyTo.addr}:${msg.replyTo.port}; answered at its source instead`);
      return { ...msg, replyTo: { ...msg.replyTo, addr: from.address, port: from.port } };
    }
    const known = this.#core!.member(msg.from);
    // A dead or departed member's name may be taken by a new member (a restart at a new address).
    if (known && (known.state === 'alive' || known.state === 'suspect') && !at(known)) {
      this.#spoofed(msg, from, `claims to be from ${msg.from} (${known.addr}:${known.port})`);
    }
    return msg;
  }

  #spoofed(msg: Message, from: DatagramSender, why: string): void {
    this.#counters.spoofed++;
    this.#logRefused('spoofed', `${from.address}:${from.port}`, `${msg.type} from ${from.address}:${from.port} ${why}`, 'gossip packet from an unexpected address');
  }

  /**
   * A packet the router received (through a mesh gateway, from `peer`, a sender already
   * authenticated by its TLS certificate): processed like a UDP packet, except that its claimed
   * reply address is taken as given (the packet's source is the gateway, and the answer goes back
   * through the router by the member's name anyway).
   */
  ingestPacket(packet: Uint8Array, peer: string): void {
    this.#onDatagram(packet, { address: peer, port: 0 }, true);
  }

  #onDatagram(packet: Uint8Array, from: DatagramSender, routed = false): void {
    const core = this.#core;
    if (!core || !this.#running) return;
    // Another member's port check (#checkPort): it only wants to know that someone listens.
    if (packet.byteLength === 0) return;
    let bytes = packet;
    if (this.#packetKey) {
      try {
        bytes = open(this.#packetKey, packet);
      } catch (err) {
        this.#counters.framesRefused++;
        this.#logRefused('undecryptable', `${from.address}:${from.port}`, (err as Error).message);
        return;
      }
    }
    let msg: Message;
    try {
      msg = decodeMessage(bytes);
    } catch (err) {
      core.recordMalformed();
      this.#logRefused('malformed', `${from.address}:${from.port}`, (err as Error).message);
      return;
    }
    if (msg.type === 'pushPull') {
      this.#counters.framesRefused++;
      this.#logRefused('wrong-protocol', `${from.address}:${from.port}`, 'pushPull message in a packet');
      return;
    }
    core.receive(routed ? msg : this.#checkSender(msg, from), performance.now());
    this.#flush();
  }

  /** Logs refused input sparingly: the 1st, 2nd, 4th, 8th... of each kind (a flood must not flood the log). */
  #refusedLogged = new Map<string, number>();
  #logRefused(kind: string, peer: string, why: string, what = 'gossip message refused'): void {
    const n = (this.#refusedLogged.get(kind) ?? 0) + 1;
    this.#refusedLogged.set(kind, n);
    if ((n & (n - 1)) === 0) this.#log.warn({ peer, kind, count: n }, `${what}: ${why}`);
  }

  /**
   * Alongside each ping, asks the target's host whether anything listens on its port: a killed
   * agent's host answers "port unreachable" within a round trip, and the core then fails the probe
   * at once instead of waiting out the probe timeout (SwimCore.probeRefused). The check lasts as
   * long as the direct probe may.
   */
  #checkPort(to: Endpoint, seq: number): void {
    const waitMs = this.#config.probeTimeoutMs ?? LAN_DEFAULTS.probeTimeoutMs;
    checkPortRefuses(this.#opts.bindAddr, to.addr, to.port, waitMs, () => {
      if (!this.#running || !this.#core) return;
      this.#core.probeRefused(seq, performance.now());
      this.#flush();
    });
  }

  #sendRouted(to: Endpoint, payload: Uint8Array): void {
    const bytes = this.#packetKey ? seal(this.#packetKey, payload) : payload;
    try {
      this.#opts.router!.sendPacket(to, bytes);
    } catch (err) {
      this.#counters.framesDropped++;
      this.#log.debug({ err: (err as Error).message, peer: to.name }, 'routed gossip packet not sent');
    }
  }

  #sendPacket(to: Endpoint, payload: Uint8Array): void {
    const socket = this.#socket;
    const bytes = this.#packetKey ? seal(this.#packetKey, payload) : payload;
    if (!socket || bytes.byteLength > MAX_DATAGRAM_BYTES) {
      this.#counters.framesDropped++;
      return;
    }
    socket.send(bytes, to.addr, to.port, (err) => {
      this.#counters.framesDropped++;
      this.#log.debug({ err: err.message, peer: to.name }, 'gossip packet not sent');
    });
  }

  // ------------------------------------------------------------------ push-pull

  /** The reply of a routed push-pull (the same status byte and message as over libp2p, sealed with -encrypt). */
  #readPushPullReply(sealed: Uint8Array): PushPullMessage {
    let reply = sealed;
    if (this.#packetKey) {
      try {
        reply = open(this.#packetKey, sealed);
      } catch (err) {
        throw new GossipError('ERR_KEY_MISMATCH', `the push-pull reply ${(err as Error).message}`, { cause: err });
      }
    }
    return this.#pushPullReply(reply);
  }

  #pushPullReply(reply: Uint8Array): PushPullMessage {
    if (reply[0] === PP_REFUSED) {
      throw new GossipError('ERR_MEMBER_REFUSED', `refused by the remote member: ${new TextDecoder().decode(reply.subarray(1))}`);
    }
    if (reply[0] !== PP_OK) throw new GossipError('ERR_MALFORMED_MESSAGE', `push-pull reply has unknown status ${reply[0]}`);
    const msg = decodeMessage(reply.subarray(1));
    if (msg.type !== 'pushPull' || !msg.reply) throw new GossipError('ERR_MALFORMED_MESSAGE', `push-pull answered with a ${msg.type} message`);
    return msg;
  }

  /** A push-pull through the router (a member it routes, or a join through it). */
  async #pushPullRouted(to: Endpoint, req: PushPullMessage, timeoutMs: number): Promise<PushPullMessage> {
    const body = encodeMessage(req);
    const sealed = this.#packetKey ? seal(this.#packetKey, body) : body;
    let reply: Uint8Array;
    try {
      reply = await this.#opts.router!.exchange(to, sealed, timeoutMs);
    } catch (err) {
      this.#counters.dialFailures++;
      throw err;
    }
    return this.#readPushPullReply(reply);
  }

  /**
   * Joins through the router: a push-pull with `to` (a name the router understands, e.g. any
   * server of a datacenter). Resolves when the state was merged; rejects like join().
   */
  async joinRouted(to: Endpoint): Promise<void> {
    const core = this.#requireCore();
    if (!this.#opts.router) throw new GossipError('ERR_JOIN_FAILED', 'this pool has no router');
    if (core.leaving) throw new GossipError('ERR_NOT_RUNNING', 'cannot join after leaving the pool');
    const reply = await this.#pushPullRouted(to, core.joinRequest(), this.#opts.joinTimeoutMs ?? 5000);
    core.mergePushPull(reply, performance.now());
    this.#flush();
    this.#log.info({ through: to.name }, 'joined gossip pool');
  }

  /**
   * A push-pull request the router received (authenticated by TLS): the reply to send back, sealed
   * with -encrypt as the request was. Throws (ERR_MALFORMED_MESSAGE) on a request that is not one.
   */
  answerPushPull(request: Uint8Array): Uint8Array {
    const core = this.#requireCore();
    let bytes = request;
    if (this.#packetKey) {
      try {
        bytes = open(this.#packetKey, request);
      } catch (err) {
        this.#counters.framesRefused++;
        throw err;
      }
    }
    let msg: Message;
    try {
      msg = decodeMessage(bytes);
    } catch (err) {
      core.recordMalformed();
      throw err;
    }
    if (msg.type !== 'pushPull' || msg.reply) {
      this.#counters.framesRefused++;
      throw new GossipError('ERR_MALFORMED_MESSAGE', 'expected a push-pull request');
    }
    const out = this.#pushPullAnswer(core, msg);
    return this.#packetKey ? seal(this.#packetKey, out) : out;
  }

  /** The status byte and the reply (or why it was refused) to a push-pull request. */
  #pushPullAnswer(core: SwimCore, msg: PushPullMessage): Uint8Array {
    let out: Uint8Array;
    try {
      const reply = core.answerPushPull(msg, performance.now());
      const body = encodeMessage(reply);
      out = new Uint8Array(body.byteLength + 1);
      out[0] = PP_OK;
      out.set(body, 1);
    } catch (err) {
      this.#log.warn({ from: msg.from, err: (err as Error).message }, 'push-pull refused');
      const why = new TextEncoder().encode((err as Error).message);
      out = new Uint8Array(why.byteLength + 1);
      out[0] = PP_REFUSED;
      out.set(why, 1);
    }
    this.#flush();
    return out;
  }

  async #pushPull(target: Multiaddr, req: PushPullMessage, timeoutMs: number): Promise<PushPullMessage> {
    const signal = AbortSignal.timeout(timeoutMs);
    let stream: SwimStream;
    try {
      stream = await this.#node.dialProtocol(target, PUSH_PULL_PROTOCOL, { signal });
    } catch (err) {
      this.#counters.dialFailures++;
      // With a different pre-shared key (or none) the private network's handshake stalls or the
      // other side cuts it off with garbage in hand; anything but "nobody listens there" during
      // connection setup most likely means that.
      if (!isTimeout(err) && !isUnreachable(err)) {
        throw new GossipError('ERR_KEY_MISMATCH',
          `the connection handshake failed: ${(err as Error).message} (gossip key mismatch?)`, { cause: err });
      }
      throw err;
    }
    try {
      stream.send(frame(encodeMessage(req)));
      return this.#pushPullReply(await readOneFrame(stream, PUSH_PULL_MAX_FRAME_BYTES, signal));
    } finally {
      stream.close().catch(() => { /* the exchange is complete or failed already; closing is best effort */ });
    }
  }

  #periodicPushPull(to: Endpoint, req: PushPullMessage): void {
    const timeoutMs = this.#opts.joinTimeoutMs ?? 5000;
    const exchange = this.#opts.router?.routes(to) ? this.#pushPullRouted(to, req, timeoutMs) : this.#pushPull(endpointAddr(to), req, timeoutMs);
    exchange.then((reply) => {
      if (!this.#running || !this.#core) return;
      try {
        this.#core.mergePushPull(reply, performance.now());
      } catch (err) {
        this.#log.warn({ peer: to.name, err: (err as Error).message }, 'push-pull state refused');
      }
      this.#flush();
    }, (err: unknown) => {
      this.#log.debug({ peer: to.name, err: (err as Error).message }, 'push-pull failed');
    });
  }

  async #servePushPull(stream: SwimStream): Promise<void> {
    const core = this.#core;
    if (!core) return stream.abort(new Error('not running'));
    let msg: Message;
    try {
      msg = decodeMessage(await readOneFrame(stream, PUSH_PULL_MAX_FRAME_BYTES, AbortSignal.timeout(10_000)));
    } catch (err) {
      if (err instanceof GossipError) core.recordMalformed();
      this.#logRefused('push-pull', 'unknown', (err as Error).message);
      stream.abort(err as Error);
      return;
    }
    if (msg.type !== 'pushPull' || msg.reply) {
      this.#counters.framesRefused++;
      stream.abort(new Error('expected a push-pull request'));
      return;
    }
    const out = this.#pushPullAnswer(core, msg);
    try {
      stream.send(frame(out));
      await stream.close();
    } catch (err) {
      this.#log.debug({ err: (err as Error).message }, 'push-pull reply not delivered');
    }
  }
}
