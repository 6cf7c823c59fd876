// The sidecar proxy: a composition of the pieces, driven by three watches on the local agent
// (Consul's connect/proxy/proxy.go + config.go's AgentConfigWatcher):
//   the proxy's service definition  GET /v1/agent/service/<proxy-id>        (hash-blocking)
//   its leaf certificate            GET /v1/agent/connect/ca/leaf/<service> (index-blocking)
//   the CA roots                    GET /v1/agent/connect/ca/roots          (index-blocking)
// It serves once it has all three, and applies later answers without a restart: a new leaf or
// root set is used by new connections; a changed upstream list opens and closes listeners.

import type net from 'node:net';
import { AgentApi, AgentApiError, watch } from './agentApi.ts';
import { InboundListener } from './inbound.ts';
import { silentLogger, type Logger } from './log.ts';
import { Metrics, serveMetrics } from './metrics.ts';
import { TlsMaterial } from './tlsMaterial.ts';
import { UpstreamListener, upstreamKey } from './upstream.ts';
import type { CARoots, LeafCert, ProxyService } from './types.ts';
import { HTTP_PROTOCOLS, type CompiledDiscoveryChain, type DiscoveryChainResponse } from './chainTypes.ts';
import type { L7Inbound } from './l7Inbound.ts';
import type { L7UpstreamListener } from './l7Upstream.ts';

/** Which upstream listener a chain needs: an L4 pipe, HTTP/1.1 routing, or HTTP/2 (and HTTP/1.1) routing. */
export function listenerKind(chain: CompiledDiscoveryChain | undefined): 'tcp' | 'http' | 'http2' {
  if (chain === undefined || !HTTP_PROTOCOLS.has(chain.Protocol)) return 'tcp';
  return chain.Protocol === 'http' ? 'http' : 'http2';
}

export interface SidecarProxyOptions {
  /** The agent's HTTP API (host:port or http://host:port). */
  httpAddr: string;
  /** The proxy's service ID (Consul's -proxy-id) ... */
  proxyServiceId?: string;
  /** ... or the ID of the service it is the sidecar of (-sidecar-for). */
  sidecarFor?: string;
  /** host:port for GET /metrics (Prometheus text); none when absent. */
  metricsAddr?: string;
  token?: string;
  logger?: Logger;
  /** How long intention decisions are reused (default 1 s; new denies apply within it). */
  authorizeCacheMs?: number;
}

export interface SidecarProxy {
  readonly proxyId: string;
  readonly metrics: Metrics;
  /** Where the public mTLS listener is bound. */
  publicAddress(): net.AddressInfo | undefined;
  /** Bound upstream listeners by destination name. */
  upstreamAddress(destination: string): net.AddressInfo | undefined;
  metricsAddress(): net.AddressInfo | undefined;
  stop(): Promise<void>;
}

export class ProxyConfigError extends Error {
  readonly code = 'ERR_PROXY_CONFIG';
  constructor(message: string) {
    super(message);
    this.name = 'ProxyConfigError';
  }
}

/** Consul's api.AgentService lookup for -sidecar-for (command/connect/proxy: LookupProxyIDForSidecar). */
export async function lookupProxyIdForSidecar(api: AgentApi, sidecarFor: string): Promise<string> {
  let res;
  try {
    res = await api.get<Record<string, ProxyService>>('/v1/agent/services');
  } catch (err) {
    throw new ProxyConfigError(`Failed looking up sidecar proxy info for ${sidecarFor}: ${(err as Error).message}`);
  }
  const ids = Object.values(res.body)
    // Consul lower-cases the registered ID (not the flag) before comparing.
    .filter((s) => s.Kind === 'connect-proxy' && (s.Proxy?.DestinationServiceID ?? '').toLowerCase() === sidecarFor)
    .map((s) => s.ID)
    .sort();
  if (ids.length === 0) throw new ProxyConfigError(`No sidecar proxy registered for ${sidecarFor}`);
  if (ids.length > 1) {
    throw new ProxyConfigError(`More than one sidecar proxy registered for ${sidecarFor}.\n    Start proxy with -proxy-id and one of the following IDs: ${ids.join(', ')}`);
  }
  return ids[0]!;
}

function hostPort(s: string, what: string): { host: string; port: number } {
  const m = /^\[?([^\]]*?)\]?:(\d+)$/.exec(s);
  if (!m || Number(m[2]) > 65535) throw new ProxyConfigError(`${what} ${JSON.stringify(s)}: want host:port`);
  return { host: m[1] || '0.0.0.0', port: Number(m[2]) };
}

/** What the proxy's service definition asks for, with Consul's built-in proxy defaults. */
export interface ResolvedProxyConfig {
  destinationName: string;
  bind: { host: string; port: number };
  localApp: { host: string; port: number };
  upstreams: NonNullable<NonNullable<ProxyService['Proxy']>['Upstreams']>;
  /** The registration's Proxy.MeshGateway (cross-datacenter upstreams; see meshGatewayMode.ts). */
  meshGateway?: { Mode?: string } | null;
}

export function resolveProxyConfig(svc: ProxyService): ResolvedProxyConfig {
  if (svc.Kind !== 'connect-proxy' || !svc.Proxy) throw new ProxyConfigError(`service ${JSON.stringify(svc.ID)} is not a connect-proxy (Kind ${JSON.stringify(svc.Kind ?? '')})`);
  const p = svc.Proxy;
  const cfg = p.Config ?? {};
  const str = (k: string) => (typeof cfg[k] === 'string' ? (cfg[k] as string) : undefined);
  const num = (k: string) => (typeof cfg[k] === 'number' ? (cfg[k] as number) : typeof cfg[k] === 'string' && /^\d+$/.test(cfg[k] as string) ? Number(cfg[k]) : undefined);
  const localApp = str('local_service_address') !== undefined
    ? hostPort(str('local_service_address')!, 'Config.local_service_address')
    : { host: p.LocalServiceAddress || '127.0.0.1', port: p.LocalServicePort ?? 0 };
  if (!localApp.port) throw new ProxyConfigError(`proxy ${svc.ID}: Proxy.LocalServicePort is not set`);
  return {
    destinationName: p.DestinationServiceName,
    bind: { host: str('bind_address') || '0.0.0.0', port: num('bind_port') ?? svc.Port },
    localApp,
    upstreams: (p.Upstreams ?? []).filter((u) => (u.DestinationType ?? 'service') === 'service'),
    meshGateway: p.MeshGateway,
  };
}

function firstValue<T>(): { promise: Promise<T>; resolve: (v: T) => void; reject: (e: Error) => void } {
  let resolve!: (v: T) => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<T>((res, rej) => { resolve = res; reject = rej; });
  return { promise, resolve, reject };
}

export async function startSidecarProxy(opts: SidecarProxyOptions): Promise<SidecarProxy> {
  const logger = opts.logger ?? silentLogger;
  const api = new AgentApi({ httpAddr: opts.httpAddr, token: opts.token });
  const stop = new AbortController();
  let proxyId = opts.proxyServiceId;
  if (!proxyId) {
    if (!opts.sidecarFor) throw new ProxyConfigError('one of proxyServiceId (-proxy-id) or sidecarFor (-sidecar-for) is required');
    proxyId = await lookupProxyIdForSidecar(api, opts.sidecarFor);
  }
  const metrics = new Metrics();
  const material = new TlsMaterial();
  let config: ResolvedProxyConfig | undefined;
  const firstConfig = firstValue<ResolvedProxyConfig>();
  let inbound: InboundListener | undefined;
  let inboundBind = '';
  const upstreams = new Map<string, UpstreamListener | L7UpstreamListener>();
  // The HTTP pieces (node:http) are imported only when a chain says HTTP: a TCP-only proxy stays small.
  let l7Inbound: L7Inbound | undefined;
  let ownChainStop: AbortController | undefined;
  let ownChainFor: string | undefined;
  const watchOwnChain = (service: string) => {
    if (ownChainFor === service) return;
    ownChainStop?.abort();
    ownChainStop = new AbortController();
    ownChainFor = service;
    void watch<DiscoveryChainResponse>({
      api, path: `/v1/discovery-chain/${encodeURIComponent(service)}`, signal: AbortSignal.any([stop.signal, ownChainStop.signal]), logger,
      onChange: (res) => {
        const http = HTTP_PROTOCOLS.has(res?.Chain?.Protocol ?? 'tcp');
        if (http && !l7Inbound) {
          void import('./l7Inbound.ts').then(({ L7Inbound }) => {
            if (l7Inbound || stop.signal.aborted) return;
            l7Inbound = new L7Inbound({
              api, metrics, logger: logger.named('inbound'), service,
              localApp: () => config!.localApp,
              authorize: (uri, serial) => inbound ? inbound.authorize(uri, serial) : Promise.resolve({ Authorized: false, Reason: 'no public listener' }),
            });
            logger.info('public listener in HTTP mode', { service, protocol: res.Chain.Protocol });
          });
        } else if (!http && l7Inbound) {
          l7Inbound.close();
          l7Inbound = undefined;
          logger.info('public listener in TCP mode', { service });
        }
      },
    });
  };
  // Each upstream's chain is watched: its protocol chooses the listener (L4 pipe or L7 router), and
  // an L7 listener gets each new chain. A protocol change replaces the listener on the same port.
  const chainWatches = new Map<string, { stop: AbortController; chain?: CompiledDiscoveryChain; first: Promise<void> }>();
  const watchChain = (key: string, u: ResolvedProxyConfig['upstreams'][number]) => {
    if (chainWatches.has(key)) return chainWatches.get(key)!;
    const stopChain = new AbortController();
    let done!: () => void;
    const w = { stop: stopChain, chain: undefined as CompiledDiscoveryChain | undefined, first: new Promise<void>((r) => { done = r; }) };
    chainWatches.set(key, w);
    const q = u.Datacenter ? `?compile-dc=${encodeURIComponent(u.Datacenter)}` : '';
    void watch<DiscoveryChainResponse>({
      api, path: `/v1/discovery-chain/${encodeURIComponent(u.DestinationName)}${q}`, logger,
      signal: AbortSignal.any([stop.signal, stopChain.signal]),
      onChange: (res) => {
        if (!res?.Chain?.Nodes) return;
        w.chain = res.Chain;
        done();
        const l = upstreams.get(key);
        if (!l) return;
        if (l.kind === listenerKind(res.Chain)) {
          if ('setChain' in l) l.setChain(res.Chain);
          return;
        }
        // The protocol changed: replace the listener (through the apply queue, one change at a time).
        logger.info('upstream protocol changed, replacing its listener', { upstream: u.DestinationName, protocol: res.Chain.Protocol });
        applying = applying.then(async () => {
          const cur = upstreams.get(key);
          if (!cur || stop.signal.aborted || cur.kind === listenerKind(w.chain)) return;
          upstreams.delete(key);
          await cur.close();
          await openUpstream(key, u);
        }).catch((err: unknown) => logger.error('replacing the upstream listener failed', { upstream: u.DestinationName, error: err as Error }));
      },
      onError: () => done(), // the agent cannot say: proxy at L4 meanwhile
    });
    return w;
  };
  const openUpstream = async (key: string, u: ResolvedProxyConfig['upstreams'][number]) => {
    const w = watchChain(key, u);
    await Promise.race([w.first, new Promise<void>((r) => setTimeout(r, 2000).unref())]);
    const ulog = logger.named(`upstream.${u.DestinationName}`);
    const kind = listenerKind(w.chain);
    const l7opts = { api, tls: material, metrics, logger: ulog, upstream: u, chain: w.chain!, proxyMeshGateway: () => config?.meshGateway };
    // node:http2 is loaded only for an http2/grpc chain, node:http only for an HTTP one.
    const l = kind === 'http2' ? new (await import('./h2Upstream.ts')).H2UpstreamListener(l7opts)
      : kind === 'http' ? new (await import('./l7Upstream.ts')).L7UpstreamListener(l7opts)
      : new UpstreamListener({ api, tls: material, metrics, logger: ulog, upstream: u, chain: () => w.chain, proxyMeshGateway: () => config?.meshGateway });
    upstreams.set(key, l);
    await l.healthKnown(2000);
    await l.listen();
  };

  let metricsServer: net.Server | undefined;
  let leafWatchFor: string | undefined;
  let leafStop: AbortController | undefined;

  const startLeafWatch = (service: string) => {
    if (leafWatchFor === service) return;
    leafStop?.abort();
    leafStop = new AbortController();
    leafWatchFor = service;
    const signal = AbortSignal.any([stop.signal, leafStop.signal]);
    void watch<LeafCert>({
      api, path: `/v1/agent/connect/ca/leaf/${encodeURIComponent(service)}`, signal, logger,
      onChange: (leaf) => {
        try { material.setLeaf(leaf); } catch (err) { logger.error('leaf certificate not usable, keeping the previous one', { error: err as Error }); }
      },
    });
  };

  // Applies a (new) configuration: listeners to open, move or close. Serialized: one at a time.
  let applying = Promise.resolve();
  let lastApplyError: Error | undefined;
  const apply = (next: ResolvedProxyConfig) => {
    applying = applying.then(async () => {
      if (stop.signal.aborted || !material.snapshot) return;
      const bindKey = `${next.bind.host}:${next.bind.port}`;
      if (!inbound || inboundBind !== bindKey) {
        await inbound?.close();
        inbound = new InboundListener({
          api, tls: material, metrics, logger: logger.named('inbound'),
          target: () => config!.destinationName,
          localApp: () => config!.localApp,
          authorizeCacheMs: opts.authorizeCacheMs,
          l7: () => l7Inbound,
        });
        inboundBind = bindKey;
        await inbound.listen(next.bind.host, next.bind.port);
      }
      const wanted = new Map(next.upstreams.map((u) => [upstreamKey(u), u]));
      for (const [key, l] of upstreams) {
        if (!wanted.has(key)) { upstreams.delete(key); chainWatches.get(key)?.stop.abort(); chainWatches.delete(key); await l.close(); }
      }
      for (const [key, u] of wanted) {
        if (upstreams.has(key)) continue;
        await openUpstream(key, u);
      }
    }).catch((err: unknown) => {
      lastApplyError = err as Error;
      // A listener that could not bind is tried again with the next configuration change.
      if (inbound && !inbound.address()) inboundBind = '';
      logger.error('applying the proxy configuration failed', { error: err as Error });
    });
    return applying;
  };

  void watch<ProxyService>({
    api, path: `/v1/agent/service/${encodeURIComponent(proxyId)}`, signal: stop.signal, logger,
    onChange: (svc) => {
      let next: ResolvedProxyConfig;
      try {
        next = resolveProxyConfig(svc);
      } catch (err) {
        logger.error('proxy configuration not usable', { error: err as Error });
        if (!config) firstConfig.reject(err as Error);
        return;
      }
      config = next;
      startLeafWatch(next.destinationName);
      watchOwnChain(next.destinationName);
      firstConfig.resolve(next);
      void apply(next);
    },
    onError: (err) => {
      // A proxy ID the agent does not know will not appear by waiting: say so at once.
      if (!config && err instanceof AgentApiError && err.status === 404) firstConfig.reject(new ProxyConfigError(`proxy service ${JSON.stringify(proxyId)} is not registered with the agent: ${err.message}`));
    },
  });
  void watch<CARoots>({
    api, path: '/v1/agent/connect/ca/roots', signal: stop.signal, logger,
    onChange: (roots) => {
      try { material.setRoots(roots); } catch (err) { logger.error('CA roots not usable, keeping the previous ones', { error: err as Error }); }
    },
  });

  const shutdown = async () => {
    stop.abort();
    await applying;
    await inbound?.close();
    l7Inbound?.close();
    for (const l of upstreams.values()) await l.close();
    upstreams.clear();
    if (metricsServer) await new Promise<void>((r) => metricsServer!.close(() => r()));
    api.close();
  };

  try {
    if (opts.metricsAddr) {
      const m = hostPort(opts.metricsAddr, '-metrics-addr');
      metricsServer = await serveMetrics(metrics, m.host, m.port);
    }
    await firstConfig.promise;
    await material.ready;
    logger.info('certificates loaded', { service: material.snapshot!.leaf.Service, serial: material.snapshot!.leaf.SerialNumber });
    await apply(config!);
    if (!inbound?.address()) throw new ProxyConfigError(`could not start the public listener on ${config!.bind.host}:${config!.bind.port}: ${lastApplyError?.message ?? 'unknown error'}`);
  } catch (err) {
    await shutdown();
    throw err;
  }

  const id = proxyId;
  return {
    proxyId: id,
    metrics,
    publicAddress: () => inbound?.address(),
    upstreamAddress: (dest) => [...upstreams.values()].find((l) => l.key.startsWith(`${dest}/`))?.address(),
    metricsAddress: () => (metricsServer?.address() as net.AddressInfo | null) ?? undefined,
    stop: shutdown,
  };
}
