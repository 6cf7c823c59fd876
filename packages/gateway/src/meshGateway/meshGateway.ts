// The mesh gateway (Consul's `consul connect envoy -gateway=mesh`): accepts TCP connections,
// reads the SNI of the TLS ClientHello without terminating TLS, and forwards the raw bytes:
//   a name of its own datacenter  -> a healthy instance of that target's sidecar (LAN)
//   a name of another datacenter  -> a healthy mesh gateway of that datacenter (its WAN address)
// and, started with exposeServers (Consul's -expose-servers: registered with service meta
// consul-wan-federation=1) on an agent that runs with connect.enable_mesh_gateway_wan_federation
// (servers federating through the gateways, Consul 1.8+), the server names of sniNames.ts:
//   server.<own dc>.<domain>, <node>.server.<own dc>.<domain>  -> a healthy server's RPC port
//   server.<other dc>.<domain>, <node>.server.<other dc>...    -> that datacenter's gateway (WAN)
// Server RPC is TLS end to end between the servers, as service traffic is between sidecars.
// The TLS session stays between the two sidecars: the gateway holds no leaf certificate and never
// asks the agent for one; it reads only the trust domain (CA roots) and the catalog.
//
// Anything it cannot route (no TLS, no SNI, a malformed or oversized ClientHello, a name of another
// trust domain or of nothing it knows, a sender too slow to finish its ClientHello) is closed at
// once, counted by cause, and logged at most once per cause per minute: a flood of bad input costs
// one socket each and no log storm, and never touches other connections.

import net from 'node:net';
import { AgentApi, watch } from '../agentApi.ts';
import { silentLogger, type Logger } from '../log.ts';
import { Metrics, serveMetrics } from '../metrics.ts';
import type { CARoots } from '../types.ts';
import type { Instance } from '../upstream.ts';
import { CatalogView } from './catalogView.ts';
import { ClientHelloPeeker, DEFAULT_MAX_HELLO_BYTES } from './clientHello.ts';
import { parseMeshSni, parseServerSni, targetId } from './sniNames.ts';
import { chooseTransport, type GwConn, type GwListener } from './transport.ts';

/** Metric names (one place, so tests and dashboards agree). */
export const GW = {
  accepted: ['consul_mesh_gateway_accepted_total', 'Connections accepted, routed or not.'],
  conns: ['consul_mesh_gateway_conns_total', 'Connections forwarded, by target (local: a service target ID; remote: the datacenter) and route (local|remote|server: a server of this datacenter, target server.<dc> or <node>.server.<dc>).'],
  active: ['consul_mesh_gateway_conns', 'Forwarded connections open now, by target and route.'],
  rx: ['consul_mesh_gateway_rx_bytes_total', 'Bytes received from the caller, by target and route; counted when a connection closes.'],
  tx: ['consul_mesh_gateway_tx_bytes_total', 'Bytes sent to the caller, by target and route; counted when a connection closes.'],
  refused: ['consul_mesh_gateway_refused_total', 'Connections closed without forwarding, by cause (not_tls, malformed, no_sni, too_large, timeout, wrong_trust_domain, unknown_name, unknown_service, unknown_subset, unknown_datacenter, no_healthy_instance, not_ready, dial_failed, closed_early; no_data: closed without sending a byte, such as a TCP health check).'],
  dialFailures: ['consul_mesh_gateway_dial_failures_total', 'Connections to a chosen instance or gateway that failed, by target.'],
} as const satisfies Record<string, readonly [string, string]>;

export interface MeshGatewayOptions {
  /** The agent's HTTP API (host:port or http://host:port). */
  httpAddr: string;
  token?: string;
  logger?: Logger;
  /** Where to listen (host:port); the LAN address. */
  address: string;
  /** The WAN address other datacenters' gateways reach (registered; also listened on when it differs and is local). */
  wanAddress?: string;
  /** Register the gateway with the local agent (Consul's -register). */
  register?: boolean;
  /** Service name (Consul's -service, default mesh-gateway) and ID (-proxy-id, default the name). */
  service?: string;
  serviceId?: string;
  /** Consul's -deregister-after-critical (default 6h). */
  deregisterAfterCritical?: string;
  metricsAddr?: string;
  /** How long a connection may take to send its whole ClientHello (default 10 s). */
  helloTimeoutMs?: number;
  /** Cap on a ClientHello's size (default 16 KB). */
  maxHelloBytes?: number;
  /** TCP connect timeout to an instance or gateway (default 5 s). */
  connectTimeoutMs?: number;
  /**
   * The datacenter whose names are "local"; default the agent's. Set only to stand a gateway in for
   * another datacenter on one agent (tests), since the names it serves must then be that dc's.
   */
  datacenter?: string;
  /** Remote gateways given by hand (dc -> host:port list), instead of asking the agent with ?dc=. */
  staticRemotes?: Record<string, string[]>;
  /**
   * Consul's -expose-servers: register with service meta consul-wan-federation=1 (servers use only
   * such gateways) and route server names (server.<dc>.<domain>, <node>.server.<dc>.<domain>) when
   * the agent runs with connect.enable_mesh_gateway_wan_federation (GET /v1/agent/self), as
   * Consul's mesh gateways expose servers only then.
   */
  exposeServers?: boolean;
  /** The DNS domain of server names; default the agent's (DNSDomain), else consul. */
  domain?: string;
  /**
   * How connections are held (transport.ts): `raw` (libuv handles, the default where Node's
   * bindings are what it expects) or `net` (net.Socket); default TRELLIS_GATEWAY_TRANSPORT, else raw.
   */
  transport?: 'raw' | 'net';
}

export interface MeshGateway {
  readonly serviceId: string;
  readonly datacenter: string;
  readonly metrics: Metrics;
  /** The transport in use (transport.ts). */
  readonly transport: 'raw' | 'net';
  /** The bound listeners (LAN first). */
  addresses(): net.AddressInfo[];
  metricsAddress(): net.AddressInfo | undefined;
  /** Watches open (made-up names open none). */
  watchCount(): number;
  stop(): Promise<void>;
}

export class GatewayConfigError extends Error {
  readonly code = 'ERR_GATEWAY_CONFIG';
  constructor(message: string) {
    super(message);
    this.name = 'GatewayConfigError';
  }
}

export function parseHostPort(s: string, what: string): { host: string; port: number } {
  const m = /^\[?([^\]]*?)\]?:(\d+)$/.exec(s);
  if (!m || Number(m[2]) > 65535 || Number(m[2]) === 0) throw new GatewayConfigError(`${what} ${JSON.stringify(s)}: want host:port`);
  return { host: m[1] || '0.0.0.0', port: Number(m[2]) };
}

/** Logs a line per cause at most once per `everyMs`, with how many were not logged meanwhile. */
export class RateLimitedLog {
  private readonly last = new Map<string, { at: number; suppressed: number }>();
  private readonly logger: Logger;
  private readonly everyMs: number;
  constructor(logger: Logger, everyMs = 60_000) {
    this.logger = logger;
    this.everyMs = everyMs;
  }
  /** `fields` may be a function, called only when the line is logged. */
  warn(cause: string, msg: string, fields: Record<string, unknown> | (() => Record<string, unknown>)): void {
    const now = Date.now();
    const l = this.last.get(cause);
    if (l && now - l.at < this.everyMs) { l.suppressed++; return; }
    this.logger.warn(msg, { cause, ...(typeof fields === 'function' ? fields() : fields), ...(l?.suppressed ? { suppressed_since_last: l.suppressed } : {}) });
    this.last.set(cause, { at: now, suppressed: 0 });
  }
}

export async function startMeshGateway(opts: MeshGatewayOptions): Promise<MeshGateway> {
  const logger = opts.logger ?? silentLogger;
  const api = new AgentApi({ httpAddr: opts.httpAddr, token: opts.token });
  const stop = new AbortController();
  const metrics = new Metrics();
  const refusalLog = new RateLimitedLog(logger);
  const lan = parseHostPort(opts.address, '-address');
  const wan = opts.wanAddress ? parseHostPort(opts.wanAddress, '-wan-address') : undefined;
  const staticRemotes: Record<string, Instance[]> | undefined = opts.staticRemotes
    ? Object.fromEntries(Object.entries(opts.staticRemotes).map(([dc, list]) => [dc, list.map((a) => parseHostPort(a, `gateway of ${dc}`))]))
    : undefined;
  const service = opts.service || 'mesh-gateway';
  const serviceId = opts.serviceId || service;
  const helloTimeoutMs = opts.helloTimeoutMs ?? 10_000;
  const connectTimeoutMs = opts.connectTimeoutMs ?? 5000;
  const maxHello = opts.maxHelloBytes ?? DEFAULT_MAX_HELLO_BYTES;
  let transport: ReturnType<typeof chooseTransport>;
  try {
    transport = chooseTransport(opts.transport);
  } catch (err) {
    throw new GatewayConfigError((err as Error).message);
  }

  let datacenter = opts.datacenter;
  let serverRouting = opts.exposeServers ? undefined : false;
  let domain = opts.domain;
  if (!datacenter || serverRouting === undefined || domain === undefined) {
    type Self = { Config?: { Datacenter?: string }; DebugConfig?: { DNSDomain?: string; ConnectMeshGatewayWANFederationEnabled?: boolean } };
    // With the datacenter given, an agent not answering yet only means no server names are routed.
    const self = datacenter
      ? await api.get<Self>('/v1/agent/self').catch((err: unknown) => {
        logger.warn('GET /v1/agent/self failed: server names (WAN federation through mesh gateways) are not routed', { error: err as Error });
        return { body: {} as Self };
      })
      : await api.get<Self>('/v1/agent/self');
    datacenter ||= self.body.Config?.Datacenter;
    if (!datacenter) throw new GatewayConfigError('the agent did not say its datacenter (GET /v1/agent/self)');
    serverRouting ??= self.body.DebugConfig?.ConnectMeshGatewayWANFederationEnabled === true;
    domain ??= self.body.DebugConfig?.DNSDomain || 'consul';
    if (opts.exposeServers && !serverRouting) logger.warn('-expose-servers: the agent does not run with connect.enable_mesh_gateway_wan_federation; server names are not routed');
  }
  const dc = datacenter;
  const serverDomain = domain.toLowerCase().replace(/\.$/, '');
  // The trust domain is all the gateway needs of the CA: it matches names, it verifies nothing.
  let trustDomain = '';
  let rootsSeen!: () => void;
  const rootsKnown = new Promise<void>((r) => { rootsSeen = r; });
  void watch<CARoots>({
    api, path: '/v1/agent/connect/ca/roots', signal: stop.signal, logger,
    onChange: (roots) => { if (roots?.TrustDomain) { trustDomain = roots.TrustDomain.toLowerCase(); rootsSeen(); } },
  });
  const catalog = new CatalogView({ api, logger: logger.named('catalog'), signal: stop.signal, datacenter: dc, gatewayService: service, staticRemotes });

  const refuse = (conn: GwConn, cause: string, detail: string) => {
    metrics.addKeyed(GW.refused[0], GW.refused[1], keyOf(`cause/${cause}`, { cause }));
    refusalLog.warn(cause, 'connection refused', () => ({ detail, remote: conn.remote() }));
    conn.destroy();
  };

  // Label sets formatted once per target (or cause), not per connection: a connection's six
  // counter updates cost a map lookup each instead of a sort and an escape.
  const keys = new Map<string, string>();
  const keyOf = (id: string, labels: Record<string, string>) => {
    let k = keys.get(id);
    if (k === undefined) { k = metrics.key(labels); keys.set(id, k); }
    return k;
  };
  const forward = (conn: GwConn, hello: Buffer, target: string, route: 'local' | 'remote' | 'server', candidates: Instance[], start: number) => {
    const key = keyOf(`${route}/${target}`, { target, route });
    let tried = 0;
    const onDone = (rx: number, tx: number) => {
      metrics.addKeyed(GW.active[0], GW.active[1], key, -1, 'gauge');
      metrics.addKeyed(GW.rx[0], GW.rx[1], key, rx);
      metrics.addKeyed(GW.tx[0], GW.tx[1], key, tx);
    };
    const onConnect = () => {
      metrics.addKeyed(GW.conns[0], GW.conns[1], key);
      metrics.addKeyed(GW.active[0], GW.active[1], key, 1, 'gauge');
      conn.splice(hello, onDone);
    };
    let inst: Instance;
    const onFail = (err: Error) => {
      metrics.addKeyed(GW.dialFailures[0], GW.dialFailures[1], key);
      logger.debug('dial failed', { target, instance: `${inst.host}:${inst.port}`, error: err });
      // A refused or silent instance is skipped for the next (each at most once): health lags.
      if (tried < candidates.length) { dial(); return; }
      refuse(conn, 'dial_failed', `${target}: ${err.message}`);
    };
    const dial = () => {
      if (conn.closed) return;
      inst = candidates[(start + tried) % candidates.length]!;
      tried++;
      conn.dial(inst.host, inst.port, connectTimeoutMs, onConnect, onFail);
    };
    dial();
  };

  let rr = 0;
  // What an SNI name means, parsed once per name (per trust domain): the route of every later
  // connection with that name is a map lookup. Bounded: a flood of distinct names empties it.
  // A server name is `local` (route 'server') for this datacenter's servers, a remote datacenter
  // (route 'remote', to its gateways) otherwise.
  type Decision = { refused: string; detail: string } | { local: boolean; service: string; subset?: string; targetDc: string; target: string; server?: { node?: string } };
  const decisions = new Map<string, Decision>();
  let decisionsFor = '';
  const decide = (sni: string): Decision => {
    if (decisionsFor !== trustDomain) { decisions.clear(); decisionsFor = trustDomain; }
    let d = decisions.get(sni);
    if (d) return d;
    const srv = serverRouting ? parseServerSni(sni, serverDomain) : undefined;
    const name = parseMeshSni(sni, trustDomain);
    if (srv) {
      const target = `${srv.node ? `${srv.node}.` : ''}server.${srv.datacenter}`;
      d = srv.datacenter === dc
        ? { local: true, service: '', targetDc: dc, target, server: srv.node ? { node: srv.node } : {} }
        : { local: false, service: '', targetDc: srv.datacenter, target: srv.datacenter };
    } else if ('refused' in name) d = { refused: name.refused, detail: name.detail };
    else if (name.datacenter === dc && name.kind !== 'target') d = { refused: 'unknown_name', detail: `${sni}: names this gateway's own datacenter, not a target in it` };
    else if (name.kind === 'target' && name.datacenter === dc) d = { local: true, service: name.service, subset: name.subset, targetDc: dc, target: targetId(name) };
    else d = { local: false, service: '', targetDc: name.datacenter, target: name.datacenter };
    if (decisions.size >= 4096) decisions.clear();
    decisions.set(sni, d);
    return d;
  };
  /** Routes at once when everything is known (the common case); false: `route` must wait. */
  const routeNow = (conn: GwConn, sni: string, hello: Buffer): boolean => {
    if (!trustDomain) return false;
    const d = decide(sni);
    if ('refused' in d) { refuse(conn, d.refused, d.detail); return true; }
    const lookup = d.server && d.local ? catalog.serversKnown(d.server.node) : d.local ? catalog.localKnown(d.service, d.subset) : catalog.remoteKnown(d.targetDc);
    if (!lookup) return false;
    if ('refused' in lookup) { refuse(conn, lookup.refused, lookup.detail); return true; }
    rr = (rr + 1) % 1_000_000;
    forward(conn, hello, d.target, routeOf(d), lookup.instances, rr);
    return true;
  };
  const routeOf = (d: Exclude<Decision, { refused: string }>) => (d.server && d.local ? 'server' : d.local ? 'local' : 'remote');
  /** The first connection for a name waits for the trust domain and the target's first watch answer. */
  const route = async (conn: GwConn, sni: string, hello: Buffer) => {
    // Server names do not need the trust domain: they are routed before the CA is known.
    const serverName = serverRouting && parseServerSni(sni, serverDomain) !== undefined;
    if (!trustDomain && !serverName) await Promise.race([rootsKnown, new Promise<void>((r) => setTimeout(r, 3000).unref())]);
    if (conn.closed) return;
    if (!trustDomain && !serverName) { refuse(conn, 'not_ready', 'trust domain not known yet (CA roots)'); return; }
    const d = decide(sni);
    if ('refused' in d) { refuse(conn, d.refused, d.detail); return; }
    const lookup = await (d.server && d.local ? catalog.servers(d.server.node) : d.local ? catalog.local(d.service, d.subset) : catalog.remote(d.targetDc));
    if (conn.closed) return;
    if ('refused' in lookup) { refuse(conn, lookup.refused, lookup.detail); return; }
    rr = (rr + 1) % 1_000_000;
    forward(conn, hello, d.target, routeOf(d), lookup.instances, rr);
  };

  // Hello deadlines: one sweep every 250 ms over the connections still peeking, instead of a timer
  // per connection (a slowloris is closed within helloTimeout + 250 ms).
  const peeking = new Map<GwConn, { deadline: number; peeker: ClientHelloPeeker }>();
  const sweep = setInterval(() => {
    const now = Date.now();
    for (const [conn, p] of peeking) {
      if (p.deadline > now) continue;
      peeking.delete(conn);
      refuse(conn, 'timeout', `no complete ClientHello within ${helloTimeoutMs} ms (${p.peeker.bytes} bytes)`);
    }
  }, Math.min(250, helloTimeoutMs));
  sweep.unref();

  const accepted = keyOf('', {});
  const noData = keyOf('cause/no_data', { cause: 'no_data' });
  const onClosed = (conn: GwConn) => { peeking.delete(conn); };
  const accept = (conn: GwConn) => {
    metrics.addKeyed(GW.accepted[0], GW.accepted[1], accepted);
    conn.onClosed = onClosed;
    const peeker = new ClientHelloPeeker(maxHello);
    peeking.set(conn, { deadline: Date.now() + helloTimeoutMs, peeker });
    const stopPeeking = () => {
      peeking.delete(conn);
      conn.stopPeek();
    };
    const onEnd = () => {
      stopPeeking();
      // A connection closed without a byte is a port probe (the agent's own TCP check every 10 s):
      // counted, never logged.
      if (peeker.bytes === 0) { metrics.addKeyed(GW.refused[0], GW.refused[1], noData); conn.destroy(); return; }
      refuse(conn, 'closed_early', `the caller closed after ${peeker.bytes} bytes, before a complete ClientHello`);
    };
    const onData = (chunk: Buffer) => {
      const r = peeker.push(chunk);
      if (r.state === 'more') return;
      stopPeeking();
      if (r.state === 'refused') { refuse(conn, r.cause, r.detail); return; }
      const hello = peeker.buffered();
      if (routeNow(conn, r.sni, hello)) return;
      route(conn, r.sni, hello).catch((err: unknown) => refuse(conn, 'not_ready', (err as Error).message));
    };
    conn.peek(onData, onEnd);
  };

  const listeners: GwListener[] = [];
  let metricsServer: net.Server | undefined;
  const shutdown = async () => {
    stop.abort();
    clearInterval(sweep);
    // Stop accepting and close the open connections (each listener closes its own), then wait.
    await Promise.all(listeners.map((l) => l.close()));
    if (metricsServer) await new Promise<void>((r) => metricsServer!.close(() => r()));
  };
  try {
    listeners.push(await transport.listen(lan.host, lan.port, 4096, accept));
    if (wan && (wan.host !== lan.host || wan.port !== lan.port)) {
      try {
        listeners.push(await transport.listen(wan.host, wan.port, 4096, accept));
      } catch (err) {
        // A WAN address behind NAT is not this host's: the LAN listener is the one traffic reaches.
        logger.warn('not listening on the WAN address (not local?)', { address: opts.wanAddress, error: err as Error });
      }
    }
    if (opts.metricsAddr) {
      const m = parseHostPort(opts.metricsAddr, '-metrics-addr');
      metricsServer = await serveMetrics(metrics, m.host, m.port);
    }
    if (opts.register) await register(api, { service, serviceId, lan, wan, deregisterAfter: opts.deregisterAfterCritical || '6h', exposeServers: opts.exposeServers === true });
  } catch (err) {
    await shutdown();
    throw err;
  }
  logger.info('mesh gateway started', { datacenter: dc, transport: transport.name, addresses: listeners.map((l) => { const a = l.address(); return `${a.address}:${a.port}`; }) });
  return {
    serviceId,
    datacenter: dc,
    metrics,
    transport: transport.name,
    addresses: () => listeners.map((l) => l.address()),
    metricsAddress: () => (metricsServer?.address() as net.AddressInfo | null) ?? undefined,
    watchCount: () => catalog.watchCount,
    stop: shutdown,
  };
}

async function register(api: AgentApi, r: { service: string; serviceId: string; lan: { host: string; port: number }; wan?: { host: string; port: number }; deregisterAfter: string; exposeServers: boolean }): Promise<void> {
  const lanHost = r.lan.host === '0.0.0.0' || r.lan.host === '::' ? '' : r.lan.host;
  const wan = r.wan ?? r.lan;
  // Consul's `connect envoy -register` (command/connect/envoy/envoy.go) and its Helm chart's
  // registration: Kind, lan/wan tagged addresses, a 10 s TCP check on the LAN address named
  // "Mesh Gateway Listening", deregistered after 6 h critical.
  const body = {
    Kind: 'mesh-gateway',
    ID: r.serviceId,
    Name: r.service,
    Address: lanHost,
    Port: r.lan.port,
    // Consul's structs.MetaWANFederationKey: servers federate through gateways with it only.
    ...(r.exposeServers ? { Meta: { 'consul-wan-federation': '1' } } : {}),
    TaggedAddresses: {
      lan: { Address: lanHost, Port: r.lan.port },
      wan: { Address: wan.host === '0.0.0.0' || wan.host === '::' ? lanHost : wan.host, Port: wan.port },
    },
    Check: {
      Name: 'Mesh Gateway Listening',
      TCP: `${lanHost || '127.0.0.1'}:${r.lan.port}`,
      Interval: '10s',
      DeregisterCriticalServiceAfter: r.deregisterAfter,
    },
  };
  await api.put('/v1/agent/service/register', body);
}
