// The SNI names a mesh gateway routes (ARCHITECTURE.md "Names at the edges"; Consul's
// agent/connect/sni.go):
//   [<subset>.]<service>.<namespace>.<dc>.internal.<trust-domain>   a target
//   <dc>.internal.<trust-domain>                                     a datacenter (gateway to gateway)
// and, for WAN federation through mesh gateways (Consul's agent/xds listeners for a mesh gateway
// with enable_mesh_gateway_wan_federation; agent/pool's server SNI):
//   server.<dc>.<domain>                                             any server of a datacenter
//   <node>.server.<dc>.<domain>                                      one server (by node name)
// Pure.

export type MeshName =
  | { kind: 'target'; service: string; namespace: string; datacenter: string; subset?: string }
  | { kind: 'datacenter'; datacenter: string };

export type NameRefusal = 'wrong_trust_domain' | 'unknown_name';

/** Subset names, service and datacenter labels: DNS labels (Consul validates subsets this way). */
const LABEL = /^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?$/;

/**
 * What `sni` (lower case, as the ClientHello peeker returns it) names within `trustDomain`, or
 * why the gateway cannot route it.
 */
export function parseMeshSni(sni: string, trustDomain: string): MeshName | { refused: NameRefusal; detail: string } {
  const td = trustDomain.toLowerCase();
  const suffix = `.internal.${td}`;
  if (!sni.endsWith(suffix)) {
    if (/\.internal(-v1)?\./.test(sni)) return { refused: 'wrong_trust_domain', detail: `${sni} is not in trust domain ${td}` };
    return { refused: 'unknown_name', detail: `${sni} is not a mesh name (*.internal.${td})` };
  }
  const labels = sni.slice(0, -suffix.length).split('.');
  if (!labels.every((l) => LABEL.test(l))) return { refused: 'unknown_name', detail: `${sni}: a label is empty or not a DNS label` };
  if (labels.length === 1) return { kind: 'datacenter', datacenter: labels[0]! };
  if (labels.length === 3) return { kind: 'target', service: labels[0]!, namespace: labels[1]!, datacenter: labels[2]! };
  if (labels.length === 4) return { kind: 'target', subset: labels[0]!, service: labels[1]!, namespace: labels[2]!, datacenter: labels[3]! };
  return { refused: 'unknown_name', detail: `${sni}: ${labels.length} labels before .internal (want 1, 3 or 4)` };
}

/** A server name: which datacenter, and which server (absent: any). */
export interface ServerName { datacenter: string; node?: string }

/**
 * `server.<dc>.<domain>` or `<node>.server.<dc>.<domain>` (lower case), or undefined when `sni`
 * is not a server name of `domain` (Consul's default `consul`; a trailing dot is ignored). Node
 * names must be one DNS label: a dotted node name would be ambiguous.
 */
export function parseServerSni(sni: string, domain: string): ServerName | undefined {
  const suffix = `.${domain.toLowerCase().replace(/\.$/, '')}`;
  if (!sni.endsWith(suffix)) return undefined;
  const labels = sni.slice(0, -suffix.length).split('.');
  if (!labels.every((l) => LABEL.test(l))) return undefined;
  if (labels.length === 2 && labels[0] === 'server') return { datacenter: labels[1]! };
  if (labels.length === 3 && labels[1] === 'server') return { datacenter: labels[2]!, node: labels[0]! };
  return undefined;
}

/** The chain target ID Consul gives the same target: `[<subset>.]<service>.<ns>.<dc>` (metric label). */
export function targetId(n: Extract<MeshName, { kind: 'target' }>): string {
  return `${n.subset ? `${n.subset}.` : ''}${n.service}.${n.namespace}.${n.datacenter}`;
}
