// A server agent in a cluster: the composition of the server port (RpcServer, shared with the Raft
// transport), Raft (RaftServer), discovery of the other servers, bootstrap, autopilot, and one
// module per path a request takes:
//
//   writes.ts       apply(cmd): on the leader, propose; on a follower, Forward.Apply to the leader.
//                   While no leader is known (an election), wait up to rpc_hold_timeout, then
//                   "No cluster leader". Every leader-only call below goes the same way.
//   reads.ts        read barriers by consistency mode (leader lease, ReadIndex, follower barrier).
//   membership.ts   operator calls: add/remove peer, transfer leadership, autopilot view; leave.
//   restore.ts      snapshot and chunked restore through Raft.
//   rpcHandlers.ts  what this server answers on the server port.
import path from 'node:path';
import type { RuntimeConfig } from '../config/runtime.ts';
import type { Logger } from '../logger.ts';
import type { Command, CommandResult, StateStore } from '../state/index.ts';
import { RpcClient } from '../rpc/client.ts';
import type { HttpRequestMsg, HttpResponseMsg, ServerIdentityMsg, StatusResponseMsg } from '../rpc/proto.ts';
import { RpcServer } from '../rpc/server.ts';
import { rpcTlsFromConfig } from '../rpc/tls.ts';
import { Autopilot, type AutopilotHealth } from './autopilot.ts';
import { BootstrapCoordinator } from './bootstrap.ts';
import { chaosPlant, CHAOS_PLANT_ENV } from './chaosPlant.ts';
import { withDefaultPort, type ServerDiscovery } from './discovery.ts';
import { ServerError } from './errors.ts';
import { JoinDiscovery } from './joinDiscovery.ts';
import { Membership, type RaftConfigurationServer } from './membership.ts';
import { RaftServer } from './raftServer.ts';
import { ServerReads } from './reads.ts';
import { Snapshots } from './restore.ts';
import { rpcHandlers } from './rpcHandlers.ts';
import { Writes, type LeaderSessionTimers } from './writes.ts';

export { ServerError } from './errors.ts';
export type { LeaderSessionTimers } from './writes.ts';
export type { RaftConfigurationServer } from './membership.ts';

export interface ServerOptions {
  config: RuntimeConfig;
  nodeId: string;
  logger: Logger;
  /** The agent passes GossipDiscovery; without one, JoinDiscovery asks -join / -retry-join addresses over the server RPC. */
  discovery?: ServerDiscovery;
}

export class Server {
  readonly config: RuntimeConfig;
  readonly nodeId: string;
  readonly raft: RaftServer;
  readonly store: StateStore;
  readonly rpc: RpcServer;
  readonly rpcClient: RpcClient;
  readonly discovery: ServerDiscovery;
  readonly autopilot: Autopilot;
  readonly identity: ServerIdentityMsg;
  /** Set by the agent: the leader's session TTL timers. */
  sessions: LeaderSessionTimers | undefined;
  /** Set by the agent: runs an HTTP API request forwarded by a client agent (Forward.Http). */
  httpHandler: ((req: HttpRequestMsg, signal: AbortSignal) => Promise<HttpResponseMsg>) | undefined;
  /** Set by the agent: the CA signing a secondary datacenter's intermediate (Forward.SignIntermediate), checking the caller's token. */
  signIntermediate: ((csrPem: string, token: string | undefined) => string) | undefined;
  readonly #log: Logger;
  readonly #bootstrap: BootstrapCoordinator | undefined;
  readonly #writes: Writes;
  readonly #reads: ServerReads;
  readonly #membership: Membership;
  readonly #snapshots: Snapshots;
  readonly #abort = new AbortController();
  #raftStarting: Promise<void> | undefined;
  #stopped = false;

  constructor(o: ServerOptions) {
    const c = o.config;
    this.config = c;
    this.nodeId = o.nodeId;
    this.#log = o.logger.child({ component: 'agent.server' });
    const raftAddress = `${c.advertiseAddrLan.includes(':') ? `[${c.advertiseAddrLan}]` : c.advertiseAddrLan}:${c.ports.server}`;
    this.identity = {
      id: o.nodeId, name: c.nodeName, datacenter: c.datacenter, raftAddress, bootstrapExpect: c.bootstrapExpect,
      version: c.version, bootstrap: c.bootstrap || c.devMode,
    };
    const tls = rpcTlsFromConfig(c);
    this.rpc = new RpcServer({
      listen: `${c.bindAddr.includes(':') ? `[${c.bindAddr}]` : c.bindAddr}:${c.ports.server}`,
      credentials: tls?.server, logger: o.logger,
      handlers: rpcHandlers({
        nodeId: o.nodeId,
        parts: () => ({
          store: this.store, discovery: this.discovery, autopilot: this.autopilot,
          writes: this.#writes, reads: this.#reads, membership: this.#membership, snapshots: this.#snapshots,
        }),
        statusResponse: () => this.statusResponse(),
        sessions: () => this.sessions,
        httpHandler: () => this.httpHandler,
        signIntermediate: () => this.signIntermediate,
      }),
      maxConnsPerClient: c.limits.rpcMaxConnsPerClient,
    });
    this.rpcClient = new RpcClient({ credentials: tls?.client, logger: o.logger, localAddress: c.bindAddr });
    this.raft = new RaftServer({
      config: c, nodeId: o.nodeId, logger: o.logger, grpcServer: this.rpc.grpcServer, raftAddress, credentials: tls?.raft,
    });
    this.store = this.raft.store;
    const seeds = [...new Set([...c.startJoinLan, ...c.retryJoinLan].map((a) => withDefaultPort(a, 8300)))];
    this.discovery = o.discovery ?? new JoinDiscovery({
      selfId: o.nodeId, seeds, logger: o.logger,
      probe: (address, timeoutMs) => this.#status(address, timeoutMs),
      retryIntervalMs: c.retryIntervalLanMs, retryMaxAttempts: c.retryMaxAttemptsLan,
    });
    this.discovery.on('change', () => this.#syncPeerAddresses());
    if (c.bootstrapExpect > 0 && !c.bootstrap && !c.devMode) {
      this.#bootstrap = new BootstrapCoordinator({
        self: { id: o.nodeId, dc: c.datacenter, expect: c.bootstrapExpect, raftAddr: raftAddress },
        discovery: this.discovery,
        status: (address, timeoutMs) => this.#status(address, timeoutMs),
        lockFile: this.raft.raftDir ? path.join(this.raft.raftDir, 'bootstrap-lock.json') : undefined,
        logger: o.logger,
      });
    }
    this.autopilot = new Autopilot({
      selfId: o.nodeId, selfName: c.nodeName, selfVersion: c.version, datacenter: c.datacenter, config: c.autopilot,
      heartbeatMs: this.raft.heartbeatMs, discovery: this.discovery,
      raft: {
        status: () => this.raft.status(),
        isLeader: () => this.raft.started && this.raft.node.isLeader(),
        proposeConfChange: (cc, opts) => this.raft.node.proposeConfChange(cc, opts),
      },
      status: (address, timeoutMs) => this.#status(address, timeoutMs),
      logger: o.logger,
    });
    const log = this.#log;
    // Test-only planted bugs (chaosPlant.ts): from the environment only, never from configuration.
    const plant = chaosPlant();
    if (plant) log.warn({ plant }, `${CHAOS_PLANT_ENV}=${plant}: this server runs with a PLANTED BUG for chaos testing; its reads or writes are not safe`);
    this.#writes = new Writes({
      config: c, raft: this.raft, rpcClient: this.rpcClient, logger: log,
      stopped: () => this.#stopped, plant,
    });
    this.#reads = new ServerReads({ config: c, nodeId: o.nodeId, raft: this.raft, rpcClient: this.rpcClient, writes: this.#writes, plant });
    this.#membership = new Membership({
      config: c, nodeId: o.nodeId, raft: this.raft, rpcClient: this.rpcClient, discovery: this.discovery,
      autopilot: this.autopilot, writes: this.#writes, logger: log,
    });
    this.#snapshots = new Snapshots({
      config: c, raft: this.raft, store: this.store, rpcClient: this.rpcClient, writes: this.#writes,
      defaultRead: (signal) => this.defaultRead(signal), logger: log,
    });
    this.raft.node.on('leaderChange', (e) => {
      this.#reads.leaderChanged(e.isLocal);
      this.#writes.leaderChanged(e.isLocal);
    });
  }

  get raftAddress(): string {
    return this.identity.raftAddress!;
  }

  get leaving(): boolean {
    return this.#membership.leaving;
  }

  /**
   * Binds the server port, starts discovery and autopilot, and starts Raft: at once when it has
   * state or bootstraps alone; otherwise in the background once -bootstrap-expect is settled.
   * Resolves when the port is listening (HTTP can start; requests wait for a leader).
   */
  async start(): Promise<void> {
    try {
      await this.#start();
    } catch (err) {
      // Whatever was opened (storage, the port, discovery timers) is released before failing.
      await this.stop().catch((e: unknown) => this.#log.warn({ err: e }, 'cleanup after a failed start failed'));
      throw err;
    }
  }

  async #start(): Promise<void> {
    const c = this.config;
    const empty = await this.raft.isEmpty();
    if (this.#bootstrap && empty) await this.#bootstrap.loadLock();
    const port = await this.rpc.bind();
    if (c.ports.server !== 0 && port !== c.ports.server) throw new Error(`server port bound to ${port}, expected ${c.ports.server}`);
    await this.discovery.start();
    this.autopilot.start();

    if (!empty) {
      this.#log.info({}, 'Raft state found: rejoining the cluster');
      await this.#startRaft();
    } else if (c.devMode || c.bootstrap) {
      await this.raft.bootstrap({ [this.nodeId]: this.raftAddress });
      await this.#startRaft();
    } else if (this.#bootstrap) {
      this.#log.info({ expect: c.bootstrapExpect }, 'waiting for servers to bootstrap the cluster (-bootstrap-expect)');
      this.#raftStarting = this.#bootstrapThenStart().catch((err: unknown) => {
        if (this.#abort.signal.aborted) return;
        this.#log.error({ err }, 'bootstrap failed; this server cannot join a cluster until restarted');
      });
    } else {
      this.#log.warn({}, 'no Raft state, no -bootstrap and no -bootstrap-expect: waiting to be added to a cluster by its leader');
      await this.#startRaft();
    }
  }

  async #bootstrapThenStart(): Promise<void> {
    const outcome = await this.#bootstrap!.run(this.#abort.signal);
    if (this.#stopped) return;
    if (outcome.kind === 'bootstrap') await this.raft.bootstrap(outcome.members);
    await this.#startRaft();
  }

  async #startRaft(): Promise<void> {
    this.#syncPeerAddresses();
    await this.raft.start();
    // After a restart, the configuration's members are servers to keep track of even without -join.
    const addrs = this.raft.status().peers.filter((p) => p.id !== this.nodeId && p.address).map((p) => p.address);
    this.discovery.addSeeds?.(addrs);
  }

  /** Tells Raft how to reach the servers of this datacenter (a joining server needs its leader's address). */
  #syncPeerAddresses(): void {
    for (const s of this.discovery.servers()) {
      if (s.dc === this.config.datacenter && s.status !== 'left' && s.id !== this.nodeId) this.raft.node.setPeerAddress(s.id, s.raftAddr);
    }
  }

  // ---- writes, reads, membership, snapshots: the modules do the work ---------------------------

  /** The write path (ACL wiring sets its token hooks: server/acl.ts). */
  get writes(): Writes {
    return this.#writes;
  }

  apply(cmd: Command, signal?: AbortSignal): Promise<CommandResult> {
    return this.#writes.apply(cmd, signal);
  }

  /** ?consistent: resolves once the local store reflects every write acknowledged before the call. */
  consistentRead(signal?: AbortSignal): Promise<void> {
    return this.#reads.barrier(true, signal);
  }

  /** Default mode: as current as the leader's own answer would be (the leader under its lease). */
  defaultRead(signal?: AbortSignal): Promise<void> {
    return this.#reads.barrier(false, signal);
  }

  /** For status/leader, status/peers and the X-Consul-KnownLeader / LastContact headers. */
  raftStatus(): { leaderAddr: string; knownLeader: boolean; lastContactMs: number; peers: string[] } {
    const s = this.raft.status();
    return {
      leaderAddr: s.leaderAddress,
      knownLeader: s.leader !== '',
      lastContactMs: Math.max(0, s.lastContactMs),
      peers: s.peers.filter((p) => p.voter).map((p) => p.address),
    };
  }

  /** Session renewals reset the leader's timer. */
  async renewSession(id: string, signal?: AbortSignal): Promise<void> {
    await this.#writes.onLeader('renew', { idempotent: true, signal },
      async () => {
        if (!this.sessions) throw new ServerError('ERR_NO_LEADER', 'No cluster leader');
        this.sessions.renew(id);
      },
      (address, call) => this.rpcClient.call(address, 'Forward.RenewSession', { id }, call).then(() => undefined));
  }

  /** GET /v1/operator/raft/configuration, from this server's copy of the configuration. */
  raftConfiguration(): { Servers: RaftConfigurationServer[]; Index: number } {
    return this.#membership.raftConfiguration();
  }

  removePeer(req: { id?: string; address?: string }, signal?: AbortSignal): Promise<{ id: string; address: string }> {
    return this.#membership.removePeer(req, signal);
  }

  addPeer(req: { id: string; address: string; voter: boolean }, signal?: AbortSignal): Promise<void> {
    return this.#membership.addPeer(req, signal);
  }

  /** POST /v1/operator/raft/transfer-leader. Returns the new leader's ID. */
  transferLeader(id: string | undefined, signal?: AbortSignal): Promise<string> {
    return this.#membership.transferLeader(id, signal);
  }

  /** The leader's autopilot view (forwarded to the leader from a follower). */
  autopilotHealth(signal?: AbortSignal): Promise<AutopilotHealth> {
    return this.#membership.autopilotHealth(signal);
  }

  /** GET /v1/snapshot: the store as a verified file, as current as a read of the given mode. */
  snapshot(o: { stale: boolean; signal?: AbortSignal }): Promise<{ file: Buffer; index: number }> {
    return this.#snapshots.snapshot(o);
  }

  /** PUT /v1/snapshot: replaces the state of every server, through Raft (see fsm.ts). */
  restore(file: Uint8Array, signal?: AbortSignal): Promise<{ index: number }> {
    return this.#snapshots.restore(file, signal);
  }

  // ---- leaving and stopping -------------------------------------------------------------------

  /** Leaves the cluster gracefully (Consul's `leave`): see membership.ts. */
  leave(): Promise<void> {
    return this.#membership.leave();
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    if (this.raft.started && this.raft.node.isLeader()) await this.#membership.handOff();
    this.#stopped = true;
    this.#abort.abort(new ServerError('ERR_STOPPED', 'the server is stopping'));
    this.#writes.wakeWaiters();
    await this.autopilot.stop();
    await this.discovery.stop();
    await this.#raftStarting;
    // Also when Raft never started: its storage was opened to look for state.
    await this.raft.stop();
    this.rpcClient.close();
    await this.rpc.stop();
  }

  // ---- status ---------------------------------------------------------------------------------

  #status(address: string, timeoutMs: number): Promise<StatusResponseMsg> {
    return this.rpcClient.call(address, 'Status.Status', { caller: this.identity }, {
      deadline: Date.now() + timeoutMs, connectTimeoutMs: timeoutMs,
    });
  }

  /** This server's answer to Status. */
  statusResponse(): StatusResponseMsg {
    const st = this.raft.status();
    return {
      server: this.identity,
      raftStarted: this.raft.started,
      hasState: this.raft.hasState(),
      role: this.raft.started ? st.role : '',
      term: st.term,
      leaderId: st.leader,
      leaderAddress: st.leaderAddress,
      commitIndex: st.commitIndex,
      appliedIndex: st.appliedIndex,
      lastIndex: st.lastIndex,
      lastContactMs: st.lastContactMs,
      bootstrap: this.#bootstrap?.vote() ?? { candidates: [], locked: false },
      knownServers: this.discovery.servers().map((s) => ({
        server: { id: s.id, name: s.name, datacenter: s.dc, raftAddress: s.raftAddr, bootstrapExpect: s.expect, version: s.version, bootstrap: s.bootstrap },
        status: s.status,
      })),
      leaving: this.#membership.leaving,
    };
  }
}
