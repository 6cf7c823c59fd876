// Services: every service with instance count, health summary, tags and kind, and a filter box
// (Consul's /ui/<dc>/services), from one blocking query on /v1/internal/ui/services.
import { useState } from 'preact/hooks';
import { useLive } from '../api.ts';
import { Empty, ErrorBox, FilterBox, HealthBadge, Loading, useProgressive, Tags, html } from '../components.ts';
import { href } from '../router.ts';

export interface ServiceSummary {
  Kind: string; Name: string; Tags: string[]; Nodes: string[]; InstanceCount: number;
  ChecksPassing: number; ChecksWarning: number; ChecksCritical: number; ConnectedWithProxy: boolean;
}

const KIND_LABEL: Record<string, string> = {
  'connect-proxy': 'sidecar proxy', 'mesh-gateway': 'mesh gateway', 'ingress-gateway': 'ingress gateway',
  'terminating-gateway': 'terminating gateway', 'api-gateway': 'API gateway',
};

export function kindLabel(kind: string): string { return KIND_LABEL[kind] ?? kind; }

export function ServicesPage({ dc }: { dc: string }) {
  const live = useLive<ServiceSummary[]>('/v1/internal/ui/services');
  const [filter, setFilter] = useState('');
  const q = filter.trim().toLowerCase();
  const all = live.data ?? [];
  const rows = q === '' ? all : all.filter((s) => s.Name.toLowerCase().includes(q) || s.Tags.some((t) => t.toLowerCase().includes(q)) || kindLabel(s.Kind).includes(q));
  const shown = useProgressive(rows.length);
  return html`<section aria-labelledby="h-services">
    <header class="page-head"><h1 id="h-services">Services <span class="count">${all.length}</span></h1>
      <${FilterBox} label="Filter by name, tag or kind" value=${filter} onInput=${setFilter} /></header>
    <${ErrorBox} error=${live.error} />
    ${live.loading ? html`<${Loading} />` : all.length === 0 && !live.error ? html`<${Empty}>No services yet: register one with <code>trellis services register -name web -port 8080</code> or <code>PUT /v1/agent/service/register</code>.<//>` : null}
    ${all.length > 0 && rows.length === 0 ? html`<${Empty}>No service matches “${filter}”.<//>` : null}
    ${rows.length > 0 ? html`<table class="list" data-testid="services">
      <thead><tr><th scope="col">Service</th><th scope="col">Health</th><th scope="col">Instances</th><th scope="col">Kind</th><th scope="col">Tags</th></tr></thead>
      <tbody>${rows.slice(0, shown).map((s) => html`<tr key=${s.Name} data-service=${s.Name} data-health=${s.ChecksCritical > 0 ? 'critical' : s.ChecksWarning > 0 ? 'warning' : 'passing'}>
        <th scope="row"><a href=${href(dc, 'services', s.Name)}>${s.Name}</a>${s.ConnectedWithProxy ? html` <span class="badge kind" title="has a sidecar proxy">in mesh</span>` : null}</th>
        <td class="health-summary">
          ${s.ChecksPassing > 0 ? html`<${HealthBadge} status="passing" label=${`${s.ChecksPassing} passing`} />` : null}
          ${s.ChecksWarning > 0 ? html`<${HealthBadge} status="warning" label=${`${s.ChecksWarning} warning`} />` : null}
          ${s.ChecksCritical > 0 ? html`<${HealthBadge} status="critical" label=${`${s.ChecksCritical} critical`} />` : null}
          ${s.ChecksPassing + s.ChecksWarning + s.ChecksCritical === 0 ? html`<span class="muted">no checks</span>` : null}
        </td>
        <td data-label="Instances">${s.InstanceCount}</td>
        <td data-label="Kind">${s.Kind ? html`<span class="badge kind">${kindLabel(s.Kind)}</span>` : html`<span class="muted">service</span>`}</td>
        <td><${Tags} tags=${s.Tags} /></td>
      </tr>`)}</tbody></table>` : null}
  </section>`;
}
