// The LAN pool's options from the agent's RuntimeConfig: Consul's flag and JSON names are mapped
// to RuntimeConfig by config/, and from there to the pool here, in one place.
import type { RuntimeConfig } from '../config/runtime.ts';
import type { Logger } from '../logger.ts';
import type { GossipPoolOptions } from './libp2p/pool.ts';
import { clientTags, serverTags } from './tags.ts';

export function lanPoolOptions(c: RuntimeConfig, opts: { nodeId: string; logger?: Logger; build?: string }): GossipPoolOptions {
  const build = opts.build ?? c.version;
  const tags = c.serverMode
    ? serverTags({
        datacenter: c.datacenter, nodeId: opts.nodeId, serverPort: c.ports.server, build,
        bootstrapExpect: c.bootstrapExpect, bootstrap: c.bootstrap,
        // No wan_join_port tag: there is no WAN pool yet, so there is nothing to join there.
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
