// How a server learns about the other servers: for bootstrap (-bootstrap-expect), for autopilot
// (add new servers as learners, remove servers that left), and to know peers' Raft addresses.
//
// Consul finds servers in LAN gossip (members tagged role=consul with dc/port/id/expect), and so
// does the Trellis agent: gossipDiscovery.ts. The source hides behind ServerDiscovery so a Server
// can also run without a gossip pool (in-process tests, tools): joinDiscovery.ts asks server
// addresses over the server RPC instead.

/** Consul's serf member states that matter for servers. */
export type ServerStatus = 'alive' | 'failed' | 'left';

export interface DiscoveredServer {
  /** Node ID, which is also the server's Raft ID. */
  id: string;
  /** Node name. */
  name: string;
  /** host:port of its server port (Raft and server RPC). */
  raftAddr: string;
  dc: string;
  /** Its -bootstrap-expect (0 when it has none). */
  expect: number;
  /** Started with -bootstrap (or -dev). */
  bootstrap: boolean;
  version: string;
  status: ServerStatus;
}

/**
 * Contract:
 * - servers() lists every server the source knows other than this one, in any datacenter (callers
 *   filter by `dc`), with its latest status. A server that left gracefully stays listed as 'left'
 *   for a while, so autopilot can tell "left" from "failed".
 * - 'change' fires (without arguments) after any server was added, changed address or status;
 *   listeners read servers() again. It may fire for changes that do not matter to a listener.
 * - start() begins discovering; stop() ends it and releases every timer and connection.
 */
export interface ServerDiscovery {
  servers(): DiscoveredServer[];
  on(event: 'change', fn: () => void): void;
  off(event: 'change', fn: () => void): void;
  start(): Promise<void> | void;
  stop(): Promise<void> | void;
  /** Optional: a server introduced itself (it called our Status RPC); a source that learns from such calls records it. */
  observe?(server: Omit<DiscoveredServer, 'status'>): void;
  /** Optional: more addresses to ask (e.g. the Raft configuration's members after a restart). */
  addSeeds?(addresses: string[]): void;
}

/** host:port, with the default server port when the address has none (Consul's join accepts both). */
export function withDefaultPort(address: string, defaultPort: number): string {
  const a = address.trim();
  if (/^\[[^\]]+\]:\d+$/.test(a) || /^[^:[\]]+:\d+$/.test(a)) return a;
  if (/^\[[^\]]+\]$/.test(a)) return `${a}:${defaultPort}`;
  if (a.includes(':')) return `[${a}]:${defaultPort}`; // a bare IPv6 address
  return `${a}:${defaultPort}`;
}
