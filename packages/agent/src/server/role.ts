// The server role of an agent (-server): the Server (Raft, server RPC, bootstrap, autopilot) with
// its peers found in the LAN gossip pool, the leader routines (self-registration, session timers,
// tombstone reaping, serfHealth reconciliation of every gossip member), and what the HTTP API and
// DNS read: the local replica. agent.ts composes it with the parts every agent has.
import type { AgentRole, RoleContext } from '../role.ts';
import { parseServer } from '../gossip/tags.ts';
import { catalogStateFromStore } from '../local/state.ts';
import { injectForwarded } from '../http/forward.ts';
import { decodeCommand, type Command } from '../state/index.ts';
import { authorizeCommand } from '../http/aclEnforce.ts';
import { ServerCA } from './connectCA.ts';
import { aclDnsLookup, setupServerAcl } from './acl.ts';
import { catalogDnsLookup } from './dnsLookup.ts';
import { clientDnsLookup } from '../client/dnsLookup.ts';
import { GossipDiscovery, serverStatusOf } from './gossipDiscovery.ts';
import { LeaderRoutines, type ReconciledMember } from './leader.ts';
import { operatorRoutes } from './operatorRoutes.ts';
import { Server } from './server.ts';
import { SessionTimers } from './sessionTimers.ts';
import { WanFederation } from './wan.ts';
import { localGatewayReader } from './localGateways.ts';
import { ConfigReplication } from './replication.ts';
import { SecondaryCA } from './secondaryCA.ts';
import { AclReplication } from './aclReplication.ts';
import { aclReplicationRoutes, authorizeSignIntermediate, resolvesInPrimary, secondaryResolver, type SecondaryTokens } from './aclFederation.ts';
import { remoteResolver } from '../http/aclResolve.ts';
import type { ForwardedRequest, ForwardedResponse } from '../http/forward.ts';
import { hasWanPool } from '../gossip/fromConfig.ts';

export async function startServerRole(ctx: RoleContext): Promise<AgentRole> {
  const { config, nodeId, logger, pool } = ctx;
  const log = logger.child({ component: 'agent' });
  const server = new Server({ config, nodeId, logger, discovery: new GossipDiscovery(pool, nodeId, logger) });
  const apply = (cmd: Command) => server.apply(cmd);
  const sessions = new SessionTimers(server.store, apply, logger);
  server.sessions = sessions;
  // A secondary datacenter (another primary_datacenter, reachable over the WAN) has no root of its
  // own: its CA is an intermediate of the primary's (secondaryCA.ts).
  const secondary = hasWanPool(config) && !!config.primaryDatacenter && config.primaryDatacenter !== config.datacenter;
  // A secondary makes no initial management token (Consul's initializeACLs does that in the primary
  // only): its global tokens are the primary's, and replication would delete one made here.
  const aclConfig = secondary && config.acl.tokens.initialManagement !== ''
    ? { ...config, acl: { ...config.acl, tokens: { ...config.acl.tokens, initialManagement: '' } } }
    : config;
  if (aclConfig !== config && config.acl.enabled) log.warn('acl.tokens.initial_management is ignored outside the primary datacenter; create tokens in the primary');
  const acl = setupServerAcl({ config: aclConfig, store: server.store, writes: server.writes, apply: (cmd) => server.apply(cmd), logger });
  // A secondary's servers resolve global tokens in the primary until token replication has them.
  let toPrimary: ((req: ForwardedRequest, signal: AbortSignal) => Promise<ForwardedResponse>) | undefined;
  let tokensReplicated = (): boolean => false;
  const secondaryTokens: SecondaryTokens = { store: server.store, tokensReplicated: () => tokensReplicated(), serverSecret: () => server.store.aclServerSecret() };
  if (acl && secondary) {
    acl.resolver = secondaryResolver({
      ...secondaryTokens, local: acl.resolver,
      remote: remoteResolver((req, signal) => {
        if (!toPrimary) throw new Error('the WAN pool is not running yet');
        return toPrimary(req, signal);
      }, config),
    });
  }
  // Writes forwarded to this datacenter's leader (client agents' anti-entropy, other servers) are
  // checked with the same resolver, so a global token this secondary has not replicated works too.
  if (acl && secondary) {
    server.writes.authorizeForwarded = async (token, command) => {
      authorizeCommand(await acl.resolver.resolve(token ?? ''), server.store, decodeCommand(command));
    };
  }
  const ca = new ServerCA({ store: server.store, apply, datacenter: config.datacenter, logger, secondary });
  server.signIntermediate = (csrPem, token) => {
    authorizeSignIntermediate(acl, token);
    return ca.signIntermediate(csrPem);
  };
  const leader = new LeaderRoutines({
    config, nodeId, store: server.store, apply, sessions, logger, ca,
    members: () => pool.memberViews().filter((m) => m.tags.dc === config.datacenter).map((m): ReconciledMember => {
      const srv = parseServer(m);
      return {
        id: m.tags.id ?? '', name: m.name, address: m.addr, status: serverStatusOf(m.state),
        ...(srv ? { serverPort: srv.port } : {}),
      };
    }),
  });
  const stopReconciling = pool.onMembershipChange(() => void leader.reconcileMembers());
  server.raft.node.on('leaderChange', (e) => {
    acl?.leaderChanged(e.isLocal);
    void leader.setLeader(e.isLocal).catch((err) => log.error({ err }, 'leader routines failed'));
  });
  // A restored snapshot replaces the catalog and sessions: the leader registers itself again and
  // re-arms every session timer from the restored table.
  server.raft.fsm.events.on('restored', () => {
    if (!server.raft.node.isLeader()) return;
    void leader.setLeader(true).catch((err) => log.error({ err }, 'leader routines after restore failed'));
  });
  await server.start();
  // The WAN pool (servers of every federated datacenter), unless ports.serf_wan is -1.
  let wan: WanFederation | undefined;
  if (hasWanPool(config)) {
    try {
      wan = await WanFederation.start({ config, nodeId, logger, rpc: server.rpcClient, localGateways: localGatewayReader(server.store), rpcServer: server.rpc });
    } catch (err) {
      stopReconciling();
      await server.stop();
      leader.stop();
      throw err;
    }
  }
  // A secondary datacenter's leader replicates config entries (and so intentions) from the primary,
  // and with ACLs on its policies, roles and global tokens; every read carries acl.tokens.replication.
  const replicationToken = (): string => config.acl.tokens.replication;
  const fetchPrimaryWith = (url: string, token: string, signal: AbortSignal) =>
    wan!.forwardHttp(config.primaryDatacenter, { method: 'GET', url, headers: token !== '' ? { 'x-consul-token': token } : {}, body: Buffer.alloc(0) }, signal);
  const fetchPrimary = (url: string, signal: AbortSignal) => fetchPrimaryWith(url, acl ? replicationToken() : '', signal);
  const aclReplication = wan && secondary && acl
    ? new AclReplication({
      primary: config.primaryDatacenter, store: server.store, apply: (cmd, signal) => server.apply(cmd, signal), logger,
      fetchPrimary: fetchPrimaryWith, replicationToken, tokens: config.acl.enableTokenReplication,
    })
    : undefined;
  if (wan) toPrimary = (req, signal) => wan!.forwardHttp(config.primaryDatacenter, req, signal);
  if (aclReplication && config.acl.enableTokenReplication) tokensReplicated = () => aclReplication.status().ReplicatedTokenIndex > 0;
  const secondaryLoops = wan && secondary
    ? [
      new ConfigReplication({
        primary: config.primaryDatacenter, store: server.store, apply: (cmd, signal) => server.apply(cmd, signal), logger, fetchPrimary,
      }),
      new SecondaryCA({
        primary: config.primaryDatacenter, ca, store: server.store, logger, fetchPrimary,
        signIntermediate: async (csrPem, signal) => {
          const res = await wan.rpcCall(config.primaryDatacenter, { callMs: 30_000, idempotent: true, signal }, (rpc, address, call) =>
            rpc.call(address, 'Forward.SignIntermediate', { json: Buffer.from(JSON.stringify({ CSR: csrPem, ...(acl ? { Token: replicationToken() } : {}) })) }, call));
          const certPem = (JSON.parse((res.json ?? Buffer.alloc(0)).toString('utf8')) as { CertPEM?: unknown }).CertPEM;
          if (typeof certPem !== 'string') throw new Error('the primary answered SignIntermediate without a CertPEM');
          return certPem;
        },
      }),
      ...(aclReplication ? [aclReplication] : []),
    ]
    : [];
  // Both run on the leader only, as Consul's leader routines do.
  if (secondaryLoops.length > 0) {
    server.raft.node.on('leaderChange', (e) => { for (const l of secondaryLoops) (e.isLocal ? l.start() : l.stop()); });
    if (server.raft.started && server.raft.node.isLeader()) for (const l of secondaryLoops) l.start();
  }

  return {
    server,
    apply,
    catalogState: catalogStateFromStore(server.store),
    backend: {
      store: server.store,
      consistentRead: (signal) => server.consistentRead(signal),
      defaultRead: (signal) => server.defaultRead(signal),
      raftStatus: () => server.raftStatus(),
      sessionTimers: {
        // Renewals reset the timer on the leader, wherever they arrive.
        renew: (id) => server.renewSession(id),
      },
      connectCA: ca,
      ...(acl ? { acl } : {}),
      ...(acl && secondary ? { aclResolveInPrimary: (secret: string) => resolvesInPrimary(secondaryTokens, secret) } : {}),
      ...(wan ? {
        forwardDc: (dc, req, signal) => wan.forwardHttp(dc, req, signal),
        datacenters: () => wan.datacenters(),
        wan: { members: () => wan.members(), join: (address) => wan.join(address), forceLeave: (node, prune) => wan.forceLeave(node, prune) },
      } : {}),
    },
    joinWan: async () => { await wan?.joinAtStart(); },
    dnsLookup: ((lookup) => (acl ? aclDnsLookup(lookup, acl.resolver, acl.dnsToken) : lookup))(catalogDnsLookup(server.store, config.datacenter, wan ? {
      datacenters: () => wan.datacenters(),
      // The same HTTP reads a client agent's DNS makes of its server, sent to the other datacenter.
      remote: (dc) => clientDnsLookup({ http: (req, signal) => wan.forwardHttp(dc, req, signal) }, dc),
    } : undefined)),
    httpRoutes: (backend) => [...operatorRoutes({ server, backend }), ...aclReplicationRoutes(config, aclReplication)],
    attachHttp(http) {
      // Client agents' forwarded requests run through this server's HTTP API.
      server.httpHandler = (req, signal) => injectForwarded(http.app, {
        method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headers ?? {}, body: req.body ?? Buffer.alloc(0),
      }, signal);
    },
    leave: async () => {
      // Consul leaves the WAN pool first: other datacenters stop routing here before the LAN hears.
      await wan?.leave();
      await server.leave();
    },
    async stop() {
      stopReconciling();
      server.httpHandler = undefined;
      for (const l of secondaryLoops) l.stop();
      server.signIntermediate = undefined;
      await wan?.stop();
      await server.stop();
      leader.stop();
    },
  };
}
