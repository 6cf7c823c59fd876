// What one HTTP request does on a compiled discovery chain (the work Envoy does with the routes,
// weighted clusters and clusters Consul generates from it; agent/xds/routes.go, clusters.go):
// router → the first matching route; splitter → a split drawn by weight; resolver → its target,
// then its failover targets in order. Pure: the L7 upstream listener calls it per request with the
// chain it holds at that moment, so a new chain applies to the next request and never to one in
// flight.

import type { CompiledDiscoveryChain, HeaderModifiers, RouteDestination } from './chainTypes.ts';
import { routeMatches, type HttpRequestInfo } from './routeMatch.ts';
import { DEFAULT_MAX_RING_SIZE, DEFAULT_MIN_RING_SIZE, KetamaRing, MaglevTable, randomHash, type HashPolicy, type HashTable } from './hashLb.ts';

/** Envoy's route timeout when neither the route nor the resolver sets RequestTimeout. */
export const DEFAULT_ROUTE_TIMEOUT_MS = 15_000;

export interface RequestPlan {
  /** The route taken (router chains only). */
  route?: { index: number; match: Record<string, unknown> | undefined; destination: RouteDestination | undefined };
  /** Target IDs: the resolver's own first, then its failover targets. */
  targets: string[];
  /** Header changes in the order Envoy applies them: split (innermost) first, then route. */
  requestHeaders: HeaderModifiers[];
  responseHeaders: HeaderModifiers[];
  /** The route's RequestTimeout, else the resolver's, else Envoy's default route timeout (15 s). */
  requestTimeoutMs?: number;
  /** The resolver node's LoadBalancer.Policy (Consul's names); default round_robin. */
  lbPolicy: string;
  /** The resolver node's LoadBalancer (HashPolicies, RingHashConfig) when it has one. */
  loadBalancer?: LoadBalancerConfig;
}

/** A service-resolver's LoadBalancer as the compiled chain carries it (Consul's field names). */
export interface LoadBalancerConfig {
  Policy?: string;
  RingHashConfig?: { MinimumRingSize?: number; MaximumRingSize?: number } | null;
  HashPolicies?: HashPolicy[] | null;
  [k: string]: unknown;
}

export class ChainEvalError extends Error {
  readonly code = 'ERR_CHAIN_EVAL';
}

const UNITS: Record<string, number> = { ns: 1e-6, us: 1e-3, '\u00b5s': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Consul's JSON durations: a Go duration string ("1.5s", "1m30s") or nanoseconds; ms, undefined when 0/absent. */
export function durationMs(v: unknown): number | undefined {
  if (typeof v === 'number') return v > 0 ? v / 1e6 : undefined;
  if (typeof v !== 'string' || v === '' || v === '0' || v === '0s') return undefined;
  let total = 0;
  let rest = v.trim();
  const re = /^(\d+(?:\.\d+)?)(ns|us|\u00b5s|ms|s|m|h)/;
  while (rest.length > 0) {
    const m = re.exec(rest);
    if (!m) return undefined;
    total += Number(m[1]) * UNITS[m[2]!]!;
    rest = rest.slice(m[0].length);
  }
  return total > 0 ? total : undefined;
}

/** The split a draw `r` in [0, 100) lands in (cumulative weights, Envoy's weighted clusters). */
export function pickSplit<T extends { Weight: number }>(splits: readonly T[], r: number): T | undefined {
  let acc = 0;
  for (const s of splits) {
    acc += s.Weight;
    if (r < acc) return s;
  }
  // Weights that sum to slightly under 100 through rounding: the last split with weight takes the rest.
  return [...splits].reverse().find((s) => s.Weight > 0);
}

/** Follows the chain for one request; `draw()` returns a number in [0, 100) for splits. */
export function planRequest(chain: CompiledDiscoveryChain, req: HttpRequestInfo, draw: () => number = () => Math.random() * 100): RequestPlan {
  const plan: RequestPlan = { targets: [], requestHeaders: [], responseHeaders: [], lbPolicy: 'round_robin' };
  let name = chain.StartNode;
  let routeTimeout: number | undefined;
  for (let hops = 0; hops < 32; hops++) {
    const node = chain.Nodes[name];
    if (!node) throw new ChainEvalError(`discovery chain for ${chain.ServiceName}: no node ${JSON.stringify(name)}`);
    if (node.Type === 'router') {
      const routes = node.Routes ?? [];
      const index = routes.findIndex((r) => routeMatches(r.Definition, req));
      if (index < 0) throw new ChainEvalError(`discovery chain for ${chain.ServiceName}: no route matches ${req.method} ${req.path}`);
      const r = routes[index]!;
      const d = r.Definition.Destination;
      plan.route = { index, match: (r.Definition.Match as Record<string, unknown> | undefined), destination: d };
      if (d?.RequestHeaders) plan.requestHeaders.unshift(d.RequestHeaders);
      if (d?.ResponseHeaders) plan.responseHeaders.unshift(d.ResponseHeaders);
      routeTimeout = durationMs(d?.RequestTimeout);
      name = r.NextNode;
    } else if (node.Type === 'splitter') {
      const s = pickSplit(node.Splits ?? [], draw());
      if (!s) throw new ChainEvalError(`discovery chain for ${chain.ServiceName}: splitter ${node.Name} has no split with weight`);
      if (s.Definition.RequestHeaders) plan.requestHeaders.unshift(s.Definition.RequestHeaders);
      if (s.Definition.ResponseHeaders) plan.responseHeaders.unshift(s.Definition.ResponseHeaders);
      name = s.NextNode;
    } else {
      const res = node.Resolver;
      if (!res) throw new ChainEvalError(`discovery chain for ${chain.ServiceName}: resolver node ${node.Name} has no Resolver`);
      plan.targets = [res.Target, ...(res.Failover?.Targets ?? [])];
      // Consul leaves an unset RequestTimeout to Envoy, whose route timeout is then 15 s: a request on
      // a pooled connection whose peer went silent (a cut WAN link drops packets, nothing resets) ends.
      plan.requestTimeoutMs = routeTimeout ?? durationMs(res.RequestTimeout) ?? DEFAULT_ROUTE_TIMEOUT_MS;
      if (typeof node.LoadBalancer?.Policy === 'string' && node.LoadBalancer.Policy !== '') plan.lbPolicy = node.LoadBalancer.Policy;
      if (node.LoadBalancer) plan.loadBalancer = node.LoadBalancer as LoadBalancerConfig;
      return plan;
    }
  }
  throw new ChainEvalError(`discovery chain for ${chain.ServiceName}: more than 32 nodes on one path`);
}

/** The first target (primary, then failovers in order) with at least one instance. */
export function chooseTarget<I>(targets: readonly string[], instancesOf: (id: string) => readonly I[]): { id: string; instances: readonly I[] } | undefined {
  for (const id of targets) {
    const inst = instancesOf(id);
    if (inst.length > 0) return { id, instances: inst };
  }
  return undefined;
}

/** Applies Add (append), Set (replace), Remove to a header map whose names are lower case. */
export function applyHeaderMods(headers: Record<string, string | string[]>, mods: readonly HeaderModifiers[]): void {
  for (const m of mods) {
    for (const [k, v] of Object.entries(m.Add ?? {})) {
      const key = k.toLowerCase();
      const cur = headers[key];
      headers[key] = cur === undefined ? v : [...(Array.isArray(cur) ? cur : [cur]), v];
    }
    for (const [k, v] of Object.entries(m.Set ?? {})) headers[k.toLowerCase()] = v;
    for (const k of m.Remove ?? []) delete headers[k.toLowerCase()];
  }
}

/** Envoy's prefix_rewrite: the matched PathPrefix (or PathExact) is replaced by `rewrite`. */
export function rewritePath(pathAndQuery: string, match: Record<string, unknown> | undefined, rewrite: string | undefined): string {
  if (!rewrite) return pathAndQuery;
  const http = (match?.HTTP ?? undefined) as Record<string, unknown> | undefined;
  const prefix = typeof http?.PathPrefix === 'string' && http.PathPrefix !== '' ? http.PathPrefix
    : typeof http?.PathExact === 'string' && http.PathExact !== '' ? http.PathExact : undefined;
  if (prefix === undefined || !pathAndQuery.startsWith(prefix)) return pathAndQuery;
  return rewrite + pathAndQuery.slice(prefix.length);
}

/** What a hash-based policy needs for one pick: the request's hash (hashLb.requestHash) and the retry number. */
export interface HashPick {
  hash?: bigint;
  attempt?: number;
  ring?: LoadBalancerConfig['RingHashConfig'];
}

/** Load balancing across a target's instances (Consul's LoadBalancer.Policy names). */
export class Balancer<I extends { key: string }> {
  private rr = new Map<string, number>();
  /** Ring or table per instance list (a target watch replaces its list when the set changes). */
  private tables = new WeakMap<readonly I[], { config: string; table: HashTable }>();
  /** Requests in flight per instance key (least_request). */
  readonly active = new Map<string, number>();
  private readonly random: () => number;
  constructor(random: () => number = Math.random) {
    this.random = random;
  }

  pick(targetId: string, policy: string, instances: readonly I[], hashed: HashPick = {}): I | undefined {
    if (instances.length === 0) return undefined;
    if (policy === 'ring_hash' || policy === 'maglev') {
      const table = this.tableFor(policy, instances, hashed.ring);
      return instances[table.pick(hashed.hash ?? randomHash(this.random), hashed.attempt ?? 0)];
    }
    if (policy === 'random') return instances[Math.floor(this.random() * instances.length)];
    if (policy === 'least_request') {
      // Envoy's default: the less loaded of two drawn at random (power of two choices).
      if (instances.length === 1) return instances[0];
      const a = instances[Math.floor(this.random() * instances.length)]!;
      let b = instances[Math.floor(this.random() * instances.length)]!;
      if (b === a) b = instances[(instances.indexOf(a) + 1) % instances.length]!;
      return (this.active.get(b.key) ?? 0) < (this.active.get(a.key) ?? 0) ? b : a;
    }
    // round_robin (and the default for an unknown policy, which validation refuses anyway).
    const n = this.rr.get(targetId) ?? 0;
    this.rr.set(targetId, (n + 1) % 1_000_000);
    return instances[n % instances.length];
  }

  private tableFor(policy: string, instances: readonly I[], ring: HashPick['ring']): HashTable {
    const min = ring?.MinimumRingSize && ring.MinimumRingSize > 0 ? ring.MinimumRingSize : DEFAULT_MIN_RING_SIZE;
    const max = ring?.MaximumRingSize && ring.MaximumRingSize > 0 ? ring.MaximumRingSize : DEFAULT_MAX_RING_SIZE;
    const config = policy === 'maglev' ? policy : `${policy}/${min}/${max}`;
    const cached = this.tables.get(instances);
    if (cached?.config === config) return cached.table;
    const keys = instances.map((i) => i.key);
    // Envoy refuses a ring whose minimum exceeds its maximum; Consul does not validate it, so the maximum wins.
    const table = policy === 'maglev' ? new MaglevTable(keys) : new KetamaRing(keys, Math.min(min, max), max);
    this.tables.set(instances, { config, table });
    return table;
  }

  begin(key: string): void { this.active.set(key, (this.active.get(key) ?? 0) + 1); }
  end(key: string): void {
    const n = (this.active.get(key) ?? 1) - 1;
    if (n <= 0) this.active.delete(key); else this.active.set(key, n);
  }
}
