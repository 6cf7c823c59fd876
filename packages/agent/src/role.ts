// What distinguishes a server agent from a client agent, behind one interface: agent.ts starts the
// parts every agent has (gossip pool, local services and checks, HTTP API, DNS, user events) and one
// role, server/role.ts (Raft, the catalog replica, leader routines) or client/role.ts (servers found
// in gossip; writes and most reads forwarded to them).
import type { RuntimeConfig } from './config/runtime.ts';
import type { DnsLookup } from './dns/index.ts';
import type { GossipPool } from './gossip/libp2p/pool.ts';
import type { AgentBackend } from './http/backend.ts';
import type { LocalStateOptions } from './local/state.ts';
import type { HttpServer } from './http/server.ts';
import type { EndpointSpec } from './http/router.ts';
import type { Logger } from './logger.ts';
import type { Server } from './server/server.ts';
import type { Command, CommandResult } from './state/index.ts';

export interface RoleContext {
  config: RuntimeConfig;
  nodeId: string;
  logger: Logger;
  /** The LAN gossip pool, started. */
  pool: GossipPool;
}

export interface AgentRole {
  /** The server, on a server agent. */
  server?: Server;
  /** State store writes (Raft on a server; forwarded to a server by a client). */
  apply(cmd: Command): Promise<CommandResult>;
  /** Client agents: which failed catalog writes to keep locally for anti-entropy (LocalStateOptions.syncLater). */
  syncLater?: (err: unknown) => boolean;
  /** The catalog's rows for a node, for anti-entropy. */
  catalogState: LocalStateOptions['catalogState'];
  /** The role's part of the HTTP backend. */
  backend: Pick<AgentBackend, 'store' | 'consistentRead' | 'defaultRead' | 'raftStatus' | 'sessionTimers' | 'forward' | 'connectCA' | 'forwardDc' | 'datacenters' | 'wan' | 'acl'>;
  /** Servers: -join-wan (rejects when no address answers) and -retry-join-wan, once the agent is up. */
  joinWan?(): Promise<void>;
  /** Catalog lookups for DNS; absent when this role does not serve DNS. */
  dnsLookup?: DnsLookup;
  /** Endpoints only this role serves (a server's operator and snapshot endpoints), as route specs of the one dispatcher. */
  httpRoutes?(backend: AgentBackend): EndpointSpec[];
  /** Called once the HTTP API exists (not yet listening). */
  attachHttp?(http: HttpServer, backend: AgentBackend): void;
  /** The role's part of a graceful leave (a server leaves the Raft configuration). */
  leave(): Promise<void>;
  stop(): Promise<void>;
}
