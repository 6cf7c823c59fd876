// Chunked snapshot transfer (InstallSnapshot in pieces). The chunks are the stored snapshot's bytes
// in the format of snapshotFormat.ts, opaque to the transport: the sender's checksum travels inside
// them and the receiver verifies it before the snapshot becomes visible.
import type { SnapshotMeta } from '../core/types.ts';
import { SnapshotMismatchError } from '../errors.ts';
import type { SnapshotStore } from './types.ts';

/** Receives one snapshot in chunks. Nothing is visible to latest() until commit() resolves. */
export interface SnapshotWriter {
  /** The meta announced by the sender; commit() checks the received snapshot carries the same index and term. */
  readonly meta: SnapshotMeta;
  /** Appends the next chunk, in order. Do not call concurrently with itself or commit(). */
  write(chunk: Uint8Array): Promise<void>;
  /**
   * Verifies the checksum and the header, makes the snapshot durable and the latest, prunes old
   * ones, and resolves with the meta read from the snapshot itself. Rejects with CorruptionError
   * (and discards the partial snapshot) if the bytes do not verify.
   */
  commit(): Promise<SnapshotMeta>;
  /** Discards the partial snapshot. Idempotent; a no-op after commit(). */
  abort(): Promise<void>;
}

/** Reads the latest snapshot (as it was when opened) in chunks for sending to a peer. */
export interface SnapshotReader {
  readonly meta: SnapshotMeta;
  /** Total bytes the chunks add up to. */
  readonly sizeBytes: number;
  /**
   * Yields the snapshot's bytes in chunks of at most chunkBytes. Verifies the checksum as it goes
   * and throws CorruptionError after the last chunk if it does not match, so a sender learns that
   * its own copy is damaged rather than blaming the network. Can be iterated once.
   */
  readChunks(chunkBytes: number): AsyncGenerator<Uint8Array, void, undefined>;
  /** Releases the reader. Idempotent; also done when readChunks finishes or is abandoned. */
  close(): Promise<void>;
}

/** A SnapshotStore that can also send and receive snapshots in chunks. */
export interface StreamingSnapshotStore extends SnapshotStore {
  /** Starts receiving a snapshot. Rejects with StaleSnapshotError if it is older than the latest. */
  openWriter(meta: SnapshotMeta): Promise<SnapshotWriter>;
  /** Opens the latest snapshot for reading (verified while read), or undefined when there is none. */
  openReader(): Promise<SnapshotReader | undefined>;
  /** The snapshots held, newest first (from the store's index; not verified). */
  list(): Promise<Array<{ index: number; term: number }>>;
}

/** The received snapshot must be the one the sender announced. */
export function assertSameSnapshot(got: SnapshotMeta, announced: SnapshotMeta, file: string): void {
  if (got.index !== announced.index || got.term !== announced.term) throw new SnapshotMismatchError(file, got, announced);
}

export function checkRetain(retain: number | undefined): number {
  const r = retain ?? 2;
  if (!Number.isSafeInteger(r) || r < 1) throw new RangeError(`retain must be an integer of at least 1, got ${retain}`);
  return r;
}

export function checkChunkBytes(chunkBytes: number): void {
  if (!Number.isSafeInteger(chunkBytes) || chunkBytes < 1) throw new RangeError(`chunkBytes must be a positive integer, got ${chunkBytes}`);
}
