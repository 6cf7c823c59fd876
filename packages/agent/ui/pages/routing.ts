// Routing (Consul's /ui/<dc>/services/<name>/routing): the compiled discovery chain from
// /v1/discovery-chain/<name>, router → splitter → resolver → targets with match rules, weights and
// failover, drawn as a graph; it follows the chain live (a new splitter appears without a reload).
// Below it, the service's routing config entries can be written (PUT /v1/config): the API checks
// them (a splitter whose weights do not sum to 100 is refused with its text) and nothing changes.
import { useEffect, useState } from 'preact/hooks';
import { ApiError, api, useLive } from '../api.ts';
import { ErrorBox, Loading, html } from '../components.ts';
import { Graph, type GraphEdge, type GraphNode } from '../graph.ts';
import { href } from '../router.ts';

interface Match { HTTP?: { PathExact?: string; PathPrefix?: string; PathRegex?: string; Header?: { Name: string; Exact?: string; Prefix?: string; Present?: boolean; Regex?: string }[]; QueryParam?: { Name: string; Exact?: string }[]; Methods?: string[] } }
interface ChainNode {
  Type: 'router' | 'splitter' | 'resolver'; Name: string;
  Routes?: { Definition: { Match?: Match }; NextNode: string }[];
  Splits?: { Weight: number; NextNode: string }[];
  Resolver?: { Default?: boolean; ConnectTimeout?: string; Target: string; Failover?: { Targets: string[] } };
}
interface Target { ID: string; Service: string; ServiceSubset?: string; Datacenter: string }
interface Chain { ServiceName: string; Protocol: string; StartNode: string; Nodes: Record<string, ChainNode>; Targets: Record<string, Target> }

function describeMatch(m: Match | undefined): string {
  const h = m?.HTTP;
  if (!h) return 'default';
  const parts: string[] = [];
  if (h.PathExact) parts.push(`path = ${h.PathExact}`);
  if (h.PathPrefix) parts.push(`path ^ ${h.PathPrefix}`);
  if (h.PathRegex) parts.push(`path ~ ${h.PathRegex}`);
  for (const x of h.Header ?? []) parts.push(`${x.Name}${x.Exact !== undefined ? ` = ${x.Exact}` : x.Prefix !== undefined ? ` ^ ${x.Prefix}` : x.Regex !== undefined ? ` ~ ${x.Regex}` : x.Present ? ' present' : ''}`);
  for (const q of h.QueryParam ?? []) parts.push(`?${q.Name}${q.Exact !== undefined ? `=${q.Exact}` : ''}`);
  if (h.Methods?.length) parts.push(h.Methods.join('|'));
  return parts.length ? parts.join(', ') : 'default';
}

/** The chain as graph nodes and edges: chain nodes, then one node per target. */
export function chainGraph(chain: Chain, dc: string): { nodes: GraphNode[]; edges: GraphEdge[] } {
  const nodes: GraphNode[] = [];
  const edges: GraphEdge[] = [];
  for (const [id, n] of Object.entries(chain.Nodes ?? {})) {
    const sub = n.Type === 'resolver' ? `resolver${n.Resolver?.Default ? ' (default)' : ''}${n.Resolver?.ConnectTimeout ? ` · ${n.Resolver.ConnectTimeout}` : ''}` : n.Type;
    nodes.push({ id, label: n.Name, sub, kind: n.Type });
    for (const r of n.Routes ?? []) edges.push({ from: id, to: r.NextNode, label: describeMatch(r.Definition?.Match), kind: 'route' });
    for (const s of n.Splits ?? []) edges.push({ from: id, to: s.NextNode, label: `${s.Weight}%`, kind: 'split' });
    if (n.Resolver) {
      edges.push({ from: id, to: `target:${n.Resolver.Target}`, kind: 'target' });
      for (const f of n.Resolver.Failover?.Targets ?? []) edges.push({ from: id, to: `target:${f}`, label: 'failover', kind: 'failover' });
    }
  }
  for (const [id, t] of Object.entries(chain.Targets ?? {})) {
    nodes.push({ id: `target:${id}`, label: `${t.Service}${t.ServiceSubset ? ` (${t.ServiceSubset})` : ''}`, sub: `target · ${t.Datacenter}`, kind: 'target', href: href(dc, 'services', t.Service) });
  }
  return { nodes, edges };
}

const KINDS = ['service-splitter', 'service-router', 'service-resolver', 'service-defaults'];

export function RoutingPage({ dc, name }: { dc: string; name: string }) {
  const live = useLive<{ Chain: Chain }>(`/v1/discovery-chain/${encodeURIComponent(name)}`);
  const chain = live.data?.Chain;
  const g = chain ? chainGraph(chain, dc) : undefined;
  return html`<section aria-labelledby="h-routing">
    <nav class="crumbs" aria-label="Breadcrumb"><a href=${href(dc, 'services')}>Services</a> / </nav>
    <header class="page-head"><h1 id="h-routing">${name}</h1>
      <nav class="tabs" aria-label="Service views"><a href=${href(dc, 'services', name)}>Instances</a><a aria-current="page" href=${href(dc, 'services', name, 'routing')}>Routing</a></nav></header>
    <${ErrorBox} error=${live.error} />
    ${live.loading ? html`<${Loading} />` : null}
    ${chain && g ? html`<p>Protocol <strong>${chain.Protocol}</strong> · a request for ${name} starts at <code>${chain.StartNode}</code>.</p>
      <div class="graph-wrap" data-testid="chain"><${Graph} nodes=${g.nodes} edges=${g.edges} title=${`Discovery chain of ${name}`} /></div>` : null}
    <${EntryEditor} name=${name} />
  </section>`;
}

function EntryEditor({ name }: { name: string }) {
  const [kind, setKind] = useState('service-splitter');
  const [text, setText] = useState('');
  const [error, setError] = useState<Error | undefined>();
  const [ok, setOk] = useState('');
  // Load the entry of that kind (or a starting point when there is none).
  useEffect(() => {
    let live = true;
    setError(undefined); setOk('');
    api<Record<string, unknown>>('GET', `/v1/config/${kind}/${encodeURIComponent(name)}`).then((r) => {
      if (!live) return;
      const { CreateIndex: _c, ModifyIndex: _m, ...entry } = r.data;
      setText(JSON.stringify(entry, null, 2));
    }, (err: unknown) => {
      if (!live) return;
      if (err instanceof ApiError && err.status === 404) setText(JSON.stringify(kind === 'service-splitter' ? { Kind: kind, Name: name, Splits: [{ Weight: 100 }] } : { Kind: kind, Name: name }, null, 2));
      else setError(err as Error);
    });
    return () => { live = false; };
  }, [kind, name]);
  const save = async (e: Event): Promise<void> => {
    e.preventDefault();
    setError(undefined); setOk('');
    let body: unknown;
    try { body = JSON.parse(text); } catch (err) { setError(new Error(`Not JSON: ${(err as Error).message}`)); return; }
    try {
      await api('PUT', '/v1/config', body);
      setOk(`Saved the ${kind} of ${name}.`);
    } catch (err) { setError(err as Error); }
  };
  return html`<form class="card" onSubmit=${save} aria-labelledby="h-entry">
    <h2 id="h-entry">Edit routing config</h2>
    <label>Kind <select name="kind" value=${kind} onChange=${(e: Event) => setKind((e.target as HTMLSelectElement).value)}>${KINDS.map((k) => html`<option value=${k}>${k}</option>`)}</select></label>
    <label>Entry (JSON)<textarea name="entry" rows="10" spellcheck=${false} value=${text} onInput=${(e: Event) => setText((e.target as HTMLTextAreaElement).value)} /></label>
    <${ErrorBox} error=${error} what=${error instanceof ApiError ? 'The API refused it' : 'Not saved'} />
    ${ok ? html`<p class="ok" role="status">${ok}</p>` : null}
    <div class="actions"><button type="submit">Save</button></div>
  </form>`;
}
