// Helpers for driving a single RaftCore by hand: build one with a given log, feed it messages,
// and read back what it would send.
import { RaftCore } from '../../src/core/raft.ts';
import type { CoreConfig } from '../../src/core/config.ts';
import type { Entry, Message, NodeId, Ready } from '../../src/core/types.ts';
import { seededRandom, enc } from './network.ts';

export { enc };

export interface CoreOptions extends Partial<Omit<CoreConfig, 'id' | 'initial'>> {
  /** Voters (default a, b, c). */
  voters?: NodeId[];
  learners?: NodeId[];
  /** Log terms for indexes 1..n, e.g. [1, 1, 2]. */
  terms?: number[];
  term?: number;
  vote?: NodeId;
  commit?: number;
  applied?: number;
}

/** Entries with the given terms at indexes 1..n (data names the index so tests can read it back). */
export function entriesWithTerms(terms: number[], from = 1): Entry[] {
  return terms.map((t, i) => ({ term: t, index: from + i, kind: 'normal' as const, data: enc(`e${from + i}`) }));
}

export function newCore(id: NodeId, o: CoreOptions = {}): RaftCore {
  const terms = o.terms ?? [];
  const entries = entriesWithTerms(terms);
  const lastTerm = terms.length > 0 ? terms[terms.length - 1]! : 0;
  return new RaftCore({
    id,
    electionTicks: o.electionTicks ?? 10,
    heartbeatTicks: o.heartbeatTicks ?? 1,
    random: o.random ?? seededRandom(42),
    ...(o.preVote !== undefined ? { preVote: o.preVote } : {}),
    ...(o.checkQuorum !== undefined ? { checkQuorum: o.checkQuorum } : {}),
    ...(o.readOnly !== undefined ? { readOnly: o.readOnly } : {}),
    ...(o.maxInflight !== undefined ? { maxInflight: o.maxInflight } : {}),
    ...(o.maxMsgBytes !== undefined ? { maxMsgBytes: o.maxMsgBytes } : {}),
    ...(o.maxEntryBytes !== undefined ? { maxEntryBytes: o.maxEntryBytes } : {}),
    initial: {
      hardState: { term: o.term ?? lastTerm, vote: o.vote ?? '', commit: o.commit ?? 0 },
      entries,
      conf: { voters: o.voters ?? ['a', 'b', 'c'], learners: o.learners ?? [] },
      ...(o.applied !== undefined ? { applied: o.applied } : {}),
    },
  });
}

/** Drains a Ready (acknowledging it) and returns it. */
export function drain(core: RaftCore): Ready {
  const rd = core.ready();
  core.advance(rd);
  return rd;
}

/** Drains and returns only the messages. */
export function sent(core: RaftCore): Message[] {
  return drain(core).messages;
}

/** Ticks until the core's role changes from `role` (bounded), draining nothing. */
export function tickUntilNot(core: RaftCore, role: string, max = 100): number {
  for (let i = 1; i <= max; i++) {
    core.tick();
    if (core.role !== role) return i;
  }
  return -1;
}

/** Makes a fresh core (voters a,b,c by default) the leader of `term` + 1 by a direct election. */
export function makeLeader(id: NodeId, o: CoreOptions = {}): RaftCore {
  const core = newCore(id, { preVote: false, ...o });
  tickUntilNot(core, 'follower');
  const voters = o.voters ?? ['a', 'b', 'c'];
  for (const v of voters) {
    if (v === id || core.role === 'leader') continue;
    core.step({ type: 'voteResp', from: v, to: id, term: core.term, reject: false });
  }
  if (core.role !== 'leader') throw new Error(`${id} did not become leader`);
  drain(core);
  return core;
}

export function msg(m: Partial<Message> & Pick<Message, 'type' | 'from' | 'to' | 'term'>): Message {
  return m as Message;
}

/** Acks every app message in `msgs` as a follower that accepts everything would. */
export function ackAll(leader: RaftCore, msgs: Message[]): void {
  for (const m of msgs) {
    if (m.type !== 'app') continue;
    const last = (m.index ?? 0) + (m.entries?.length ?? 0);
    leader.step({ type: 'appResp', from: m.to, to: m.from, term: m.term, index: last });
  }
}
