// WAN gossip through mesh gateways (Consul 1.8+'s wanfed transport, agent/consul/wanfed): with
// connect.enable_mesh_gateway_wan_federation the WAN pool's packets and push-pull streams to servers
// of other datacenters do not go to their serf WAN port (UDP, libp2p TCP) but ride TLS connections
// dialled to a mesh gateway, exactly as server RPC does (server/wan.ts): SNI <node>.server.<dc>.<domain>
// (server.<dc>.<domain> to reach any server, for the join through primary_gateways), the server
// certificates of the server port (tls.internal_rpc), and an ALPN protocol saying what the
// connection carries (Consul's agent/pool names):
//
//   consul/wan-gossip/packet   a stream of packets, each a 4-byte big-endian length and the packet
//                              as the pool would send it by UDP (sealed with -encrypt); one pooled
//                              connection per destination member, closed after 2 minutes idle
//   consul/wan-gossip/stream   one push-pull: a framed request (framing.ts), a framed reply
//
// The gateways route these by SNI like any server connection, without terminating TLS. The
// receiving server accepts them on its server RPC port: RpcServer.divert() hands connections whose
// ClientHello offers one of these protocols (helloAlpn below) to WanGossipAcceptor instead of gRPC,
// which terminates TLS (a client certificate from the CA required; with verify_server_hostname a
// server's, server.<dc>.<domain>) and gives the packets and push-pulls to the WAN pool. Members of
// this server's own datacenter are still reached directly (UDP, libp2p), as in Consul.
import net from 'node:net';
import tls from 'node:tls';
import type { Endpoint } from '../gossip/core/types.ts';
import type { GossipPool, GossipRouter } from '../gossip/libp2p/pool.ts';
import { FrameDecoder, frame } from '../gossip/libp2p/framing.ts';
import type { Logger } from '../logger.ts';

export const ALPN_WAN_GOSSIP_PACKET = 'consul/wan-gossip/packet';
export const ALPN_WAN_GOSSIP_STREAM = 'consul/wan-gossip/stream';
export const WAN_GOSSIP_PROTOCOLS = [ALPN_WAN_GOSSIP_PACKET, ALPN_WAN_GOSSIP_STREAM];

/** Consul's wanfed GossipPacketMaxIdleTime. */
const PACKET_CONN_IDLE_MS = 2 * 60_000;
/** Consul's GossipPacketMaxByteSize. */
const MAX_PACKET_BYTES = 4 * 1024 * 1024;
/** A push-pull carries the whole pool (as the pool's own limit). */
const MAX_PUSH_PULL_BYTES = 16 * 1024 * 1024;
/** Packets held while a connection is being set up; more are dropped (UDP semantics). */
const MAX_QUEUED_PACKETS = 64;
/** Bytes waiting in a connection's write buffer beyond which packets are dropped. */
const MAX_BUFFERED_BYTES = 1024 * 1024;
const DIAL_TIMEOUT_MS = 3_000;
/** An accepted gossip connection must complete its TLS handshake and, for a stream, its exchange this fast. */
const SERVE_TIMEOUT_MS = 10_000;

export interface ServerTlsMaterial { ca: string | Buffer; cert: string | Buffer; key: string | Buffer; verifyServerHostname: boolean }

/** "<node>.<dc>" (a WAN member name) split at its last dot; undefined when it has none. */
export function splitWanName(name: string): { node: string; dc: string } | undefined {
  const i = name.lastIndexOf('.');
  if (i <= 0 || i === name.length - 1) return undefined;
  return { node: name.slice(0, i), dc: name.slice(i + 1) };
}

/** The SNI for a server: <node>.server.<dc>.<domain>, or server.<dc>.<domain> for any (node '*' or not a DNS label). */
export function serverSni(node: string, dc: string, domain: string): string {
  const n = node.toLowerCase();
  const d = domain.replace(/\.$/, '').toLowerCase();
  return /^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?$/.test(n) ? `${n}.server.${dc}.${d}` : `server.${dc}.${d}`;
}

export interface WanGossipTransportOptions {
  datacenter: string;
  domain: string;
  tls: ServerTlsMaterial;
  /** Gateway addresses (host:port) to try for `dc`, in order: this datacenter's (LAN), then the target's (WAN). */
  gateways(dc: string): string[];
  /** Dial from this address (the -bind address), unless it is a wildcard. */
  localAddress?: string;
  logger: Logger;
}

function hostPort(a: string): { host: string; port: number } {
  const i = a.lastIndexOf(':');
  return { host: a.slice(0, i).replace(/^\[(.*)\]$/, '$1'), port: Number(a.slice(i + 1)) };
}

interface PacketConn {
  socket: tls.TLSSocket | undefined;
  queue: Buffer[];
  idle: NodeJS.Timeout | undefined;
  closed: boolean;
}

/** The WAN pool's router (GossipRouter): members of other datacenters through mesh gateways. */
export class WanGossipTransport implements GossipRouter {
  readonly #o: WanGossipTransportOptions;
  readonly #log: Logger;
  readonly #packetConns = new Map<string, PacketConn>();
  #stopped = false;
  readonly stats = { packetsSent: 0, packetsDropped: 0, dials: 0, dialFailures: 0, exchanges: 0 };

  constructor(o: WanGossipTransportOptions) {
    this.#o = o;
    this.#log = o.logger.child({ component: 'agent.gossip.wanfed' });
  }

  routes(to: Endpoint): boolean {
    const n = splitWanName(to.name);
    return n !== undefined && n.dc !== this.#o.datacenter;
  }

  sendPacket(to: Endpoint, packet: Uint8Array): void {
    if (this.#stopped) return;
    const n = splitWanName(to.name);
    if (!n) throw new Error(`member name ${JSON.stringify(to.name)} does not encode a datacenter`);
    const framed = Buffer.allocUnsafe(4 + packet.byteLength);
    framed.writeUInt32BE(packet.byteLength, 0);
    framed.set(packet, 4);
    let c = this.#packetConns.get(to.name);
    if (!c) {
      c = { socket: undefined, queue: [], idle: undefined, closed: false };
      this.#packetConns.set(to.name, c);
      const conn = c;
      this.#dial(n.dc, n.node, ALPN_WAN_GOSSIP_PACKET).then((socket) => {
        if (conn.closed || this.#stopped) { socket.destroy(); return; }
        conn.socket = socket;
        socket.on('close', () => this.#dropPacketConn(to.name, conn));
        socket.on('error', (err) => this.#log.debug({ peer: to.name, err: err.message }, 'WAN gossip packet connection broke'));
        // The other side never sends on a packet connection; reading keeps a half-close noticed.
        socket.on('data', () => { /* nothing is expected */ });
        for (const b of conn.queue) socket.write(b);
        this.stats.packetsSent += conn.queue.length;
        conn.queue = [];
        this.#touch(to.name, conn);
      }, (err: Error) => {
        this.stats.packetsDropped += conn.queue.length;
        this.#log.debug({ peer: to.name, err: err.message }, 'WAN gossip packets not sent: no gateway path');
        this.#dropPacketConn(to.name, conn);
      });
    }
    if (!c.socket) {
      if (c.queue.length >= MAX_QUEUED_PACKETS) { this.stats.packetsDropped++; return; }
      c.queue.push(framed);
      return;
    }
    if (c.socket.writableLength > MAX_BUFFERED_BYTES) { this.stats.packetsDropped++; return; }
    c.socket.write(framed);
    this.stats.packetsSent++;
    this.#touch(to.name, c);
  }

  async exchange(to: Endpoint, request: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
    const n = splitWanName(to.name);
    if (!n) throw new Error(`member name ${JSON.stringify(to.name)} does not encode a datacenter`);
    this.stats.exchanges++;
    const deadline = Date.now() + timeoutMs;
    const socket = await this.#dial(n.dc, n.node, ALPN_WAN_GOSSIP_STREAM, timeoutMs);
    try {
      return await new Promise<Uint8Array>((resolve, reject) => {
        const decoder = new FrameDecoder(MAX_PUSH_PULL_BYTES);
        const timer = setTimeout(() => reject(new Error(`no push-pull reply through the gateway within ${timeoutMs} ms`)), Math.max(1, deadline - Date.now()));
        socket.on('data', (chunk: Buffer) => {
          try {
            const frames = decoder.push(chunk);
            if (frames.length > 0) { clearTimeout(timer); resolve(frames[0]!); }
          } catch (err) {
            clearTimeout(timer);
            reject(err as Error);
          }
        });
        socket.on('error', (err) => { clearTimeout(timer); reject(err); });
        socket.on('close', () => { clearTimeout(timer); reject(new Error('the connection closed before the push-pull reply')); });
        socket.write(frame(request));
      });
    } finally {
      socket.end();
      socket.destroySoon();
    }
  }

  stop(): void {
    this.#stopped = true;
    for (const [name, c] of this.#packetConns) {
      c.socket?.destroy();
      this.#dropPacketConn(name, c);
    }
  }

  #touch(name: string, c: PacketConn): void {
    if (c.idle) c.idle.refresh();
    else {
      c.idle = setTimeout(() => { c.socket?.end(); this.#dropPacketConn(name, c); }, PACKET_CONN_IDLE_MS);
      c.idle.unref();
    }
  }

  #dropPacketConn(name: string, c: PacketConn): void {
    c.closed = true;
    if (c.idle) clearTimeout(c.idle);
    c.queue = [];
    if (this.#packetConns.get(name) === c) this.#packetConns.delete(name);
  }

  /**
   * A TLS connection to `node` of `dc` (node '*': any server) through the first gateway that
   * completes the handshake: a gateway that cannot route the name closes the connection at once.
   */
  async #dial(dc: string, node: string, alpn: string, timeoutMs = DIAL_TIMEOUT_MS): Promise<tls.TLSSocket> {
    const gateways = this.#o.gateways(dc);
    if (gateways.length === 0) throw new Error(`no mesh gateway known for datacenter ${dc}`);
    const servername = serverSni(node, dc, this.#o.domain);
    const expect = `server.${dc}.${this.#o.domain.replace(/\.$/, '').toLowerCase()}`;
    const { ca, cert, key, verifyServerHostname } = this.#o.tls;
    const local = this.#o.localAddress && this.#o.localAddress !== '0.0.0.0' && this.#o.localAddress !== '::' ? this.#o.localAddress : undefined;
    const errors: string[] = [];
    for (const gw of gateways) {
      this.stats.dials++;
      const { host, port } = hostPort(gw);
      try {
        return await new Promise<tls.TLSSocket>((resolve, reject) => {
          const socket = tls.connect({
            host, port, servername, ca, cert, key, ALPNProtocols: [alpn],
            ...(local ? { localAddress: local } : {}),
            checkServerIdentity: (_h, peer) => (verifyServerHostname ? tls.checkServerIdentity(expect, peer) : undefined),
          });
          const timer = setTimeout(() => { socket.destroy(); reject(new Error(`${gw}: no TLS handshake within ${Math.min(timeoutMs, DIAL_TIMEOUT_MS)} ms`)); }, Math.min(timeoutMs, DIAL_TIMEOUT_MS));
          const onError = (err: Error): void => { clearTimeout(timer); socket.destroy(); reject(new Error(`${gw}: ${err.message}`)); };
          const onClose = (): void => { clearTimeout(timer); reject(new Error(`${gw}: closed during the TLS handshake (the gateway cannot route ${servername})`)); };
          socket.once('error', onError);
          socket.once('close', onClose);
          socket.once('secureConnect', () => {
            clearTimeout(timer);
            socket.off('error', onError);
            socket.off('close', onClose);
            if (socket.alpnProtocol !== alpn) {
              socket.destroy();
              reject(new Error(`${gw}: the server did not accept ALPN ${alpn}`));
              return;
            }
            resolve(socket);
          });
        });
      } catch (err) {
        this.stats.dialFailures++;
        errors.push((err as Error).message);
      }
    }
    throw new Error(`no gateway path to ${servername}: ${errors.join('; ')}`);
  }
}

/** Does `cert` carry a server name of this domain (server.<dc>.<domain>)? */
function isServerCert(cert: tls.PeerCertificate, domain: string): boolean {
  const d = domain.replace(/\.$/, '').toLowerCase().replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const re = new RegExp(`^server\\.[a-z0-9_-]+\\.${d}$`);
  const names = (cert.subjectaltname ?? '').split(',').map((s) => s.trim()).filter((s) => s.startsWith('DNS:')).map((s) => s.slice(4).toLowerCase());
  return names.some((n) => re.test(n));
}

export interface WanGossipAcceptorOptions {
  tls: ServerTlsMaterial;
  domain: string;
  pool: GossipPool;
  logger: Logger;
}

/** The receiving side: gossip connections diverted from the server RPC port (see the top). */
export class WanGossipAcceptor {
  readonly #o: WanGossipAcceptorOptions;
  readonly #log: Logger;
  readonly #server: tls.Server;
  readonly stats = { packets: 0, pushPulls: 0, refused: 0 };

  constructor(o: WanGossipAcceptorOptions) {
    this.#o = o;
    this.#log = o.logger.child({ component: 'agent.gossip.wanfed' });
    this.#server = tls.createServer({
      ca: o.tls.ca, cert: o.tls.cert, key: o.tls.key, requestCert: true, rejectUnauthorized: true,
      ALPNProtocols: WAN_GOSSIP_PROTOCOLS, handshakeTimeout: SERVE_TIMEOUT_MS,
    }, (s) => this.#serve(s));
    this.#server.on('tlsClientError', (err, s) => {
      this.stats.refused++;
      this.#log.debug({ err: err.message, peer: s.remoteAddress }, 'WAN gossip connection refused during the TLS handshake');
    });
  }

  /** Takes over an accepted connection whose ClientHello offered a WAN gossip protocol. */
  handle(socket: net.Socket): void {
    this.#server.emit('connection', socket);
  }

  #serve(s: tls.TLSSocket): void {
    const peer = `${s.remoteAddress ?? '?'}:${s.remotePort ?? 0}`;
    s.on('error', (err) => this.#log.debug({ peer, err: err.message }, 'WAN gossip connection broke'));
    if (this.#o.tls.verifyServerHostname && !isServerCert(s.getPeerCertificate(), this.#o.domain)) {
      this.stats.refused++;
      this.#log.warn({ peer }, 'WAN gossip connection refused: the client certificate is not a server certificate (server.<dc>.<domain>)');
      s.destroy();
      return;
    }
    if (s.alpnProtocol === ALPN_WAN_GOSSIP_PACKET) this.#servePackets(s, peer);
    else if (s.alpnProtocol === ALPN_WAN_GOSSIP_STREAM) this.#serveStream(s, peer);
    else { this.stats.refused++; s.destroy(); }
  }

  #servePackets(s: tls.TLSSocket, peer: string): void {
    let buf: Buffer = Buffer.alloc(0);
    s.setTimeout(PACKET_CONN_IDLE_MS + 30_000, () => s.destroy());
    s.on('data', (chunk: Buffer) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      while (buf.length >= 4) {
        const len = buf.readUInt32BE(0);
        if (len > MAX_PACKET_BYTES) {
          this.stats.refused++;
          this.#log.warn({ peer, bytes: len }, `WAN gossip packet of ${len} bytes refused (more than ${MAX_PACKET_BYTES}); connection closed`);
          s.destroy();
          return;
        }
        if (buf.length < 4 + len) break;
        const packet = buf.subarray(4, 4 + len);
        buf = buf.subarray(4 + len);
        this.stats.packets++;
        try {
          this.#o.pool.ingestPacket(packet, peer);
        } catch (err) {
          this.#log.debug({ peer, err: (err as Error).message }, 'WAN gossip packet not processed');
        }
      }
    });
    s.on('end', () => s.end());
  }

  #serveStream(s: tls.TLSSocket, peer: string): void {
    const decoder = new FrameDecoder(MAX_PUSH_PULL_BYTES);
    s.setTimeout(SERVE_TIMEOUT_MS, () => s.destroy());
    let done = false;
    s.on('data', (chunk: Buffer) => {
      if (done) return;
      let frames: Uint8Array[];
      try {
        frames = decoder.push(chunk);
      } catch (err) {
        this.stats.refused++;
        this.#log.warn({ peer, err: (err as Error).message }, 'WAN gossip push-pull refused');
        s.destroy();
        return;
      }
      if (frames.length === 0) return;
      done = true;
      this.stats.pushPulls++;
      let reply: Uint8Array;
      try {
        reply = this.#o.pool.answerPushPull(frames[0]!);
      } catch (err) {
        this.stats.refused++;
        this.#log.warn({ peer, err: (err as Error).message }, 'WAN gossip push-pull refused');
        s.destroy();
        return;
      }
      s.end(frame(reply));
    });
  }
}

// ------------------------------------------------------------------ ClientHello ALPN

const HELLO_MAX_BYTES = 16_384;

/**
 * The ALPN protocols a TLS ClientHello offers, from a connection's first bytes: 'more' while the
 * hello is incomplete, 'other' when the bytes are not a ClientHello this can read (the connection
 * then goes where it would have gone anyway: gRPC, which refuses what is not TLS).
 */
export function helloAlpn(buf: Buffer): 'more' | 'other' | string[] {
  // Reassemble the handshake message from consecutive handshake records.
  const hs: Buffer[] = [];
  let hsLen = 0;
  let p = 0;
  let need = -1;
  while (true) {
    if (need >= 0 && hsLen >= need) break;
    if (buf.length < p + 5) return buf.length >= HELLO_MAX_BYTES ? 'other' : 'more';
    if (buf[p] !== 22 || buf[p + 1] !== 3) return 'other';
    const len = buf.readUInt16BE(p + 3);
    if (buf.length < p + 5 + len) return buf.length >= HELLO_MAX_BYTES ? 'other' : 'more';
    hs.push(buf.subarray(p + 5, p + 5 + len));
    hsLen += len;
    p += 5 + len;
    if (need < 0 && hsLen >= 4) {
      const h = Buffer.concat(hs);
      if (h[0] !== 1) return 'other';
      need = 4 + ((h[1]! << 16) | (h[2]! << 8) | h[3]!);
      if (need > HELLO_MAX_BYTES) return 'other';
    }
  }
  const h = Buffer.concat(hs).subarray(4, need);
  let q = 2 + 32;
  if (h.length < q + 1) return 'other';
  q += 1 + h[q]!; // session id
  if (h.length < q + 2) return 'other';
  q += 2 + h.readUInt16BE(q); // cipher suites
  if (h.length < q + 1) return 'other';
  q += 1 + h[q]!; // compression methods
  if (h.length < q + 2) return [];
  const end = Math.min(h.length, q + 2 + h.readUInt16BE(q));
  q += 2;
  while (q + 4 <= end) {
    const type = h.readUInt16BE(q);
    const len = h.readUInt16BE(q + 2);
    q += 4;
    if (q + len > end) return 'other';
    if (type === 16) {
      const out: string[] = [];
      let r = q + 2;
      const listEnd = Math.min(q + len, q + 2 + (len >= 2 ? h.readUInt16BE(q) : 0));
      while (r < listEnd) {
        const l = h[r]!;
        out.push(h.subarray(r + 1, r + 1 + l).toString('latin1'));
        r += 1 + l;
      }
      return out;
    }
    q += len;
  }
  return [];
}
