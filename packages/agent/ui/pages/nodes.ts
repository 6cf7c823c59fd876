// Nodes (Consul's /ui/<dc>/nodes): health, address, datacenter and services of each node, the Raft
// leader marked (from /v1/operator/raft/configuration, else by /v1/status/leader's address).
import { useState } from 'preact/hooks';
import { useLive } from '../api.ts';
import { Empty, ErrorBox, FilterBox, HealthBadge, Loading, useProgressive, Meta, html, worst } from '../components.ts';
import type { NodeDump } from '../mesh.ts';
import { href } from '../router.ts';

interface RaftConfig { Servers: { Node: string; Address: string; Leader: boolean }[] }

function useLeader(): string | undefined {
  const raft = useLive<RaftConfig>('/v1/operator/raft/configuration');
  const leader = useLive<string>('/v1/status/leader');
  const byRaft = raft.data?.Servers?.find((s) => s.Leader)?.Node;
  return byRaft ?? (leader.data ? `addr:${String(leader.data).replace(/:\d+$/, '')}` : undefined);
}

const isLeader = (n: NodeDump, leader: string | undefined): boolean => leader !== undefined && (leader === n.Node || leader === `addr:${n.Address}`);

export function NodesPage({ dc }: { dc: string }) {
  const live = useLive<NodeDump[]>('/v1/internal/ui/nodes');
  const leader = useLeader();
  const [filter, setFilter] = useState('');
  const all = live.data ?? [];
  const q = filter.trim().toLowerCase();
  const rows = q === '' ? all : all.filter((n) => n.Node.toLowerCase().includes(q) || n.Address.includes(q));
  const shown = useProgressive(rows.length);
  return html`<section aria-labelledby="h-nodes">
    <header class="page-head"><h1 id="h-nodes">Nodes <span class="count">${all.length}</span></h1>
      <${FilterBox} label="Filter by name or address" value=${filter} onInput=${setFilter} /></header>
    <${ErrorBox} error=${live.error} />
    ${live.loading ? html`<${Loading} />` : all.length === 0 && !live.error ? html`<${Empty}>No nodes yet: start an agent with <code>trellis agent -join …</code>.<//>` : null}
    ${rows.length > 0 ? html`<table class="list" data-testid="nodes"><thead><tr><th scope="col">Node</th><th scope="col">Health</th><th scope="col">Address</th><th scope="col">Datacenter</th><th scope="col">Services</th></tr></thead>
      <tbody>${rows.slice(0, shown).map((n) => html`<tr key=${n.Node} data-node=${n.Node}>
        <th scope="row"><a href=${href(dc, 'nodes', n.Node)}>${n.Node}</a>${isLeader(n, leader) ? html` <span class="badge leader" title="Raft leader">★ leader</span>` : null}</th>
        <td><${HealthBadge} status=${worst(n.Checks.filter((c) => c.ServiceID === '').map((c) => c.Status))} /></td>
        <td data-label="Address">${n.Address}</td><td data-label="Datacenter">${n.Datacenter}</td>
        <td>${n.Services.length === 0 ? html`<span class="muted">none</span>` : n.Services.map((s) => html`<a class="tag" href=${href(dc, 'services', s.Service)}>${s.Service}</a> `)}</td>
      </tr>`)}</tbody></table>` : null}
  </section>`;
}

export function NodePage({ dc, name }: { dc: string; name: string }) {
  const live = useLive<NodeDump[]>('/v1/internal/ui/nodes');
  const leader = useLeader();
  const n = live.data?.find((x) => x.Node === name);
  return html`<section aria-labelledby="h-node">
    <nav class="crumbs" aria-label="Breadcrumb"><a href=${href(dc, 'nodes')}>Nodes</a> / </nav>
    <header class="page-head"><h1 id="h-node">${name} ${n && isLeader(n, leader) ? html`<span class="badge leader">★ leader</span>` : null}</h1></header>
    <${ErrorBox} error=${live.error} />
    ${live.loading ? html`<${Loading} />` : !n ? html`<${Empty}>No node named ${name} in ${dc}.<//>` : html`
      <p>Address <strong>${n.Address}</strong> · datacenter <strong>${n.Datacenter}</strong> · ID <code>${n.ID}</code></p>
      <h2>Health checks</h2>
      ${n.Checks.length === 0 ? html`<p class="muted">No checks.</p>` : html`<ul class="checks">${n.Checks.map((c) => html`<li><${HealthBadge} status=${c.Status} /> <strong>${c.Name}</strong> ${c.ServiceName ? html`<span class="muted">(${c.ServiceName})</span>` : null}${c.Output ? html`<pre class="output">${c.Output}</pre>` : null}</li>`)}</ul>`}
      <h2>Services</h2>
      ${n.Services.length === 0 ? html`<p class="muted">No services on this node.</p>` : html`<ul>${n.Services.map((s) => html`<li><a href=${href(dc, 'services', s.Service)}>${s.ID}</a> <span class="muted">:${s.Port}</span></li>`)}</ul>`}
      <h2>Meta</h2><${Meta} meta=${n.Meta} />`}
  </section>`;
}
