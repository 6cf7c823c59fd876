// Topology (/ui/<dc>/topology): every service as a node coloured by its health, an edge for every
// upstream a sidecar registers, coloured by what the intentions say (connect/intentions/check,
// asked again whenever the intentions or the edges change).
import { useEffect, useState } from 'preact/hooks';
import { api, useLive } from '../api.ts';
import { Empty, ErrorBox, Loading, html } from '../components.ts';
import { Graph } from '../graph.ts';
import { meshEdges, type NodeDump } from '../mesh.ts';
import { href } from '../router.ts';
import type { ServiceSummary } from './services.ts';

export function TopologyPage({ dc }: { dc: string }) {
  const dump = useLive<NodeDump[]>('/v1/internal/ui/nodes');
  const services = useLive<ServiceSummary[]>('/v1/internal/ui/services');
  const intentions = useLive<unknown[]>('/v1/connect/intentions');
  const edges = meshEdges(dump.data ?? []);
  const edgeKey = edges.map((e) => `${e.from}>${e.to}`).join(',');
  const [allowed, setAllowed] = useState<Record<string, boolean>>({});
  useEffect(() => {
    let live = true;
    void Promise.all(edges.map(async (e) => {
      try {
        const r = await api<{ Allowed: boolean }>('GET', `/v1/connect/intentions/check?source=${encodeURIComponent(e.from)}&destination=${encodeURIComponent(e.to)}`);
        return [`${e.from}>${e.to}`, r.data.Allowed] as const;
      } catch { return undefined; }
    })).then((rs) => { if (live) setAllowed(Object.fromEntries(rs.filter((r) => r !== undefined))); });
    return () => { live = false; };
  }, [edgeKey, intentions.data]);
  const list = (services.data ?? []).filter((s) => s.Kind === '');
  const names = new Set(list.map((s) => s.Name));
  for (const e of edges) { names.add(e.from); names.add(e.to); }
  const health = (name: string): string => {
    const s = list.find((x) => x.Name === name);
    if (!s) return 'unknown';
    return s.ChecksCritical > 0 ? 'critical' : s.ChecksWarning > 0 ? 'warning' : 'passing';
  };
  const nodes = [...names].sort().map((n) => ({ id: n, label: n, sub: health(n), kind: `svc health-${health(n)}`, href: href(dc, 'services', n) }));
  const gEdges = edges.map((e) => {
    const a = allowed[`${e.from}>${e.to}`];
    return { from: e.from, to: e.to, label: a === undefined ? '' : a ? 'allowed' : 'denied', kind: a === undefined ? 'plain' : a ? 'allowed' : 'denied' };
  });
  return html`<section aria-labelledby="h-topo">
    <header class="page-head"><h1 id="h-topo">Topology</h1></header>
    <${ErrorBox} error=${dump.error ?? services.error} />
    ${dump.loading || services.loading ? html`<${Loading} />` : nodes.length === 0 ? html`<${Empty}>No services yet: the topology shows services and the upstreams their sidecar proxies declare.<//>` : html`
      <p class="legend"><span class="swatch allowed"></span> allowed by intentions <span class="swatch denied"></span> denied <span class="badge health-passing">passing</span> <span class="badge health-critical">critical</span></p>
      ${edges.length === 0 ? html`<p class="muted">No upstreams registered yet: edges come from sidecar proxies' Proxy.Upstreams.</p>` : null}
      <div class="graph-wrap" data-testid="topology"><${Graph} nodes=${nodes} edges=${gEdges} title="Service topology" /></div>`}
  </section>`;
}
