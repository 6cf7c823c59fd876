// The server role's Raft wiring: the state store (through ClusterFsm) as the Raft state machine,
// level (or in-memory for -dev) storage under <data-dir>/raft, and the gRPC transport registered on
// the server port's shared grpc.Server. Clustering (forwarding, bootstrap, autopilot) lives in
// server.ts; this file only owns the Raft node and its storage.
import { mkdir, readFile, writeFile, rename } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import type * as grpc from '@grpc/grpc-js';
import {
  RaftNode, GrpcTransport, LevelLogStore, FileSnapshotStore, MemoryLogStore, MemorySnapshotStore,
  type GrpcTransportCredentials, type LogStore, type NodeStatus, type SnapshotStore,
} from '@trellis/raft';
import { StateStore, type CommandResult } from '../state/index.ts';
export { resolveNodeId } from '../nodeId.ts';
import type { RuntimeConfig } from '../config/runtime.ts';
import type { Logger } from '../logger.ts';
import { DEFAULT_MAX_BODY_BYTES } from '../http/server.ts';
import { ClusterFsm } from './fsm.ts';

/** An error the HTTP edge maps to 500 "No cluster leader" (Consul's structs.ErrNoLeader). */
export class NoLeaderError extends Error {
  readonly code = 'ERR_NO_LEADER';
  constructor() { super('No cluster leader'); }
}

/** A stable node ID: from config, else the one kept in <data-dir>/node-id, else a new one saved there. */
/**
 * Consul's Raft timing (already scaled by raft_multiplier) in core ticks. The core has one election
 * timeout e: a leader steps down after e without hearing from a quorum (check-quorum), and a
 * follower campaigns after a random time in [e, 2e) without a leader. hashicorp/raft has two knobs
 * for these: LeaderLeaseTimeout (the leader's side) and HeartbeatTimeout (the follower's, also
 * randomized up to 2×). Trellis takes e = leader_lease_timeout, so a follower campaigns within
 * [lease, 2·lease) = [heartbeat_timeout/2, heartbeat_timeout) — at raft_multiplier 5 that is 2.5–5 s,
 * which is what lets a cluster elect a new leader within 5 s of losing one — and the leader still
 * steps down before any follower can campaign, which keeps its lease (default reads) sound.
 * Heartbeats go out every heartbeat_timeout/10, as hashicorp/raft's do.
 */
export function raftTiming(config: Pick<RuntimeConfig, 'raftHeartbeatTimeoutMs' | 'raftLeaderLeaseTimeoutMs'>): { tickMs: number; heartbeatTicks: number; electionTicks: number; heartbeatMs: number } {
  const heartbeatMs = Math.max(1, config.raftHeartbeatTimeoutMs / 10);
  const tickMs = Math.max(5, Math.round(heartbeatMs / 5));
  const heartbeatTicks = Math.max(1, Math.round(heartbeatMs / tickMs));
  const electionTicks = Math.max(3 * heartbeatTicks, Math.round(config.raftLeaderLeaseTimeoutMs / tickMs));
  return { tickMs, heartbeatTicks, electionTicks, heartbeatMs: heartbeatTicks * tickMs };
}

/** Room in an entry for what surrounds the largest body: the KV key (at most a URL), field names, stamps. */
const ENTRY_OVERHEAD_BYTES = 64 * 1024;
/** @trellis/raft GrpcTransport's default maxMessageBytes (gRPC's own default). */
const DEFAULT_RAFT_MESSAGE_BYTES = 4 << 20;

/**
 * The largest Raft entry a server accepts: every body an endpoint takes must fit in one entry, or a
 * request the HTTP edge accepted fails later with "proposal ... exceeds maxEntryBytes". The codec
 * carries KV values raw (state/codec.ts), so an entry is its body plus a little; the largest bodies
 * are a KV value (limits.kv_max_value_size), a txn (limits.txn_max_req_len) and a registration
 * (the HTTP default body limit).
 */
export function raftMaxEntryBytes(config: Pick<RuntimeConfig, 'limits'>): number {
  return Math.max(config.limits.kvMaxValueSizeBytes, config.limits.txnMaxReqLenBytes, DEFAULT_MAX_BODY_BYTES) + ENTRY_OVERHEAD_BYTES;
}

/** How long a server whose Raft storage failed keeps answering (with the storage error) before it
 *  exits, so the requests that ran into the failure get their answer rather than a reset connection. */
export const STORAGE_FAILURE_EXIT_GRACE_MS = 1000;

/** Raft storage failed (e.g. the disk is full): the server stopped serving and exits. HTTP: 500. */
export class StorageFailedError extends Error {
  readonly code = 'ERR_STORAGE_FAILED';
  constructor(cause: Error, dataDir: string) {
    super(`${cause.message} (data dir ${dataDir || '(none)'}); this server stopped serving and exits to restart from its durable state`);
    this.cause = cause;
  }
}

export interface RaftServerOptions {
  config: RuntimeConfig;
  nodeId: string;
  logger: Logger;
  /** The server port's gRPC server: the transport registers its service on it; the owner binds it. */
  grpcServer: grpc.Server;
  /** host:port other servers dial (the advertised address and the server port). */
  raftAddress: string;
  credentials?: GrpcTransportCredentials;
  /** Called once Raft storage has failed (after the node stopped). Default: exit the process with
   *  status 1 after STORAGE_FAILURE_EXIT_GRACE_MS, as etcd does on a WAL write failure. */
  onStorageFailure?: (err: StorageFailedError) => void;
}

export class RaftServer {
  readonly store = new StateStore();
  readonly fsm: ClusterFsm;
  readonly node: RaftNode<CommandResult>;
  readonly transport: GrpcTransport;
  readonly raftAddress: string;
  readonly heartbeatMs: number;
  private readonly config: RuntimeConfig;
  private readonly logger: Logger;
  #started = false;
  #empty: boolean | undefined;
  #failure: StorageFailedError | undefined;

  constructor(opts: RaftServerOptions) {
    const { config } = opts;
    this.config = config;
    this.logger = opts.logger.child({ component: 'agent.server.raft' });
    this.raftAddress = opts.raftAddress;
    this.fsm = new ClusterFsm(this.store);
    const maxEntryBytes = raftMaxEntryBytes(config);
    this.transport = new GrpcTransport({
      id: opts.nodeId, listen: `${config.bindAddr}:${config.ports.server}`, advertise: this.raftAddress,
      // Connections to the other servers leave from the bind address, as Consul's do.
      localAddress: config.bindAddr,
      // A lone entry must fit one frame, or a follower could never receive it.
      maxMessageBytes: Math.max(DEFAULT_RAFT_MESSAGE_BYTES, maxEntryBytes + ENTRY_OVERHEAD_BYTES),
      server: opts.grpcServer, credentials: opts.credentials, logger: opts.logger.child({ component: 'raft.transport' }),
      // A partition leaves the stream to a cut-off peer open, its TCP retransmissions backing off to
      // several seconds: after the heal, messages waited for the next retransmission (a chaos run saw
      // a healed server hear its leader only 3-11 s later). A ping each second, unanswered for 2 s,
      // drops such a stream during the partition; fresh connections then get through at the heal.
      keepaliveTimeMs: 1000, keepaliveTimeoutMs: 2000, connectTimeoutMs: 2000, backoffMaxMs: 1000,
    });
    let logStore: LogStore, snapshotStore: SnapshotStore;
    if (config.devMode) {
      logStore = new MemoryLogStore();
      snapshotStore = new MemorySnapshotStore();
    } else {
      logStore = new LevelLogStore(path.join(config.dataDir, 'raft', 'log'));
      snapshotStore = new FileSnapshotStore(path.join(config.dataDir, 'raft', 'snapshots'));
    }
    const timing = raftTiming(config);
    this.heartbeatMs = timing.heartbeatMs;
    this.node = new RaftNode<CommandResult>({
      id: opts.nodeId, transport: this.transport, logStore, snapshotStore,
      stateMachine: this.fsm,
      tickMs: timing.tickMs,
      heartbeatTicks: timing.heartbeatTicks,
      electionTicks: timing.electionTicks,
      maxEntryBytes,
      snapshotThreshold: config.raftSnapshotThreshold,
      trailingLogs: config.raftTrailingLogs,
      logger: this.logger,
    });
    // A failed write leaves the node stopped (it steps down and sends nothing: @trellis/raft's
    // 'fatal'). Resuming in-process is not sound: committed entries may already be applied beyond
    // what the local log holds, and a LevelDB store refuses writes after a failed one. A restart
    // rebuilds everything from what is durable, exactly the crash Raft is built to survive; so the
    // server exits non-zero and its supervisor (deploy/systemd/trellis.service: Restart=on-failure) starts
    // it again, which succeeds once the disk has room. hashicorp/raft instead steps down and keeps
    // running, but it applies only entries its own log holds; this driver applies while it writes.
    this.node.on('fatal', ({ error }) => {
      this.#failure = new StorageFailedError(error, config.dataDir);
      this.logger.error({ err: error, dataDir: config.dataDir },
        `raft storage failed; this server stopped leading and serving and exits with status 1 in ${STORAGE_FAILURE_EXIT_GRACE_MS} ms (restart it once the disk has room)`);
      const onFailure = opts.onStorageFailure ?? (() => { setTimeout(() => process.exit(1), STORAGE_FAILURE_EXIT_GRACE_MS); });
      onFailure(this.#failure);
    });
  }

  /** Set once Raft storage failed: every request is answered with it until the process exits. */
  get failure(): StorageFailedError | undefined {
    return this.#failure;
  }

  get started(): boolean {
    return this.#started;
  }

  /** <data-dir>/raft, or undefined in -dev. */
  get raftDir(): string | undefined {
    return this.config.devMode || !this.config.dataDir ? undefined : path.join(this.config.dataDir, 'raft');
  }

  /** Opens storage; true when it holds no Raft state (never bootstrapped or joined). */
  async isEmpty(): Promise<boolean> {
    if (this.raftDir) await mkdir(this.raftDir, { recursive: true });
    this.#empty = await this.node.isEmpty();
    return this.#empty;
  }

  /** Whether this server holds Raft state (belongs or belonged to a cluster). */
  hasState(): boolean {
    if (!this.#started) return this.#empty === false;
    const s = this.node.status();
    return s.term > 0 || s.lastIndex > 0 || s.snapshotIndex > 0;
  }

  /** Writes the first configuration of a new cluster (before start). */
  async bootstrap(members: Record<string, string>): Promise<void> {
    this.logger.info({ members }, 'bootstrapping a new cluster');
    await this.node.bootstrap(members);
    this.#empty = false;
  }

  async start(): Promise<void> {
    await this.node.start();
    this.#started = true;
  }

  async stop(): Promise<void> {
    await this.node.stop();
  }

  /** The node's status; before start, a follower that knows nothing. */
  status(): NodeStatus {
    if (this.#started) return this.node.status();
    return {
      id: this.node.id, term: 0, role: 'follower', leader: '', leaderAddress: '', commitIndex: 0, appliedIndex: 0,
      lastIndex: 0, snapshotIndex: 0, peers: [], lastContactMs: -1,
    };
  }
}
