// Raft's safety properties (Raft paper Fig. 3, plus durability across crashes), checked by watching
// what the simulated nodes do rather than by trusting what they say. The checker keeps its own
// record of every entry ever persisted, every commit and every apply across the whole run, so a
// property broken once and "repaired" later is still caught.
import type { ConfChange, ConfState, Entry, NodeId, SnapshotMeta } from '../core/types.ts';

export type ViolationKind =
  | 'electionSafety' | 'logMatching' | 'leaderCompleteness' | 'stateMachineSafety'
  | 'durability' | 'duplicateApply' | 'contract' | 'linearizability' | 'liveness' | 'crash';

export interface Violation {
  kind: ViolationKind;
  message: string;
  /** Simulation step at which it was detected. */
  step: number;
}

/** A node's log as the checkers read it (the simulator's DiskState satisfies it). */
export interface LogView {
  readonly compactedTo: number;
  /** Entries compactedTo+1 … in order. */
  readonly entries: readonly Entry[];
  readonly snapshot?: { readonly meta: Pick<SnapshotMeta, 'index' | 'term'> } | undefined;
}

function viewTerm(log: LogView, index: number): number | undefined {
  if (index === 0) return 0;
  if (index > log.compactedTo) return log.entries[index - log.compactedTo - 1]?.term;
  if (log.snapshot && log.snapshot.meta.index === index) return log.snapshot.meta.term;
  return undefined;
}

function viewEntry(log: LogView, index: number): Entry | undefined {
  return index > log.compactedTo ? log.entries[index - log.compactedTo - 1] : undefined;
}

function viewLast(log: LogView): { index: number; term: number } {
  const n = log.entries.length;
  if (n > 0) return { index: log.entries[n - 1]!.index, term: log.entries[n - 1]!.term };
  if (log.snapshot) return { index: log.snapshot.meta.index, term: log.snapshot.meta.term };
  return { index: 0, term: 0 };
}

/** Whether `log` holds the entry (index, term): in its entries, or under its snapshot (a snapshot
 *  only ever covers committed entries, which state machine safety checks separately). */
function holds(log: LogView, index: number, term: number): boolean {
  const snapIndex = log.snapshot?.meta.index ?? 0;
  if (index <= snapIndex) return true;
  return viewTerm(log, index) === term;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function sameEntry(a: Entry, b: Entry): boolean {
  return a.index === b.index && a.term === b.term && a.kind === b.kind && sameBytes(a.data, b.data);
}

function describeEntry(e: Entry): string {
  const text = new TextDecoder().decode(e.data);
  return `{index ${e.index}, term ${e.term}, ${e.kind}${text ? ` ${text.length > 80 ? text.slice(0, 80) + '…' : text}` : ' (empty)'}}`;
}

interface CommitRecord {
  entry: Entry | undefined;
  term: number;
  /** Term of the leader whose commit index first covered this index (0 for the bootstrap). */
  commitTerm: number;
}

/** The one-server membership change rules (thesis §4.1), our own copy: the simulator must not
 *  share a bug with the core it checks. */
export function nextConf(conf: ConfState, cc: ConfChange): ConfState {
  const voters = conf.voters.filter((v) => v !== cc.node);
  const learners = conf.learners.filter((l) => l !== cc.node);
  switch (cc.type) {
    case 'addVoter':
    case 'promote':
      return { voters: [...voters, cc.node], learners };
    case 'addLearner':
      return conf.voters.includes(cc.node) ? conf : { voters, learners: [...learners, cc.node] };
    case 'remove':
      return { voters, learners };
    default:
      return conf;
  }
}

export class SafetyChecker {
  readonly violations: Violation[] = [];
  /** Set by the driver before each step so violations carry it. */
  step = 0;
  /** term → the one node that led it. */
  private readonly leaders = new Map<number, NodeId>();
  /** "index/term" → the entry and the term of the entry before it, as first persisted anywhere. */
  private readonly persisted = new Map<string, { entry: Entry; prevTerm: number | undefined }>();
  /** index → committed entry, contiguous from 1 to maxCommitted. */
  private readonly committed = new Map<number, CommitRecord>();
  private maxCommitted = 0;
  /** The configuration as of maxCommitted. */
  private conf: ConfState = { voters: [], learners: [] };
  /** client operation id → the index it was applied at. */
  private readonly opIndex = new Map<string, number>();
  private readonly decodeConf: (data: Uint8Array) => ConfChange;

  constructor(decodeConf: (data: Uint8Array) => ConfChange) {
    this.decodeConf = decodeConf;
  }

  fail(kind: ViolationKind, message: string): void {
    this.violations.push({ kind, message, step: this.step });
  }

  get ok(): boolean {
    return this.violations.length === 0;
  }

  /** The committed configuration (what the durability check counts quorums in). */
  committedConf(): ConfState {
    return this.conf;
  }

  committedIndex(): number {
    return this.maxCommitted;
  }

  /** Entries every member starts with, committed by construction (config.ts bootstrap). */
  bootstrap(entries: readonly Entry[]): void {
    for (const e of entries) {
      this.observePersist('bootstrap', [e], e.index === 1 ? 0 : entries[e.index - 2]?.term);
      this.recordCommit(e.index, e, 0);
    }
  }

  /**
   * Log Matching (§5.3): a leader creates at most one entry per (index, term), so over the whole run
   * one (index, term) must always name the same entry with the same predecessor term. By induction
   * that gives "same (index, term) ⇒ identical prefix" across every log that ever existed.
   * `prevTerm` is the writer's term at entries[0].index − 1 just before the write (undefined if
   * compacted away).
   */
  observePersist(node: NodeId, entries: readonly Entry[], prevTerm: number | undefined): void {
    let prev = prevTerm;
    for (const e of entries) {
      const key = `${e.index}/${e.term}`;
      const rec = this.persisted.get(key);
      if (!rec) {
        this.persisted.set(key, { entry: e, prevTerm: prev });
      } else {
        if (!sameEntry(rec.entry, e)) {
          this.fail('logMatching', `${node} persisted ${describeEntry(e)} but (index ${e.index}, term ${e.term}) was already ${describeEntry(rec.entry)} elsewhere`);
        } else if (prev !== undefined && rec.prevTerm !== undefined && prev !== rec.prevTerm) {
          this.fail('logMatching', `${node} holds (index ${e.index}, term ${e.term}) after an entry of term ${prev}, but elsewhere it follows term ${rec.prevTerm}: logs agree on an entry but not on its prefix`);
        } else if (rec.prevTerm === undefined && prev !== undefined) {
          rec.prevTerm = prev;
        }
      }
      if (e.term < (prev ?? 0)) {
        this.fail('logMatching', `${node} persisted ${describeEntry(e)} after an entry of higher term ${prev}: terms in a log never decrease`);
      }
      prev = e.term;
    }
  }

  /**
   * Election Safety (§5.2): at most one leader per term over the whole run. On a node's first
   * appearance as leader of `term`, Leader Completeness (§5.4): its log holds every entry committed
   * by a leader of an earlier term.
   */
  observeLeader(node: NodeId, term: number, log: LogView): void {
    const prev = this.leaders.get(term);
    if (prev === node) return;
    if (prev !== undefined) {
      this.fail('electionSafety', `two leaders in term ${term}: ${prev} and ${node}`);
      return;
    }
    this.leaders.set(term, node);
    for (let i = 1; i <= this.maxCommitted; i++) {
      const c = this.committed.get(i)!;
      if (c.commitTerm < term && !holds(log, i, c.term)) {
        this.fail('leaderCompleteness', `${node} became leader of term ${term} without index ${i} (term ${c.term}), committed in term ${c.commitTerm}; its log has term ${viewTerm(log, i) ?? 'nothing'} there`);
        return;
      }
    }
  }

  /**
   * A leader of `term` advanced its commit index to `commit`. Records the new committed entries
   * (their commit term is `term`) and checks that every current leader of a later term holds them.
   */
  observeLeaderCommit(node: NodeId, term: number, commit: number, log: LogView, laterLeaders: ReadonlyArray<{ id: NodeId; term: number; log: LogView }>): void {
    for (let i = this.maxCommitted + 1; i <= commit; i++) {
      const t = viewTerm(log, i);
      if (t === undefined) {
        this.fail('contract', `leader ${node} (term ${term}) committed index ${i} that its own log does not hold`);
        return;
      }
      this.recordCommit(i, viewEntry(log, i), term);
      for (const l of laterLeaders) {
        if (l.term > term && !holds(l.log, i, t)) {
          this.fail('leaderCompleteness', `${node} committed index ${i} (term ${t}) in term ${term}, but ${l.id}, leader of later term ${l.term}, lacks it`);
          return;
        }
      }
    }
  }

  private recordCommit(index: number, entry: Entry | undefined, commitTerm: number): void {
    const term = entry?.term ?? 0;
    this.committed.set(index, { entry, term, commitTerm });
    this.maxCommitted = index;
    if (entry && entry.kind === 'conf') {
      try {
        this.conf = nextConf(this.conf, this.decodeConf(entry.data));
      } catch (err) {
        // The core treats malformed conf entries as no-ops; so do we, but a well-behaved run has none.
        this.fail('contract', `committed conf entry at index ${index} does not decode: ${(err as Error).message}`);
      }
    }
  }

  /**
   * State Machine Safety (§5.4.3): no two nodes apply different entries at one index, and nothing is
   * applied that was not committed. `opId` (if the entry carries a client operation) must be applied
   * at one index only: Raft never duplicates a proposal.
   */
  observeApply(node: NodeId, entry: Entry, opId: string | undefined): void {
    const c = this.committed.get(entry.index);
    if (!c) {
      this.fail('stateMachineSafety', `${node} applied ${describeEntry(entry)} but no leader had committed index ${entry.index} (highest committed: ${this.maxCommitted})`);
      return;
    }
    if (c.term !== entry.term || (c.entry && !sameEntry(c.entry, entry))) {
      this.fail('stateMachineSafety', `${node} applied ${describeEntry(entry)} at index ${entry.index}, where the committed entry is ${c.entry ? describeEntry(c.entry) : `of term ${c.term}`}`);
      return;
    }
    if (!c.entry) c.entry = entry;
    if (opId !== undefined) {
      const at = this.opIndex.get(opId);
      if (at === undefined) this.opIndex.set(opId, entry.index);
      else if (at !== entry.index) this.fail('duplicateApply', `operation ${opId} applied at index ${at} and again at index ${entry.index}`);
    }
  }

  /** A node installed a snapshot: it claims index/term are committed, which must match our record. */
  observeSnapshot(node: NodeId, meta: Pick<SnapshotMeta, 'index' | 'term'>): void {
    const c = this.committed.get(meta.index);
    if (!c) {
      this.fail('stateMachineSafety', `${node} installed a snapshot at index ${meta.index} beyond anything committed (${this.maxCommitted})`);
    } else if (c.term !== meta.term) {
      this.fail('stateMachineSafety', `${node} installed a snapshot at (index ${meta.index}, term ${meta.term}) but the committed entry there has term ${c.term}`);
    }
  }

  /**
   * No committed entry is lost, even if every node crashed now: no voter of the committed
   * configuration whose durable log lacks a committed entry may be at least as up-to-date (§5.4.1)
   * as a quorum of voters' durable logs, or it could win an election after a restart and overwrite
   * the entry. `durable(id)` is the node's synced state (undefined = no disk at all).
   */
  checkDurability(durable: (id: NodeId) => LogView | undefined): void {
    const voters = this.conf.voters;
    if (voters.length === 0) return;
    const empty: LogView = { compactedTo: 0, entries: [] };
    const logs = voters.map((id) => ({ id, log: durable(id) ?? empty }));
    const lasts = logs.map((l) => viewLast(l.log));
    const quorum = Math.floor(voters.length / 2) + 1;
    for (let v = 0; v < logs.length; v++) {
      const { id, log } = logs[v]!;
      let missing = 0;
      for (let i = (log.snapshot?.meta.index ?? 0) + 1; i <= this.maxCommitted; i++) {
        if (viewTerm(log, i) !== this.committed.get(i)!.term) {
          missing = i;
          break;
        }
      }
      if (missing === 0) continue;
      const me = lasts[v]!;
      const electors = lasts.filter((u) => me.term > u.term || (me.term === u.term && me.index >= u.index)).length;
      if (electors >= quorum) {
        const c = this.committed.get(missing)!;
        this.fail('durability', `committed index ${missing} (term ${c.term}) could be lost: ${id}'s durable log (last ${me.index}/${me.term}) lacks it yet is as up-to-date as ${electors} of ${voters.length} voters' durable logs [${voters.map((x, k) => `${x}:${lasts[k]!.index}/${lasts[k]!.term}`).join(' ')}], enough to be elected after a crash`);
        return;
      }
    }
  }
}
