// Plain data shared by the pure core, storage, transports, driver and simulator.
// Nothing here does I/O. Every number is a plain JS number (indexes and terms stay far below 2^53).

export type NodeId = string;

/** 'normal' carries application data (empty data = the leader's no-op of a new term);
 *  'conf' carries a JSON-encoded ConfChange (see encodeConfChange). */
export type EntryKind = 'normal' | 'conf';

export interface Entry {
  term: number;
  index: number;
  kind: EntryKind;
  data: Uint8Array;
}

/** What must be on stable storage before any message that depends on it is sent (Raft Fig. 2). */
export interface HardState {
  term: number;
  /** The candidate voted for in `term`, or '' for none. */
  vote: NodeId;
  commit: number;
}

/** Membership. Voters count for elections and commitment; learners only receive the log. */
export interface ConfState {
  voters: NodeId[];
  learners: NodeId[];
}

export type ConfChangeType = 'addVoter' | 'addLearner' | 'promote' | 'remove';

/** One server at a time (Raft thesis §4.1). `address` travels with adds so every member learns how
 *  to reach the new one; the driver keeps an id → address map from applied conf entries. */
export interface ConfChange {
  type: ConfChangeType;
  node: NodeId;
  address?: string;
}

export interface SnapshotMeta {
  /** Last log index covered by the snapshot. */
  index: number;
  /** Term of that entry. */
  term: number;
  /** Membership as of `index`. */
  conf: ConfState;
  /** Addresses of members as of `index` (driver-level; the core passes it through untouched). */
  addresses?: Record<NodeId, string>;
}

export interface Snapshot {
  meta: SnapshotMeta;
  /** The state machine's serialized state. The core never looks inside. */
  data: Uint8Array;
}

export type MessageType =
  | 'preVote' | 'preVoteResp'
  | 'vote' | 'voteResp'
  | 'app' | 'appResp'
  | 'heartbeat' | 'heartbeatResp'
  | 'snap'
  | 'timeoutNow';

/**
 * One flat message shape for every RPC (as etcd's raftpb.Message), so transports serialize one type.
 * Field use per type:
 * - preVote/vote: term (for preVote: the term the candidate would campaign in), index/logTerm =
 *   candidate's last log index/term, transfer = true when campaigning because of TimeoutNow.
 * - preVoteResp/voteResp: term, reject.
 * - app: index/logTerm = the entry preceding `entries`, entries, commit.
 * - appResp: index = last index now matching (on success) or the rejected index (on reject);
 *   reject; hintIndex/hintTerm = fast-backtracking hint (follower's conflict term and the first
 *   index it holds of that term, or its last index + 1 when its log is too short; hintTerm 0 then).
 * - heartbeat: commit (min of the leader's commit and the follower's match), context (ReadIndex).
 * - heartbeatResp: context echoed.
 * - snap: snapshot (meta from the core; the driver attaches data before sending).
 * - appResp after snap: index = snapshot index.
 * - timeoutNow: term.
 * ReadIndex is served by the leader only (followers' callers are told NotLeader and forward).
 */
export interface Message {
  type: MessageType;
  from: NodeId;
  to: NodeId;
  term: number;
  logTerm?: number;
  index?: number;
  entries?: Entry[];
  commit?: number;
  reject?: boolean;
  hintIndex?: number;
  hintTerm?: number;
  snapshot?: { meta: SnapshotMeta; data?: Uint8Array };
  context?: string;
  transfer?: boolean;
}

export type Role = 'follower' | 'preCandidate' | 'candidate' | 'leader';

/** Volatile state worth telling the application about; present in Ready when it changed. */
export interface SoftState {
  role: Role;
  leader: NodeId | '';
}

/** A ReadIndex request that is now safe to serve once the state machine has applied `index`. */
export interface ReadState {
  index: number;
  context: string;
}

/**
 * Work the driver must do, in this order:
 *  1. persist `snapshot` (if any; also restore the state machine from it), then `entries` (which
 *     may overwrite a conflicting suffix: truncate everything at or after entries[0].index first)
 *     and `hardState` (if any) atomically, and sync when `mustSync`;
 *  2. send `messages`;
 *  3. apply `committed` in order; answer `readStates` once applied ≥ their index;
 *  4. call advance(ready).
 * Committed entries may be applied while step 1's write is in flight (they are durable on a
 * majority already). readyPlan.ts is the exact order RaftNode and the simulator both follow.
 */
export interface Ready {
  softState?: SoftState;
  hardState?: HardState;
  entries: Entry[];
  snapshot?: Snapshot;
  messages: Message[];
  committed: Entry[];
  readStates: ReadState[];
  mustSync: boolean;
}

export interface ProposeResult {
  index: number;
  term: number;
}

/** What the core knows about one peer's replication, as shown by status(). */
export interface PeerProgress {
  id: NodeId;
  match: number;
  next: number;
  state: 'probe' | 'replicate' | 'snapshot';
  learner: boolean;
  recentActive: boolean;
}

export interface CoreStatus {
  id: NodeId;
  term: number;
  vote: NodeId;
  role: Role;
  leader: NodeId | '';
  commit: number;
  applied: number;
  lastIndex: number;
  firstIndex: number;
  conf: ConfState;
  /** Only on the leader. */
  progress?: PeerProgress[];
  leadTransferee?: NodeId;
}

export function encodeConfChange(cc: ConfChange): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(cc));
}

export function decodeConfChange(data: Uint8Array): ConfChange {
  return JSON.parse(new TextDecoder().decode(data)) as ConfChange;
}
