// Storage for @trellis/raft: the contracts, in-memory stores (tests, simulator), the durable level
// log store and the file snapshot store.
export type { LogStore, SnapshotStore } from './types.ts';
export type { SnapshotReader, SnapshotWriter, StreamingSnapshotStore } from './snapshotStream.ts';
export { MemoryLogStore, MemorySnapshotStore } from './memory.ts';
export type { MemorySnapshotStoreOptions } from './memory.ts';
export { LevelLogStore } from './level.ts';
export { FileSnapshotStore } from './snapshots.ts';
export type { FileSnapshotStoreOptions } from './snapshots.ts';
export { EMPTY_HARD_STATE } from './logWrite.ts';
export { decodeSnapshot, encodeSnapshot, snapshotFileName } from './snapshotFormat.ts';
