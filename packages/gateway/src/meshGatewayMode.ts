// Which way a sidecar reaches a target in another datacenter (Consul's MeshGateway.Mode; its
// agent/xds/clusters.go and the proxycfg upstream watches):
//   none (or unset)  the remote instance itself, as the catalog of that datacenter lists it
//   local            a mesh gateway of the sidecar's own datacenter (its LAN address)
//   remote           a mesh gateway of the target's datacenter (its WAN address)
// The connection is the same mTLS session in every mode: the SNI names the target and the server
// certificate must be the target's SPIFFE ID; gateways only forward bytes. For a target in the
// sidecar's own datacenter the mode does not apply (Consul dials local targets directly).
//
// Precedence, as Consul: the upstream's own MeshGateway, then the proxy registration's (where the
// agent merges the source's service-defaults and proxy-defaults in Consul), then the mode the
// compiled chain carries on the target (service-defaults of the target, then proxy-defaults).

import type { CompiledDiscoveryChain, DiscoveryTarget } from './chainTypes.ts';

export type MeshGatewayMode = 'none' | 'local' | 'remote';
export const MESH_GATEWAY_MODES: ReadonlySet<string> = new Set(['', 'none', 'local', 'remote']);

/** The service name sidecars look mesh gateways up by (what `trellis connect gateway` registers by default). */
export const MESH_GATEWAY_SERVICE = 'mesh-gateway';

type ModeField = { Mode?: string } | null | undefined;

export function resolveMeshGatewayMode(...inOrder: ModeField[]): MeshGatewayMode {
  for (const m of inOrder) {
    const mode = m?.Mode ?? '';
    if (mode === 'none' || mode === 'local' || mode === 'remote') return mode;
  }
  return 'none';
}

/** The target a chain's start resolves to (following routers/splitters is L7's job; L4 chains start at a resolver). */
export function startTarget(chain: CompiledDiscoveryChain | undefined): (DiscoveryTarget & { MeshGateway?: ModeField }) | undefined {
  if (!chain) return undefined;
  const node = chain.Nodes[chain.StartNode];
  const id = node?.Type === 'resolver' ? node.Resolver?.Target : undefined;
  return id ? chain.Targets[id] : undefined;
}

interface GatewayEntry {
  Node: { Address: string };
  Service: { Address?: string; Port: number; TaggedAddresses?: Record<string, { Address: string; Port: number }> };
}

/** A gateway entry's address for one side: TaggedAddresses.lan|wan, else the service's (or its node's) address. */
export function gatewayAddress(e: GatewayEntry, side: 'lan' | 'wan'): { host: string; port: number } {
  const tagged = e.Service.TaggedAddresses?.[side];
  if (tagged?.Address && tagged.Port) return { host: tagged.Address, port: tagged.Port };
  return { host: e.Service.Address || e.Node.Address, port: e.Service.Port };
}

/**
 * For a target in another datacenter reached through a mesh gateway: the health query listing those
 * gateways and which of their addresses to dial. Undefined when the target is dialled directly
 * (same datacenter, or mode none).
 */
export function gatewayRoute(targetDc: string | undefined, localDc: string | undefined, mode: MeshGatewayMode): { path: string; side: 'lan' | 'wan' } | undefined {
  if (!targetDc || localDc === undefined || targetDc === localDc || mode === 'none') return undefined;
  const q = new URLSearchParams({ passing: '1' });
  if (mode === 'remote') q.set('dc', targetDc);
  return { path: `/v1/health/service/${MESH_GATEWAY_SERVICE}?${q.toString()}`, side: mode === 'local' ? 'lan' : 'wan' };
}
