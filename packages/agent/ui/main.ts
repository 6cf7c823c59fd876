// The Trellis web UI: Preact components written with htm (no compile step beyond esbuild's bundle),
// reading only the agent's HTTP API. Routes follow Consul's UI URLs (router.ts).
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { getToken, setCurrentDc, setToken, settings, useLive } from './api.ts';
import { html } from './components.ts';
import { href, navigate, useRoute } from './router.ts';
import { IntentionsPage } from './pages/intentions.ts';
import { KvPage } from './pages/kv.ts';
import { NodePage, NodesPage } from './pages/nodes.ts';
import { RoutingPage } from './pages/routing.ts';
import { ServicePage } from './pages/service.ts';
import { ServicesPage } from './pages/services.ts';
import { TopologyPage } from './pages/topology.ts';

const SECTIONS: [string, string, string][] = [
  ['services', 'Services', 's'], ['nodes', 'Nodes', 'n'], ['kv', 'Key / Value', 'k'], ['intentions', 'Intentions', 'i'], ['topology', 'Topology', 't'],
];

/** The datacenters the agent knows (/v1/catalog/datacenters): a switcher when there is more than one. */
function DcSwitcher({ dc }: { dc: string }) {
  // Not a blocking endpoint: polled (api.ts), so a datacenter joined later appears by itself.
  const dcs = useLive<string[]>('/v1/catalog/datacenters').data ?? [];
  if (dcs.length <= 1) return html`<span class="dc" title="datacenter">${dc}</span>`;
  return html`<label class="dc"><span class="sr-only">Datacenter</span><select data-dc-switcher value=${dc} onChange=${(e: Event) => {
    const next = (e.target as HTMLSelectElement).value;
    navigate(location.pathname.replace(`${settings.contentPath}${encodeURIComponent(dc)}/`, `${settings.contentPath}${encodeURIComponent(next)}/`));
  }}>${dcs.map((d) => html`<option value=${d}>${d}</option>`)}</select></label>`;
}

/** An ACL token for the API (X-Consul-Token), kept in session storage only. */
function TokenBox() {
  const [open, setOpen] = useState(false);
  const [value, setValue] = useState(getToken());
  if (!open) return html`<button type="button" class="link token-toggle" onClick=${() => setOpen(true)}>${getToken() ? 'Token set' : 'Token'}</button>`;
  return html`<form class="token" onSubmit=${(e: Event) => { e.preventDefault(); setToken(value.trim()); setOpen(false); location.reload(); }}>
    <label><span class="sr-only">ACL token</span><input type="password" autocomplete="off" placeholder="ACL token (this tab only)" value=${value} onInput=${(e: Event) => setValue((e.target as HTMLInputElement).value)} /></label>
    <button type="submit">Use</button><button type="button" class="link" onClick=${() => setOpen(false)}>Cancel</button></form>`;
}

function Page({ dc, section, rest, raw }: { dc: string; section: string; rest: string[]; raw: string }) {
  switch (section) {
    case 'services':
      if (rest.length === 0 || rest[0] === '') return html`<${ServicesPage} dc=${dc} />`;
      if (rest[1] === 'routing') return html`<${RoutingPage} key=${rest[0]} dc=${dc} name=${rest[0]} />`;
      return html`<${ServicePage} key=${rest[0]} dc=${dc} name=${rest[0]} />`;
    case 'nodes':
      if (rest.length === 0 || rest[0] === '') return html`<${NodesPage} dc=${dc} />`;
      return html`<${NodePage} key=${rest[0]} dc=${dc} name=${rest[0]} />`;
    case 'kv': return html`<${KvPage} key=${raw} dc=${dc} path=${raw} />`;
    case 'intentions': return html`<${IntentionsPage} dc=${dc} />`;
    case 'topology': return html`<${TopologyPage} dc=${dc} />`;
    default: return html`<div class="empty">No page here. <a href=${href(dc, 'services')}>Go to services</a>.</div>`;
  }
}

function App() {
  const route = useRoute();
  setCurrentDc(route.dc);
  // /ui/ and /ui/<dc>/ open the services page, as Consul's do.
  useEffect(() => { if (route.section === '') navigate(href(route.dc, 'services'), true); }, [route.section, route.dc]);
  // Keyboard: "/" focuses the page's filter box; "g" then s/n/k/i/t goes to a section.
  useEffect(() => {
    let g = false;
    const onKey = (e: KeyboardEvent): void => {
      const t = e.target as HTMLElement;
      if (t.closest('input, textarea, select, [contenteditable]') || e.metaKey || e.ctrlKey || e.altKey) return;
      if (e.key === '/') {
        const f = document.querySelector<HTMLInputElement>('[data-filter]');
        if (f) { e.preventDefault(); f.focus(); }
      } else if (e.key === 'g') {
        g = true;
        setTimeout(() => { g = false; }, 1500);
      } else if (g) {
        const s = SECTIONS.find(([, , k]) => k === e.key);
        g = false;
        if (s) navigate(href(route.dc, s[0]) + (s[0] === 'kv' ? '/' : ''));
      }
    };
    document.addEventListener('keydown', onKey);
    return () => document.removeEventListener('keydown', onKey);
  }, [route.dc]);
  useEffect(() => {
    const h1 = document.querySelector('main h1');
    document.title = `${h1?.textContent?.trim() || 'Trellis'} · ${route.dc} · Trellis`;
  });
  return html`<a class="skip" href="#main">Skip to content</a>
    <header class="top">
      <a class="brand" href=${href(route.dc, 'services')}>Trellis</a>
      <nav class="sections" aria-label="Sections">${SECTIONS.map(([id, label, key]) => html`<a href=${href(route.dc, id) + (id === 'kv' ? '/' : '')} aria-current=${route.section === id ? 'page' : undefined} title=${`g then ${key}`}>${label}</a>`)}</nav>
      <div class="top-right"><${DcSwitcher} dc=${route.dc} /><${TokenBox} /></div>
    </header>
    <main id="main" tabindex="-1"><${Page} key=${route.dc} ...${route} /></main>`;
}

render(html`<${App} />`, document.getElementById('app')!);
