// The gossip layer: a pure SWIM + Lifeguard core (core/), its libp2p driver (libp2p/), a seeded
// simulator (sim/), Consul's member tags (tags.ts) and user events (consulEvents.ts). The agent
// uses GossipPool; see README.md in this folder for the integration API.
export { GossipPool, parseJoinAddress, PUSH_PULL_PROTOCOL } from './libp2p/pool.ts';
export type { GossipPoolOptions, GossipPoolEvents, GossipPoolStats, PoolUserEvent } from './libp2p/pool.ts';
export { pskFromEncryptKey, loadOrCreatePeerKey } from './libp2p/keys.ts';
export { serverTags, clientTags, parseServer, memberRow, serfStatus, SERF_STATUS, CONSUL_PROTOCOL } from './tags.ts';
export type { AgentMemberRow, ServerInfo, ServerTagInput } from './tags.ts';
export { consulEventName, rawConsulEventName, encodeConsulEvent, decodeConsulEvent, CONSUL_EVENT_PREFIX } from './consulEvents.ts';
export type { ConsulUserEvent } from './consulEvents.ts';
export { retryJoin, type RetryJoinOptions } from './retryJoin.ts';
export { lanPoolOptions } from './fromConfig.ts';
export { GossipError, LAN_DEFAULTS, WAN_DEFAULTS } from './core/index.ts';
export type { GossipErrorCode, SwimConfig, MemberView, MemberState } from './core/index.ts';
