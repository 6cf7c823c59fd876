// `trellis catalog datacenters|nodes|services`: Consul's command/catalog/list/*.

import type { Command } from '../command.ts';
import { apiErrorText, clientFor, tooManyArgs } from '../command.ts';
import { HTTP_CLIENT_FLAGS, HTTP_SERVER_FLAGS } from '../http.ts';
import { columnize, tabwrite } from '../format.ts';
import { flagBool, flagMap, flagString } from '../../config/flags.ts';

const HTTP_FLAGS = [...HTTP_CLIENT_FLAGS, ...HTTP_SERVER_FLAGS];

export interface CatalogNode {
  ID: string;
  Node: string;
  Address: string;
  Datacenter: string;
  TaggedAddresses?: Record<string, string> | null;
  Meta?: Record<string, string> | null;
}

function mapToKV(m: Record<string, string> | null | undefined, joiner: string): string {
  const o = m ?? {};
  return Object.keys(o).sort().map((k) => `${k}=${o[k]}`).join(joiner);
}

export function formatNodes(nodes: CatalogNode[], detailed: boolean): string {
  const rows: string[][] = [detailed ? ['Node', 'ID', 'Address', 'DC', 'TaggedAddresses', 'Meta'] : ['Node', 'ID', 'Address', 'DC']];
  for (const n of nodes) {
    if (detailed) {
      rows.push([n.Node, n.ID, n.Address, n.Datacenter, mapToKV(n.TaggedAddresses, ', '), mapToKV(n.Meta, ', ')]);
    } else {
      // Consul shortens the ID to its first group in the table.
      const dash = n.ID.indexOf('-');
      rows.push([n.Node, dash > 0 ? n.ID.slice(0, dash) : n.ID, n.Address, n.Datacenter]);
    }
  }
  return columnize(rows);
}

/** Consul's ?node-meta=key:value query form, from -node-meta key=value flags. */
function nodeMetaQuery(meta: Record<string, string>): string[] | undefined {
  const list = Object.entries(meta).map(([k, v]) => `${k}:${v}`);
  return list.length > 0 ? list : undefined;
}

export const catalogDatacentersCommand: Command = {
  name: 'catalog datacenters',
  synopsis: 'Lists all known datacenters',
  help: `Usage: trellis catalog datacenters [options]

  Retrieves the list of all known datacenters. This datacenters are sorted in
  ascending order based on the estimated median round trip time from the servers
  in this datacenter to the servers in the other datacenters.`,
  flags: HTTP_FLAGS,
  async run(ctx, flags) {
    if (flags.args.length > 0) return tooManyArgs(ctx, '0', flags.args.length);
    const client = clientFor(ctx, flags);
    if (!client) return 1;
    try {
      const { value } = await client.json<string[]>('GET', '/v1/catalog/datacenters');
      for (const dc of value ?? []) ctx.ui.info(dc);
      return 0;
    } catch (err) {
      ctx.ui.error(apiErrorText('Error listing datacenters', err));
      return 1;
    }
  },
};

export const catalogNodesCommand: Command = {
  name: 'catalog nodes',
  synopsis: 'Lists all nodes in the given datacenter',
  help: `Usage: trellis catalog nodes [options]

  Retrieves the list nodes registered in a given datacenter. By default, the
  datacenter of the local agent is queried.

      $ trellis catalog nodes
      $ trellis catalog nodes -detailed
      $ trellis catalog nodes -service=web
      $ trellis catalog nodes -node-meta="foo=bar"
      $ trellis catalog nodes -near=node-web`,
  flags: [
    { name: 'detailed', kind: 'bool', usage: 'Output detailed information about the nodes including their addresses and metadata.' },
    { name: 'filter', kind: 'string', placeholder: 'expression', usage: 'Filter to use with the request' },
    { name: 'near', kind: 'string', placeholder: 'node', usage: 'Node name to sort the node list in ascending order based on estimated round-trip time from that node. Passing "_agent" will use this agent\'s node for sorting.' },
    { name: 'node-meta', kind: 'map', placeholder: 'key=value', usage: 'Metadata to filter nodes with the given `key=value` pairs. This flag may be specified multiple times to filter on multiple sources of metadata.' },
    { name: 'service', kind: 'string', placeholder: 'id or name', usage: 'Service `id or name` to filter nodes. Only nodes which are providing the given service will be returned.' },
    ...HTTP_FLAGS,
  ],
  async run(ctx, flags) {
    if (flags.args.length > 0) return tooManyArgs(ctx, '0', flags.args.length);
    const client = clientFor(ctx, flags);
    if (!client) return 1;
    const service = flagString(flags, 'service');
    const query = { near: flagString(flags, 'near'), filter: flagString(flags, 'filter'), 'node-meta': nodeMetaQuery(flagMap(flags, 'node-meta')) };
    let nodes: CatalogNode[];
    try {
      if (service) {
        const { value } = await client.json<Array<CatalogNode & { NodeMeta?: Record<string, string> }>>('GET', `/v1/catalog/service/${encodeURIComponent(service)}`, { query });
        nodes = (value ?? []).map((s) => ({ ID: s.ID, Node: s.Node, Address: s.Address, Datacenter: s.Datacenter, TaggedAddresses: s.TaggedAddresses ?? null, Meta: s.NodeMeta ?? null }));
      } else {
        ({ value: nodes } = await client.json<CatalogNode[]>('GET', '/v1/catalog/nodes', { query }));
      }
    } catch (err) {
      ctx.ui.error(apiErrorText(service ? 'Error listing nodes for service' : 'Error listing nodes', err));
      return 1;
    }
    if (!nodes || nodes.length === 0) {
      ctx.ui.error('No nodes match the given query - try expanding your search.');
      return 0;
    }
    ctx.ui.info(formatNodes(nodes, flagBool(flags, 'detailed') ?? false));
    return 0;
  },
};

export function formatServices(services: Record<string, string[] | null>, tags: boolean): string {
  const names = Object.keys(services).sort();
  if (!tags) return names.join('\n');
  return tabwrite(names.map((n) => [n, [...(services[n] ?? [])].sort().join(',')])).trim();
}

export const catalogServicesCommand: Command = {
  name: 'catalog services',
  synopsis: 'Lists all registered services in a datacenter',
  help: `Usage: trellis catalog services [options]

  Retrieves the list services registered in a given datacenter. By default, the
  datacenter of the local agent is queried.

      $ trellis catalog services
      $ trellis catalog services -tags
      $ trellis catalog services -node=web
      $ trellis catalog services -node-meta="foo=bar"`,
  flags: [
    { name: 'node', kind: 'string', placeholder: 'id or name', usage: 'Node `id or name` for which to list services.' },
    { name: 'node-meta', kind: 'map', placeholder: 'key=value', usage: 'Metadata to filter nodes with the given `key=value` pairs. If specified, only services running on nodes matching the given metadata will be returned. This flag may be specified multiple times to filter on multiple sources of metadata.' },
    { name: 'tags', kind: 'bool', usage: "Display each service's tags as a comma-separated list beside each service entry." },
    ...HTTP_FLAGS,
  ],
  async run(ctx, flags) {
    if (flags.args.length > 0) return tooManyArgs(ctx, '0', flags.args.length);
    const client = clientFor(ctx, flags);
    if (!client) return 1;
    const node = flagString(flags, 'node');
    const query = { 'node-meta': nodeMetaQuery(flagMap(flags, 'node-meta')) };
    let services: Record<string, string[] | null> = {};
    try {
      if (node) {
        const res = await client.json<{ Services?: Record<string, { Service: string; Tags?: string[] | null }> } | null>(
          'GET', `/v1/catalog/node/${encodeURIComponent(node)}`, { query, accept: [404] });
        for (const s of Object.values(res.value?.Services ?? {})) {
          services[s.Service] = [...(services[s.Service] ?? []), ...(s.Tags ?? [])];
        }
      } else {
        ({ value: services } = await client.json<Record<string, string[] | null>>('GET', '/v1/catalog/services', { query }));
      }
    } catch (err) {
      ctx.ui.error(apiErrorText(node ? 'Error listing services for node' : 'Error listing services', err));
      return 1;
    }
    if (!services || Object.keys(services).length === 0) {
      ctx.ui.error('No services match the given query - try expanding your search.');
      return 0;
    }
    ctx.ui.output(formatServices(services, flagBool(flags, 'tags') ?? false));
    return 0;
  },
};
