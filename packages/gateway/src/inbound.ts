// The public listener: where other services' sidecars connect. Every connection must present a
// client certificate that chains to one of the CA's roots (OpenSSL checks the chain during the
// handshake: requestCert + rejectUnauthorized) and names a service by its SPIFFE URI SAN; the agent
// then says whether an intention allows that service to reach ours (POST
// /v1/agent/connect/authorize, Consul's connect/proxy/listener.go + connect/service.go). Allowed
// connections are piped to the local app.
//
// A caller may resume a TLS session (tlsMaterial.ts issues tickets); a resumed connection is
// decided exactly like a full handshake: the caller's certificate comes back from the session (the
// one verified when it was made, under the same leaf and roots: tickets do not outlive a
// rotation), and the intention check runs for every connection.

import net from 'node:net';
import tls from 'node:tls';
import type { AgentApi } from './agentApi.ts';
import { bytesMoved, IdleGc } from './idleGc.ts';
import type { Logger } from './log.ts';
import { M, type Metrics } from './metrics.ts';
import { join, track } from './pipe.ts';
import { parseServiceUri, uriSans } from './spiffe.ts';
import type { L7Inbound } from './l7Inbound.ts';
import type { TlsMaterial, TlsSnapshot } from './tlsMaterial.ts';
import type { AuthorizeResult } from './types.ts';

/** Consul's connect.HexString: the serial as lower-case hex byte pairs joined by colons. */
export function serialHex(nodeSerial: string): string {
  const hex = nodeSerial.toLowerCase().replace(/[^0-9a-f]/g, '');
  const even = hex.length % 2 ? `0${hex}` : hex;
  return even.match(/../g)?.join(':') ?? '';
}

/**
 * Intention decisions for a short while. The agent answers from its own cache, so this only saves
 * the loopback round trip for bursts of connections from one caller; kept well under the 2 s in
 * which a new deny must refuse new connections.
 */
export class AuthorizeCache {
  private readonly entries = new Map<string, { result: AuthorizeResult; expires: number }>();
  private readonly ttlMs: number;
  private readonly now: () => number;
  constructor(ttlMs: number, now: () => number = Date.now) {
    this.ttlMs = ttlMs;
    this.now = now;
  }
  get(uri: string): AuthorizeResult | undefined {
    const e = this.entries.get(uri);
    if (!e) return undefined;
    if (e.expires <= this.now()) { this.entries.delete(uri); return undefined; }
    return e.result;
  }
  /** Milliseconds until the decision for `uri` expires; 0 when there is none. */
  left(uri: string): number {
    const e = this.entries.get(uri);
    return e ? Math.max(0, e.expires - this.now()) : 0;
  }
  get ttl(): number { return this.ttlMs; }
  set(uri: string, result: AuthorizeResult): void {
    if (this.entries.size > 1000) this.entries.clear(); // bounded: a cache, not a record
    this.entries.set(uri, { result, expires: this.now() + this.ttlMs });
  }
}

export interface InboundOptions {
  api: AgentApi;
  tls: TlsMaterial;
  metrics: Metrics;
  logger: Logger;
  /** The destination service intentions are checked against (Proxy.DestinationServiceName). */
  target: () => string;
  /** Where the local app listens, read for each connection (config changes apply to new ones). */
  localApp: () => { host: string; port: number };
  authorizeCacheMs?: number;
  /** The HTTP mode, when the service's protocol is HTTP (read per connection): requests are decided one by one. */
  l7?: () => L7Inbound | undefined;
}

export class InboundListener {
  private server: tls.Server | undefined;
  private readonly sockets = new Set<net.Socket>();
  /** As the upstream listener's: one collection once connections stop coming and bytes stop moving. */
  private readonly idleGc = new IdleGc(undefined, undefined, bytesMoved(this.sockets));
  private readonly cache: AuthorizeCache;
  private readonly unsubscribe: () => void;

  private readonly opts: InboundOptions;

  constructor(opts: InboundOptions) {
    this.opts = opts;
    this.cache = new AuthorizeCache(opts.authorizeCacheMs ?? 1000);
    this.unsubscribe = opts.tls.onRotate((s) => this.rotate(s));
  }

  async listen(host: string, port: number): Promise<net.AddressInfo> {
    const snap = this.opts.tls.snapshot;
    if (!snap) throw new Error('inbound listener: no certificates yet');
    const server = tls.createServer({ ...snap.serverOptions, requestCert: true, rejectUnauthorized: true, allowHalfOpen: true, noDelay: true,
      // h2 for callers that offer it (http2/grpc upstreams; served in HTTP/2 by the L7 mode), else
      // http/1.1; a caller offering no ALPN (L4 pipes, HTTP/1.1 pools) is unaffected.
      ALPNProtocols: ['h2', 'http/1.1'],
      // A caller that does not finish its handshake does not hold a socket for Node's default 120 s.
      handshakeTimeout: 10_000 });
    server.on('connection', (raw: net.Socket) => { this.idleGc.touch(); this.sockets.add(raw); raw.once('close', () => this.sockets.delete(raw)); });
    server.on('secureConnection', (socket) => this.accept(socket));
    server.on('tlsClientError', (err, socket) => {
      this.opts.metrics.add(M.handshakeFailures[0], M.handshakeFailures[1], { direction: 'inbound' });
      this.opts.logger.debug('TLS handshake failed', { remote: `${socket.remoteAddress}:${socket.remotePort}`, error: err });
      socket.destroy();
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => { server.off('error', reject); resolve(); });
    });
    this.server = server;
    const addr = server.address() as net.AddressInfo;
    this.opts.logger.info('public listener started', { address: `${addr.address}:${addr.port}` });
    return addr;
  }

  address(): net.AddressInfo | undefined {
    return (this.server?.address() as net.AddressInfo | null) ?? undefined;
  }

  /**
   * New handshakes use the new leaf and roots; connections already made are not touched. The
   * snapshot's new ticket keys come with its options (setSecureContext keeps `ticketKeys`), so no
   * session made before the rotation is resumed after it.
   */
  private rotate(s: TlsSnapshot): void {
    this.server?.setSecureContext({ ...s.serverOptions });
    this.opts.logger.info('certificates rotated', { serial: s.leaf.SerialNumber });
  }

  private accept(socket: tls.TLSSocket): void {
    const { metrics, logger } = this.opts;
    track(socket, metrics, 'inbound');
    socket.on('error', () => socket.destroy());
    // The X509Certificate form: getPeerCertificate() builds an object of every field with three
    // fingerprints, several times the cost of the two fields read here (measured per connection).
    const cert = socket.getPeerX509Certificate();
    const uris = uriSans(cert?.subjectAltName);
    if (uris.length !== 1) {
      // Consul's proxy: a connect certificate carries exactly one URI SAN.
      metrics.add(M.handshakeFailures[0], M.handshakeFailures[1], { direction: 'inbound' });
      logger.warn('client certificate has no single URI SAN, closing', { remote: socket.remoteAddress, uris });
      socket.destroy();
      return;
    }
    const uri = uris[0]!;
    const l7 = this.opts.l7?.();
    if (l7) {
      // L7 intentions decide per request; a caller no intention names gets the L4 answer there.
      l7.accept(socket, { uri, service: parseServiceUri(uri)?.service ?? '', serial: serialHex(cert!.serialNumber) });
      return;
    }
    // Nothing is read from the caller until the decision: bytes wait in the socket's buffer.
    socket.pause();
    void this.authorize(uri, serialHex(cert!.serialNumber)).then((res) => {
      if (socket.destroyed) return;
      if (!res.Authorized) {
        metrics.add(M.denials[0], M.denials[1], {});
        logger.info('connection denied', { source: uri, reason: res.Reason });
        socket.destroy();
        return;
      }
      const app = this.opts.localApp();
      const local = net.connect({ host: app.host, port: app.port, allowHalfOpen: true });
      local.on('error', (err) => logger.warn('local app connection failed', { address: `${app.host}:${app.port}`, error: err }));
      join(socket, local, metrics, 'inbound');
    });
  }

  /** The agent's answers being fetched, per caller URI: callers arriving meanwhile wait for the same one. */
  private readonly asking = new Map<string, Promise<AuthorizeResult>>();

  /**
   * The agent's decision for a caller (cached for authorizeCacheMs). The L7 inbound asks per request
   * for callers no intention names: in the last half of the cache's life the answer is fetched again
   * in the background while the cached one is used, so under steady traffic no request waits for the
   * agent (before: once a TTL per caller, every request arriving during the POST sent its own and
   * waited for it, a burst of slow requests in the L7 path's tail). An expired decision is never
   * used: fail closed as before.
   */
  async authorize(uri: string, serial: string): Promise<AuthorizeResult> {
    const cached = this.cache.get(uri);
    if (cached) {
      if (this.cache.left(uri) * 2 < this.cache.ttl && !this.asking.has(uri)) void this.ask(uri, serial);
      return cached;
    }
    return this.ask(uri, serial);
  }

  private ask(uri: string, serial: string): Promise<AuthorizeResult> {
    let p = this.asking.get(uri);
    if (p) return p;
    p = this.askAgent(uri, serial).finally(() => { this.asking.delete(uri); });
    this.asking.set(uri, p);
    return p;
  }

  private async askAgent(uri: string, serial: string): Promise<AuthorizeResult> {
    try {
      const res = await this.opts.api.post<AuthorizeResult>('/v1/agent/connect/authorize', { Target: this.opts.target(), ClientCertURI: uri, ClientCertSerial: serial });
      const result = { Authorized: res.body.Authorized === true, Reason: String(res.body.Reason ?? '') };
      this.cache.set(uri, result);
      return result;
    } catch (err) {
      // Fail closed: without the agent's word a connection is not allowed (and not cached).
      this.opts.logger.error('authorize failed, denying', { source: uri, error: err as Error });
      return { Authorized: false, Reason: `authorize failed: ${(err as Error).message}` };
    }
  }

  async close(): Promise<void> {
    this.idleGc.stop();
    this.unsubscribe();
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    const closed = new Promise<void>((r) => s.close(() => r()));
    for (const raw of this.sockets) raw.destroy();
    await closed;
  }
}
