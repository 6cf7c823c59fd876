// Common Names of Connect certificates (Consul's agent/connect/common_names.go). The CN proves
// nothing (the URI SAN is the identity) but some CAs require an FQDN-like CN of at most 64 bytes.
// Pure.

const INVALID_DNS = /[^a-z0-9]/g;
/** 64 (CN limit) − 21 (".consul", ".<td8>", ".svc."). */
const MAX_SERVICE_AND_NAMESPACE = 64 - 21;
const MIN_SERVICE = 15;
const MIN_NAMESPACE = 15;

const truncate = (s: string, n: number): string => (s.length > n ? s.slice(0, n) : s);

/** Consul's truncateServiceAndNamespace: both fit in 43 bytes, neither cut below 15 when avoidable. */
function fitServiceAndNamespace(svc: string, ns: string): [string, string] {
  const total = svc.length + ns.length;
  if (total <= MAX_SERVICE_AND_NAMESPACE) return [svc, ns];
  const remove = total - MAX_SERVICE_AND_NAMESPACE;
  if (svc.length <= MIN_SERVICE) return [svc, truncate(ns, ns.length - remove)];
  if (ns.length <= MIN_NAMESPACE) return [truncate(svc, svc.length - remove), ns];
  let svcLen = svc.length - Math.floor(remove / 2) - (remove % 2);
  let nsLen = ns.length - Math.floor(remove / 2);
  if (svcLen <= MIN_SERVICE) {
    svcLen = MIN_SERVICE;
    nsLen = MAX_SERVICE_AND_NAMESPACE - MIN_SERVICE;
  } else if (nsLen <= MIN_NAMESPACE) {
    svcLen = MAX_SERVICE_AND_NAMESPACE - MIN_NAMESPACE;
    nsLen = MIN_NAMESPACE;
  }
  return [truncate(svc, svcLen), truncate(ns, nsLen)];
}

/** `<service>.svc.<ns>.<first 8 of the trust domain>.consul` (Consul's ServiceCN). */
export function serviceCN(service: string, namespace: string, trustDomain: string): string {
  const [svc, ns] = fitServiceAndNamespace(service.toLowerCase().replace(INVALID_DNS, ''), namespace);
  return `${svc}.svc.${ns}.${truncate(trustDomain, 8)}.consul`;
}

/** `<node>.agnt.<first 8 of the trust domain>.consul` (Consul's AgentCN). */
export function agentCN(node: string, trustDomain: string): string {
  return `${truncate(node.toLowerCase().replace(INVALID_DNS, ''), 64 - 21)}.agnt.${truncate(trustDomain, 8)}.consul`;
}

/**
 * `pri-<uid8>.<provider>.ca.<first 8 of the trust domain>.consul` (Consul's CACN): the unique id
 * keeps the CNs of successive roots apart, which chain building relies on.
 */
export function caCN(provider: string, uniqueId: string, trustDomain: string, primary = true): string {
  const p = truncate(provider.toLowerCase().replace(INVALID_DNS, ''), 64 - 32);
  const uid = truncate(uniqueId.toLowerCase().replace(INVALID_DNS, ''), 8);
  return `${primary ? 'pri' : 'sec'}-${uid}.${p}.ca.${truncate(trustDomain, 8)}.consul`;
}
