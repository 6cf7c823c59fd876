// How a driver handles one Ready: the plan RaftNode (node.ts) executes, whether over real storage
// and a transport or inside the simulator (sim/cluster.ts runs RaftNode itself over simulated
// disk, network and clock), so the simulator's seeds check the order that ships (issue 12: the
// simulator used to re-implement Ready handling and applied only after the write completed, while
// RaftNode applies while it is in flight).
//
// Pure: no I/O, no state. The executors differ only in what a step does, never in which steps run
// or in their order.
import type { Entry, HardState, Message, ReadState, Ready, Snapshot } from './core/types.ts';

export type ReadyStep =
  /** Hand these messages to the transport (attaching snapshot bytes to `snap` messages). */
  | { kind: 'send'; messages: Message[]; early: boolean }
  /** Persist the leader's snapshot, replace the state machine with it and reset the log to start
   *  after it. Completes (durably) before the next step. */
  | { kind: 'installSnapshot'; snapshot: Snapshot }
  /** Start writing entries (truncating a conflicting suffix first) and the hard state, as one
   *  atomic write, synced when `sync`. The next steps run while the write is in flight. */
  | { kind: 'startSave'; entries: Entry[]; hardState: HardState | undefined; sync: boolean }
  /** Apply committed entries in order. */
  | { kind: 'apply'; entries: Entry[] }
  /** Wait until the write started by startSave is done (and synced if asked). */
  | { kind: 'awaitSave' }
  /** Answer ReadIndex requests once the state machine has applied their index. */
  | { kind: 'readStates'; readStates: ReadState[] }
  /** Tell the core the Ready was handled (its persisted entries now count as durable). */
  | { kind: 'advance' };

/** Messages only a leader sends, which carry no promise about the sender's own disk. */
export function isLeaderTraffic(m: Message): boolean {
  return m.type === 'app' || m.type === 'heartbeat' || m.type === 'snap' || m.type === 'timeoutNow';
}

/**
 * The steps for one Ready, in order. `persisted` is the term and vote last written (a Ready that
 * changes either must not let any message out before it is durable).
 *
 * The order and why:
 * - Early send: a leader may replicate while it writes its own log (thesis §10.2.1), since the core
 *   counts the leader toward a commit only once advance() confirms its copy durable. Only when every
 *   message is a leader's replication traffic, no snapshot is being installed and neither term nor
 *   vote changes: a vote or an append acknowledgement promises something about this node's disk.
 * - installSnapshot, then startSave: the snapshot resets the log the entries then extend.
 * - apply while the write is in flight: every committed entry is durable on a majority (on the
 *   leader, its own copy counts only once durable), so applying it cannot be undone by a crash of
 *   this node; waiting for the fsync first would add a whole sync to every commit.
 * - awaitSave, then the remaining messages (votes, acks) and the read states, then advance.
 */
export function planReady(rd: Ready, persisted: { term: number; vote: string }): ReadyStep[] {
  const termOrVoteChanged = rd.hardState !== undefined && (rd.hardState.term !== persisted.term || rd.hardState.vote !== persisted.vote);
  const early = !rd.snapshot && rd.messages.length > 0 && !termOrVoteChanged && rd.messages.every(isLeaderTraffic);
  const saves = rd.entries.length > 0 || rd.hardState !== undefined;
  const steps: ReadyStep[] = [];
  if (early) steps.push({ kind: 'send', messages: rd.messages, early: true });
  if (rd.snapshot) steps.push({ kind: 'installSnapshot', snapshot: rd.snapshot });
  if (saves) steps.push({ kind: 'startSave', entries: rd.entries, hardState: rd.hardState, sync: rd.mustSync });
  if (rd.committed.length > 0) steps.push({ kind: 'apply', entries: rd.committed });
  if (saves) steps.push({ kind: 'awaitSave' });
  if (!early && rd.messages.length > 0) steps.push({ kind: 'send', messages: rd.messages, early: false });
  if (rd.readStates.length > 0) steps.push({ kind: 'readStates', readStates: rd.readStates });
  steps.push({ kind: 'advance' });
  return steps;
}
