// Raft membership on a server: the configuration as operator/raft/configuration shows it, adding and
// removing peers, leadership transfer, autopilot's view, and leaving the cluster. Every change runs
// on the leader (forwarded there from a follower, see writes.ts).
import { ConfChangeInProgressError, type ConfChange, type NodeStatus } from '@trellis/raft';
import type { RuntimeConfig } from '../config/runtime.ts';
import type { Logger } from '../logger.ts';
import type { RpcClient } from '../rpc/client.ts';
import type { Autopilot, AutopilotHealth } from './autopilot.ts';
import type { ServerDiscovery } from './discovery.ts';
import { ServerError } from './errors.ts';
import type { RaftServer } from './raftServer.ts';
import type { Writes } from './writes.ts';
import { sleep } from '../sleep.ts';

export interface RaftConfigurationServer {
  ID: string;
  Node: string;
  Address: string;
  Leader: boolean;
  Voter: boolean;
  ProtocolVersion: string;
}

export interface MembershipOptions {
  config: Pick<RuntimeConfig, 'rpcHoldTimeoutMs' | 'nodeName'>;
  nodeId: string;
  raft: RaftServer;
  rpcClient: RpcClient;
  discovery: ServerDiscovery;
  autopilot: Autopilot;
  writes: Writes;
  logger: Logger;
}

export class Membership {
  readonly #o: MembershipOptions;
  readonly #log: Logger;
  #leaving = false;

  constructor(o: MembershipOptions) {
    this.#o = o;
    this.#log = o.logger;
  }

  get leaving(): boolean {
    return this.#leaving;
  }

  /** The node name of a server, from discovery (or this agent's own). */
  #nameOf(id: string): string {
    if (id === this.#o.nodeId) return this.#o.config.nodeName;
    return this.#o.discovery.servers().find((s) => s.id === id)?.name ?? '';
  }

  /** GET /v1/operator/raft/configuration, from this server's copy of the configuration. */
  raftConfiguration(): { Servers: RaftConfigurationServer[]; Index: number } {
    const st = this.#o.raft.status();
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
    return this.#o.writes.onLeader('remove-peer', { idempotent: false, signal },
      () => this.removePeerOnLeader(req, signal),
      (address, call) => this.#o.rpcClient.call(address, 'Operator.RemovePeer', { id: req.id ?? '', address: req.address ?? '' }, call)
        .then((r) => ({ id: r.id ?? '', address: r.address ?? '' })));
  }

  async removePeerOnLeader(req: { id?: string; address?: string }, signal?: AbortSignal): Promise<{ id: string; address: string }> {
    const st = this.#o.raft.node.status();
    const peer = req.id ? st.peers.find((p) => p.id === req.id) : st.peers.find((p) => p.address === req.address);
    if (!peer) {
      throw req.id
        ? new ServerError('ERR_UNKNOWN_PEER', `id ${JSON.stringify(req.id)} was not found in the Raft configuration`)
        : new ServerError('ERR_UNKNOWN_PEER', `address ${JSON.stringify(req.address)} was not found in the Raft configuration`);
    }
    await this.confChange({ type: 'remove', node: peer.id }, signal);
    this.#log.info({ id: peer.id, address: peer.address }, 'removed server from the Raft configuration');
    return { id: peer.id, address: peer.address };
  }

  async addPeer(req: { id: string; address: string; voter: boolean }, signal?: AbortSignal): Promise<void> {
    if (!req.id || !req.address) throw new ServerError('ERR_BAD_REQUEST', 'adding a peer needs its id and address');
    await this.#o.writes.onLeader('add-peer', { idempotent: false, signal },
      () => this.confChange({ type: req.voter ? 'addVoter' : 'addLearner', node: req.id, address: req.address }, signal),
      (address, call) => this.#o.rpcClient.call(address, 'Operator.AddPeer', req, call).then(() => undefined));
  }

  /** A membership change on the leader, retried while another one is still committing. */
  async confChange(cc: ConfChange, signal?: AbortSignal): Promise<void> {
    const deadline = Date.now() + this.#o.config.rpcHoldTimeoutMs;
    for (;;) {
      try {
        await this.#o.raft.node.proposeConfChange(cc, { signal });
        return;
      } catch (err) {
        if (!(err instanceof ConfChangeInProgressError) || Date.now() > deadline) throw err;
        await sleep(50, signal);
      }
    }
  }

  /** POST /v1/operator/raft/transfer-leader. Returns the new leader's ID. */
  async transferLeader(id: string | undefined, signal?: AbortSignal): Promise<string> {
    return this.#o.writes.onLeader('transfer-leader', { idempotent: true, signal },
      () => this.transferOnLeader(id, signal),
      (address, call) => this.#o.rpcClient.call(address, 'Operator.TransferLeader', { id: id ?? '' }, call).then((r) => r.id ?? ''));
  }

  async transferOnLeader(id: string | undefined, signal?: AbortSignal): Promise<string> {
    const st = this.#o.raft.node.status();
    let to = id;
    if (!to) {
      const best = this.#bestSuccessor(st);
      if (!best) throw new ServerError('ERR_INVALID_TRANSFER_TARGET', 'cannot transfer leadership: there is no other voter');
      to = best;
    }
    if (to === this.#o.nodeId) return to;
    if (!st.peers.some((p) => p.id === to)) throw new ServerError('ERR_UNKNOWN_PEER', `id ${JSON.stringify(to)} was not found in the Raft configuration`);
    await this.#o.raft.node.transferLeader(to, { signal });
    this.#log.info({ to }, 'leadership transferred');
    return to;
  }

  /** The most up-to-date other voter. */
  #bestSuccessor(st: NodeStatus): string | undefined {
    let best: { id: string; match: number } | undefined;
    for (const p of st.peers) {
      if (!p.voter || p.id === this.#o.nodeId) continue;
      if (!best || p.matchIndex > best.match) best = { id: p.id, match: p.matchIndex };
    }
    return best?.id;
  }

  /** The leader's autopilot view (forwarded to the leader from a follower). */
  async autopilotHealth(signal?: AbortSignal): Promise<AutopilotHealth> {
    return this.#o.writes.onLeader('autopilot-health', { idempotent: true, signal },
      async () => this.#o.autopilot.health(),
      (address, call) => this.#o.rpcClient.call(address, 'Operator.AutopilotHealth', {}, call)
        .then((r) => JSON.parse((r.json ?? Buffer.from('{}')).toString('utf8')) as AutopilotHealth));
  }

  /**
   * Leaves the cluster gracefully (Consul's `leave`): a leader hands leadership over first, then the
   * leader removes this server from the configuration. Other servers see it as 'left'.
   */
  async leave(): Promise<void> {
    this.#leaving = true;
    const raft = this.#o.raft;
    if (!raft.started) return;
    const st = raft.node.status();
    if (!st.peers.some((p) => p.id !== this.#o.nodeId)) return;
    if (raft.node.isLeader()) await this.handOff();
    try {
      // Resolves once the removal is committed. (This server may never see that entry itself: the
      // leader stops replicating to a member as soon as it appends its removal.)
      await this.removePeer({ id: this.#o.nodeId });
    } catch (err) {
      this.#log.warn({ err: (err as Error).message }, 'could not remove this server from the Raft configuration while leaving');
      return;
    }
    this.#log.info({}, 'left the cluster: removed from the Raft configuration');
  }

  /** A leader that stops hands leadership to the most up-to-date voter first. */
  async handOff(): Promise<void> {
    const st = this.#o.raft.node.status();
    const to = this.#bestSuccessor(st);
    if (!to) return;
    try {
      await this.#o.raft.node.transferLeader(to);
      this.#log.info({ to }, 'transferred leadership before shutdown');
    } catch (err) {
      this.#log.warn({ to, err: (err as Error).message }, 'leadership transfer before shutdown failed');
    }
  }
}
