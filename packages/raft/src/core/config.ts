import type { ConfState, Entry, HardState, NodeId, SnapshotMeta } from './types.ts';

/** Everything the pure core needs. No clock, no I/O: `random` is injected for determinism. */
export interface CoreConfig {
  id: NodeId;
  /** Ticks of silence before a follower campaigns; the actual timeout is randomized in [e, 2e). */
  electionTicks: number;
  /** Ticks between leader heartbeats. Must be < electionTicks. */
  heartbeatTicks: number;
  /** Uniform in [0, 1). Deterministic in the simulator. */
  random: () => number;
  /** Raft thesis §9.6. Default true. */
  preVote?: boolean;
  /** Leader steps down when it has not heard from a quorum for an election timeout (thesis §6.2). Default true. */
  checkQuorum?: boolean;
  /** 'safe': ReadIndex confirms leadership with a heartbeat round; 'lease': relies on check-quorum and
   *  clock-rate bounds (thesis §6.4.1). Default 'safe'. */
  readOnly?: 'safe' | 'lease';
  /** Cap on append messages in flight per follower in replicate state. Default 256. */
  maxInflight?: number;
  /** Cap on bytes of entries in one append message (at least one entry is always sent). Default 1 MiB. */
  maxMsgBytes?: number;
  /** Proposals larger than this are refused. Default 512 KiB. */
  maxEntryBytes?: number;
  /** State recovered from storage at start. */
  initial?: InitialState;
}

export interface InitialState {
  hardState: HardState;
  /** The latest snapshot's metadata, or undefined if none. Log entries start after it. */
  snapshot?: SnapshotMeta;
  /** Log entries, contiguous and ascending. Usually they start at snapshot.index + 1, but after a
   *  compaction that kept trailing entries they may start earlier (then the entry at snapshot.index,
   *  if present, has snapshot.term). Membership = snapshot conf (or `conf`) with every conf entry
   *  after the snapshot index replayed in order. A new cluster is bootstrapped by the driver writing
   *  one 'addVoter' conf entry per member at term 1 (indexes 1..n) with commit = n on every member. */
  entries: Entry[];
  /** Membership when there is no snapshot (normally empty: membership lives in the log). */
  conf?: ConfState;
  /** Highest index the state machine has already applied (e.g. restored from a snapshot). */
  applied?: number;
}
