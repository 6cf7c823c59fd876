// The DNS server's view of the catalog: passing instances only, local datacenter (and, with WAN
// federation, other datacenters' answers fetched from their servers).
import type { StateStore } from '../state/index.ts';
import type { DnsLookup, ServiceInstance, NodeInfo } from '../dns/index.ts';

export function catalogDnsLookup(store: StateStore, datacenter: string, federation?: Pick<DnsLookup, 'datacenters' | 'remote'>): DnsLookup {
  return {
    serviceInstances(service: string, tag: string | undefined): ServiceInstance[] {
      const rows = store.healthServiceNodes(service, { passingOnly: true, ...(tag !== undefined ? { tag } : {}) }).value;
      return rows.map((r) => ({
        node: r.Node.Node, nodeAddress: r.Node.Address, serviceAddress: r.Service.Address ?? '',
        port: r.Service.Port ?? 0, datacenter: r.Node.Datacenter || datacenter,
      }));
    },
    node(name: string): NodeInfo | undefined {
      const n = store.node(name).value;
      return n ? { node: n.Node, address: n.Address, datacenter: n.Datacenter || datacenter } : undefined;
    },
    datacenters: () => [datacenter],
    // Other datacenters (server/role.ts: asked over the WAN).
    ...federation,
  };
}
