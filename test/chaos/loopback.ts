// Loopback mode (`npm run chaos -- --net loopback`), for machines that cannot make network
// namespaces (not root, no `ip netns`, no nftables): every agent binds its own loopback address
// (127.X.Y.n, the "real" address) and advertises another one (127.X.Y.100+n, its "front"), where
// this process relays its server RPC/Raft port (8300, TCP) and its serf LAN/WAN ports (8301/8302,
// TCP and UDP). Peers learn each other only by their advertised front addresses (gossip, Raft,
// -retry-join), so all agent-to-agent traffic passes through the relay, and the relay knows each
// link's direction: agents dial and send from their -bind (real) address, so the source address of
// a connection or datagram arriving at X's front names the sender A, and the relay forwards it to X
// from A's front address (TCP: a connection bound to it; UDP: A's front socket on the same port).
// Agents therefore only ever see front addresses, and a reply goes back through the relay too:
//
//   A (127.X.Y.2) --dial/send--> front B (127.X.Y.103) == relay(A->B) ==> B (127.X.Y.3), seen as from front A
//
// The harness reaches each agent's HTTP API on its real address, which no fault touches. Faults
// are the link matrix (the same Grudge as the namespace mode: `grudge[m]` = members whose traffic
// m does not receive), packet loss, delay and jitter, and per-agent "down" (a killed agent's front
// ports are closed, so peers are refused as a dead host's ports refuse them). How each reaches the
// wire is in docs/CHAOS.md ("Loopback mode"):
// - a blocked link drops its UDP datagrams; a TCP connection between two members stops when either
//   direction is blocked (as over IP, where a one-way drop also loses the ACKs). Two styles, the
//   first partition's drawn from the seed and later ones alternating: `drop` stalls existing connections (neither side is read or
//   written until the heal, then they carry on, like TCP over a silent network) and holds new ones
//   unconnected until the heal; `reject` resets existing connections at once (cut) and resets new
//   ones as they arrive (as nft `reject with tcp reset` would).
// - loss: that share of UDP datagrams is dropped; a TCP byte stream cannot lose bytes, so a "lost"
//   chunk is delivered a retransmission timeout (200-400 ms) late instead, in order.
// - delay ± jitter on every datagram and chunk (TCP chunks never overtake each other, as in relay.ts).
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import dgram from 'node:dgram';
import net from 'node:net';
import { Rng } from '../../packages/raft/src/sim/rng.ts';
import { bridgeGroups, oneWayGrudge, partitionGrudge, ringGrudge, type Grudge } from '../support/netns.ts';
import { orderedDue } from './relay.ts';

/** Agent ports relayed: server RPC + Raft, serf LAN, serf WAN (TCP); serf LAN and WAN (UDP). */
export const RELAYED_TCP_PORTS = [8300, 8301, 8302] as const;
export const RELAYED_UDP_PORTS = [8301, 8302] as const;
/** Front address = real address + FRONT_OFFSET in the last octet. */
const FRONT_OFFSET = 100;

export interface LoopbackMember {
  name: string;
  /** Where the agent binds (-bind, -client) and the harness reaches its HTTP API. */
  address: string;
  /** Where peers reach it (-advertise): its front, relayed. */
  advertise: string;
}

export type PartitionStyle = 'drop' | 'reject';

export interface RelayStats {
  tcpAccepted: number;
  /** New connections reset because their link was blocked (reject style). */
  tcpRefused: number;
  /** Existing connections reset when their link was blocked (reject style). */
  tcpCut: number;
  /** Existing connections stalled, and new ones held, while their link was blocked (drop style). */
  tcpStalled: number;
  tcpHeld: number;
  tcpChunks: number;
  /** TCP chunks delivered late as if lost and retransmitted. */
  tcpRetransmitted: number;
  udpForwarded: number;
  /** Datagrams dropped because their link was blocked. */
  udpBlocked: number;
  /** Datagrams dropped by packet loss. */
  udpLost: number;
  /** Traffic from an address that is no member's: refused (an agent dialing from elsewhere than -bind). */
  unknownSource: number;
  /** Blocked (from->to) datagrams and connection attempts, per link, for the report. */
  blockedByLink: Record<string, number>;
}

interface Front {
  tcp: net.Server[];
  udp: Map<number, dgram.Socket>;
}

/** One direction of a relayed TCP connection: chunks leave in order, at their due time, unless stalled. */
class Pipe {
  readonly #q: Array<{ due: number; chunk: Buffer }> = [];
  #timer: NodeJS.Timeout | undefined;
  #lastDue = 0;
  #ended = false;
  private readonly conn: Conn;
  private readonly to: net.Socket;
  constructor(conn: Conn, to: net.Socket) {
    this.conn = conn;
    this.to = to;
  }

  push(chunk: Buffer, waitMs: number): void {
    const due = orderedDue(this.#lastDue, waitMs);
    this.#lastDue = due;
    if (due <= Date.now() && this.#q.length === 0 && !this.conn.stalled) {
      this.to.write(chunk);
      return;
    }
    this.#q.push({ due, chunk });
    this.schedule();
  }

  end(): void {
    this.#ended = true;
    this.schedule();
  }

  schedule(): void {
    if (this.#timer || this.conn.stalled || this.conn.closed) return;
    if (this.#q.length === 0) {
      if (this.#ended) this.to.end();
      return;
    }
    this.#timer = setTimeout(() => this.#flush(), Math.max(0, this.#q[0]!.due - Date.now()));
  }

  #flush(): void {
    this.#timer = undefined;
    if (this.conn.stalled || this.conn.closed) return;
    const now = Date.now();
    while (this.#q.length > 0 && this.#q[0]!.due <= now) this.to.write(this.#q.shift()!.chunk);
    this.schedule();
  }

  clear(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#q.length = 0;
  }
}

/** A relayed TCP connection from member `from` to member `to`'s port. */
class Conn {
  outbound: net.Socket | undefined;
  stalled = false;
  closed = false;
  pipes: Pipe[] = [];
  readonly from: string;
  readonly to: string;
  readonly port: number;
  readonly inbound: net.Socket;
  constructor(from: string, to: string, port: number, inbound: net.Socket) {
    this.from = from;
    this.to = to;
    this.port = port;
    this.inbound = inbound;
  }
}

export class LoopbackNet {
  /** "127.X.Y": real addresses are .2.., fronts .102... */
  readonly subnet: string;
  /** For directory names and messages (the namespace mode's prefix): lo127-X-Y. */
  readonly prefix: string;
  readonly members: LoopbackMember[];
  delayMs = 0;
  jitterMs = 0;
  readonly stats: RelayStats = {
    tcpAccepted: 0, tcpRefused: 0, tcpCut: 0, tcpStalled: 0, tcpHeld: 0, tcpChunks: 0, tcpRetransmitted: 0,
    udpForwarded: 0, udpBlocked: 0, udpLost: 0, unknownSource: 0, blockedByLink: {},
  };
  /** The style of the partition in force (or the last one). */
  style: PartitionStyle = 'drop';
  /** Forces every partition's style (tests); undefined: drawn per partition from the seeded stream. */
  styleOverride: PartitionStyle | undefined;
  readonly #rng: Rng;
  readonly #byReal = new Map<string, LoopbackMember>();
  readonly #fronts = new Map<string, Front>();
  readonly #down = new Set<string>();
  readonly #conns = new Set<Conn>();
  readonly #timers = new Set<NodeJS.Timeout>();
  #grudge: Grudge = new Map();
  #lossPercent = 0;
  #partitions = 0;
  #destroyed = false;

  private constructor(subnet: string, names: string[], rng: Rng) {
    this.subnet = subnet;
    this.prefix = `lo${subnet.replaceAll('.', '-')}`;
    this.#rng = rng;
    this.members = names.map((name, i) => ({ name, address: `${subnet}.${i + 2}`, advertise: `${subnet}.${i + 2 + FRONT_OFFSET}` }));
    for (const m of this.members) this.#byReal.set(m.address, m);
  }

  /** Checks the member names and picks a random 127.X.Y.0/24 (nothing is opened yet). */
  static plan(names: string[], seed: number, subnet?: string): LoopbackNet {
    if (names.length === 0 || names.length > 100) throw new Error(`loopback net: need 1 to 100 members, not ${names.length}`);
    if (new Set(names).size !== names.length) throw new Error('loopback net: member names must be distinct');
    const s = subnet ?? `127.${100 + Math.floor(Math.random() * 150)}.${Math.floor(Math.random() * 256)}`;
    if (!/^127\.\d{1,3}\.\d{1,3}$/.test(s)) throw new Error(`loopback net: subnet ${JSON.stringify(s)} must be the first three octets of a 127.x.y.0/24`);
    // Its own stream: the nemesis's schedule for a seed is the same in both modes.
    return new LoopbackNet(s, names, new Rng(seed).fork('loopback-relay'));
  }

  /** Opens every member's front (TCP listeners and UDP sockets); on failure closes what it opened. */
  async build(): Promise<void> {
    try {
      for (const m of this.members) await this.#openFront(m);
    } catch (err) {
      await this.destroy();
      throw new Error(`loopback net: cannot open the relay's fronts on ${this.subnet}.0/24: ${(err as Error).message}`, { cause: err });
    }
  }

  member(name: string): LoopbackMember {
    const m = this.members.find((x) => x.name === name);
    if (!m) throw new Error(`loopback net: no member ${JSON.stringify(name)} (have ${this.members.map((x) => x.name).join(', ')})`);
    return m;
  }

  address(name: string): string {
    return this.member(name).address;
  }

  /** No namespace to enter: the command runs as a plain child process. */
  spawn(name: string, cmd: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
    this.member(name);
    return spawn(cmd, args, opts);
  }

  // ---------------------------------------------------------------- faults (Netns's interface)

  grudge(): Grudge {
    return new Map([...this.#grudge].map(([k, v]) => [k, new Set(v)]));
  }

  /** Replaces every link block: member m no longer receives from each member in grudge[m]. */
  async setGrudge(grudge: Grudge): Promise<void> {
    for (const [k, v] of grudge) {
      this.member(k);
      for (const x of v) this.member(x);
    }
    const blocking = [...grudge.values()].some((s) => s.size > 0);
    if (blocking && ![...this.#grudge.values()].some((s) => s.size > 0)) {
      // The first partition's style is drawn; later ones alternate, so a run with two partitions has both.
      this.#partitions++;
      const drawn: PartitionStyle = this.#partitions === 1 ? (this.#rng.chance(0.5) ? 'drop' : 'reject') : this.style === 'drop' ? 'reject' : 'drop';
      this.style = this.styleOverride ?? drawn;
    }
    this.#grudge = new Map([...grudge].map(([k, v]) => [k, new Set(v)]));
    this.#applyToConnections();
  }

  partition(groups: string[][]): Promise<void> {
    return this.setGrudge(partitionGrudge(groups));
  }

  dropOneWay(from: string[], to: string[]): Promise<void> {
    return this.setGrudge(oneWayGrudge(from, to));
  }

  isolate(name: string): Promise<void> {
    return this.partition([[name], this.members.map((m) => m.name).filter((n) => n !== name)]);
  }

  ring(names: string[] = this.members.map((m) => m.name)): Promise<void> {
    return this.setGrudge(ringGrudge(names));
  }

  bridge(names: string[] = this.members.map((m) => m.name)): Promise<void> {
    return this.partition(bridgeGroups(names, 'loopback net'));
  }

  async loss(percent: number): Promise<void> {
    if (!(Number.isInteger(percent) && percent >= 0 && percent <= 100)) throw new RangeError(`loopback net: loss must be an integer percentage 0-100, not ${percent}`);
    this.#lossPercent = percent;
  }

  /** Delay and jitter (ms) on every link, both protocols; 0, 0 removes them. */
  async setDelay(delayMs: number, jitterMs: number): Promise<void> {
    if (!(delayMs >= 0 && jitterMs >= 0 && jitterMs <= delayMs)) throw new RangeError(`loopback net: delay ${delayMs} ms ± ${jitterMs} ms: both ≥ 0, jitter ≤ delay`);
    this.delayMs = delayMs;
    this.jitterMs = jitterMs;
  }

  /** Removes every block, loss and delay (stalled connections carry on, held ones connect). */
  async heal(): Promise<void> {
    this.#grudge = new Map();
    this.#lossPercent = 0;
    this.delayMs = 0;
    this.jitterMs = 0;
    this.#applyToConnections();
  }

  /** A killed agent: its front ports close, so peers are refused (TCP RST, ICMP port unreachable) as by a dead host. */
  async down(name: string): Promise<void> {
    this.member(name);
    if (this.#down.has(name)) return;
    this.#down.add(name);
    const f = this.#fronts.get(name);
    this.#fronts.delete(name);
    for (const c of this.#conns) if (c.to === name || c.from === name) this.#close(c, true);
    if (f) await closeFront(f);
  }

  /** Before a killed agent restarts: its front opens again. */
  async up(name: string): Promise<void> {
    if (!this.#down.delete(name)) return;
    await this.#openFront(this.member(name));
  }

  /** Datagrams and connections the blocks have stopped so far (blocked UDP, TCP refused, cut, stalled, held). */
  blockedTotal(): number {
    const s = this.stats;
    return s.udpBlocked + s.tcpRefused + s.tcpCut + s.tcpStalled + s.tcpHeld;
  }

  /** Is from→to blocked (to does not receive from)? */
  blocked(from: string, to: string): boolean {
    return this.#grudge.get(to)?.has(from) ?? false;
  }

  async destroy(): Promise<void> {
    if (this.#destroyed) return;
    this.#destroyed = true;
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    for (const c of this.#conns) this.#close(c, false);
    const fronts = [...this.#fronts.values()];
    this.#fronts.clear();
    await Promise.all(fronts.map(closeFront));
  }

  get destroyed(): boolean {
    return this.#destroyed;
  }

  // ---------------------------------------------------------------- relaying

  async #openFront(m: LoopbackMember): Promise<void> {
    const front: Front = { tcp: [], udp: new Map() };
    this.#fronts.set(m.name, front);
    for (const port of RELAYED_TCP_PORTS) {
      const server = net.createServer((inbound) => this.#accept(m, port, inbound));
      front.tcp.push(server);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ host: m.advertise, port, exclusive: true }, () => { server.off('error', reject); resolve(); });
      });
    }
    for (const port of RELAYED_UDP_PORTS) {
      const socket = dgram.createSocket({ type: 'udp4', reuseAddr: false });
      front.udp.set(port, socket);
      await new Promise<void>((resolve, reject) => {
        socket.once('error', reject);
        socket.bind({ address: m.advertise, port, exclusive: true }, () => { socket.off('error', reject); resolve(); });
      });
      socket.on('error', () => { /* a send to a closed port: the datagram is lost, as UDP may lose any */ });
      socket.on('message', (msg, rinfo) => this.#datagram(m, port, msg, rinfo.address));
    }
  }

  #countBlocked(from: string, to: string): void {
    const k = `${from}->${to}`;
    this.stats.blockedByLink[k] = (this.stats.blockedByLink[k] ?? 0) + 1;
  }

  #datagram(to: LoopbackMember, port: number, msg: Buffer, source: string): void {
    const from = this.#byReal.get(source);
    if (!from) { this.stats.unknownSource++; return; }
    if (this.blocked(from.name, to.name)) { this.stats.udpBlocked++; this.#countBlocked(from.name, to.name); return; }
    if (this.#lossPercent > 0 && this.#rng.int(100) < this.#lossPercent) { this.stats.udpLost++; return; }
    const send = (): void => {
      // Sent from the sender's front socket: the receiver sees it come from the address it knows.
      const out = this.#fronts.get(from.name)?.udp.get(port);
      if (!out || this.#down.has(to.name)) return;
      this.stats.udpForwarded++;
      out.send(msg, port, to.address);
    };
    const wait = this.#linkDelay();
    if (wait <= 0) { send(); return; }
    const t = setTimeout(() => { this.#timers.delete(t); send(); }, wait);
    this.#timers.add(t);
  }

  #linkDelay(): number {
    if (this.delayMs <= 0 && this.jitterMs <= 0) return 0;
    return Math.max(0, this.delayMs + (this.jitterMs > 0 ? (this.#rng.float() * 2 - 1) * this.jitterMs : 0));
  }

  #accept(to: LoopbackMember, port: number, inbound: net.Socket): void {
    const from = this.#byReal.get(inbound.remoteAddress?.replace(/^::ffff:/, '') ?? '');
    inbound.on('error', () => { /* closed below */ });
    if (!from) { this.stats.unknownSource++; inbound.resetAndDestroy(); return; }
    this.stats.tcpAccepted++;
    const c = new Conn(from.name, to.name, port, inbound);
    this.#conns.add(c);
    inbound.on('close', () => this.#close(c, false));
    if (this.#connBlocked(c)) {
      this.#countBlocked(from.name, to.name);
      if (this.style === 'reject') {
        this.stats.tcpRefused++;
        this.#close(c, true);
        return;
      }
      // drop: held unconnected (the dialer's data waits in the socket) until the link heals.
      this.stats.tcpHeld++;
      c.stalled = true;
      inbound.pause();
      return;
    }
    this.#connect(c);
  }

  #connBlocked(c: Conn): boolean {
    return this.blocked(c.from, c.to) || this.blocked(c.to, c.from);
  }

  #connect(c: Conn): void {
    const from = this.member(c.from);
    const to = this.member(c.to);
    // From the dialer's front address: the receiver sees the address it knows the dialer by.
    const outbound = net.connect({ host: to.address, port: c.port, localAddress: from.advertise });
    c.outbound = outbound;
    outbound.setNoDelay(true);
    c.inbound.setNoDelay(true);
    outbound.on('error', () => this.#close(c, true));
    outbound.on('close', () => this.#close(c, false));
    const pipe = (src: net.Socket, dst: net.Socket): Pipe => {
      const p = new Pipe(c, dst);
      src.on('data', (chunk: Buffer) => {
        this.stats.tcpChunks++;
        let wait = this.#linkDelay();
        if (this.#lossPercent > 0 && this.#rng.int(100) < this.#lossPercent) {
          this.stats.tcpRetransmitted++;
          wait += 200 + this.#rng.int(200);
        }
        p.push(chunk, wait);
      });
      src.on('end', () => p.end());
      return p;
    };
    c.pipes = [pipe(c.inbound, outbound), pipe(outbound, c.inbound)];
    c.stalled = false;
    c.inbound.resume();
  }

  /** After a fault change: block, stall, cut or release every relayed connection. */
  #applyToConnections(): void {
    for (const c of [...this.#conns]) {
      if (c.closed) continue;
      if (this.#connBlocked(c)) {
        if (this.style === 'reject') {
          this.stats.tcpCut++;
          this.#close(c, true);
        } else if (!c.stalled) {
          this.stats.tcpStalled++;
          c.stalled = true;
          c.inbound.pause();
          c.outbound?.pause();
        }
      } else if (c.stalled) {
        if (!c.outbound) {
          this.#connect(c);
        } else {
          c.stalled = false;
          c.inbound.resume();
          c.outbound.resume();
          for (const p of c.pipes) p.schedule();
        }
      }
    }
  }

  #close(c: Conn, reset: boolean): void {
    if (c.closed) return;
    c.closed = true;
    this.#conns.delete(c);
    for (const p of c.pipes) p.clear();
    for (const s of [c.inbound, c.outbound]) {
      if (!s || s.destroyed) continue;
      if (reset) s.resetAndDestroy();
      else s.destroy();
    }
  }
}

async function closeFront(f: Front): Promise<void> {
  await Promise.all([
    ...f.tcp.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))),
    ...[...f.udp.values()].map((s) => new Promise<void>((resolve) => { try { s.close(() => resolve()); } catch { resolve(); } })),
  ]);
}
