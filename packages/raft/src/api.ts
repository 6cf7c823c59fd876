// The embedding API of @trellis/raft (implemented by RaftNode in node.ts).
import type { ConfChange, Entry, NodeId, Role } from './core/types.ts';

/**
 * The application's replicated state machine. Contract:
 * - `apply` is called once per committed 'normal' entry with non-empty data, in log order, never
 *   concurrently, and must be deterministic: every node applies the same entries to the same result.
 *   Its return value resolves the matching `propose()` on the node that proposed it.
 *   It must not throw for bad application data: return an error value instead (a throw stops the node,
 *   because continuing would let replicas diverge).
 * - `snapshot` returns the full state as bytes, consistent with every entry applied so far.
 * - `restore` replaces the whole state with a snapshot's bytes.
 */
export interface StateMachine<R = unknown> {
  apply(entry: Entry): R;
  snapshot(): Uint8Array | Promise<Uint8Array>;
  restore(data: Uint8Array): void | Promise<void>;
}

export interface PeerStatus {
  id: NodeId;
  address: string;
  voter: boolean;
  matchIndex: number;
  /** Milliseconds since the leader last heard from it (leader only). */
  lastContactMs?: number;
}

export interface NodeStatus {
  id: NodeId;
  term: number;
  role: Role;
  leader: NodeId | '';
  leaderAddress: string;
  commitIndex: number;
  appliedIndex: number;
  lastIndex: number;
  snapshotIndex: number;
  peers: PeerStatus[];
  /** Milliseconds since this node last heard from a leader (0 on the leader). */
  lastContactMs: number;
}

export interface NodeEvents {
  leaderChange: { leader: NodeId | ''; term: number; isLocal: boolean };
  applied: { index: number };
  /** Storage (or the state machine) failed: the node has stopped leading, voting and acknowledging,
   *  and rejects every call with `error`. Restart it (a new RaftNode over the same stores, or the
   *  process) once the cause is fixed; it recovers from what is durable. */
  fatal: { error: Error };
}

export interface ProposeOptions {
  signal?: AbortSignal;
}

export interface ReadOptions {
  signal?: AbortSignal;
}

/** What RaftNode offers the agent. */
export interface RaftNodeApi<R = unknown> {
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Resolves with the state machine's result for this entry once applied locally.
   *  Rejects with NotLeaderError (with leader id/address), ProposalTooLargeError,
   *  ProposalDroppedError (leadership lost: outcome unknown), or AbortError. */
  propose(data: Uint8Array, opts?: ProposeOptions): Promise<R>;
  /** Resolves once a linearizable read is safe on this node (ReadIndex; the local state machine has
   *  applied at least the read index). Leader only; rejects NotLeaderError elsewhere. */
  read(opts?: ReadOptions): Promise<void>;
  proposeConfChange(cc: ConfChange, opts?: ProposeOptions): Promise<void>;
  transferLeader(to: NodeId, opts?: { signal?: AbortSignal }): Promise<void>;
  /** First-time start of a new cluster: only on an empty node. */
  bootstrap(members: Record<NodeId, string>): Promise<void>;
  status(): NodeStatus;
  isLeader(): boolean;
  on<K extends keyof NodeEvents>(event: K, fn: (e: NodeEvents[K]) => void): void;
}
