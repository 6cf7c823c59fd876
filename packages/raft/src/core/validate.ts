// Shape checks for messages arriving from the network. The core trusts peers to follow the
// protocol, but not transports or deserializers to be perfect: a message with missing or ill-typed
// fields is dropped (and counted) rather than allowed to corrupt state or throw out of step().
import type { Entry, Message, MessageType } from './types.ts';

const TYPES: ReadonlySet<MessageType> = new Set<MessageType>([
  'preVote', 'preVoteResp', 'vote', 'voteResp', 'app', 'appResp',
  'heartbeat', 'heartbeatResp', 'snap', 'timeoutNow',
]);

function isIndex(v: unknown): boolean {
  return Number.isSafeInteger(v) && (v as number) >= 0;
}

function optIndex(v: unknown): boolean {
  return v === undefined || isIndex(v);
}

function isEntry(e: unknown): e is Entry {
  if (typeof e !== 'object' || e === null) return false;
  const x = e as Record<string, unknown>;
  return Number.isSafeInteger(x.index) && (x.index as number) >= 1
    && Number.isSafeInteger(x.term) && (x.term as number) >= 1
    && (x.kind === 'normal' || x.kind === 'conf')
    && x.data instanceof Uint8Array;
}

function isStringArray(v: unknown): boolean {
  return Array.isArray(v) && v.every((s) => typeof s === 'string');
}

/** Returns why `m` is unusable, or undefined when it is well-formed. */
export function checkMessage(m: unknown): string | undefined {
  if (typeof m !== 'object' || m === null) return 'not an object';
  const msg = m as Message;
  if (!TYPES.has(msg.type)) return `unknown type ${String(msg.type)}`;
  if (typeof msg.from !== 'string' || msg.from === '') return 'from must be a non-empty node id';
  if (typeof msg.to !== 'string' || msg.to === '') return 'to must be a non-empty node id';
  // Term 0 is never a real term: every election starts at term 1 or later.
  if (!Number.isSafeInteger(msg.term) || msg.term < 1) return `term ${String(msg.term)} is not a positive integer`;
  if (!optIndex(msg.index) || !optIndex(msg.logTerm) || !optIndex(msg.commit)) return 'index, logTerm and commit must be non-negative integers';
  if (!optIndex(msg.hintIndex) || !optIndex(msg.hintTerm)) return 'hintIndex and hintTerm must be non-negative integers';
  if (msg.reject !== undefined && typeof msg.reject !== 'boolean') return 'reject must be a boolean';
  if (msg.transfer !== undefined && typeof msg.transfer !== 'boolean') return 'transfer must be a boolean';
  if (msg.context !== undefined && typeof msg.context !== 'string') return 'context must be a string';

  switch (msg.type) {
    case 'app': {
      if (msg.entries === undefined) return undefined;
      if (!Array.isArray(msg.entries)) return 'entries must be an array';
      let prevIndex = msg.index ?? 0;
      let prevTerm = msg.logTerm ?? 0;
      for (const e of msg.entries) {
        if (!isEntry(e)) return 'malformed entry';
        // Raft §5.3: a leader's entries are contiguous after the preceding entry, with terms that
        // never decrease and never exceed the leader's own term.
        if (e.index !== prevIndex + 1) return `entry index ${e.index} does not follow ${prevIndex}`;
        if (e.term < prevTerm || e.term > msg.term) return `entry term ${e.term} out of order`;
        prevIndex = e.index;
        prevTerm = e.term;
      }
      return undefined;
    }
    case 'snap': {
      const s = msg.snapshot;
      if (typeof s !== 'object' || s === null || typeof s.meta !== 'object' || s.meta === null) return 'snap needs snapshot.meta';
      const meta = s.meta;
      if (!isIndex(meta.index) || !isIndex(meta.term) || meta.index < 1) return 'snapshot meta needs a positive index and a term';
      if (typeof meta.conf !== 'object' || meta.conf === null || !isStringArray(meta.conf.voters) || !isStringArray(meta.conf.learners)) {
        return 'snapshot meta needs conf.voters and conf.learners as arrays of node ids';
      }
      // A snap without its bytes would restore the state machine from nothing (sim finding F2):
      // the driver attaches the data before sending, so a message without it is malformed.
      if (!(s.data instanceof Uint8Array)) return 'snap needs snapshot.data as bytes';
      return undefined;
    }
    default:
      return undefined;
  }
}
