// The DNS server's view of the catalog on a client agent, which has no replica: each lookup is an
// HTTP API read forwarded to a server (servers.ts http(), the same path a client's own HTTP API
// uses), with ?stale as Consul's DNS reads use allow_stale, so any server answers without asking
// the leader. Passing instances only, local datacenter, as server/dnsLookup.ts answers on servers.
//
// Names arrive lower-cased; the server's catalog matches node names, service names and tags
// case-insensitively (state/tables.ts keys), so "web" finds a service registered as "Web".
// An answer other than 200 (or a body that is not what the endpoint returns) throws, and the DNS
// server answers SERVFAIL: a resolver retries rather than caching a denial the catalog never made.
import type { DnsLookup, NodeInfo, ServiceInstance } from '../dns/index.ts';
import type { ForwardedResponse } from '../http/forward.ts';
import type { ClientServers } from './servers.ts';

/** How long one lookup may take (waiting for a known server included) before it fails. */
const LOOKUP_TIMEOUT_MS = 5000;

export function clientDnsLookup(servers: Pick<ClientServers, 'http'>, datacenter: string): DnsLookup {
  async function get(url: string): Promise<ForwardedResponse> {
    const signal = AbortSignal.timeout(LOOKUP_TIMEOUT_MS);
    try {
      return await servers.http({ method: 'GET', url, headers: {}, body: Buffer.alloc(0) }, signal);
    } catch (err) {
      if (signal.aborted) throw new Error(`DNS lookup GET ${url}: no answer from a server within ${LOOKUP_TIMEOUT_MS} ms (${(err as Error).message})`, { cause: err });
      throw err;
    }
  }

  return {
    async serviceInstances(service: string, tag: string | undefined): Promise<ServiceInstance[]> {
      const url = `/v1/health/service/${encodeURIComponent(service)}?passing&stale${tag !== undefined ? `&tag=${encodeURIComponent(tag)}` : ''}`;
      const res = await get(url);
      const rows = json(url, res);
      if (!Array.isArray(rows)) throw malformed(url, 'not a list');
      return rows.map((row: unknown) => {
        const node = field(row, 'Node');
        const svc = field(row, 'Service');
        const name = field(node, 'Node');
        const port = field(svc, 'Port') ?? 0;
        if (typeof name !== 'string' || typeof port !== 'number') throw malformed(url, 'an instance has no Node.Node or numeric Service.Port');
        return {
          node: name, nodeAddress: text(field(node, 'Address')), serviceAddress: text(field(svc, 'Address')),
          port, datacenter: text(field(node, 'Datacenter')) || datacenter,
        };
      });
    },
    async node(name: string): Promise<NodeInfo | undefined> {
      const url = `/v1/catalog/node/${encodeURIComponent(name)}?stale`;
      const res = await get(url);
      if (res.status === 404) return undefined;
      const body = json(url, res);
      if (body === null) return undefined; // Consul's answer for a node it does not know
      const node = field(body, 'Node');
      const nodeName = field(node, 'Node');
      if (typeof nodeName !== 'string') throw malformed(url, 'no Node.Node');
      return { node: nodeName, address: text(field(node, 'Address')), datacenter: text(field(node, 'Datacenter')) || datacenter };
    },
    // Every datacenter the servers know from the WAN pool.
    async datacenters(): Promise<string[]> {
      const url = '/v1/catalog/datacenters';
      const body = json(url, await get(url));
      if (!Array.isArray(body) || !body.every((d) => typeof d === 'string')) throw malformed(url, 'not a list of names');
      return body as string[];
    },
    // The server forwards ?dc=<other> over the WAN (server/wan.ts).
    remote: (dc) => clientDnsLookup({ http: (req, signal) => servers.http({ ...req, url: `${req.url}&dc=${encodeURIComponent(dc)}` }, signal) }, dc),
  };
}

function json(url: string, res: ForwardedResponse): unknown {
  const body = res.body.toString('utf8');
  if (res.status !== 200) throw new Error(`DNS lookup GET ${url}: the server answered ${res.status}: ${body.trim().slice(0, 200)}`);
  try {
    return JSON.parse(body);
  } catch {
    throw malformed(url, 'not JSON');
  }
}

function field(obj: unknown, key: string): unknown {
  return typeof obj === 'object' && obj !== null ? (obj as Record<string, unknown>)[key] : undefined;
}

function text(v: unknown): string {
  return typeof v === 'string' ? v : '';
}

function malformed(url: string, what: string): Error {
  return new Error(`DNS lookup GET ${url}: the server's answer is malformed: ${what}`);
}
