// Draws a directed graph as SVG, laid out by dagre (ranked, left to right): the discovery chain
// (router → splitter → resolver → targets) and the service topology. Nodes are focusable links
// when they have an href, so the picture can be walked with the keyboard.
import dagre from '@dagrejs/dagre';
import { html } from './components.ts';

export interface GraphNode { id: string; label: string; sub?: string; kind: string; href?: string }
export interface GraphEdge { from: string; to: string; label?: string; kind?: string }

const CHAR_W = 7.2;
const NODE_H = 44;

export function Graph({ nodes, edges, title }: { nodes: GraphNode[]; edges: GraphEdge[]; title: string }) {
  const g = new dagre.graphlib.Graph({ multigraph: true });
  g.setGraph({ rankdir: 'LR', nodesep: 24, ranksep: 70, marginx: 12, marginy: 12 });
  g.setDefaultEdgeLabel(() => ({}));
  for (const n of nodes) {
    const w = Math.max(90, Math.ceil(Math.max(n.label.length, (n.sub ?? '').length) * CHAR_W) + 24);
    g.setNode(n.id, { width: w, height: NODE_H });
  }
  edges.forEach((e, i) => {
    if (!g.hasNode(e.from) || !g.hasNode(e.to)) return;
    g.setEdge(e.from, e.to, { label: e.label ?? '', width: e.label ? e.label.length * 6.5 : 0, height: e.label ? 14 : 0, labelpos: 'c' }, `e${i}`);
  });
  dagre.layout(g);
  const size = g.graph();
  const width = Math.ceil(size.width ?? 100);
  const height = Math.ceil(size.height ?? 100);
  const byId = new Map(nodes.map((n) => [n.id, n]));
  return html`<figure class="graph">
    <svg viewBox=${`0 0 ${width} ${height}`} width=${width} height=${height} role="img" aria-label=${title}>
      <defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="currentColor"/></marker></defs>
      ${g.edges().map((ref) => {
        const e = g.edge(ref) as { points: { x: number; y: number }[]; label?: string; x?: number; y?: number };
        const meta = edges[Number((ref.name ?? 'e0').slice(1))];
        const d = e.points.map((p, i) => `${i ? 'L' : 'M'}${p.x.toFixed(1)},${p.y.toFixed(1)}`).join(' ');
        return html`<g class=${`edge edge-${meta?.kind ?? 'plain'}`} data-from=${ref.v} data-to=${ref.w}>
          <path d=${d} marker-end="url(#arrow)" />
          ${e.label ? html`<text x=${e.x} y=${(e.y ?? 0) + 4} text-anchor="middle">${e.label}</text>` : null}
        </g>`;
      })}
      ${g.nodes().map((id) => {
        const p = g.node(id);
        const n = byId.get(id)!;
        const body = html`<rect x=${p.x - p.width / 2} y=${p.y - p.height / 2} width=${p.width} height=${p.height} rx="6" />
          <text x=${p.x} y=${n.sub ? p.y - 3 : p.y + 4} text-anchor="middle" class="node-label">${n.label}</text>
          ${n.sub ? html`<text x=${p.x} y=${p.y + 13} text-anchor="middle" class="node-sub">${n.sub}</text>` : null}`;
        return html`<g class=${`node node-${n.kind}`} data-node=${id}>${n.href ? html`<a href=${n.href}>${body}</a>` : body}</g>`;
      })}
    </svg>
  </figure>`;
}
