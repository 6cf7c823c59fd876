// /v1/internal/ui/*: the summaries Consul's web UI reads (agent/ui_endpoint.go), so the UI's
// services and nodes pages each follow one blocking query instead of one request per service:
//   GET /v1/internal/ui/services  one row per service name: kind, tags, nodes, instance count and
//                                 the number of its checks passing / warning / critical (node
//                                 checks of the instances' nodes count too, as in Consul)
//   GET /v1/internal/ui/nodes     Consul's NodeDump: every node with its services and checks
// Both are blocking queries over the nodes, services and checks tables.

import type { HealthCheck, Node, NodeService, QueryResult, WatchRecorder } from '../../state/types.ts';
import type { HttpStore } from '../backend.ts';
import type { RequestContext } from '../context.ts';
import type { EndpointSpec, RouteDeps } from '../router.ts';
import { readQuery } from './common.ts';

export interface NodeDumpEntry {
  ID: string;
  Node: string;
  Address: string;
  Datacenter: string;
  TaggedAddresses: Record<string, string>;
  Meta: Record<string, string>;
  Services: NodeService[];
  Checks: HealthCheck[];
}

export interface ServiceSummary {
  Kind: string;
  Name: string;
  Datacenter: string;
  Tags: string[];
  Nodes: string[];
  InstanceCount: number;
  ChecksPassing: number;
  ChecksWarning: number;
  ChecksCritical: number;
  /** A connect-proxy registered for it (Consul's ConnectedWithProxy). */
  ConnectedWithProxy: boolean;
  ExternalSources: string[];
}

/** Every node with its services and checks, in the store's (name) order. */
export function nodeDump(store: HttpStore, ws?: WatchRecorder): QueryResult<NodeDumpEntry[]> {
  const nodes = store.nodes(ws);
  const checks = store.checksInState('any', ws);
  const byNode = new Map<string, HealthCheck[]>();
  for (const c of checks.value) {
    let list = byNode.get(c.Node);
    if (!list) byNode.set(c.Node, (list = []));
    list.push(c);
  }
  let index = Math.max(nodes.index, checks.index);
  const value = nodes.value.map((n: Node) => {
    const svc = store.nodeServices(n.Node, ws);
    index = Math.max(index, svc.index);
    return {
      ID: n.ID, Node: n.Node, Address: n.Address, Datacenter: n.Datacenter,
      TaggedAddresses: n.TaggedAddresses ?? {}, Meta: n.Meta ?? {},
      Services: svc.value?.Services ?? [], Checks: byNode.get(n.Node) ?? [],
    };
  });
  return { index, value };
}

/** Consul's ServiceListingSummary rows, by name. */
export function serviceSummaries(dump: NodeDumpEntry[], datacenter: string): ServiceSummary[] {
  const out = new Map<string, ServiceSummary & { tags: Set<string>; nodes: Set<string> }>();
  const proxied = new Set<string>();
  for (const n of dump) {
    const nodeChecks = n.Checks.filter((c) => c.ServiceID === '');
    for (const s of n.Services) {
      if (s.Kind === 'connect-proxy' && s.Proxy?.DestinationServiceName) proxied.add(s.Proxy.DestinationServiceName);
      let row = out.get(s.Service);
      if (!row) {
        row = {
          Kind: s.Kind ?? '', Name: s.Service, Datacenter: datacenter, Tags: [], Nodes: [], InstanceCount: 0,
          ChecksPassing: 0, ChecksWarning: 0, ChecksCritical: 0, ConnectedWithProxy: false, ExternalSources: [],
          tags: new Set(), nodes: new Set(),
        };
        out.set(s.Service, row);
      }
      row.InstanceCount++;
      for (const t of s.Tags ?? []) row.tags.add(t);
      row.nodes.add(n.Node);
      const src = s.Meta?.['external-source'];
      if (src && !row.ExternalSources.includes(src)) row.ExternalSources.push(src);
      for (const c of [...nodeChecks, ...n.Checks.filter((c) => c.ServiceID === s.ID)]) {
        if (c.Status === 'passing') row.ChecksPassing++;
        else if (c.Status === 'warning') row.ChecksWarning++;
        else if (c.Status === 'critical') row.ChecksCritical++;
      }
    }
  }
  return [...out.values()]
    .sort((a, b) => (a.Name < b.Name ? -1 : a.Name > b.Name ? 1 : 0))
    .map(({ tags, nodes, ...row }) => ({ ...row, Tags: [...tags].sort(), Nodes: [...nodes].sort(), ConnectedWithProxy: proxied.has(row.Name) }));
}

export function uiInternalRoutes(deps: RouteDeps): EndpointSpec[] {
  const { backend } = deps;
  const nodes = async (ctx: RequestContext): Promise<NodeDumpEntry[]> =>
    (await readQuery(ctx, deps, (ws) => nodeDump(backend.store, ws))).value;
  const services = async (ctx: RequestContext): Promise<ServiceSummary[]> => {
    const res = await readQuery(ctx, deps, (ws) => nodeDump(backend.store, ws));
    return serviceSummaries(res.value, backend.config.datacenter);
  };
  return [
    { path: '/v1/internal/ui/nodes', methods: { GET: nodes } },
    { path: '/v1/internal/ui/services', methods: { GET: services } },
  ];
}
