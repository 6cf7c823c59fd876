// @trellis/raft: Raft consensus as a library. See the package README for the API and an example.
export { RaftNode, type RaftNodeOptions, type Logger } from './node.ts';
export type { StateMachine, NodeStatus, PeerStatus, NodeEvents, ProposeOptions, ReadOptions, RaftNodeApi } from './api.ts';
export { RaftCore } from './core/raft.ts';
export type { CoreConfig, InitialState } from './core/config.ts';
export {
  encodeConfChange, decodeConfChange,
  type NodeId, type Entry, type EntryKind, type HardState, type ConfState, type ConfChange, type ConfChangeType,
  type Snapshot, type SnapshotMeta, type Message, type MessageType, type Role, type SoftState, type ReadState, type Ready,
  type ProposeResult, type PeerProgress, type CoreStatus,
} from './core/types.ts';
export * from './errors.ts';
export * from './storage/index.ts';
export * from './transport/index.ts';
