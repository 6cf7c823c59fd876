// Normalize() and Validate() of each config entry kind, with Consul's error texts
// (agent/structs/config_entry*.go). Runs on the proposer before anything reaches Raft, as Consul's
// ConfigEntry.Apply endpoint does; the one rule that reads other entries (the protocol gate) is the
// state machine's (state/configEntries.ts). Pure: no I/O.

import { isIP } from 'node:net';
import { parseFilter } from '../../filter/index.ts';
import { parseGoDurationNs } from '../../config/duration.ts';
import { intentionPrecedence, WILDCARD } from './intentions.ts';

/** An entry that decodes but breaks a rule of its kind (HTTP 400, the message as the body). */
export class ConfigEntryValidationError extends Error {
  readonly code = 'ERR_INVALID_CONFIG_ENTRY';
  constructor(message: string) {
    super(message);
    this.name = 'ConfigEntryValidationError';
  }
}

type Obj = Record<string, unknown>;
const fail = (message: string): never => {
  throw new ConfigEntryValidationError(message);
};
const q = (s: unknown): string => JSON.stringify(s);
const str = (v: unknown): string => (typeof v === 'string' ? v : '');
const objs = (v: unknown): Obj[] => (Array.isArray(v) ? (v as Obj[]) : []);
const rec = (v: unknown): Obj | undefined => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Obj) : undefined);

/** hashicorp/go-multierror's format, which Consul's multi-rule Validate()s answer with. */
function multiError(errors: string[]): string {
  return `${errors.length} error${errors.length === 1 ? '' : 's'} occurred:\n${errors.map((e) => `\t* ${e}`).join('\n')}\n\n`;
}

const META_MAX_PAIRS = 64;
const META_KEY_MAX = 128;
const META_VALUE_MAX = 512;

/** Consul's validateConfigEntryMeta. */
function metaErrors(meta: unknown): string[] {
  const m = rec(meta) ?? {};
  const out: string[] = [];
  if (Object.keys(m).length > META_MAX_PAIRS) out.push(`Meta exceeds maximum element count ${META_MAX_PAIRS}`);
  for (const [k, v] of Object.entries(m)) {
    if (Buffer.byteLength(k) > META_KEY_MAX) out.push(`Meta key ${q(k)} exceeds maximum length ${META_KEY_MAX}`);
    if (Buffer.byteLength(str(v)) > META_VALUE_MAX) out.push(`Meta value for key ${q(k)} exceeds maximum length ${META_VALUE_MAX}`);
  }
  return out;
}

function checkMeta(meta: unknown): void {
  const errs = metaErrors(meta);
  if (errs.length > 0) fail(multiError(errs));
}

const HTTP_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE']);
const RETRY_ON: ReadonlySet<string> = new Set([
  '5xx', 'gateway-error', 'reset', 'connect-failure', 'envoy-ratelimited', 'retriable-4xx', 'refused-stream',
  'cancelled', 'deadline-exceeded', 'internal', 'resource-exhausted', 'unavailable',
]);
const LB_POLICIES: ReadonlySet<string> = new Set(['', 'random', 'round_robin', 'least_request', 'ring_hash', 'maglev']);
const HASH_FIELDS: ReadonlySet<string> = new Set(['header', 'cookie', 'query_parameter']);
const FAILOVER_MODES: ReadonlySet<string> = new Set(['', 'default', 'order-by-locality']);
const CONNECTION_BALANCE: ReadonlySet<string> = new Set(['', 'exact_balance']);
/** Subset names appear in SNI, so they are DNS labels (ARCHITECTURE.md, Names at the edges). */
const SUBSET_NAME = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;
const DNS_NAME = /^(?=.{1,253}$)([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$/;

const durationNs = (v: unknown): bigint => (typeof v === 'string' ? parseGoDurationNs(v) : 0n);

// ---- proxy-defaults and mesh (singletons) --------------------------------------------------------

function proxyDefaults(e: Obj): void {
  // Normalize: an empty name is global; anything else is refused (in Normalize and Validate alike).
  if (e.Name !== '' && e.Name !== 'global') fail(`invalid name (${q(e.Name)}), only "global" is supported`);
  e.Name = 'global';
  checkMeta(e.Meta);
}

function mesh(e: Obj): void {
  if (e.Name !== '' && e.Name !== 'mesh') fail(`invalid name (${q(e.Name)}), only "mesh" is supported`);
  e.Name = 'mesh';
  checkMeta(e.Meta);
}

// ---- service-defaults ----------------------------------------------------------------------------

function upstreamErrors(u: Obj, named: boolean): string | null {
  const name = str(u.Name);
  if (named) {
    if (name === '') return 'Name is required';
    if (name === WILDCARD) return 'Wildcard name is not supported';
  } else if (name !== '') {
    return 'Name must be empty';
  }
  const errs: string[] = [];
  const phc = rec(u.PassiveHealthCheck);
  if (phc && durationNs(phc.Interval) < 0n) errs.push('passive health check interval cannot be negative');
  const limits = rec(u.Limits);
  if (limits) {
    if (typeof limits.MaxConnections === 'number' && limits.MaxConnections < 0) errs.push('max connections cannot be negative');
    if (typeof limits.MaxPendingRequests === 'number' && limits.MaxPendingRequests < 0) errs.push('max pending requests cannot be negative');
    if (typeof limits.MaxConcurrentRequests === 'number' && limits.MaxConcurrentRequests < 0) errs.push('max concurrent requests cannot be negative');
  }
  if (!CONNECTION_BALANCE.has(str(u.BalanceOutboundConnections))) errs.push(`invalid value for balance_outbound_connections: ${str(u.BalanceOutboundConnections)}`);
  return errs.length === 0 ? null : errs.length === 1 ? errs[0]! : multiError(errs);
}

function normalizeUpstream(u: Obj): void {
  if (typeof u.Protocol === 'string') u.Protocol = u.Protocol.toLowerCase();
  if (typeof u.ConnectTimeoutMs === 'number' && u.ConnectTimeoutMs < 0) u.ConnectTimeoutMs = 0;
}

function serviceDefaults(e: Obj): void {
  e.Protocol = str(e.Protocol).toLowerCase();
  const uc = rec(e.UpstreamConfig);
  if (uc) {
    for (const o of objs(uc.Overrides)) normalizeUpstream(o);
    if (rec(uc.Defaults)) normalizeUpstream(rec(uc.Defaults)!);
  }
  if (e.Name === WILDCARD) fail('service-defaults name must be the name of a service, and not a wildcard');
  const errs = metaErrors(e.Meta);
  if (!CONNECTION_BALANCE.has(str(e.BalanceInboundConnections))) errs.push(`invalid value for balance_inbound_connections: ${str(e.BalanceInboundConnections)}`);
  const dest = rec(e.Destination);
  if (uc && dest) {
    errs.push('UpstreamConfig and Destination are mutually exclusive for service defaults');
    fail(multiError(errs));
  }
  if (uc) {
    for (const o of objs(uc.Overrides)) {
      const err = upstreamErrors(o, true);
      if (err !== null) errs.push(`error in upstream override for ${str(o.Name)}: ${err}`);
    }
    const d = rec(uc.Defaults);
    if (d) {
      const err = upstreamErrors(d, false);
      if (err !== null) errs.push(`error in upstream defaults: ${err}`);
    }
  }
  if (dest) {
    const addresses = Array.isArray(dest.Addresses) ? (dest.Addresses as string[]) : [];
    if (addresses.length === 0) errs.push('Destination must contain at least one valid address');
    const seen = new Set<string>();
    for (const a of addresses) {
      if (seen.has(a)) {
        errs.push(`Duplicate address '${a}' is not allowed`);
        continue;
      }
      seen.add(a);
      if (isIP(a) === 0 && (a.includes('*') || !DNS_NAME.test(a))) {
        errs.push(`Destination address '${a}' is invalid Could not validate address ${a} as an IP or Hostname`);
      }
    }
    const port = typeof dest.Port === 'number' ? dest.Port : 0;
    if (port < 1 || port > 65535) errs.push(`Invalid Port number ${port}`);
  }
  if (errs.length > 0) fail(multiError(errs));
}

// ---- service-router ------------------------------------------------------------------------------

function serviceRouter(e: Obj): void {
  for (const route of objs(e.Routes)) {
    const http = rec(rec(route.Match)?.HTTP);
    if (http && Array.isArray(http.Methods)) http.Methods = (http.Methods as string[]).map((m) => m.toUpperCase());
  }
  checkMeta(e.Meta);
  objs(e.Routes).forEach((route, i) => {
    let prefixRewriteOk = false;
    const http = rec(rec(route.Match)?.HTTP);
    if (http) {
      let pathParts = 0;
      if (str(http.PathExact) !== '') {
        prefixRewriteOk = true;
        pathParts++;
        if (!str(http.PathExact).startsWith('/')) fail(`Route[${i}] PathExact doesn't start with '/': ${q(http.PathExact)}`);
      }
      if (str(http.PathPrefix) !== '') {
        prefixRewriteOk = true;
        pathParts++;
        if (!str(http.PathPrefix).startsWith('/')) fail(`Route[${i}] PathPrefix doesn't start with '/': ${q(http.PathPrefix)}`);
      }
      if (str(http.PathRegex) !== '') pathParts++;
      if (pathParts > 1) fail(`Route[${i}] should only contain at most one of PathExact, PathPrefix, or PathRegex`);
      objs(http.Header).forEach((h, j) => {
        if (str(h.Name) === '') fail(`Route[${i}] Header[${j}] missing required Name field`);
        const parts = [h.Present === true, str(h.Exact) !== '', str(h.Regex) !== '', str(h.Prefix) !== '', str(h.Suffix) !== ''].filter(Boolean).length;
        if (parts !== 1) fail(`Route[${i}] Header[${j}] should only contain one of Present, Exact, Prefix, Suffix, or Regex`);
      });
      objs(http.QueryParam).forEach((qp, j) => {
        if (str(qp.Name) === '') fail(`Route[${i}] QueryParam[${j}] missing required Name field`);
        const parts = [qp.Present === true, str(qp.Exact) !== '', str(qp.Regex) !== ''].filter(Boolean).length;
        if (parts !== 1) fail(`Route[${i}] QueryParam[${j}] should only contain one of Present, Exact, or Regex`);
      });
      const found = new Set<string>();
      for (const m of (Array.isArray(http.Methods) ? http.Methods : []) as string[]) {
        if (!HTTP_METHODS.has(m)) fail(`Route[${i}] Methods contains an invalid method ${q(m)}`);
        if (found.has(m)) fail(`Route[${i}] Methods contains ${q(m)} more than once`);
        found.add(m);
      }
    }
    const dest = rec(route.Destination);
    if (dest) {
      if (str(dest.PrefixRewrite) !== '' && !prefixRewriteOk) {
        fail(`Route[${i}] cannot make use of PrefixRewrite without configuring either PathExact or PathPrefix`);
      }
      for (const r of (Array.isArray(dest.RetryOn) ? dest.RetryOn : []) as string[]) {
        if (!RETRY_ON.has(r)) fail(`Route[${i}] contains an invalid retry condition: ${q(r)}`);
      }
    }
  });
}

// ---- service-splitter ----------------------------------------------------------------------------

/** Weights in units of 0.01% (Consul's scaleWeight: math.Round(weight*100) on a float32). */
const scaleWeight = (w: number): number => Math.round(Math.fround(Math.fround(w) * 100));

function serviceSplitter(e: Obj): void {
  for (const s of objs(e.Splits)) s.Weight = scaleWeight(typeof s.Weight === 'number' ? s.Weight : 0) / 100;
  const splits = objs(e.Splits);
  if (splits.length === 0) fail('no splits configured');
  checkMeta(e.Meta);
  const found = new Set<string>();
  for (const s of splits) {
    const key = [str(s.Service) || str(e.Name), str(s.ServiceSubset), str(s.Namespace), str(s.Partition)];
    const k = JSON.stringify(key);
    if (found.has(k)) fail(`split destination occurs more than once: service=${q(key[0])}, subset=${q(key[1])}, namespace=${q(key[2])}, partition=${q(key[3])}`);
    found.add(k);
  }
  const sum = splits.reduce((acc, s) => acc + scaleWeight(s.Weight as number), 0);
  if (sum !== 10000) fail(`the sum of all split weights must be 100, not ${(sum / 100).toFixed(6)}`);
}

// ---- service-resolver ----------------------------------------------------------------------------

function serviceResolver(e: Obj): void {
  checkMeta(e.Meta);
  const subsets = rec(e.Subsets) ?? {};
  for (const [name, subset] of Object.entries(subsets)) {
    if (name === '') fail('Subset defined with empty name');
    if (name.length > 63 || !SUBSET_NAME.test(name)) {
      fail(`Subset ${q(name)} is invalid: must be 63 characters or less, begin or end with lower case alphanumeric characters, and contain lower case alphanumeric characters or '-' in between`);
    }
    const filter = str(rec(subset)?.Filter);
    if (filter !== '') {
      try {
        parseFilter(filter);
      } catch (err) {
        fail(`Filter for subset ${q(name)} is not a valid expression: ${(err as Error).message}`);
      }
    }
  }
  const isSubset = (s: string): boolean => Object.hasOwn(subsets, s);
  const defaultSubset = str(e.DefaultSubset);
  if (defaultSubset !== '' && !isSubset(defaultSubset)) fail(`DefaultSubset ${q(defaultSubset)} is not a valid subset`);

  const failover = rec(e.Failover) ?? {};
  const r = rec(e.Redirect);
  if (r) {
    if (Object.keys(failover).length > 0) fail('Redirect and Failover cannot both be set');
    const [svc, subset, ns, part, dc, peer, sg] = ['Service', 'ServiceSubset', 'Namespace', 'Partition', 'Datacenter', 'Peer', 'SamenessGroup'].map((f) => str(r[f]));
    if ([svc, subset, ns, part, dc, peer, sg].every((v) => v === '')) fail('Redirect is empty');
    if (peer !== '' && subset !== '') fail('Redirect.Peer cannot be set with Redirect.ServiceSubset');
    if (peer !== '' && part !== '') fail('Redirect.Partition cannot be set with Redirect.Peer');
    if (peer !== '' && dc !== '') fail('Redirect.Peer cannot be set with Redirect.Datacenter');
    if (svc === '') {
      if (subset !== '') fail('Redirect.ServiceSubset defined without Redirect.Service');
      if (ns !== '') fail('Redirect.Namespace defined without Redirect.Service');
      if (part !== '') fail('Redirect.Partition defined without Redirect.Service');
      if (peer !== '') fail('Redirect.Peer defined without Redirect.Service');
    } else if (subset !== '' && svc === e.Name && !isSubset(subset)) {
      fail(`Redirect.ServiceSubset ${q(subset)} is not a valid subset of ${q(e.Name)}`);
    }
  }

  for (const [subset, fRaw] of Object.entries(failover)) {
    const f = rec(fRaw) ?? {};
    const prefix = `Bad Failover[${q(subset)}]: `;
    if (subset !== WILDCARD && !isSubset(subset)) fail(`${prefix}not a valid subset subset`);
    const dcs = (Array.isArray(f.Datacenters) ? f.Datacenters : []) as string[];
    const targets = objs(f.Targets);
    if (str(f.Service) === '' && str(f.ServiceSubset) === '' && str(f.Namespace) === '' && dcs.length === 0 && targets.length === 0 && str(f.SamenessGroup) === '') {
      fail(`${prefix}one of Service, ServiceSubset, Namespace, Targets, SamenessGroup, or Datacenters is required`);
    }
    if (!FAILOVER_MODES.has(str(rec(f.Policy)?.Mode))) fail(`Bad Failover[${q(subset)}]: Policy must be one of '', 'default', or 'order-by-locality'`);
    if (str(f.ServiceSubset) !== '' && (str(f.Service) === '' || f.Service === e.Name) && !isSubset(str(f.ServiceSubset))) {
      fail(`${prefix}ServiceSubset ${q(f.ServiceSubset)} is not a valid subset of ${q(str(f.Service))}`);
    }
    if (dcs.length > 0 && targets.length > 0) fail(`Bad Failover[${q(subset)}]: Targets cannot be set with Datacenters`);
    if (str(f.ServiceSubset) !== '' && targets.length > 0) fail(`Bad Failover[${q(subset)}]: Targets cannot be set with ServiceSubset`);
    if (str(f.Service) !== '' && targets.length > 0) fail(`Bad Failover[${q(subset)}]: Targets cannot be set with Service`);
    targets.forEach((t, i) => {
      const tp = `Bad Failover[${q(subset)}].Targets[${i}]: `;
      const [svc, sub, part, dc, peer] = ['Service', 'ServiceSubset', 'Partition', 'Datacenter', 'Peer'].map((k) => str(t[k]));
      if (peer !== '' && sub !== '') fail(`${tp}Peer cannot be set with ServiceSubset`);
      if (peer !== '' && part !== '') fail(`${tp}Partition cannot be set with Peer`);
      if (peer !== '' && dc !== '') fail(`${tp}Peer cannot be set with Datacenter`);
      if (part !== '' && dc !== '') fail(`${tp}Partition cannot be set with Datacenter`);
      if (sub !== '' && (svc === '' || svc === e.Name) && !isSubset(sub)) fail(`${tp}ServiceSubset ${q(sub)} is not a valid subset of ${q(e.Name)}`);
    });
    for (const dc of dcs) if (dc === '') fail(`Bad Failover[${q(subset)}].Datacenters: found empty datacenter`);
  }

  if (durationNs(e.ConnectTimeout) < 0n) fail(`Bad ConnectTimeout '${str(e.ConnectTimeout)}', must be >= 0`);
  if (durationNs(e.RequestTimeout) < 0n) fail(`Bad RequestTimeout '${str(e.RequestTimeout)}', must be >= 0`);

  const lb = rec(e.LoadBalancer);
  if (lb) {
    const policy = str(lb.Policy);
    if (!LB_POLICIES.has(policy)) fail(`Bad LoadBalancer policy: ${q(policy)} is not supported`);
    if (policy !== 'ring_hash' && lb.RingHashConfig !== undefined) fail(`Bad LoadBalancer configuration. RingHashConfig specified for incompatible load balancing policy ${q(policy)}`);
    if (policy !== 'least_request' && lb.LeastRequestConfig !== undefined) fail(`Bad LoadBalancer configuration. LeastRequestConfig specified for incompatible load balancing policy ${q(policy)}`);
    const hashPolicies = objs(lb.HashPolicies);
    if (policy !== 'ring_hash' && policy !== 'maglev' && hashPolicies.length > 0) fail(`Bad LoadBalancer configuration: HashPolicies specified for non-hash-based Policy: ${q(policy)}`);
    hashPolicies.forEach((hp, i) => {
      const field = str(hp.Field);
      const value = str(hp.FieldValue);
      if (field !== '' && !HASH_FIELDS.has(field)) fail(`Bad LoadBalancer HashPolicy[${i}]: ${q(field)} is not a supported field`);
      if (hp.SourceIP === true && field !== '') fail(`Bad LoadBalancer HashPolicy[${i}]: A single hash policy cannot hash both a source address and a ${q(field)}`);
      if (hp.SourceIP === true && value !== '') fail(`Bad LoadBalancer HashPolicy[${i}]: A FieldValue cannot be specified when hashing SourceIP`);
      if (field !== '' && value === '') fail(`Bad LoadBalancer HashPolicy[${i}]: Field ${q(field)} was specified without a FieldValue`);
      if (value !== '' && field === '') fail(`Bad LoadBalancer HashPolicy[${i}]: FieldValue requires a Field to apply to`);
      const cookie = rec(hp.CookieConfig);
      if (cookie) {
        if (field !== 'cookie') fail(`Bad LoadBalancer HashPolicy[${i}]: cookie_config provided for ${q(field)}`);
        if (cookie.Session === true && durationNs(cookie.TTL) !== 0n) fail(`Bad LoadBalancer HashPolicy[${i}]: a session cookie cannot have an associated TTL`);
      }
    });
  }
}

// ---- service-intentions --------------------------------------------------------------------------

/** Consul's validateIntentionWildcards for one name (the namespace is always "default" here). */
function wildcardError(name: string, peer: string, samenessGroup: string): string | null {
  if (name !== WILDCARD && name.includes(WILDCARD)) return "Name: wildcard character '*' cannot be used with partial values";
  if (peer.includes(WILDCARD)) return "Peer: cannot use wildcard '*' in peer";
  if (samenessGroup.includes(WILDCARD)) return "SamenessGroup: cannot use wildcard '*' in sameness group";
  return null;
}

function serviceIntentions(e: Obj): void {
  const name = str(e.Name);
  const sources = objs(e.Sources);
  // Normalize: Type defaults to consul, methods are upper-cased, Precedence is computed (any value
  // given is replaced: it is read-only) and sources sorted by descending precedence, stably.
  for (const src of sources) {
    if (str(src.Type) === '') src.Type = 'consul';
    src.Precedence = intentionPrecedence(name, str(src.Name));
    for (const perm of objs(src.Permissions)) {
      const http = rec(perm.HTTP);
      if (http && Array.isArray(http.Methods)) http.Methods = (http.Methods as string[]).map((m) => m.toUpperCase());
    }
  }
  const sorted = sources.map((s, i) => [s, i] as const).sort(([a, i], [b, j]) => (b.Precedence as number) - (a.Precedence as number) || i - j).map(([s]) => s);
  if (e.Sources !== undefined) e.Sources = sorted;

  const destErr = wildcardError(name, '', '');
  if (destErr !== null) fail(destErr);
  const destIsWild = name === WILDCARD;
  checkMeta(e.Meta);
  if (sorted.length === 0) fail('At least one source is required');
  const seen = new Set<string>();
  sorted.forEach((src, i) => {
    const srcName = str(src.Name);
    const peer = str(src.Peer);
    const sg = str(src.SamenessGroup);
    const partition = str(src.Partition);
    if (srcName === '') fail(`Sources[${i}].Name is required`);
    const wErr = wildcardError(srcName, peer, sg);
    if (wErr !== null) fail(`Sources[${i}].${wErr}`);
    if (partition.includes(WILDCARD)) fail(`Sources[${i}].Partition: cannot use wildcard '*' in partition`);
    if (peer !== '' && partition !== '') fail(`Sources[${i}].Peer: cannot set Peer and Partition at the same time.`);
    if (sg !== '' && partition !== '') fail(`Sources[${i}].SamenessGroup: cannot set SamenessGroup and Partition at the same time`);
    if (sg !== '' && peer !== '') fail(`Sources[${i}].SamenessGroup: cannot set SamenessGroup and Peer at the same time`);
    if (Buffer.byteLength(str(src.Description)) > META_VALUE_MAX) fail(`Sources[${i}].Description exceeds maximum length ${META_VALUE_MAX}`);
    if (Object.keys(rec(src.LegacyMeta) ?? {}).length > 0) fail(`Sources[${i}].LegacyMeta must be omitted`);
    if (str(src.LegacyCreateTime) !== '') fail(`Sources[${i}].LegacyCreateTime must be omitted`);
    if (str(src.LegacyUpdateTime) !== '') fail(`Sources[${i}].LegacyUpdateTime must be omitted`);
    if (str(src.LegacyID) !== '') fail(`Sources[${i}].LegacyID must be omitted`);
    const perms = objs(src.Permissions);
    const action = str(src.Action);
    if (perms.length === 0 && action !== 'allow' && action !== 'deny') fail(`Sources[${i}].Action must be set to 'allow' or 'deny'`);
    if (perms.length > 0 && action !== '') fail(`Sources[${i}].Action must be omitted if Permissions are specified`);
    if (destIsWild && perms.length > 0) fail(`Sources[${i}].Permissions cannot be specified on intentions with wildcarded destinations`);
    if (src.Type !== 'consul') fail(`Sources[${i}].Type must be set to 'consul'`);
    perms.forEach((perm, j) => {
      if (perm.Action !== 'allow' && perm.Action !== 'deny') fail(`Sources[${i}].Permissions[${j}].Action must be set to 'allow' or 'deny'`);
      const p = `Sources[${i}].Permissions[${j}].HTTP`;
      const http = rec(perm.HTTP);
      if (!http) return fail(`${p} is required`);
      let pathParts = 0;
      if (str(http.PathExact) !== '') {
        pathParts++;
        if (!str(http.PathExact).startsWith('/')) fail(`${p}.PathExact doesn't start with '/': ${q(http.PathExact)}`);
      }
      if (str(http.PathPrefix) !== '') {
        pathParts++;
        if (!str(http.PathPrefix).startsWith('/')) fail(`${p}.PathPrefix doesn't start with '/': ${q(http.PathPrefix)}`);
      }
      if (str(http.PathRegex) !== '') pathParts++;
      if (pathParts > 1) fail(`${p} should only contain at most one of PathExact, PathPrefix, or PathRegex`);
      let permParts = pathParts;
      objs(http.Header).forEach((h, k) => {
        if (str(h.Name) === '') fail(`${p}.Header[${k}] missing required Name field`);
        const parts = [h.Present === true, str(h.Exact) !== '', str(h.Regex) !== '', str(h.Prefix) !== '', str(h.Suffix) !== ''].filter(Boolean).length;
        if (parts !== 1) fail(`${p}.Header[${k}] should only contain one of Present, Exact, Prefix, Suffix, or Regex`);
        permParts++;
      });
      const methods = (Array.isArray(http.Methods) ? http.Methods : []) as string[];
      if (methods.length > 0) {
        const found = new Set<string>();
        for (const m of methods) {
          if (!HTTP_METHODS.has(m)) fail(`${p}.Methods contains an invalid method ${q(m)}`);
          if (found.has(m)) fail(`${p}.Methods contains ${q(m)} more than once`);
          found.add(m);
        }
        permParts++;
      }
      if (permParts === 0) fail(`${p} should not be empty`);
      return undefined;
    });
    const key = JSON.stringify([peer, sg, srcName]);
    if (seen.has(key)) {
      if (peer !== '') fail(`Sources[${i}] defines peer(${q(peer)}) ${q(srcName)} more than once`);
      if (sg !== '') fail(`Sources[${i}] defines sameness-group(${q(sg)}) ${q(srcName)} more than once`);
      fail(`Sources[${i}] defines ${q(srcName)} more than once`);
    }
    seen.add(key);
  });
}

// ---- exported-services ---------------------------------------------------------------------------

function exportedServices(e: Obj): void {
  if (e.Name === WILDCARD) fail('exported-services Name must be the name of a partition, and not a wildcard');
  // Trellis, like Consul CE, has the one partition.
  if (e.Name !== 'default') fail(`Partition: Partitions is an Enterprise-only feature (exported-services Name must be "default", got ${q(e.Name)})`);
  checkMeta(e.Meta);
  objs(e.Services).forEach((svc, i) => {
    if (str(svc.Name) === '') fail(`Services[${i}]: service name cannot be empty`);
    if (svc.Namespace === WILDCARD && svc.Name !== WILDCARD) fail(`Services[${i}]: service name must be wildcard if namespace is wildcard`);
    const consumers = objs(svc.Consumers);
    if (consumers.length === 0) fail(`Services[${i}]: must have at least one consumer`);
    consumers.forEach((c, j) => {
      const set = [str(c.Peer), str(c.Partition), str(c.SamenessGroup)].filter((v) => v !== '').length;
      const p = `Services[${i}].Consumers[${j}]`;
      if (set > 1) fail(`${p}: must define at most one of Peer, Partition, or SamenessGroup`);
      if (set === 0) fail(`${p}: must define one of Peer, Partition, or SamenessGroup`);
      if (c.Partition === WILDCARD) fail(`${p}: exporting to all partitions (wildcard) is not supported`);
      if (c.Peer === WILDCARD) fail(`${p}: exporting to all peers (wildcard) is not supported`);
      if (c.SamenessGroup === WILDCARD) fail(`${p}: exporting to all sameness groups (wildcard) is not supported`);
      if (str(c.Partition) !== '' && c.Partition !== 'default') fail(`${p}: Partitions are an enterprise-only feature`);
      if (str(c.SamenessGroup) !== '') fail(`${p}: Sameness groups are an enterprise-only feature`);
    });
  });
}

/** Normalize then Validate, per kind (Consul's ConfigEntry.Apply order). Mutates `e`. */
export const KIND_RULES: Readonly<Record<string, (e: Obj) => void>> = {
  'proxy-defaults': proxyDefaults,
  'service-defaults': serviceDefaults,
  'service-router': serviceRouter,
  'service-splitter': serviceSplitter,
  'service-resolver': serviceResolver,
  'service-intentions': serviceIntentions,
  mesh,
  'exported-services': exportedServices,
};
