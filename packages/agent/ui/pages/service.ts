// Service detail (Consul's /ui/<dc>/services/<name>): instances with their checks and outputs,
// tags and meta, and the service's upstreams and downstreams in the mesh.
import { useLive } from '../api.ts';
import { Empty, ErrorBox, HealthBadge, Loading, Meta, Tags, html, worst } from '../components.ts';
import { meshEdges, type Check, type NodeDump, type Service } from '../mesh.ts';
import { href } from '../router.ts';
import { kindLabel } from './services.ts';

interface Entry { Node: { Node: string; Address: string; Datacenter: string }; Service: Service; Checks: Check[] }

export function ServicePage({ dc, name }: { dc: string; name: string }) {
  const live = useLive<Entry[]>(`/v1/health/service/${encodeURIComponent(name)}`);
  const dump = useLive<NodeDump[]>('/v1/internal/ui/nodes');
  const edges = meshEdges(dump.data ?? []);
  const upstreams = edges.filter((e) => e.from === name).map((e) => e.to);
  const downstreams = edges.filter((e) => e.to === name).map((e) => e.from);
  const entries = live.data ?? [];
  const kind = entries[0]?.Service.Kind ?? '';
  return html`<section aria-labelledby="h-service">
    <nav class="crumbs" aria-label="Breadcrumb"><a href=${href(dc, 'services')}>Services</a> / </nav>
    <header class="page-head"><h1 id="h-service">${name} ${kind ? html`<span class="badge kind">${kindLabel(kind)}</span>` : null}</h1>
      <nav class="tabs" aria-label="Service views"><a aria-current="page" href=${href(dc, 'services', name)}>Instances</a><a href=${href(dc, 'services', name, 'routing')}>Routing</a></nav></header>
    <${ErrorBox} error=${live.error} />
    ${live.loading ? html`<${Loading} />` : entries.length === 0 && !live.error ? html`<${Empty}>No instances of ${name}: it is not registered in ${dc}.<//>` : null}
    ${entries.map((e) => html`<article class="card instance" data-instance=${e.Service.ID} data-health=${worst(e.Checks.map((c) => c.Status))}>
      <h2><${HealthBadge} status=${worst(e.Checks.map((c) => c.Status))} label=" " /> ${e.Service.ID}
        <span class="muted"> on <a href=${href(dc, 'nodes', e.Node.Node)}>${e.Node.Node}</a> · ${e.Service.Address || e.Node.Address}:${e.Service.Port}</span></h2>
      <${Tags} tags=${e.Service.Tags} />
      <details><summary>Meta</summary><${Meta} meta=${e.Service.Meta} /></details>
      ${e.Checks.length === 0 ? html`<p class="muted">No health checks.</p>` : html`<ul class="checks">${e.Checks.map((c) => html`<li data-check=${c.CheckID}>
        <${HealthBadge} status=${c.Status} /> <strong>${c.Name}</strong> <span class="muted">${c.Type || (c.ServiceID ? 'service' : 'node')} check</span>
        ${c.Output ? html`<pre class="output">${c.Output}</pre>` : null}</li>`)}</ul>`}
    </article>`)}
    <div class="two-col">
      <section aria-labelledby="h-up"><h2 id="h-up">Upstreams</h2>
        ${upstreams.length === 0 ? html`<p class="muted">None: no sidecar of ${name} declares an upstream.</p>` : html`<ul>${upstreams.map((u) => html`<li><a href=${href(dc, 'services', u)}>${u}</a></li>`)}</ul>`}</section>
      <section aria-labelledby="h-down"><h2 id="h-down">Downstreams</h2>
        ${downstreams.length === 0 ? html`<p class="muted">None: no sidecar declares ${name} as an upstream.</p>` : html`<ul>${downstreams.map((u) => html`<li><a href=${href(dc, 'services', u)}>${u}</a></li>`)}</ul>`}</section>
    </div>
  </section>`;
}
