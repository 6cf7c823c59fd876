// The names the proxy reads and writes at the mesh's edges (Consul's agent/connect/uri_service.go
// and sni.go; ARCHITECTURE.md "Names at the edges"). The agent has its own copy in its pure
// connect/ folder; the gateway never imports the agent, so it carries the few lines it needs.
//
//   service SPIFFE ID  spiffe://<td>/ns/<ns>/dc/<dc>/svc/<service>
//   upstream SNI       <service>.<ns>.<dc>.internal.<td>

export interface ServiceIdentity {
  trustDomain: string;
  namespace: string;
  datacenter: string;
  service: string;
}

const SERVICE_PATH = /^\/ns\/([^/]+)\/dc\/([^/]+)\/svc\/([^/]+)$/;

/** The service identity a `spiffe://` URI names, or undefined for any other URI (agents, gateways). */
export function parseServiceUri(uri: string): ServiceIdentity | undefined {
  let u: URL;
  try {
    u = new URL(uri);
  } catch {
    return undefined; // not a URI at all: no identity
  }
  if (u.protocol !== 'spiffe:' || u.host === '') return undefined;
  const m = SERVICE_PATH.exec(u.pathname);
  if (!m) return undefined;
  try {
    return { trustDomain: u.host.toLowerCase(), namespace: decodeURIComponent(m[1]!), datacenter: decodeURIComponent(m[2]!), service: decodeURIComponent(m[3]!) };
  } catch {
    return undefined; // a bad %-escape: not a name Consul would have written
  }
}

export function serviceUri(id: ServiceIdentity): string {
  const e = encodeURIComponent;
  return `spiffe://${id.trustDomain}/ns/${e(id.namespace)}/dc/${e(id.datacenter)}/svc/${e(id.service)}`;
}

/** Consul's connect.ServiceSNI for the default namespace and partition (no subset). */
export function upstreamSni(service: string, datacenter: string, trustDomain: string, namespace = 'default'): string {
  return `${service}.${namespace}.${datacenter}.internal.${trustDomain}`;
}

/**
 * The URI SANs of a peer certificate as Node reports them (`subjectaltname`:
 * `DNS:a, URI:spiffe://..., IP Address:...`).
 */
export function uriSans(subjectaltname: string | undefined): string[] {
  if (!subjectaltname) return [];
  return subjectaltname.split(/,\s*/).filter((s) => s.startsWith('URI:')).map((s) => s.slice(4));
}
