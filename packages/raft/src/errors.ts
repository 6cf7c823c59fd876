// Errors with stable codes; the facts live in fields so callers (and the agent's HTTP edge) can act.
import type { NodeId } from './core/types.ts';

export class RaftError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = 'RaftError';
    this.code = code;
  }
}

/** This node is not the leader. `leader`/`leaderAddress` are '' when no leader is known. */
export class NotLeaderError extends RaftError {
  readonly leader: NodeId | '';
  readonly leaderAddress: string;
  constructor(leader: NodeId | '', leaderAddress = '') {
    super('ERR_NOT_LEADER', leader ? `not the leader; the leader is ${leader}${leaderAddress ? ` at ${leaderAddress}` : ''}` : 'not the leader, and no leader is known');
    this.leader = leader;
    this.leaderAddress = leaderAddress;
  }
}

export class ProposalTooLargeError extends RaftError {
  readonly bytes: number;
  readonly maxBytes: number;
  constructor(bytes: number, maxBytes: number) {
    super('ERR_PROPOSAL_TOO_LARGE', `proposal of ${bytes} bytes exceeds maxEntryBytes (${maxBytes})`);
    this.bytes = bytes;
    this.maxBytes = maxBytes;
  }
}

/** Leadership changed before the proposal's entry was known to commit: it may or may not apply. */
export class ProposalDroppedError extends RaftError {
  constructor(reason: string) { super('ERR_PROPOSAL_DROPPED', `proposal dropped: ${reason}`); }
}

export class ConfChangeInProgressError extends RaftError {
  constructor() { super('ERR_CONF_CHANGE_IN_PROGRESS', 'a membership change is already in progress; retry when it has committed'); }
}

export class InvalidConfChangeError extends RaftError {
  constructor(why: string) { super('ERR_INVALID_CONF_CHANGE', `invalid membership change: ${why}`); }
}

export class LeadershipTransferInProgressError extends RaftError {
  constructor(to: NodeId) { super('ERR_TRANSFER_IN_PROGRESS', `leadership transfer to ${to} in progress; proposals are refused until it ends`); }
}

/** Stored data failed its checksum or is inconsistent. Never repaired silently. */
export class CorruptionError extends RaftError {
  readonly file: string;
  readonly index?: number;
  constructor(file: string, what: string, index?: number) {
    super('ERR_CORRUPT', `corrupt raft data in ${file}${index !== undefined ? ` at index ${index}` : ''}: ${what}. ` +
      'Refusing to start; restore the data dir from a backup or remove this node and re-add it empty.');
    this.file = file;
    this.index = index;
  }
}

export class StoppedError extends RaftError {
  constructor() { super('ERR_STOPPED', 'raft node is stopped'); }
}

export class TimeoutError extends RaftError {
  constructor(what: string) { super('ERR_TIMEOUT', `${what} timed out`); }
}

/** A LogStore was asked to write something that would break its invariants (a gap, an overwrite of
 *  compacted entries, a commit index beyond the log). A caller bug: nothing was written. */
export class InvalidLogWriteError extends RaftError {
  constructor(what: string) { super('ERR_INVALID_LOG_WRITE', `invalid log write, nothing was written: ${what}`); }
}

/** entries(lo, hi) asked for indexes the store does not hold (compacted, or beyond the last index). */
export class LogUnavailableError extends RaftError {
  readonly lo: number;
  readonly hi: number;
  readonly firstIndex: number;
  readonly lastIndex: number;
  constructor(lo: number, hi: number, firstIndex: number, lastIndex: number) {
    super('ERR_LOG_UNAVAILABLE', `log entries [${lo}, ${hi}) are not available: the store holds [${firstIndex}, ${lastIndex}]` +
      (lo < firstIndex ? ' (the start is compacted into a snapshot)' : ''));
    this.lo = lo;
    this.hi = hi;
    this.firstIndex = firstIndex;
    this.lastIndex = lastIndex;
  }
}

/** A store was used before open(), after close(), after a simulated crash, or after a failed write. */
export class StoreClosedError extends RaftError {
  constructor(store: string, why = 'is not open') { super('ERR_STORE_CLOSED', `${store} ${why}`); }
}

/** A snapshot older than the newest stored one was offered: storing it would not make it the latest. */
export class StaleSnapshotError extends RaftError {
  readonly index: number;
  readonly term: number;
  readonly latestIndex: number;
  readonly latestTerm: number;
  constructor(index: number, term: number, latestIndex: number, latestTerm: number) {
    super('ERR_STALE_SNAPSHOT', `snapshot at index ${index} (term ${term}) is older than the latest stored snapshot ` +
      `at index ${latestIndex} (term ${latestTerm}); refusing to store it`);
    this.index = index;
    this.term = term;
    this.latestIndex = latestIndex;
    this.latestTerm = latestTerm;
  }
}

/** A streamed snapshot verified, but it is not the snapshot the sender announced (a sender bug). */
export class SnapshotMismatchError extends RaftError {
  readonly file: string;
  constructor(file: string, got: { index: number; term: number }, announced: { index: number; term: number }) {
    super('ERR_SNAPSHOT_MISMATCH', `${file} holds the snapshot at index ${got.index} (term ${got.term}), ` +
      `but index ${announced.index} (term ${announced.term}) was announced; it was discarded`);
    this.file = file;
  }
}

// --- Added by the pure core (packages/raft/src/core) ---

/** A CoreConfig (or the initial state inside it) that the core cannot run with. */
export class InvalidConfigError extends RaftError {
  readonly field: string;
  constructor(field: string, why: string) {
    super('ERR_INVALID_CONFIG', `invalid raft config: ${field} ${why}`);
    this.field = field;
  }
}

/** A new leader may not change membership until it has committed an entry of its own term
 *  (Raft thesis §4.1, the fix for single-server changes across leader changes). Retry shortly.
 *  A ConfChangeInProgressError, so callers that retry on that also retry on this. */
export class LeaderNotReadyError extends ConfChangeInProgressError {
  constructor() {
    super();
    this.message = 'this leader has not yet committed an entry of its term; retry the membership change shortly';
  }
}

/** transferLeader() named a node that cannot take over (not a voter of the current configuration). */
export class InvalidTransferTargetError extends RaftError {
  readonly target: NodeId;
  constructor(target: NodeId, why: string) {
    super('ERR_INVALID_TRANSFER_TARGET', `cannot transfer leadership to ${target}: ${why}`);
    this.target = target;
  }
}

/** snapshotTaken() was told about a snapshot the core cannot reconcile with its log. */
export class InvalidSnapshotError extends RaftError {
  constructor(why: string) { super('ERR_INVALID_SNAPSHOT', `invalid snapshot: ${why}`); }
}

/** The disk refused a read or write. After a failed write a store refuses further use, since what
 *  reached the disk is unknown: stop the node and restart it, which re-reads and verifies the data. */
export class StorageIOError extends RaftError {
  readonly path: string;
  constructor(path: string, op: string, cause: unknown) {
    super('ERR_STORAGE_IO', `${op} failed for ${path}: ${cause instanceof Error ? cause.message : String(cause)}` +
      (cause instanceof Error && cause.cause instanceof Error ? ` (${cause.cause.message})` : ''));
    this.path = path;
    this.cause = cause;
  }
}
