// One local listener per upstream (Proxy.Upstreams[]): the app connects to
// LocalBindAddress:LocalBindPort in plain TCP; the proxy picks a healthy instance of the
// destination's sidecar (GET /v1/health/connect/<dest>?passing, watched), connects to it with mTLS
// presenting our leaf, names the target by SNI, and refuses the server unless its certificate's
// SPIFFE ID is the destination service (Consul's connect/proxy/upstream.go and connect/tls.go's
// server identity check). Then bytes are piped. Reconnects to the same instance resume the TLS
// session (tlsSessions.ts), the server's identity checked again on the resumed one.

import net from 'node:net';
import tls from 'node:tls';
import { watch, type AgentApi } from './agentApi.ts';
import { bytesMoved, IdleGc } from './idleGc.ts';
import type { Logger } from './log.ts';
import { M, type Metrics } from './metrics.ts';
import { join, track } from './pipe.ts';
import { parseServiceUri, upstreamSni, uriSans } from './spiffe.ts';
import type { TlsMaterial } from './tlsMaterial.ts';
import { checkResumedServer, sessionKey, TlsSessionCache } from './tlsSessions.ts';
import type { ServiceEntry, Upstream } from './types.ts';
import type { CompiledDiscoveryChain } from './chainTypes.ts';
import { gatewayAddress, gatewayRoute, resolveMeshGatewayMode, startTarget } from './meshGatewayMode.ts';

export interface Instance { host: string; port: number }

/** Where to reach a proxy instance: the service's address, else its node's (Consul's rule). */
export function instanceAddress(e: ServiceEntry): Instance {
  return { host: e.Service.Address || e.Node.Address, port: e.Service.Port };
}

/**
 * Checks the server's certificate names `expected` (service, namespace and trust domain; the
 * datacenter may differ, as in Consul, so failover to another datacenter's instance still
 * verifies). Returns an Error to refuse, as tls.connect's checkServerIdentity wants.
 */
export function checkServerSpiffe(cert: tls.PeerCertificate, expected: { service: string; trustDomain: string; namespace?: string }): Error | undefined {
  const uris = uriSans(cert.subjectaltname);
  const ids = uris.map(parseServiceUri);
  const ok = ids.length === 1 && ids[0] !== undefined && ids[0].service === expected.service &&
    ids[0].namespace === (expected.namespace ?? 'default') && ids[0].trustDomain === expected.trustDomain.toLowerCase();
  if (ok) return undefined;
  const err = new Error(`peer certificate does not identify service ${JSON.stringify(expected.service)} in trust domain ${expected.trustDomain}: URI SANs ${JSON.stringify(uris)}`);
  (err as Error & { code: string }).code = 'ERR_TLS_CERT_ALTNAME_INVALID';
  return err;
}

export interface UpstreamOptions {
  api: AgentApi;
  tls: TlsMaterial;
  metrics: Metrics;
  logger: Logger;
  upstream: Upstream;
  /** The upstream's compiled chain as last read (its target's MeshGateway mode). */
  chain?: () => CompiledDiscoveryChain | undefined;
  /** The proxy registration's MeshGateway (between the upstream's own and the chain's in precedence). */
  proxyMeshGateway?: () => { Mode?: string } | null | undefined;
}

/** What a connection dials: the target's instances, or gateways in front of them. */
type Via = 'direct' | 'local-gateway' | 'remote-gateway';

/** One watched list of addresses (health endpoint, blocking). */
interface Source { instances: Instance[]; first: Promise<void>; stop: AbortController }

export class UpstreamListener {
  readonly kind = 'tcp' as const;
  private server: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();
  /** After a burst of connections (each one's TLS objects), V8 keeps the heap it grew to: collect once traffic stops. */
  private readonly idleGc = new IdleGc(undefined, undefined, bytesMoved(this.sockets));
  private readonly sources = new Map<Via, Source>();
  private next = 0;
  private readonly stopWatch = new AbortController();
  /** TLS sessions per instance and SNI, so reconnects resume instead of a full handshake. */
  private readonly sessions: TlsSessionCache;
  /** Upstream Config.connect_timeout_ms (Consul's name for Envoy's), default 5 s. */
  private readonly connectTimeoutMs: number;

  private readonly opts: UpstreamOptions;

  constructor(opts: UpstreamOptions) {
    this.opts = opts;
    const u = opts.upstream;
    const t = Number(u.Config?.['connect_timeout_ms']);
    this.connectTimeoutMs = Number.isFinite(t) && t > 0 ? t : 5000;
    this.sessions = new TlsSessionCache(opts.tls);
    this.source(this.via());
  }

  /** The mode and the way it implies for this upstream now (the chain may change the mode). */
  private via(): Via {
    const u = this.opts.upstream;
    const mode = resolveMeshGatewayMode(u.MeshGateway, this.opts.proxyMeshGateway?.(), startTarget(this.opts.chain?.())?.MeshGateway);
    const r = gatewayRoute(u.Datacenter, this.opts.tls.snapshot?.identity.datacenter, mode);
    return r === undefined ? 'direct' : r.side === 'lan' ? 'local-gateway' : 'remote-gateway';
  }

  /** Starts (once) the watch of what `via` dials: the destination's sidecars or a datacenter's mesh gateways. */
  private source(via: Via): Source {
    const have = this.sources.get(via);
    if (have) return have;
    const u = this.opts.upstream;
    let path: string;
    let address: (e: ServiceEntry) => Instance;
    if (via === 'direct') {
      const q = new URLSearchParams({ passing: '1' });
      if (u.Datacenter) q.set('dc', u.Datacenter);
      path = `/v1/health/connect/${encodeURIComponent(u.DestinationName)}?${q.toString()}`;
      address = instanceAddress;
    } else {
      const r = gatewayRoute(u.Datacenter, this.opts.tls.snapshot?.identity.datacenter, via === 'local-gateway' ? 'local' : 'remote')!;
      path = r.path;
      address = (e) => gatewayAddress(e, r.side);
    }
    let resolveFirst!: () => void;
    const src: Source = { instances: [], first: new Promise((r) => { resolveFirst = r; }), stop: new AbortController() };
    this.sources.set(via, src);
    void watch<ServiceEntry[] | null>({
      api: this.opts.api, path, logger: this.opts.logger,
      signal: AbortSignal.any([this.stopWatch.signal, src.stop.signal]),
      onChange: (entries) => {
        src.instances = (entries ?? []).map(address);
        this.opts.logger.debug('upstream instances', { upstream: u.DestinationName, via, instances: src.instances.map((i) => `${i.host}:${i.port}`) });
        resolveFirst();
      },
    });
    return src;
  }

  /** What the next connection dials, starting its watch if the way changed. */
  private get instances(): Instance[] {
    return this.source(this.via()).instances;
  }

  get key(): string {
    return upstreamKey(this.opts.upstream);
  }

  /** Resolves once the first health answer arrived (or after `ms`, whichever is first). */
  healthKnown(ms: number): Promise<void> {
    return Promise.race([this.source(this.via()).first, new Promise<void>((r) => setTimeout(r, ms).unref())]);
  }

  async listen(): Promise<net.AddressInfo> {
    const u = this.opts.upstream;
    const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => this.accept(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(u.LocalBindPort, u.LocalBindAddress || '127.0.0.1', () => { server.off('error', reject); resolve(); });
    });
    this.server = server;
    const addr = server.address() as net.AddressInfo;
    this.opts.logger.info('upstream listener started', { upstream: u.DestinationName, address: `${addr.address}:${addr.port}` });
    return addr;
  }

  address(): net.AddressInfo | undefined {
    return (this.server?.address() as net.AddressInfo | null) ?? undefined;
  }

  private pick(): Instance | undefined {
    if (this.instances.length === 0) return undefined;
    const i = this.instances[this.next % this.instances.length]!;
    this.next = (this.next + 1) % 1_000_000;
    return i;
  }

  private accept(socket: net.Socket): void {
    this.idleGc.touch();
    const { metrics, logger, upstream: u } = this.opts;
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    track(socket, metrics, 'upstream');
    socket.on('error', () => socket.destroy());
    if (!this.opts.tls.snapshot || this.instances.length === 0) {
      metrics.add(M.dialFailures[0], M.dialFailures[1], { upstream: u.DestinationName });
      logger.warn(this.opts.tls.snapshot ? 'no healthy instance of upstream' : 'no certificates yet', { upstream: u.DestinationName });
      socket.destroy();
      return;
    }
    socket.pause();
    // An instance that refuses or does not answer the TCP connection is skipped for the next one
    // (each at most once): health checks lag behind a proxy that just stopped. A TLS failure is
    // not retried elsewhere: it means a wrong identity or CA, which another instance will not fix.
    this.dial(socket, this.instances.length);
  }

  private dial(socket: net.Socket, attemptsLeft: number): void {
    const { metrics, logger, upstream: u } = this.opts;
    const snap = this.opts.tls.snapshot!;
    const inst = this.pick();
    if (!inst || socket.destroyed) { socket.destroy(); return; }
    const dc = u.Datacenter || snap.identity.datacenter;
    const td = snap.roots.TrustDomain || snap.identity.trustDomain;
    const instKey = `${inst.host}:${inst.port}`;
    const sni = upstreamSni(u.DestinationName, dc, td);
    const sessKey = sessionKey(inst.host, inst.port, sni);
    const checkIdentity = (cert: tls.PeerCertificate) => checkServerSpiffe(cert, { service: u.DestinationName, trustDomain: td });
    const offered = this.sessions.get(sessKey);
    const conn = tls.connect({
      host: inst.host,
      port: inst.port,
      servername: sni,
      secureContext: snap.clientContext,
      rejectUnauthorized: true,
      checkServerIdentity: (_host, cert) => checkIdentity(cert),
      session: offered?.session,
    });
    conn.setTimeout(this.connectTimeoutMs, () => conn.destroy(Object.assign(new Error(`no TLS connection to ${instKey} within ${this.connectTimeoutMs} ms`), { code: 'ETIMEDOUT' })));
    this.sessions.track(conn, sessKey, snap.generation, offered);
    const onHandshakeError = (err: Error) => {
      this.sessions.forget(sessKey);
      conn.destroy();
      const code = String((err as NodeJS.ErrnoException).code ?? '');
      const network = /^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH)$/.test(code);
      if (!network) metrics.add(M.handshakeFailures[0], M.handshakeFailures[1], { direction: 'upstream' });
      else metrics.add(M.dialFailures[0], M.dialFailures[1], { upstream: u.DestinationName });
      logger.warn('upstream connection failed', { upstream: u.DestinationName, instance: instKey, error: err });
      if (network && code !== 'ECONNRESET' && attemptsLeft > 1) { this.dial(socket, attemptsLeft - 1); return; }
      socket.destroy();
    };
    conn.once('error', onHandshakeError);
    conn.once('secureConnect', () => {
      const wrongServer = checkResumedServer(conn, offered, checkIdentity);
      if (wrongServer) { onHandshakeError(wrongServer); return; }
      conn.off('error', onHandshakeError);
      conn.setTimeout(0);
      if (conn.isSessionReused()) metrics.add(M.resumed[0], M.resumed[1], { upstream: u.DestinationName });
      join(socket, conn, metrics, 'upstream');
    });
  }

  async close(): Promise<void> {
    this.idleGc.stop();
    this.stopWatch.abort();
    this.sessions.close();
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    const closed = new Promise<void>((r) => s.close(() => r()));
    for (const sock of this.sockets) sock.destroy();
    await closed;
  }
}

export function upstreamKey(u: Upstream): string {
  return `${u.DestinationName}/${u.Datacenter ?? ''}@${u.LocalBindAddress || '127.0.0.1'}:${u.LocalBindPort}`;
}
