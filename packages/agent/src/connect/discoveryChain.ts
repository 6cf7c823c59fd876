// The discovery chain compiler (Consul's agent/consul/discoverychain/compile.go). Pure: config
// entries in, Consul's CompiledDiscoveryChain out (the JSON /v1/discovery-chain answers).
//
//   router:<svc>.<ns>.<ap>  --route-->  splitter:<svc>.<ns>.<ap>  --split-->  resolver:<target id>
//
// Every route of a router (plus the catch-all `PathPrefix: "/"` route Consul appends) leads to the
// destination's splitter, or its resolver when it has none, or straight to the resolver when the
// route names a subset (a subset skips the splitter). A resolver applies its Redirect and
// DefaultSubset before it becomes a node, so nodes always name the final target; failover targets
// are resolved the same way but are not nodes. Target ids are Consul's ChainID:
// `[<subset>.]<service>.<namespace>.<partition>.<datacenter>`.
//
// Inputs are plain data defined here (the caller converts stored entries), so connect/ stays free of
// I/O and of the rest of the agent. Durations come in as nanoseconds and go out as Consul prints
// them: the resolver's and targets' ConnectTimeout as Go strings ("5s"), RequestTimeout as
// nanoseconds (Consul's DiscoveryResolver marshals only ConnectTimeout specially). Subset Filters
// stay strings: the proxy evaluates them.
//
// Where this differs from Consul or chooses: CustomizationHash is an FNV-1a of the overrides (Consul's
// is a hashstructure value; both are opaque 8 hex digits); AutoVirtualIPs/ManualVirtualIPs are null
// (Trellis assigns no virtual IPs); EnvoyExtensions are not carried. As in Consul, only the chain's
// own router is consulted: a split or route to a service that has a router goes to that service's
// splitter or resolver, not an error.
import { serviceSni } from './sni.ts';

export const DEFAULT_PARTITION = 'default';
const DEFAULT_NS = 'default';
const DEFAULT_CONNECT_TIMEOUT_NS = 5_000_000_000;

/** Protocols whose chains may route and split (Consul's IsProtocolHTTPLike). */
export const HTTP_LIKE_PROTOCOLS: ReadonlySet<string> = new Set(['http', 'http2', 'grpc']);

type Json = Record<string, unknown>;

export interface ChainServiceDefaults {
  Protocol?: string;
  Meta?: Record<string, string>;
  MeshGateway?: { Mode?: string };
  TransparentProxy?: { DialedDirectly?: boolean };
  ExternalSNI?: string;
}

export interface ChainProxyDefaults {
  /** Only Config.protocol is read. */
  Config?: Record<string, unknown>;
  MeshGateway?: { Mode?: string };
  TransparentProxy?: { DialedDirectly?: boolean };
  FailoverPolicy?: unknown;
}

export interface ChainRoute {
  Match?: Json;
  Destination?: { Service?: string; ServiceSubset?: string; Namespace?: string; Partition?: string; [k: string]: unknown };
  [k: string]: unknown;
}
export interface ChainRouter { Name: string; Routes?: ChainRoute[] }

export interface ChainSplit { Weight: number; Service?: string; ServiceSubset?: string; Namespace?: string; Partition?: string; RequestHeaders?: HeaderModifiers; ResponseHeaders?: HeaderModifiers; [k: string]: unknown }
export interface ChainSplitter { Name: string; Splits?: ChainSplit[] }
export interface HeaderModifiers { Add?: Record<string, string>; Set?: Record<string, string>; Remove?: string[] }

export interface TargetOpts { Service?: string; ServiceSubset?: string; Namespace?: string; Partition?: string; Datacenter?: string; Peer?: string }
export interface ChainFailover { Service?: string; ServiceSubset?: string; Namespace?: string; Datacenters?: string[]; Targets?: TargetOpts[]; Policy?: { Mode?: string; Regions?: string[] } }
export interface ChainResolver {
  Name: string;
  DefaultSubset?: string;
  Subsets?: Record<string, { Filter?: string; OnlyPassing?: boolean }>;
  Redirect?: TargetOpts;
  Failover?: Record<string, ChainFailover>;
  ConnectTimeoutNs?: number;
  RequestTimeoutNs?: number;
  LoadBalancer?: Json;
}

/** The config entries a chain may read, keyed by service name (looked up case-insensitively, as Consul's state reads are). */
export interface ChainEntries {
  proxyDefaults?: ChainProxyDefaults;
  serviceDefaults?: Readonly<Record<string, ChainServiceDefaults>>;
  routers?: Readonly<Record<string, ChainRouter>>;
  splitters?: Readonly<Record<string, ChainSplitter>>;
  resolvers?: Readonly<Record<string, ChainResolver>>;
}

export interface CompileRequest {
  serviceName: string;
  datacenter: string;
  trustDomain: string;
  namespace?: string;
  partition?: string;
  entries: ChainEntries;
  overrideProtocol?: string;
  overrideConnectTimeoutNs?: number;
  overrideMeshGateway?: { Mode?: string };
  /** Go's Duration.String (injected: connect/ imports nothing outside itself). */
  formatDuration: (ns: number) => string;
  /** Told each service whose entries the compiler looked up (the state machine's graph check uses it). */
  onRead?: (service: string) => void;
}

export interface DiscoveryTarget {
  ID: string;
  Service: string;
  ServiceSubset?: string;
  Namespace: string;
  Partition: string;
  Datacenter?: string;
  Peer?: string;
  MeshGateway: { Mode?: string };
  Subset: { Filter?: string; OnlyPassing?: boolean };
  TransparentProxy: { DialedDirectly?: boolean };
  ConnectTimeout?: string;
  External?: boolean;
  SNI?: string;
  Name?: string;
}

export interface DiscoveryRoute { Definition: ChainRoute; NextNode: string }
export interface DiscoverySplit { Definition: ChainSplit; Weight: number; NextNode: string }
export interface DiscoveryResolver {
  ConnectTimeout?: string;
  Default?: boolean;
  RequestTimeout?: number;
  Target: string;
  Failover?: { Targets: string[]; Policy?: unknown };
}
export interface DiscoveryGraphNode {
  Type: 'router' | 'splitter' | 'resolver';
  Name: string;
  Routes?: DiscoveryRoute[];
  Splits?: DiscoverySplit[];
  Resolver?: DiscoveryResolver;
  LoadBalancer?: Json;
}

export interface CompiledDiscoveryChain {
  ServiceName: string;
  Namespace: string;
  Partition: string;
  Datacenter: string;
  CustomizationHash?: string;
  Default?: boolean;
  Protocol: string;
  ServiceMeta?: Record<string, string>;
  StartNode: string;
  Nodes: Record<string, DiscoveryGraphNode>;
  Targets: Record<string, DiscoveryTarget>;
  AutoVirtualIPs: null;
  ManualVirtualIPs: null;
}

/** Consul's ConfigEntryGraphError: the entries do not form a chain that compiles. */
export class ChainCompileError extends Error {
  override name = 'ChainCompileError';
}

/** Consul's ChainID. */
export function chainTargetId(o: { Service: string; ServiceSubset?: string; Namespace: string; Partition: string; Datacenter?: string; Peer?: string }): string {
  if (o.Peer) return `${o.Service}.${o.Namespace}.${o.Partition}.external.${o.Peer}`;
  const base = `${o.Service}.${o.Namespace}.${o.Partition}.${o.Datacenter ?? ''}`;
  return o.ServiceSubset ? `${o.ServiceSubset}.${base}` : base;
}

const orDefault = (v: string | undefined, d: string): string => (v !== undefined && v !== '' ? v : d);

/** Consul's NormalizeServiceSplitWeight: two decimal places. */
function normalizeWeight(w: number): number {
  return Math.round(w * 100) / 100;
}

/** A resolver with nothing configured (Consul's ServiceResolverConfigEntry.IsDefault). */
function isDefaultResolver(r: ChainResolver): boolean {
  return (r.DefaultSubset ?? '') === '' && Object.keys(r.Subsets ?? {}).length === 0 && r.Redirect === undefined &&
    Object.keys(r.Failover ?? {}).length === 0 && !r.ConnectTimeoutNs && !r.RequestTimeoutNs && r.LoadBalancer === undefined;
}

/** Consul's ServiceSplit.MergeParent: the inner split's definition with the outer one's header edits folded in. */
function mergeParent(inner: ChainSplit, parent: ChainSplit): ChainSplit {
  const merge = (a?: HeaderModifiers, b?: HeaderModifiers): HeaderModifiers | undefined => {
    if (!a && !b) return undefined;
    const out: HeaderModifiers = {};
    const add = { ...(b?.Add ?? {}), ...(a?.Add ?? {}) };
    const set = { ...(b?.Set ?? {}), ...(a?.Set ?? {}) };
    const remove = [...new Set([...(b?.Remove ?? []), ...(a?.Remove ?? [])])];
    if (Object.keys(add).length) out.Add = add;
    if (Object.keys(set).length) out.Set = set;
    if (remove.length) out.Remove = remove;
    return out;
  };
  const out: ChainSplit = { ...inner };
  const req = merge(inner.RequestHeaders, parent.RequestHeaders);
  const res = merge(inner.ResponseHeaders, parent.ResponseHeaders);
  if (req) out.RequestHeaders = req;
  if (res) out.ResponseHeaders = res;
  return out;
}

/** FNV-1a over the customization, 8 hex digits: opaque, as Consul's hashstructure value is. */
function customizationHash(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, '0');
}

interface FullOpts { Service: string; ServiceSubset: string; Namespace: string; Partition: string; Datacenter: string; Peer: string }

/** Compiles the chain of req.serviceName. Throws ChainCompileError with Consul's texts. */
export function compileDiscoveryChain(req: CompileRequest): CompiledDiscoveryChain {
  return new Compiler(req).compile();
}

class Compiler {
  readonly #req: CompileRequest;
  readonly #ns: string;
  readonly #ap: string;
  readonly #e: Required<Omit<ChainEntries, 'proxyDefaults'>> & Pick<ChainEntries, 'proxyDefaults'>;
  readonly #nodes = new Map<string, DiscoveryGraphNode>();
  readonly #splitterNodes = new Map<string, DiscoveryGraphNode>();
  readonly #resolveNodes = new Map<string, DiscoveryGraphNode>();
  readonly #targets = new Map<string, DiscoveryTarget>();
  readonly #retained = new Set<string>();
  #protocol = '';
  #advanced = false;
  readonly #disableAdvanced: boolean;
  readonly #customized = { MeshGateway: false, Protocol: false, ConnectTimeout: false };

  constructor(req: CompileRequest) {
    if (req.serviceName === '') throw new ChainCompileError('serviceName is required');
    if (req.datacenter === '') throw new ChainCompileError('evaluateInDatacenter is required');
    if (req.trustDomain === '') throw new ChainCompileError('evaluateInTrustDomain is required');
    this.#req = req;
    this.#ns = orDefault(req.namespace, DEFAULT_NS);
    this.#ap = orDefault(req.partition, DEFAULT_PARTITION);
    const folded = <T>(m: Readonly<Record<string, T>> | undefined): Record<string, T> => {
      const out: Record<string, T> = {};
      for (const [k, v] of Object.entries(m ?? {})) out[k.toLowerCase()] = v;
      return out;
    };
    const e = req.entries;
    this.#e = {
      ...(e.proxyDefaults ? { proxyDefaults: e.proxyDefaults } : {}),
      serviceDefaults: folded(e.serviceDefaults), routers: folded(e.routers), splitters: folded(e.splitters), resolvers: folded(e.resolvers),
    };
    this.#disableAdvanced = req.overrideProtocol !== undefined && req.overrideProtocol !== '' && !HTTP_LIKE_PROTOCOLS.has(req.overrideProtocol);
  }

  compile(): CompiledDiscoveryChain {
    const startNode = this.#assemble();
    this.#detectCircularReferences(startNode);
    this.#flattenAdjacentSplitters();
    this.#removeUnusedNodes(startNode);
    for (const id of [...this.#targets.keys()]) if (!this.#retained.has(id)) this.#targets.delete(id);
    if (!HTTP_LIKE_PROTOCOLS.has(this.#protocol) && this.#advanced) {
      throw new ChainCompileError(`discovery chain ${JSON.stringify(this.#req.serviceName)} uses a protocol ${JSON.stringify(this.#protocol)} that does not permit advanced routing or splitting behavior`);
    }
    const override = this.#req.overrideProtocol ?? '';
    if (override !== '' && override !== this.#protocol) {
      this.#protocol = override;
      this.#customized.Protocol = true;
    }
    const chain: CompiledDiscoveryChain = {
      ServiceName: this.#req.serviceName,
      Namespace: this.#ns,
      Partition: this.#ap,
      Datacenter: this.#req.datacenter,
      Protocol: this.#protocol,
      StartNode: startNode,
      Nodes: Object.fromEntries([...this.#nodes].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))),
      Targets: Object.fromEntries([...this.#targets].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))),
      AutoVirtualIPs: null,
      ManualVirtualIPs: null,
    };
    const c = this.#customized;
    if (c.MeshGateway || c.Protocol || c.ConnectTimeout) {
      chain.CustomizationHash = customizationHash(JSON.stringify({
        OverrideMeshGateway: c.MeshGateway ? this.#req.overrideMeshGateway?.Mode ?? '' : '',
        OverrideProtocol: c.Protocol ? override : '',
        OverrideConnectTimeout: c.ConnectTimeout ? this.#req.overrideConnectTimeoutNs ?? 0 : 0,
      }));
    }
    if (this.#isDefaultChain(startNode)) chain.Default = true;
    const meta = this.#sd(this.#req.serviceName)?.Meta;
    if (meta && Object.keys(meta).length > 0) chain.ServiceMeta = meta;
    // Field order as Consul prints it.
    const { CustomizationHash, Default, ServiceMeta, ...rest } = chain;
    return {
      ServiceName: rest.ServiceName, Namespace: rest.Namespace, Partition: rest.Partition, Datacenter: rest.Datacenter,
      ...(CustomizationHash !== undefined ? { CustomizationHash } : {}),
      ...(Default !== undefined ? { Default } : {}),
      Protocol: rest.Protocol,
      ...(ServiceMeta !== undefined ? { ServiceMeta } : {}),
      StartNode: rest.StartNode, Nodes: rest.Nodes, Targets: rest.Targets, AutoVirtualIPs: null, ManualVirtualIPs: null,
    };
  }

  #sidString(service: string, ns = this.#ns, ap = this.#ap): string {
    return `${service}.${ns}.${ap}`;
  }

  #record(node: DiscoveryGraphNode): void {
    if (node.Type === 'splitter') this.#splitterNodes.set(node.Name, node);
    else if (node.Type === 'resolver') this.#resolveNodes.set(node.Resolver!.Target, node);
    this.#nodes.set(`${node.Type}:${node.Name}`, node);
  }

  #recordServiceProtocol(service: string): void {
    let p = '';
    const sd = this.#sd(service);
    if (sd) p = sd.Protocol ?? '';
    else {
      const cfg = this.#e.proxyDefaults?.Config;
      if (cfg && typeof cfg.protocol === 'string') p = cfg.protocol;
    }
    p = p === '' ? 'tcp' : p.toLowerCase();
    if (this.#protocol === '') this.#protocol = p;
    else if (this.#protocol !== p) {
      throw new ChainCompileError(`discovery chain ${JSON.stringify(this.#req.serviceName)} uses inconsistent protocols; service ${JSON.stringify(service)} has ${JSON.stringify(p)} which is not ${JSON.stringify(this.#protocol)}`);
    }
  }

  #assemble(): string {
    const name = this.#req.serviceName;
    this.#req.onRead?.(name);
    let router: ChainRouter | undefined = this.#e.routers[name.toLowerCase()];
    if (router && this.#disableAdvanced) {
      router = undefined;
      this.#customized.Protocol = true;
    }
    if (!router) return key(this.#splitterOrResolver(this.#newTarget({ Service: name })));

    const node: DiscoveryGraphNode = { Type: 'router', Name: this.#sidString(router.Name), Routes: [] };
    this.#advanced = true;
    this.#recordServiceProtocol(router.Name);
    for (const route of router.Routes ?? []) {
      const compiled: DiscoveryRoute = { Definition: route, NextNode: '' };
      node.Routes!.push(compiled);
      const dest = route.Destination ?? {};
      const opts: Partial<FullOpts> = {
        Service: orDefault(dest.Service, name),
        Namespace: orDefault(dest.Namespace, this.#ns),
        Partition: orDefault(dest.Partition, this.#ap),
      };
      const next = (dest.ServiceSubset ?? '') === ''
        ? this.#splitterOrResolver(this.#newTarget(opts))
        : this.#resolverNode(this.#newTarget({ ...opts, ServiceSubset: dest.ServiceSubset }), false);
      compiled.NextNode = key(next);
    }
    // The catch-all route Consul appends: unmatched traffic goes on down the chain.
    const fallback = this.#splitterOrResolver(this.#newTarget({ Service: router.Name, Namespace: this.#ns, Partition: this.#ap }));
    node.Routes!.push({
      Definition: { Match: { HTTP: { PathPrefix: '/' } }, Destination: { Service: router.Name, Namespace: this.#ns, Partition: this.#ap } },
      NextNode: key(fallback),
    });
    this.#record(node);
    return key(node);
  }

  /** Consul's newTarget: fills in the evaluation defaults, SNI and Name; one object per id. */
  #newTarget(o: Partial<FullOpts>): DiscoveryTarget {
    const peer = o.Peer ?? '';
    const opts: FullOpts = peer === ''
      ? { Service: o.Service!, ServiceSubset: o.ServiceSubset ?? '', Namespace: orDefault(o.Namespace, this.#ns), Partition: orDefault(o.Partition, this.#ap), Datacenter: orDefault(o.Datacenter, this.#req.datacenter), Peer: '' }
      : { Service: o.Service!, ServiceSubset: o.ServiceSubset ?? '', Namespace: orDefault(o.Namespace, DEFAULT_NS), Partition: DEFAULT_PARTITION, Datacenter: '', Peer: peer };
    const id = chainTargetId(opts);
    const prev = this.#targets.get(id);
    if (prev) return prev;
    const t: DiscoveryTarget = {
      ID: id,
      Service: opts.Service,
      ...(opts.ServiceSubset !== '' ? { ServiceSubset: opts.ServiceSubset } : {}),
      Namespace: opts.Namespace,
      Partition: opts.Partition,
      ...(opts.Datacenter !== '' ? { Datacenter: opts.Datacenter } : {}),
      ...(peer !== '' ? { Peer: peer } : {}),
      MeshGateway: {},
      Subset: {},
      TransparentProxy: {},
    };
    if (peer === '') {
      // The peer's trust domain is not known here, so peered targets get no SNI (as in Consul).
      t.SNI = serviceSni(opts.Service, opts.ServiceSubset, opts.Datacenter, this.#req.trustDomain, opts.Namespace);
      t.Name = t.SNI;
    }
    this.#targets.set(id, t);
    return t;
  }

  /** Consul's rewriteTarget: a redirect or failover applied to a target. */
  #rewriteTarget(t: DiscoveryTarget, o: TargetOpts): DiscoveryTarget {
    const m: Partial<FullOpts> = { Service: t.Service, ServiceSubset: t.ServiceSubset ?? '', Namespace: t.Namespace, Partition: t.Partition, Datacenter: t.Datacenter ?? '' };
    if (o.Service && o.Service !== m.Service) {
      m.Service = o.Service;
      m.ServiceSubset = ''; // another service's subsets are its own
    }
    if (o.ServiceSubset) m.ServiceSubset = o.ServiceSubset;
    if (o.Partition) m.Partition = o.Partition;
    if (o.Namespace || o.Peer) m.Namespace = o.Namespace ?? '';
    if (o.Datacenter) m.Datacenter = o.Datacenter;
    m.Peer = o.Peer ?? '';
    return this.#newTarget(m);
  }

  #splitterOrResolver(t: DiscoveryTarget): DiscoveryGraphNode {
    return this.#splitterNode(t.Service, t.Namespace, t.Partition) ?? this.#resolverNode(t, false);
  }

  #splitterNode(service: string, ns: string, ap: string): DiscoveryGraphNode | undefined {
    const name = this.#sidString(service, ns, ap);
    const prev = this.#splitterNodes.get(name);
    if (prev) return prev;
    this.#req.onRead?.(service);
    let splitter: ChainSplitter | undefined = this.#e.splitters[service.toLowerCase()];
    if (splitter && this.#disableAdvanced) {
      splitter = undefined;
      this.#customized.Protocol = true;
    }
    if (!splitter) return undefined;
    const node: DiscoveryGraphNode = { Type: 'splitter', Name: name, Splits: [] };
    // Recorded before recursing, so a loop between splitters ends here (and is reported later).
    this.#record(node);
    let hasLB = false;
    for (const split of splitter.Splits ?? []) {
      const compiled: DiscoverySplit = { Definition: split, Weight: split.Weight, NextNode: '' };
      node.Splits!.push(compiled);
      const svc = orDefault(split.Service, service);
      const sns = orDefault(split.Namespace, ns);
      const sap = orDefault(split.Partition, ap);
      const self = svc === service && sns === ns && sap === ap;
      if (!self && (split.ServiceSubset ?? '') === '') {
        const next = this.#splitterNode(svc, sns, sap);
        if (next) {
          compiled.NextNode = key(next);
          continue;
        }
      }
      const next = this.#resolverNode(this.#newTarget({ Service: svc, ServiceSubset: split.ServiceSubset ?? '', Namespace: sns, Partition: sap }), false);
      compiled.NextNode = key(next);
      // Only one hash policy can apply to a split route: the first hash-based resolver's.
      if (!hasLB && next.LoadBalancer && isHashBased(next.LoadBalancer)) {
        node.LoadBalancer = next.LoadBalancer;
        hasLB = true;
      }
    }
    this.#advanced = true;
    return node;
  }

  #resolver(service: string): ChainResolver {
    this.#req.onRead?.(service);
    return this.#e.resolvers[service.toLowerCase()] ?? { Name: service };
  }

  #sd(service: string): ChainServiceDefaults | undefined {
    this.#req.onRead?.(service);
    return this.#e.serviceDefaults[service.toLowerCase()];
  }

  /** Consul's getResolverNode: redirects and the default subset first, then the node and failover. */
  #resolverNode(start: DiscoveryTarget, forFailover: boolean): DiscoveryGraphNode {
    let target = start;
    const history = new Set<string>();
    const order: string[] = [];
    let resolver!: ChainResolver;
    for (;;) {
      const prev = this.#resolveNodes.get(target.ID);
      if (prev) return prev;
      if (!target.Peer) this.#recordServiceProtocol(target.Service);
      resolver = this.#resolver(target.Service);
      if (history.has(target.ID)) {
        order.push(target.ID);
        throw new ChainCompileError(`detected circular resolver redirect: [${order.join(' -> ')}]`);
      }
      history.add(target.ID);
      order.push(target.ID);
      if (resolver.Redirect) {
        const redirected = this.#rewriteTarget(target, resolver.Redirect);
        if (redirected.ID !== target.ID) {
          target = redirected;
          continue;
        }
      }
      if ((target.ServiceSubset ?? '') === '' && (resolver.DefaultSubset ?? '') !== '') {
        target = this.#rewriteTarget(target, { ServiceSubset: resolver.DefaultSubset });
        continue;
      }
      break;
    }
    const subset = target.ServiceSubset ?? '';
    if (subset !== '' && !Object.hasOwn(resolver.Subsets ?? {}, subset)) {
      throw new ChainCompileError(`service ${JSON.stringify(target.Service)} does not have a subset named ${JSON.stringify(subset)}`);
    }
    let connectNs = resolver.ConnectTimeoutNs ?? 0;
    if (connectNs < 1) connectNs = DEFAULT_CONNECT_TIMEOUT_NS;
    const override = this.#req.overrideConnectTimeoutNs ?? 0;
    if (override > 0 && override !== connectNs) {
      connectNs = override;
      this.#customized.ConnectTimeout = true;
    }
    const fmt = this.#req.formatDuration(connectNs);
    target.ConnectTimeout = fmt;
    const node: DiscoveryGraphNode = {
      Type: 'resolver',
      Name: target.ID,
      Resolver: {
        ConnectTimeout: fmt,
        ...(isDefaultResolver(resolver) ? { Default: true } : {}),
        ...(resolver.RequestTimeoutNs ? { RequestTimeout: resolver.RequestTimeoutNs } : {}),
        Target: target.ID,
      },
      ...(resolver.LoadBalancer !== undefined ? { LoadBalancer: resolver.LoadBalancer } : {}),
    };
    const sub = subset !== '' ? resolver.Subsets![subset]! : undefined;
    target.Subset = sub ? { ...(sub.Filter ? { Filter: sub.Filter } : {}), ...(sub.OnlyPassing ? { OnlyPassing: true } : {}) } : {};

    const sd = this.#sd(target.Service);
    if (sd?.ExternalSNI) {
      target.SNI = sd.ExternalSNI;
      target.External = true;
      const what = resolver.Redirect ? 'redirects' : Object.keys(resolver.Subsets ?? {}).length > 0 ? 'subsets' : Object.keys(resolver.Failover ?? {}).length > 0 ? 'failover' : '';
      if (what !== '') throw new ChainCompileError(`service ${JSON.stringify(target.Service)} has an external SNI set; cannot define ${what} for external services`);
      target.MeshGateway = {};
    } else {
      let mode = sd?.MeshGateway?.Mode ?? '';
      let dialed = sd?.TransparentProxy?.DialedDirectly === true;
      const pd = this.#e.proxyDefaults;
      if (pd) {
        if (mode === '') mode = pd.MeshGateway?.Mode ?? '';
        if (!dialed) dialed = pd.TransparentProxy?.DialedDirectly === true;
      }
      const om = this.#req.overrideMeshGateway?.Mode ?? '';
      if (om !== '' && om !== mode) {
        mode = om;
        this.#customized.MeshGateway = true;
      }
      target.MeshGateway = mode !== '' ? { Mode: mode } : {};
      target.TransparentProxy = dialed ? { DialedDirectly: true } : {};
    }
    this.#retained.add(target.ID);
    // A failover target is resolved (redirects, default subset) but is not a node of its own.
    if (forFailover) return node;
    this.#record(node);

    const failovers = resolver.Failover ?? {};
    const failover = Object.hasOwn(failovers, subset) ? failovers[subset] : failovers['*'];
    if (!failover) return node;
    const targets: DiscoveryTarget[] = [];
    const add = (t: DiscoveryTarget): void => {
      if (t.ID !== target.ID) targets.push(t); // never fail over to yourself
    };
    const base: TargetOpts = { Service: failover.Service, ServiceSubset: failover.ServiceSubset, Namespace: failover.Namespace };
    if ((failover.Datacenters ?? []).length > 0) {
      for (const dc of failover.Datacenters!) add(this.#rewriteTarget(target, { ...base, Datacenter: dc }));
    } else if ((failover.Targets ?? []).length > 0) {
      for (const t of failover.Targets!) add(this.#rewriteTarget(target, t));
    } else {
      add(this.#rewriteTarget(target, base));
    }
    if (targets.length > 0) {
      const policy = failover.Policy?.Mode ? failover.Policy : this.#e.proxyDefaults?.FailoverPolicy;
      const df: { Targets: string[]; Policy?: unknown } = { Targets: [] };
      if (policy !== undefined) df.Policy = policy;
      node.Resolver!.Failover = df;
      for (const t of targets) df.Targets.push(this.#resolverNode(t, true).Resolver!.Target);
    }
    return node;
  }

  #next(node: DiscoveryGraphNode): string[] {
    if (node.Type === 'router') return node.Routes!.map((r) => r.NextNode);
    if (node.Type === 'splitter') return node.Splits!.map((s) => s.NextNode);
    return [];
  }

  /** Consul's detectCircularReferences: a depth-first walk along routes and splits. */
  #detectCircularReferences(start: string): void {
    const path: string[] = [];
    const onPath = new Set<string>();
    const visit = (name: string): void => {
      path.push(name);
      if (onPath.has(name)) throw new ChainCompileError(`detected circular reference: [${path.join(' -> ')}]`);
      onPath.add(name);
      for (const next of this.#next(this.#nodes.get(name)!)) visit(next);
      onPath.delete(name);
      path.pop();
    };
    visit(start);
  }

  /** Consul's flattenAdjacentSplitterNodes: a split to a splitter becomes that splitter's splits, weights multiplied. */
  #flattenAdjacentSplitters(): void {
    for (let changedAny = true; changedAny;) {
      changedAny = false;
      for (const node of this.#nodes.values()) {
        if (node.Type !== 'splitter') continue;
        let changed = false;
        const fixed: DiscoverySplit[] = [];
        for (const split of node.Splits!) {
          const next = this.#nodes.get(split.NextNode)!;
          if (next.Type !== 'splitter') {
            fixed.push(split);
            continue;
          }
          changed = true;
          for (const inner of next.Splits!) {
            fixed.push({ Definition: mergeParent(inner.Definition, split.Definition), Weight: normalizeWeight((split.Weight * inner.Weight) / 100), NextNode: inner.NextNode });
          }
        }
        if (changed) {
          node.Splits = fixed;
          changedAny = true;
        }
      }
    }
  }

  #removeUnusedNodes(start: string): void {
    const seen = new Set<string>();
    const todo = [start];
    while (todo.length > 0) {
      const name = todo.pop()!;
      if (seen.has(name)) continue;
      seen.add(name);
      todo.push(...this.#next(this.#nodes.get(name)!));
    }
    for (const name of [...this.#nodes.keys()]) if (!seen.has(name)) this.#nodes.delete(name);
  }

  /** Consul's determineIfDefaultChain: no routing, no splitting, the default resolver of the service itself. */
  #isDefaultChain(start: string): boolean {
    const node = this.#nodes.get(start)!;
    if (node.Type !== 'resolver' || !node.Resolver!.Default) return false;
    const t = this.#targets.get(node.Resolver!.Target)!;
    return t.Service === this.#req.serviceName && t.Namespace === this.#ns && t.Partition === this.#ap;
  }
}

const key = (node: DiscoveryGraphNode): string => `${node.Type}:${node.Name}`;

function isHashBased(lb: Json): boolean {
  return lb.Policy === 'maglev' || lb.Policy === 'ring_hash';
}
