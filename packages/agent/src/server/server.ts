// A server agent in a cluster: the composition of the server port (RpcServer, shared with the Raft
// transport), Raft (RaftServer), discovery of the other servers, bootstrap, autopilot, and the paths
// every request takes:
//
//   write   apply(cmd): on the leader, propose; on a follower, Forward.Apply to the leader. While no
//           leader is known (an election), wait up to rpc_hold_timeout, then "No cluster leader".
//   read    default:    leader: local once its lease is established; follower: barrier (reads.ts).
//           consistent: leader: ReadIndex round; follower: barrier after the leader's ReadIndex.
//           stale:      local, always (the HTTP layer adds X-Consul-LastContact / KnownLeader).
//   members operator calls (remove-peer, transfer-leader, restore) run on the leader, forwarded.
//
// A forwarded write is retried on another attempt only when it certainly did not run: the remote
// refused it before proposing (not the leader, transfer in progress) or the call never connected.
// Anything else (a connection lost mid-call, a leader deposed with the entry in flight) has an
// unknown outcome and fails, as in Consul, rather than risk applying a write twice.
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import * as v8 from 'node:v8';
import { ConfChangeInProgressError, NotLeaderError, type ConfChange, type NodeStatus } from '@trellis/raft';
import type { RuntimeConfig } from '../config/runtime.ts';
import type { Logger } from '../logger.ts';
import {
  StateStore, decodeCommand, isCommandData, encodeCommand, type Command, type CommandResult,
} from '../state/index.ts';
import { Autopilot, type AutopilotHealth } from './autopilot.ts';
import { BootstrapCoordinator } from './bootstrap.ts';
import { withDefaultPort, type ServerDiscovery } from './discovery.ts';
import { restoreEntries } from './fsm.ts';
import { JoinDiscovery } from './joinDiscovery.ts';
import { NoLeaderError, RaftServer } from './raftServer.ts';
import { Coalescer, ReadBarrier } from './reads.ts';
import { RpcClient, type CallOptions } from '../rpc/client.ts';
import { retryable } from '../rpc/errors.ts';
import type { HttpRequestMsg, HttpResponseMsg, NodeCatalogState, ServerIdentityMsg, StatusResponseMsg } from '../rpc/proto.ts';
import { RpcServer, type RpcHandlers } from '../rpc/server.ts';
import { decodeSnapshotFile, encodeSnapshotFile } from './snapshotFile.ts';
import { rpcTlsFromConfig } from '../rpc/tls.ts';

/** Restore data per Raft entry: well under the default maxEntryBytes (512 KiB). */
const RESTORE_ENTRY_BYTES = 256 * 1024;
/** Restore entries proposed ahead of the oldest one not yet applied. */
const RESTORE_WINDOW = 16;

export class ServerError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = 'ServerError';
    this.code = code;
  }
}

/** What the session-timer owner offers the server (sessionTimers.ts). */
export interface LeaderSessionTimers {
  renew(id: string): void;
  track(id: string): void;
}

export interface RaftConfigurationServer {
  ID: string;
  Node: string;
  Address: string;
  Leader: boolean;
  Voter: boolean;
  ProtocolVersion: string;
}

export interface ServerOptions {
  config: RuntimeConfig;
  nodeId: string;
  logger: Logger;
  /** The agent passes GossipDiscovery; without one, JoinDiscovery asks -join / -retry-join addresses over the server RPC. */
  discovery?: ServerDiscovery;
}

function abortError(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new DOMException('The operation was aborted', 'AbortError');
}

const sleep = (ms: number, signal?: AbortSignal) => new Promise<void>((resolve) => {
  const t = setTimeout(resolve, ms);
  signal?.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
});

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
  readonly #log: Logger;
  readonly #bootstrap: BootstrapCoordinator | undefined;
  readonly #reads: ReadBarrier;
  /** One ReadIndex round on the leader serves every read that arrived before it started. */
  readonly #readIndexRounds: Coalescer;
  readonly #abort = new AbortController();
  #raftStarting: Promise<void> | undefined;
  #leaving = false;
  #stopped = false;
  /** The Raft index from which this leader's lease covers every earlier commit (its first entry). */
  #leaseFrom = Number.POSITIVE_INFINITY;
  /** The leader this follower forwards writes to ('' while it leads or knows none). */
  #forwardedTo = '';
  #restoring: Promise<unknown> = Promise.resolve();
  readonly #leaderWaiters = new Set<() => void>();

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
      credentials: tls?.server, handlers: this.#handlers(), logger: o.logger,
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
    this.#readIndexRounds = new Coalescer(async (signal) => {
      await this.raft.node.read({ signal });
      return this.raft.node.status().appliedIndex;
    });
    this.#reads = new ReadBarrier({
      fetchIndex: (consistent, signal) => this.#fetchReadIndex(consistent, signal),
      waitApplied: (index, signal) => this.#waitApplied(index, signal),
    });
    this.raft.node.on('leaderChange', (e) => {
      // The lease (default reads without a quorum round) starts once this leader's first entry,
      // appended when it took over, has been applied: by then every earlier commit has been too.
      this.#leaseFrom = e.isLocal ? this.raft.node.status().lastIndex : Number.POSITIVE_INFINITY;
      // Writes forwarded to a leader that is no longer the leader (deposed, crashed, frozen) may
      // never be answered: fail them now, as "outcome unknown", instead of at their deadline.
      const leaderAddress = this.raft.node.status().leaderAddress;
      if (this.#forwardedTo && this.#forwardedTo !== leaderAddress) {
        this.rpcClient.abandonApplies(this.#forwardedTo, 'the leader changed while the write was in flight; it may or may not have been applied');
      }
      this.#forwardedTo = e.isLocal ? '' : leaderAddress;
      for (const w of this.#leaderWaiters) w();
    });
  }

  get raftAddress(): string {
    return this.identity.raftAddress!;
  }

  get leaving(): boolean {
    return this.#leaving;
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

  // ---- the write path -------------------------------------------------------------------------

  async apply(cmd: Command, signal?: AbortSignal): Promise<CommandResult> {
    const data = encodeCommand(cmd);
    return this.#onLeader('apply', { idempotent: false, signal },
      () => this.#applyOnLeader(data),
      (address, call) => this.rpcClient.apply(address, data, call).then((r) => v8.deserialize(r) as CommandResult));
  }

  async #applyOnLeader(data: Uint8Array): Promise<CommandResult> {
    const result = await this.raft.node.propose(data);
    // Session TTL timers live on the leader, whichever server the session was created through.
    if (result.ok && isCommandData(data) && typeof result.value === 'string') {
      try {
        if (decodeCommand(data).type === 'sessionCreate') this.sessions?.track(result.value);
      } catch {
        // Undecodable data was refused by the FSM already (result.ok would be false).
      }
    }
    return result;
  }

  /**
   * Runs `local` when this server leads, `remote` on the leader otherwise; while no leader is known,
   * waits for one up to rpc_hold_timeout. See retryable() for which failures are tried again.
   */
  async #onLeader<T>(what: string, o: { idempotent: boolean; signal?: AbortSignal }, local: () => Promise<T>,
    remote: (address: string, call: CallOptions) => Promise<T>): Promise<T> {
    const deadline = Date.now() + this.config.rpcHoldTimeoutMs;
    let last: unknown;
    for (let attempt = 0; ; attempt++) {
      if (o.signal?.aborted) throw abortError(o.signal);
      if (this.#stopped) throw new ServerError('ERR_NO_LEADER', 'No cluster leader');
      // Storage failed: neither serve nor wait for a leader; name the disk (raftServer.ts).
      if (this.raft.failure) throw this.raft.failure;
      let target = '';
      try {
        if (this.raft.started) {
          if (this.raft.node.isLeader()) {
            target = 'local';
            return await local();
          }
          const st = this.raft.node.status();
          if (st.leader && st.leaderAddress) {
            target = st.leaderAddress;
            return await remote(st.leaderAddress, {
              deadline: Math.max(deadline, Date.now() + 1000) + 5000, connectTimeoutMs: 1000, signal: o.signal,
            });
          }
        }
      } catch (err) {
        if (this.raft.failure) throw this.raft.failure;
        if (!retryable(err, o.idempotent)) throw err;
        last = err;
        this.#log.debug({ what, target, attempt, err: (err as Error).message }, 'leader unavailable; retrying');
      }
      if (Date.now() >= deadline) {
        if (last) this.#log.debug({ what, err: (last as Error).message }, 'gave up waiting for a leader');
        throw new NoLeaderError();
      }
      await this.#leaderChangeOr(Math.min(100, deadline - Date.now()), o.signal);
    }
  }

  #leaderChangeOr(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(t);
        this.#leaderWaiters.delete(done);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const t = setTimeout(done, Math.max(0, ms));
      this.#leaderWaiters.add(done);
      signal?.addEventListener('abort', done, { once: true });
    });
  }

  // ---- the read path --------------------------------------------------------------------------

  /** ?consistent: resolves once the local store reflects every write acknowledged before the call. */
  consistentRead(signal?: AbortSignal): Promise<void> {
    return this.#barrier(true, signal);
  }

  /** Default mode: as current as the leader's own answer would be (the leader under its lease). */
  defaultRead(signal?: AbortSignal): Promise<void> {
    return this.#barrier(false, signal);
  }

  async #barrier(consistent: boolean, signal?: AbortSignal): Promise<void> {
    if (this.raft.started && this.raft.node.isLeader()) {
      try {
        await this.#leaderBarrier(consistent, signal);
        return;
      } catch (err) {
        if (!retryable(err, true)) throw err;
        // Lost leadership meanwhile: fall through to the follower path.
      }
    }
    await this.#onLeader('read', { idempotent: true, signal },
      async () => { await this.#leaderBarrier(consistent, signal); },
      () => this.#reads.wait(consistent, signal));
  }

  /** On the leader: resolves when a read of this mode may run; returns the index it covers. */
  async #leaderBarrier(consistent: boolean, signal?: AbortSignal): Promise<number> {
    const node = this.raft.node;
    if (!consistent) {
      const st = node.status();
      if (st.role !== 'leader') throw new NotLeaderError(st.leader, st.leaderAddress);
      if (st.appliedIndex >= this.#leaseFrom) return st.commitIndex;
    }
    // The applied index after the round: at least its read index, and all of it committed.
    return this.#readIndexRounds.next(signal);
  }

  async #fetchReadIndex(consistent: boolean, signal: AbortSignal): Promise<number> {
    const st = this.raft.status();
    if (!st.leader || !st.leaderAddress || st.leader === this.nodeId) throw new NoLeaderError();
    const r = await this.rpcClient.call(st.leaderAddress, 'Forward.ReadIndex', { consistent }, {
      deadline: Date.now() + 5000, connectTimeoutMs: 1000, signal,
    });
    return r.index ?? 0;
  }

  async #waitApplied(index: number, signal: AbortSignal): Promise<void> {
    if (this.raft.node.status().appliedIndex >= index) return;
    const timeoutMs = this.config.rpcHoldTimeoutMs;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        cleanup();
        reject(new ServerError('ERR_TIMEOUT', `this server did not apply index ${index} within ${timeoutMs} ms; it is lagging behind the leader`));
      }, timeoutMs);
      const onAbort = () => { cleanup(); reject(abortError(signal)); };
      const cleanup = () => { clearTimeout(timer); signal.removeEventListener('abort', onAbort); };
      signal.addEventListener('abort', onAbort, { once: true });
      this.raft.node.waitApplied(index).then(() => { cleanup(); resolve(); }, (err: unknown) => { cleanup(); reject(err); });
    });
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
    await this.#onLeader('renew', { idempotent: true, signal },
      async () => {
        if (!this.sessions) throw new ServerError('ERR_NO_LEADER', 'No cluster leader');
        this.sessions.renew(id);
      },
      (address, call) => this.rpcClient.call(address, 'Forward.RenewSession', { id }, call).then(() => undefined));
  }

  // ---- membership and operator calls ---------------------------------------------------------

  /** The node name of a server, from discovery (or this agent's own). */
  #nameOf(id: string): string {
    if (id === this.nodeId) return this.config.nodeName;
    return this.discovery.servers().find((s) => s.id === id)?.name ?? '';
  }

  /** GET /v1/operator/raft/configuration, from this server's copy of the configuration. */
  raftConfiguration(): { Servers: RaftConfigurationServer[]; Index: number } {
    const st = this.raft.status();
    return {
      Servers: st.peers.map((p) => ({
        ID: p.id, Node: this.#nameOf(p.id), Address: p.address, Leader: p.id === st.leader, Voter: p.voter, ProtocolVersion: '3',
      })),
      // The Raft library does not expose the configuration entry's own index; the commit index
      // covers it (the configuration shown is never newer than what is committed plus the tail).
      Index: st.commitIndex,
    };
  }

  async removePeer(req: { id?: string; address?: string }, signal?: AbortSignal): Promise<{ id: string; address: string }> {
    if (!req.id && !req.address) throw new ServerError('ERR_BAD_REQUEST', 'Must specify either ?id with the server\'s ID or ?address with IP:port of peer to remove');
    return this.#onLeader('remove-peer', { idempotent: false, signal },
      () => this.#removePeerOnLeader(req, signal),
      (address, call) => this.rpcClient.call(address, 'Operator.RemovePeer', { id: req.id ?? '', address: req.address ?? '' }, call)
        .then((r) => ({ id: r.id ?? '', address: r.address ?? '' })));
  }

  async #removePeerOnLeader(req: { id?: string; address?: string }, signal?: AbortSignal): Promise<{ id: string; address: string }> {
    const st = this.raft.node.status();
    const peer = req.id ? st.peers.find((p) => p.id === req.id) : st.peers.find((p) => p.address === req.address);
    if (!peer) {
      throw req.id
        ? new ServerError('ERR_UNKNOWN_PEER', `id ${JSON.stringify(req.id)} was not found in the Raft configuration`)
        : new ServerError('ERR_UNKNOWN_PEER', `address ${JSON.stringify(req.address)} was not found in the Raft configuration`);
    }
    await this.#confChange({ type: 'remove', node: peer.id }, signal);
    this.#log.info({ id: peer.id, address: peer.address }, 'removed server from the Raft configuration');
    return { id: peer.id, address: peer.address };
  }

  async addPeer(req: { id: string; address: string; voter: boolean }, signal?: AbortSignal): Promise<void> {
    if (!req.id || !req.address) throw new ServerError('ERR_BAD_REQUEST', 'adding a peer needs its id and address');
    await this.#onLeader('add-peer', { idempotent: false, signal },
      () => this.#confChange({ type: req.voter ? 'addVoter' : 'addLearner', node: req.id, address: req.address }, signal),
      (address, call) => this.rpcClient.call(address, 'Operator.AddPeer', req, call).then(() => undefined));
  }

  /** A membership change on the leader, retried while another one is still committing. */
  async #confChange(cc: ConfChange, signal?: AbortSignal): Promise<void> {
    const deadline = Date.now() + this.config.rpcHoldTimeoutMs;
    for (;;) {
      try {
        await this.raft.node.proposeConfChange(cc, { signal });
        return;
      } catch (err) {
        if (!(err instanceof ConfChangeInProgressError) || Date.now() > deadline) throw err;
        await sleep(50, signal);
      }
    }
  }

  /** POST /v1/operator/raft/transfer-leader. Returns the new leader's ID. */
  async transferLeader(id: string | undefined, signal?: AbortSignal): Promise<string> {
    return this.#onLeader('transfer-leader', { idempotent: true, signal },
      () => this.#transferOnLeader(id, signal),
      (address, call) => this.rpcClient.call(address, 'Operator.TransferLeader', { id: id ?? '' }, call).then((r) => r.id ?? ''));
  }

  async #transferOnLeader(id: string | undefined, signal?: AbortSignal): Promise<string> {
    const st = this.raft.node.status();
    let to = id;
    if (!to) {
      const best = this.#bestSuccessor(st);
      if (!best) throw new ServerError('ERR_INVALID_TRANSFER_TARGET', 'cannot transfer leadership: there is no other voter');
      to = best;
    }
    if (to === this.nodeId) return to;
    if (!st.peers.some((p) => p.id === to)) throw new ServerError('ERR_UNKNOWN_PEER', `id ${JSON.stringify(to)} was not found in the Raft configuration`);
    await this.raft.node.transferLeader(to, { signal });
    this.#log.info({ to }, 'leadership transferred');
    return to;
  }

  /** The most up-to-date other voter. */
  #bestSuccessor(st: NodeStatus): string | undefined {
    let best: { id: string; match: number } | undefined;
    for (const p of st.peers) {
      if (!p.voter || p.id === this.nodeId) continue;
      if (!best || p.matchIndex > best.match) best = { id: p.id, match: p.matchIndex };
    }
    return best?.id;
  }

  /** The leader's autopilot view (forwarded to the leader from a follower). */
  async autopilotHealth(signal?: AbortSignal): Promise<AutopilotHealth> {
    return this.#onLeader('autopilot-health', { idempotent: true, signal },
      async () => this.autopilot.health(),
      (address, call) => this.rpcClient.call(address, 'Operator.AutopilotHealth', {}, call)
        .then((r) => JSON.parse((r.json ?? Buffer.from('{}')).toString('utf8')) as AutopilotHealth));
  }

  // ---- snapshots ------------------------------------------------------------------------------

  /** GET /v1/snapshot: the store as a verified file, as current as a read of the given mode. */
  async snapshot(o: { stale: boolean; signal?: AbortSignal }): Promise<{ file: Buffer; index: number }> {
    if (!o.stale) await this.defaultRead(o.signal);
    const index = this.store.lastIndex();
    const state = this.store.snapshot();
    return { file: encodeSnapshotFile(state, { index, datacenter: this.config.datacenter, node: this.config.nodeName }), index };
  }

  /** PUT /v1/snapshot: replaces the state of every server, through Raft (see fsm.ts). */
  async restore(file: Uint8Array, signal?: AbortSignal): Promise<{ index: number }> {
    // Checked here too, so bad input fails fast without a round trip to the leader.
    const { state } = decodeSnapshotFile(file);
    new StateStore().restore(state);
    return this.#onLeader('restore', { idempotent: true, signal },
      () => this.#restoreOnLeader(file),
      (address, call) => this.rpcClient.restore(address, file, { ...call, deadline: Date.now() + 10 * 60_000 })
        .then((r) => ({ index: r.index ?? 0 })));
  }

  async #restoreOnLeader(file: Uint8Array): Promise<{ index: number }> {
    // One restore at a time: a second would discard the first one's chunks mid-way.
    const run = this.#restoring.then(() => this.#restoreNow(file), () => this.#restoreNow(file));
    this.#restoring = run.catch(() => { /* its caller reports it */ });
    return run;
  }

  async #restoreNow(file: Uint8Array): Promise<{ index: number }> {
    const { state, meta } = decodeSnapshotFile(file);
    new StateStore().restore(state); // throws ERR_SNAPSHOT_INVALID before anything is proposed
    const id = randomUUID();
    const node = this.raft.node;
    const proposals: Array<Promise<CommandResult>> = [];
    const track = (p: Promise<CommandResult>) => {
      p.catch(() => { /* observed through Promise.all below */ });
      proposals.push(p);
      return p;
    };
    track(node.propose(restoreEntries.begin({ id, bytes: state.byteLength, sha256: meta.sha256 })));
    for (let off = 0; off < state.byteLength; off += RESTORE_ENTRY_BYTES) {
      // A window of entries in flight keeps a large restore from piling up in the log's memory and
      // the transport's queues (entries commit in order, so waiting on the oldest is enough).
      if (proposals.length > RESTORE_WINDOW) await proposals[proposals.length - RESTORE_WINDOW - 1];
      track(node.propose(restoreEntries.chunk(id, off, state.subarray(off, off + RESTORE_ENTRY_BYTES))));
    }
    const end = track(node.propose(restoreEntries.end(id)));
    await Promise.all(proposals);
    const r = await end;
    if (!r.ok) throw new ServerError('ERR_SNAPSHOT_INVALID', `snapshot restore failed: ${r.error.message}`);
    this.#log.info({ index: r.index, bytes: state.byteLength, from: meta.node, takenAt: meta.createdAt }, 'snapshot restored');
    return { index: r.index };
  }

  // ---- leaving and stopping -------------------------------------------------------------------

  /**
   * Leaves the cluster gracefully (Consul's `leave`): a leader hands leadership over first, then the
   * leader removes this server from the configuration. Other servers see it as 'left'.
   */
  async leave(): Promise<void> {
    this.#leaving = true;
    if (!this.raft.started) return;
    const st = this.raft.node.status();
    if (!st.peers.some((p) => p.id !== this.nodeId)) return;
    if (this.raft.node.isLeader()) await this.#handOff();
    try {
      // Resolves once the removal is committed. (This server may never see that entry itself: the
      // leader stops replicating to a member as soon as it appends its removal.)
      await this.removePeer({ id: this.nodeId });
    } catch (err) {
      this.#log.warn({ err: (err as Error).message }, 'could not remove this server from the Raft configuration while leaving');
      return;
    }
    this.#log.info({}, 'left the cluster: removed from the Raft configuration');
  }

  /** A leader that stops hands leadership to the most up-to-date voter first. */
  async #handOff(): Promise<void> {
    const st = this.raft.node.status();
    const to = this.#bestSuccessor(st);
    if (!to) return;
    try {
      await this.raft.node.transferLeader(to);
      this.#log.info({ to }, 'transferred leadership before shutdown');
    } catch (err) {
      this.#log.warn({ to, err: (err as Error).message }, 'leadership transfer before shutdown failed');
    }
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    if (this.raft.started && this.raft.node.isLeader()) await this.#handOff();
    this.#stopped = true;
    this.#abort.abort(new ServerError('ERR_STOPPED', 'the server is stopping'));
    for (const w of this.#leaderWaiters) w();
    await this.autopilot.stop();
    await this.discovery.stop();
    await this.#raftStarting;
    // Also when Raft never started: its storage was opened to look for state.
    await this.raft.stop();
    this.rpcClient.close();
    await this.rpc.stop();
  }

  // ---- RPC ------------------------------------------------------------------------------------

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
      leaving: this.#leaving,
    };
  }

  /** A command forwarded by another server (Forward.Apply or ApplyStream). */
  async #forwardedApply(data: Buffer): Promise<Buffer> {
    this.#requireLeader();
    // Only state-store commands travel this way; control entries (restore) have their own path.
    if (!isCommandData(data)) throw new ServerError('ERR_BAD_REQUEST', 'a forwarded write must be a state store command');
    return v8.serialize(await this.#applyOnLeader(data));
  }

  #requireLeader(): void {
    if (!this.raft.started) throw new ServerError('ERR_SERVER_STARTING', 'this server has not joined a cluster yet');
    const st = this.raft.node.status();
    if (st.role !== 'leader') throw new NotLeaderError(st.leader, st.leaderAddress);
  }

  #handlers(): RpcHandlers {
    return {
      status: (req) => {
        const c = req.caller;
        if (c?.id && c.raftAddress && c.id !== this.nodeId) {
          this.discovery.observe?.({
            id: c.id, name: c.name ?? '', raftAddr: c.raftAddress, dc: c.datacenter ?? '', expect: c.bootstrapExpect ?? 0,
            bootstrap: c.bootstrap ?? false, version: c.version ?? '',
          });
        }
        return this.statusResponse();
      },
      apply: async (req) => ({ result: await this.#forwardedApply(req.command ?? Buffer.alloc(0)) }),
      applyFrame: (command) => this.#forwardedApply(command),
      readIndex: async (req, signal) => {
        this.#requireLeader();
        return { index: await this.#leaderBarrier(req.consistent ?? false, signal) };
      },
      http: (req, signal) => {
        if (!this.httpHandler) throw new ServerError('ERR_SERVER_STARTING', 'the HTTP API of this server is not running yet');
        return this.httpHandler(req, signal);
      },
      nodeState: async (req, signal) => {
        await this.defaultRead(signal);
        const node = req.node ?? '';
        const state: NodeCatalogState = {
          node: this.store.node(node).value,
          services: this.store.nodeServices(node).value?.Services ?? [],
          checks: this.store.nodeChecks(node).value,
        };
        return { json: v8.serialize(state) };
      },
      renewSession: (req) => {
        this.#requireLeader();
        if (!this.sessions) throw new ServerError('ERR_NO_LEADER', 'No cluster leader');
        this.sessions.renew(req.id ?? '');
        return {};
      },
      addPeer: async (req, signal) => {
        this.#requireLeader();
        if (!req.id || !req.address) throw new ServerError('ERR_BAD_REQUEST', 'adding a peer needs its id and address');
        await this.#confChange({ type: req.voter ? 'addVoter' : 'addLearner', node: req.id, address: req.address }, signal);
        return { id: req.id, address: req.address };
      },
      removePeer: (req, signal) => {
        this.#requireLeader();
        return this.#removePeerOnLeader({ id: req.id || undefined, address: req.address || undefined }, signal);
      },
      transferLeader: async (req, signal) => {
        this.#requireLeader();
        return { id: await this.#transferOnLeader(req.id || undefined, signal) };
      },
      autopilotHealth: () => {
        this.#requireLeader();
        return { json: Buffer.from(JSON.stringify(this.autopilot.health())) };
      },
      restore: (data) => {
        this.#requireLeader();
        return this.#restoreOnLeader(data);
      },
    };
  }
}
