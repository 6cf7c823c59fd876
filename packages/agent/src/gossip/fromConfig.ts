// The pools' options from the agent's RuntimeConfig: Consul's flag and JSON names are mapped to
// RuntimeConfig by config/, and from there to the pools here, in one place. Every agent has a LAN
// pool; servers also have a WAN pool (Consul's serf WAN: the servers of every federated
// datacenter, members named <node>.<dc>), unless ports.serf_wan is -1.
import path from 'node:path';
import type { RuntimeConfig } from '../config/runtime.ts';
import type { Logger } from '../logger.ts';
import type { GossipPoolOptions, GossipRouter } from './libp2p/pool.ts';
import { clientTags, serverTags } from './tags.ts';

export function lanPoolOptions(c: RuntimeConfig, opts: { nodeId: string; logger?: Logger; build?: string }): GossipPoolOptions {
  const build = opts.build ?? c.version;
  const tags = c.serverMode
    ? serverTags({
        datacenter: c.datacenter, nodeId: opts.nodeId, serverPort: c.ports.server, build,
        bootstrapExpect: c.bootstrapExpect, bootstrap: c.bootstrap,
        // Consul advertises the WAN port in the LAN pool (wan_join_port) for joining the WAN pool.
        ...(hasWanPool(c) ? { wanJoinPort: c.ports.serfWan } : {}),
      })
    : clientTags({ datacenter: c.datacenter, nodeId: opts.nodeId, build });
  const g = c.gossipLan;
  return {
    nodeName: c.nodeName,
    datacenter: c.datacenter,
    bindAddr: c.bindAddr,
    port: c.ports.serfLan,
    advertiseAddr: c.advertiseAddrLan || undefined,
    tags,
    dataDir: c.devMode || !c.dataDir ? undefined : c.dataDir,
    encryptKey: c.encryptKey || undefined,
    logger: opts.logger,
    pool: 'lan',
    config: {
      gossipNodes: g.gossipNodes,
      gossipIntervalMs: g.gossipIntervalMs,
      probeIntervalMs: g.probeIntervalMs,
      probeTimeoutMs: g.probeTimeoutMs,
      suspicionMult: g.suspicionMult,
      retransmitMult: g.retransmitMult,
      reconnectTimeoutMs: c.reconnectTimeoutLanMs,
    },
  };
}

/** Does this agent run a WAN pool? Servers do, unless ports.serf_wan is -1 (Consul's way to turn it off). */
export function hasWanPool(c: RuntimeConfig): boolean {
  return c.serverMode && c.ports.serfWan > 0;
}

/** Consul's WAN member name: the node name qualified by its datacenter. */
export function wanMemberName(node: string, datacenter: string): string {
  return `${node}.${datacenter}`;
}

/**
 * The WAN pool of a server: the same gossip stack as the LAN pool (same key, same wire), on the serf
 * WAN port with Consul's WAN timing (gossip_wan: probe 5 s, timeout 3 s, suspicion x6, gossip 500 ms).
 */
export function wanPoolOptions(c: RuntimeConfig, opts: { nodeId: string; logger?: Logger; build?: string; router?: GossipRouter }): GossipPoolOptions {
  const g = c.gossipWan;
  return {
    nodeName: wanMemberName(c.nodeName, c.datacenter),
    datacenter: c.datacenter,
    bindAddr: c.serfWanBindAddr,
    port: c.ports.serfWan,
    advertiseAddr: c.advertiseAddrWan || undefined,
    tags: serverTags({
      datacenter: c.datacenter, nodeId: opts.nodeId, serverPort: c.ports.server, build: opts.build ?? c.version,
      bootstrapExpect: c.bootstrapExpect, bootstrap: c.bootstrap,
    }),
    // A separate peer key file: two libp2p nodes of one agent must not share a peer id.
    dataDir: c.devMode || !c.dataDir ? undefined : path.join(c.dataDir, 'wan'),
    encryptKey: c.encryptKey || undefined,
    logger: opts.logger,
    pool: 'wan',
    // WAN federation through mesh gateways: other datacenters' servers through the gateways (server/wanGossip.ts).
    ...(opts.router ? { router: opts.router } : {}),
    config: {
      gossipNodes: g.gossipNodes,
      gossipIntervalMs: g.gossipIntervalMs,
      probeIntervalMs: g.probeIntervalMs,
      probeTimeoutMs: g.probeTimeoutMs,
      suspicionMult: g.suspicionMult,
      retransmitMult: g.retransmitMult,
      reconnectTimeoutMs: c.reconnectTimeoutWanMs,
    },
  };
}
