// The mesh as the catalog describes it: an edge A → B for every upstream B that a sidecar proxy of
// A registers (Proxy.Upstreams[].DestinationName), from /v1/internal/ui/nodes.
export interface Check { Node: string; CheckID: string; Name: string; Status: string; Output: string; Notes: string; ServiceID: string; ServiceName: string; Type: string }
export interface Service {
  Kind: string; ID: string; Service: string; Tags: string[]; Address: string; Port: number; Meta: Record<string, string>;
  Proxy?: { DestinationServiceName?: string; Upstreams?: { DestinationName?: string; DestinationType?: string; LocalBindPort?: number }[] };
}
export interface NodeDump { ID: string; Node: string; Address: string; Datacenter: string; Meta: Record<string, string>; Services: Service[]; Checks: Check[] }

export interface MeshEdge { from: string; to: string }

export function meshEdges(dump: NodeDump[]): MeshEdge[] {
  const seen = new Set<string>();
  const out: MeshEdge[] = [];
  for (const n of dump) {
    for (const s of n.Services) {
      if (s.Kind !== 'connect-proxy' || !s.Proxy?.DestinationServiceName) continue;
      for (const u of s.Proxy.Upstreams ?? []) {
        if (!u.DestinationName || (u.DestinationType && u.DestinationType !== 'service')) continue;
        const key = `${s.Proxy.DestinationServiceName}\u0000${u.DestinationName}`;
        if (seen.has(key)) continue;
        seen.add(key);
        out.push({ from: s.Proxy.DestinationServiceName, to: u.DestinationName });
      }
    }
  }
  return out;
}
