// The server role's Raft wiring: the state store as the Raft state machine, level (or in-memory for
// -dev) storage under <data-dir>/raft, the gRPC transport on the server port, and the one write path:
// apply(cmd) → encodeCommand → Raft propose → commit → FSM apply on every server → result.
import { mkdir, readFile, writeFile, rename } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import {
  RaftNode, GrpcTransport, LevelLogStore, FileSnapshotStore, MemoryLogStore, MemorySnapshotStore, NotLeaderError,
  type LogStore, type SnapshotStore,
} from '@trellis/raft';
import { StateStore, createFsm, encodeCommand, type Command, type CommandResult } from '../state/index.ts';
import type { RuntimeConfig } from '../config/runtime.ts';
import type { Logger } from '../logger.ts';

/** An error the HTTP edge maps to 500 "No cluster leader" (Consul's structs.ErrNoLeader). */
export class NoLeaderError extends Error {
  readonly code = 'ERR_NO_LEADER';
  constructor() { super('No cluster leader'); }
}

/** A stable node ID: from config, else the one kept in <data-dir>/node-id, else a new one saved there. */
export async function resolveNodeId(config: RuntimeConfig): Promise<string> {
  if (config.nodeId) return config.nodeId.toLowerCase();
  if (config.devMode || !config.dataDir) return randomUUID();
  const file = path.join(config.dataDir, 'node-id');
  try {
    const id = (await readFile(file, 'utf8')).trim();
    if (/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(id)) return id.toLowerCase();
    throw new Error(`${file} holds "${id}", which is not a UUID: fix or delete the file`);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const id = randomUUID();
  await mkdir(config.dataDir, { recursive: true });
  await writeFile(`${file}.tmp`, id + '\n');
  await rename(`${file}.tmp`, file);
  return id;
}

export interface RaftServerOptions {
  config: RuntimeConfig;
  nodeId: string;
  logger: Logger;
}

export class RaftServer {
  readonly store = new StateStore();
  readonly node: RaftNode<CommandResult>;
  readonly transport: GrpcTransport;
  readonly raftAddress: string;
  private readonly config: RuntimeConfig;
  private readonly logger: Logger;

  constructor(opts: RaftServerOptions) {
    const { config } = opts;
    this.config = config;
    this.logger = opts.logger.child({ component: 'agent.server.raft' });
    this.raftAddress = `${config.advertiseAddrLan}:${config.ports.server}`;
    this.transport = new GrpcTransport({
      id: opts.nodeId, listen: `${config.bindAddr}:${config.ports.server}`, advertise: this.raftAddress,
      logger: this.logger,
    });
    let logStore: LogStore, snapshotStore: SnapshotStore;
    if (config.devMode) {
      logStore = new MemoryLogStore();
      snapshotStore = new MemorySnapshotStore();
    } else {
      logStore = new LevelLogStore(path.join(config.dataDir, 'raft', 'log'));
      snapshotStore = new FileSnapshotStore(path.join(config.dataDir, 'raft', 'snapshots'));
    }
    // Consul's raft timing: heartbeat and election timeouts are already scaled by raft_multiplier.
    const tickMs = Math.max(10, Math.round(config.raftHeartbeatTimeoutMs / 10));
    this.node = new RaftNode<CommandResult>({
      id: opts.nodeId, transport: this.transport, logStore, snapshotStore,
      stateMachine: createFsm(this.store),
      tickMs,
      heartbeatTicks: Math.max(1, Math.round(config.raftHeartbeatTimeoutMs / tickMs / 10)),
      electionTicks: Math.max(2, Math.round(config.raftElectionTimeoutMs / tickMs)),
      snapshotThreshold: config.raftSnapshotThreshold,
      trailingLogs: config.raftTrailingLogs,
      logger: this.logger,
    });
  }

  async start(): Promise<void> {
    await mkdir(path.join(this.config.dataDir || '.', 'raft'), { recursive: true }).catch(() => { /* -dev: no data dir */ });
    const c = this.config;
    if (await this.node.isEmpty()) {
      if (c.devMode || c.bootstrap || c.bootstrapExpect === 1) {
        this.logger.info({ id: this.node.id, address: this.raftAddress }, 'bootstrapping a new single-server cluster');
        await this.node.bootstrap({ [this.node.id]: this.raftAddress });
      } else {
        this.logger.warn({ expect: c.bootstrapExpect }, 'no Raft state and no -bootstrap: waiting to be added to a cluster by its leader');
      }
    }
    await this.node.start();
  }

  async stop(): Promise<void> {
    await this.node.stop();
  }

  /**
   * The write path. While there is no leader, waits up to rpc_hold_timeout (Consul: 7 s) for one
   * before failing with "No cluster leader". Forwarding to a remote leader comes with clustering.
   */
  async apply(cmd: Command): Promise<CommandResult> {
    const data = encodeCommand(cmd);
    const deadline = Date.now() + this.config.rpcHoldTimeoutMs;
    for (;;) {
      try {
        return await this.node.propose(data);
      } catch (err) {
        if (!(err instanceof NotLeaderError)) throw err;
        if (err.leader) throw err; // another server leads: the caller forwards (clustering issue)
        if (Date.now() >= deadline) throw new NoLeaderError();
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }

  async consistentRead(signal?: AbortSignal): Promise<void> {
    try {
      await this.node.read({ signal });
    } catch (err) {
      if (err instanceof NotLeaderError && !err.leader) throw new NoLeaderError();
      throw err;
    }
  }

  raftStatus(): { leaderAddr: string; knownLeader: boolean; lastContactMs: number; peers: string[] } {
    const s = this.node.status();
    return {
      leaderAddr: s.leaderAddress,
      knownLeader: s.leader !== '',
      lastContactMs: Math.max(0, s.lastContactMs),
      peers: s.peers.filter((p) => p.voter).map((p) => p.address),
    };
  }
}
