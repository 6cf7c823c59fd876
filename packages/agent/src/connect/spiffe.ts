// SPIFFE IDs of Connect certificates (Consul's agent/connect/uri*.go): what a certificate's URI SAN
// says it is. Pure: parse and format only, no I/O.
//
//   service      spiffe://<td>/ns/<ns>/dc/<dc>/svc/<service>
//   client agent spiffe://<td>/agent/client/dc/<dc>/id/<node>
//   server       spiffe://<td>/agent/server/dc/<dc>
//   mesh gateway spiffe://<td>/gateway/mesh/dc/<dc>
//   signing (CA) spiffe://<td>
//
// Trellis has one namespace, "default", but parses any (Consul OSS writes and reads "default").

export type SpiffeId =
  | { kind: 'service'; trustDomain: string; namespace: string; datacenter: string; service: string }
  | { kind: 'agent'; trustDomain: string; datacenter: string; node: string }
  | { kind: 'server'; trustDomain: string; datacenter: string }
  | { kind: 'mesh-gateway'; trustDomain: string; datacenter: string }
  | { kind: 'signing'; trustDomain: string };

export const DEFAULT_NAMESPACE = 'default';

/** Consul's text when a URI matches none of the forms. */
export class SpiffeParseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SpiffeParseError';
  }
}

/** Trust domain of a cluster: `<cluster-id>.consul`, lower case (Consul's TrustDomain). */
export function trustDomainFor(clusterId: string): string {
  return `${clusterId}.consul`.toLowerCase();
}

/** Path segments are escaped as Go's url.PathEscape would: anything outside unreserved + sub-delims. */
function esc(s: string): string {
  return encodeURIComponent(s).replace(/%(2[146-9ABC]|3[BD]|40)/gi, (m) => decodeURIComponent(m));
}

export function serviceId(trustDomain: string, datacenter: string, service: string, namespace = DEFAULT_NAMESPACE): SpiffeId {
  return { kind: 'service', trustDomain, namespace, datacenter, service };
}

export function formatSpiffeId(id: SpiffeId): string {
  const base = `spiffe://${id.trustDomain}`;
  switch (id.kind) {
    case 'service':
      return `${base}/ns/${esc(id.namespace)}/dc/${esc(id.datacenter)}/svc/${esc(id.service)}`;
    case 'agent':
      return `${base}/agent/client/dc/${esc(id.datacenter)}/id/${esc(id.node)}`;
    case 'server':
      return `${base}/agent/server/dc/${esc(id.datacenter)}`;
    case 'mesh-gateway':
      return `${base}/gateway/mesh/dc/${esc(id.datacenter)}`;
    case 'signing':
      return base;
  }
}

function unesc(s: string, uri: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw new SpiffeParseError(`SPIFFE ID has a badly escaped segment: ${uri}`);
  }
}

/**
 * Consul's ParseCertURI. Throws SpiffeParseError with Consul's texts: a scheme other than spiffe
 * ("URI is not a SPIFFE URI"... Consul: "URI scheme must be 'spiffe'"), an unknown form
 * ("SPIFFE ID is not in the expected format").
 */
export function parseSpiffeId(uri: string): SpiffeId {
  const m = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\/([^/?#]*)(\/[^?#]*)?$/.exec(uri);
  if (!m) throw new SpiffeParseError(`SPIFFE ID is not in the expected format: ${uri}`);
  if (m[1]!.toLowerCase() !== 'spiffe') throw new SpiffeParseError("URI scheme must be 'spiffe'");
  const trustDomain = m[2]!.toLowerCase();
  if (trustDomain === '') throw new SpiffeParseError(`SPIFFE ID has no trust domain: ${uri}`);
  const path = m[3] ?? '';
  if (path === '' || path === '/') return { kind: 'signing', trustDomain };
  const p = path.slice(1).split('/').map((s) => unesc(s, uri));
  if (p.length === 6 && p[0] === 'ns' && p[2] === 'dc' && p[4] === 'svc' && p.every((s) => s !== '')) {
    return { kind: 'service', trustDomain, namespace: p[1]!, datacenter: p[3]!, service: p[5]! };
  }
  if (p.length === 6 && p[0] === 'agent' && p[1] === 'client' && p[2] === 'dc' && p[4] === 'id' && p[3] !== '' && p[5] !== '') {
    return { kind: 'agent', trustDomain, datacenter: p[3]!, node: p[5]! };
  }
  if (p.length === 4 && p[0] === 'agent' && p[1] === 'server' && p[2] === 'dc' && p[3] !== '') {
    return { kind: 'server', trustDomain, datacenter: p[3]! };
  }
  if (p.length === 4 && p[0] === 'gateway' && p[1] === 'mesh' && p[2] === 'dc' && p[3] !== '') {
    return { kind: 'mesh-gateway', trustDomain, datacenter: p[3]! };
  }
  throw new SpiffeParseError(`SPIFFE ID is not in the expected format: ${uri}`);
}

/**
 * Whether a CA of `trustDomain` may sign this ID (Consul's SpiffeIDSigning.CanSign): same trust
 * domain (case-insensitive), and not another CA.
 */
export function canSign(trustDomain: string, id: SpiffeId): boolean {
  return id.kind !== 'signing' && id.trustDomain === trustDomain.toLowerCase();
}
