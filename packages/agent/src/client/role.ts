// The client role of an agent (no -server): no Raft and no catalog replica. The servers are the LAN
// pool's members tagged role=consul (servers.ts); writes (the agent's own services and checks) and
// every HTTP request a client does not answer itself go to one of them over the server RPC, with
// the same TLS settings as server-to-server RPC.
import type { AgentRole, RoleContext } from '../role.ts';
import { StateStore } from '../state/index.ts';
import { RpcClient } from '../rpc/client.ts';
import { rpcTlsFromConfig } from '../rpc/tls.ts';
import { ClientServers, serversUnreachable } from './servers.ts';
import { clientDnsLookup } from './dnsLookup.ts';
import { remoteResolver, type AclBackend } from '../http/aclResolve.ts';
import { antiEntropyToken } from '../http/aclEnforce.ts';
import { loadPersistedTokens } from '../http/aclTokens.ts';

export async function startClientRole(ctx: RoleContext): Promise<AgentRole> {
  const { config, logger, pool } = ctx;
  const rpc = new RpcClient({ credentials: rpcTlsFromConfig(config)?.client, logger, localAddress: config.bindAddr });
  const servers = new ClientServers({ pool, datacenter: config.datacenter, rpc, logger, holdTimeoutMs: config.rpcHoldTimeoutMs });
  // Requests that read the catalog are forwarded, so nothing reads this: it exists for the
  // HTTP layer's agent-local endpoints, which only ask it for watch sets and an index of 0.
  const empty = new StateStore();
  // ACLs on: tokens resolve on a server; this agent's own catalog writes carry the agent token (or
  // the token a service was registered with).
  if (config.acl.enabled) loadPersistedTokens(config);
  const acl: AclBackend | undefined = config.acl.enabled ? {
    resolver: remoteResolver((req, signal) => servers.http(req, signal), config),
    defaultToken: config.acl.tokens.default,
    agentToken: config.acl.tokens.agent,
    serviceTokens: new Map(),
  } : undefined;
  return {
    // The agent's own services and checks: without a known server the change stays local at once
    // and anti-entropy writes it when one appears (as Consul's client agents do).
    apply: (cmd) => servers.apply(cmd, { waitForServerMs: 0, ...(acl ? { token: antiEntropyToken(acl, config.acl.tokens, cmd) } : {}) }),
    // A service's token may lack node:write, which Consul asks only while this agent's node row is
    // new or changed (the leader's member reconcile and the agent token's node sync write it): Consul
    // answers such a registration at once and its anti-entropy syncs it later, so it is kept here too.
    syncLater: (err) => serversUnreachable(err) || nodeRowDenied(err),
    catalogState: (node) => servers.nodeState(node),
    backend: {
      store: empty,
      consistentRead: async () => {},
      raftStatus: () => {
        const known = servers.servers();
        return { leaderAddr: '', knownLeader: known.length > 0, lastContactMs: 0, peers: [] };
      },
      forward: (req, signal) => servers.http(req, signal),
      ...(acl ? { acl } : {}),
      // ?dc=<other>: a client has no WAN pool; its server forwards the request on.
      forwardDc: (_dc, req, signal) => servers.http(req, signal),
    },
    // DNS reads go to a server with the agent's DNS token, which the server's HTTP API enforces.
    dnsLookup: clientDnsLookup(acl ? {
      http: (req, signal) => servers.http({ ...req, headers: { ...req.headers, 'x-consul-token': config.acl.tokens.dns || config.acl.tokens.default } }, signal),
    } : servers, config.datacenter),
    leave: async () => {},
    async stop() {
      servers.close();
      rpc.close();
    },
  };
}

/** A catalog write refused only because its token may not write this agent's node row. */
export function nodeRowDenied(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown } | null;
  return e?.code === 'ERR_PERMISSION_DENIED' && typeof e.message === 'string' && e.message.includes("lacks permission 'node:write'");
}
