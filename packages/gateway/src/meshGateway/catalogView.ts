// What the mesh gateway knows of the catalog, learnt from the local agent's HTTP API with blocking
// queries (the gateway never imports the agent; it may run on a host of its own):
//   the service names            GET /v1/catalog/services                      (blocking)
//   the datacenters              GET /v1/catalog/datacenters                   (polled: not blocking in Consul)
//   a local target's instances   GET /v1/health/connect/<svc>?passing[&filter=]  (blocking, on first use)
//   a subset's filter            GET /v1/discovery-chain/<svc>                 (blocking, on first use)
//                                else GET /v1/config/service-resolver/<svc>    (blocking, on first use)
//   a remote dc's gateways       GET /v1/health/service/<gateway>?dc=<dc>&passing (blocking, on first use)
//   its datacenter's servers     GET /v1/health/service/consul?passing         (blocking, on first use:
//                                server SNI names, WAN federation through mesh gateways)
// Watches start on the first connection that needs them and only for names the catalog lists, so
// a sender of made-up names cannot make the gateway open watches without bound.

import { AgentApiError, watch, type AgentApi } from '../agentApi.ts';
import type { DiscoveryChainResponse } from '../chainTypes.ts';
import type { Logger } from '../log.ts';
import type { ServiceEntry } from '../types.ts';
import { instanceAddress, type Instance } from '../upstream.ts';

export type Lookup = { instances: Instance[] } | { refused: 'unknown_service' | 'unknown_subset' | 'unknown_datacenter' | 'no_healthy_instance' | 'not_ready'; detail: string };

/** The part of a service-resolver config entry the gateway reads. */
interface ResolverEntry { Subsets?: Record<string, { Filter?: string; OnlyPassing?: boolean }> | null }

/** One watched list: its latest value and a promise of the first. */
class Watched<T> {
  value: T | undefined;
  error: Error | undefined;
  readonly first: Promise<void>;
  readonly stop = new AbortController();
  private done!: () => void;
  constructor() {
    this.first = new Promise((r) => { this.done = r; });
  }
  set(v: T): void { this.value = v; this.error = undefined; this.done(); }
  fail(e: Error): void { this.error = e; this.done(); }
}

/** The WAN address of a gateway entry (Consul: TaggedAddresses.wan, else its LAN address). */
export function wanAddress(e: ServiceEntry): Instance {
  const wan = e.Service.TaggedAddresses?.['wan'];
  if (wan?.Address && wan.Port) return { host: wan.Address, port: wan.Port };
  return instanceAddress(e);
}

export interface CatalogViewOptions {
  api: AgentApi;
  logger: Logger;
  signal: AbortSignal;
  /** The gateway's own datacenter. */
  datacenter: string;
  /** The name remote datacenters' mesh gateways are registered under (default mesh-gateway). */
  gatewayService: string;
  /** Remote gateways given by hand: dc -> WAN addresses (used instead of asking the agent). */
  staticRemotes?: Record<string, Instance[]>;
  /** How long a connection waits for a watch's first answer (default 3 s). */
  firstAnswerMs?: number;
  /** How often /v1/catalog/datacenters is read again (default 10 s). */
  datacentersPollMs?: number;
}

export class CatalogView {
  private services = new Set<string>();
  private servicesLoaded = false;
  private datacenters = new Set<string>();
  private readonly servicesKnown: Promise<void>;
  private readonly health = new Map<string, Watched<Instance[]>>();
  private readonly chains = new Map<string, Watched<DiscoveryChainResponse>>();
  private readonly remotes = new Map<string, Watched<Instance[]>>();
  private readonly resolvers = new Map<string, Watched<ResolverEntry>>();
  /** The `consul` service's instances: each server's node name and server RPC address. */
  private serverWatch: Watched<Array<Instance & { node: string }>> | undefined;
  private readonly opts: CatalogViewOptions;
  private readonly firstAnswerMs: number;

  constructor(opts: CatalogViewOptions) {
    this.opts = opts;
    this.firstAnswerMs = opts.firstAnswerMs ?? 3000;
    this.datacenters.add(opts.datacenter);
    let known!: () => void;
    this.servicesKnown = new Promise((r) => { known = r; });
    void watch<Record<string, string[]>>({
      api: opts.api, path: '/v1/catalog/services', signal: opts.signal, logger: opts.logger,
      onChange: (s) => { this.services = new Set(Object.keys(s ?? {})); this.servicesLoaded = true; known(); },
    });
    void this.pollDatacenters(opts.datacentersPollMs ?? 10_000);
  }

  private async pollDatacenters(everyMs: number): Promise<void> {
    const { api, signal } = this.opts;
    while (!signal.aborted) {
      try {
        const res = await api.get<string[]>('/v1/catalog/datacenters', signal);
        this.datacenters = new Set([this.opts.datacenter, ...(res.body ?? [])]);
      } catch (err) {
        if (signal.aborted) return;
        this.opts.logger.debug('reading the datacenters failed', { error: err as Error });
      }
      await new Promise<void>((r) => {
        const t = setTimeout(r, everyMs);
        signal.addEventListener('abort', () => { clearTimeout(t); r(); }, { once: true });
      });
    }
  }

  /** Starts (once) a watch of `path`, mapping each answer with `map`. */
  private watched<T, R>(cache: Map<string, Watched<R>>, key: string, path: string, map: (v: T) => R): Watched<R> {
    let w = cache.get(key);
    if (w) return w;
    const made = new Watched<R>();
    w = made;
    cache.set(key, made);
    void watch<T>({
      api: this.opts.api, path, logger: this.opts.logger,
      signal: AbortSignal.any([this.opts.signal, made.stop.signal]),
      onChange: (v) => made.set(map(v)),
      onError: (e) => made.fail(e),
    });
    return made;
  }

  private async firstOf<R>(w: Watched<R>): Promise<void> {
    if (w.value !== undefined) return;
    await Promise.race([w.first, new Promise<void>((r) => setTimeout(r, this.firstAnswerMs).unref())]);
  }

  /** Healthy instances of a target in the gateway's own datacenter (its sidecars, Connect-enabled). */
  async local(service: string, subset: string | undefined): Promise<Lookup> {
    if (!this.servicesLoaded) await Promise.race([this.servicesKnown, new Promise<void>((r) => setTimeout(r, this.firstAnswerMs).unref())]);
    if (!this.services.has(service)) return { refused: 'unknown_service', detail: `no service ${service} in the catalog` };
    const q = new URLSearchParams({ passing: '1' });
    if (subset) {
      const chain = this.watched<DiscoveryChainResponse, DiscoveryChainResponse>(this.chains, service, `/v1/discovery-chain/${encodeURIComponent(service)}`, (v) => v);
      await this.firstOf(chain);
      const targets = Object.values(chain.value?.Chain?.Targets ?? {});
      const t = targets.find((x) => x.Service === service && x.ServiceSubset === subset && (x.Datacenter ?? this.opts.datacenter) === this.opts.datacenter);
      if (!chain.value) return { refused: 'not_ready', detail: `no discovery chain for ${service} yet${chain.error ? `: ${chain.error.message}` : ''}` };
      let filter = t?.Subset?.Filter;
      if (!t) {
        // A chain lists only the subsets something routes to; a caller's own chain (a splitter of
        // an HTTP service, a redirect) may name another. The resolver entry defines them all.
        const res = this.watched<ResolverEntry, ResolverEntry>(this.resolvers, service, `/v1/config/service-resolver/${encodeURIComponent(service)}`, (v) => v);
        await this.firstOf(res);
        const sub = res.value?.Subsets?.[subset];
        if (!sub) return { refused: 'unknown_subset', detail: `no subset ${subset} of ${service} (discovery chain and service-resolver)` };
        filter = sub.Filter;
      }
      if (filter) q.set('filter', filter);
    }
    const key = `${service}?${q.toString()}`;
    const w = this.watched<ServiceEntry[] | null, Instance[]>(this.health, key, `/v1/health/connect/${encodeURIComponent(service)}?${q.toString()}`, (v) => (v ?? []).map(instanceAddress));
    await this.firstOf(w);
    if (!w.value) return { refused: 'not_ready', detail: `no answer for ${service}'s instances yet${w.error ? `: ${w.error.message}` : ''}` };
    if (w.value.length === 0) return { refused: 'no_healthy_instance', detail: `no healthy Connect instance of ${service}${subset ? ` (subset ${subset})` : ''}` };
    return { instances: w.value };
  }

  /** local()'s answer when it needs no waiting (a target without subset already watched), else undefined. */
  localKnown(service: string, subset: string | undefined): Lookup | undefined {
    if (subset || !this.servicesLoaded) return undefined;
    if (!this.services.has(service)) return { refused: 'unknown_service', detail: `no service ${service} in the catalog` };
    const w = this.health.get(`${service}?passing=1`);
    if (!w?.value) return undefined;
    return w.value.length ? { instances: w.value } : { refused: 'no_healthy_instance', detail: `no healthy Connect instance of ${service}` };
  }

  /** remote()'s answer when it needs no waiting, else undefined. */
  remoteKnown(dc: string): Lookup | undefined {
    const fixed = this.opts.staticRemotes?.[dc];
    if (fixed?.length) return { instances: fixed };
    const w = this.remotes.get(dc);
    return w?.value?.length ? { instances: w.value } : undefined;
  }

  /** Healthy mesh gateways of a remote datacenter, at their WAN addresses. */
  async remote(dc: string): Promise<Lookup> {
    const fixed = this.opts.staticRemotes?.[dc];
    if (fixed) return fixed.length ? { instances: fixed } : { refused: 'no_healthy_instance', detail: `no gateway given for ${dc}` };
    if (!this.datacenters.has(dc)) return { refused: 'unknown_datacenter', detail: `no datacenter ${dc} in /v1/catalog/datacenters` };
    const q = new URLSearchParams({ dc, passing: '1' });
    const w = this.watched<ServiceEntry[] | null, Instance[]>(this.remotes, dc, `/v1/health/service/${encodeURIComponent(this.opts.gatewayService)}?${q.toString()}`, (v) => (v ?? []).map(wanAddress));
    await this.firstOf(w);
    if (!w.value) {
      const noPath = w.error instanceof AgentApiError && /No path to datacenter/i.test(w.error.message);
      return { refused: noPath ? 'unknown_datacenter' : 'not_ready', detail: `no answer for ${dc}'s mesh gateways yet${w.error ? `: ${w.error.message}` : ''}` };
    }
    if (w.value.length === 0) return { refused: 'no_healthy_instance', detail: `no healthy mesh gateway in ${dc}` };
    return { instances: w.value };
  }

  /**
   * A healthy server of the gateway's own datacenter (`node` given: that one only), at its server
   * RPC address: the `consul` service every server registers with the server port (Consul's too).
   */
  async servers(node: string | undefined): Promise<Lookup> {
    this.serverWatch ??= this.watched<ServiceEntry[] | null, Array<Instance & { node: string }>>(new Map(), 'consul', '/v1/health/service/consul?passing=1',
      (v) => (v ?? []).map((e) => ({ ...instanceAddress(e), node: (e.Node.Node ?? '').toLowerCase() })));
    await this.firstOf(this.serverWatch);
    return this.serversKnown(node) ?? { refused: 'not_ready', detail: `no answer for the servers yet${this.serverWatch.error ? `: ${this.serverWatch.error.message}` : ''}` };
  }

  /** servers()'s answer when it needs no waiting, else undefined. */
  serversKnown(node: string | undefined): Lookup | undefined {
    const all = this.serverWatch?.value;
    if (!all) return undefined;
    const list = node === undefined ? all : all.filter((s) => s.node === node);
    if (list.length === 0) {
      const known = all.length ? ` (healthy: ${all.slice(0, 5).map((s) => s.node).join(', ')})` : '';
      return { refused: 'no_healthy_instance', detail: node === undefined ? 'no healthy server in this datacenter' : `no healthy server named ${node} in this datacenter${known}` };
    }
    return { instances: list };
  }

  /** How many watches are open (tests: made-up names open none). */
  get watchCount(): number {
    return this.health.size + this.chains.size + this.remotes.size + this.resolvers.size + (this.serverWatch ? 1 : 0);
  }
}
