// The pure Raft state machine (Raft paper §5, thesis §3–§6, §9.6), in the shape of etcd's raft.go:
// one step function per role, progress tracking on the leader, and a Ready hand-off to a driver that
// owns storage, network and clocks. No I/O, no timers, no ambient randomness: given the same config
// (including `random`) and the same calls, it produces the same outputs.
import type { CoreConfig } from './config.ts';
import { encodeConfChange } from './types.ts';
import type {
  ConfChange, ConfState, CoreStatus, Entry, EntryKind, HardState, Message, NodeId, ProposeResult,
  ReadState, Ready, Role, Snapshot, SnapshotMeta, SoftState,
} from './types.ts';
import { RaftLog, entrySize } from './log.ts';
import { Progress } from './progress.ts';
import { committedIndex, hasQuorum, voteResult } from './quorum.ts';
import { ReadOnlyQueue } from './readOnly.ts';
import { MembershipHistory, cloneConf, confChangeProblem, isMember } from './membership.ts';
import { checkMessage } from './validate.ts';
import {
  ConfChangeInProgressError, InvalidConfChangeError, InvalidConfigError, InvalidSnapshotError,
  InvalidTransferTargetError, LeaderNotReadyError, LeadershipTransferInProgressError, NotLeaderError,
  ProposalTooLargeError,
} from '../errors.ts';

export const DEFAULT_MAX_INFLIGHT = 256;
export const DEFAULT_MAX_MSG_BYTES = 1024 * 1024;
export const DEFAULT_MAX_ENTRY_BYTES = 512 * 1024;
/** Caps on the committed entries one Ready hands out for applying, so a node that falls far behind
 *  (or restarts with a long unapplied tail) applies in bounded steps. */
export const MAX_COMMITTED_ENTRIES_PER_READY = 1024;
export const MAX_COMMITTED_BYTES_PER_READY = 8 * 1024 * 1024;

/** Counters for what step() did with messages it did not act on, and notable protocol events. */
export interface CoreStats {
  /** Messages from an older term (some still get an answer telling the sender the newer term). */
  ignoredStaleTerm: number;
  /** Responses from nodes the leader or candidate does not track (not in its configuration). */
  ignoredUnknownSender: number;
  /** (Pre)vote requests ignored because a leader was heard from within the election timeout. */
  ignoredInLease: number;
  /** Messages whose shape is invalid (missing or ill-typed fields, non-contiguous entries). */
  ignoredMalformed: number;
  /** Messages addressed to another node, or claiming to come from this one. */
  ignoredMisaddressed: number;
  /** Well-formed messages that mean nothing in the current role (e.g. a late voteResp). */
  ignoredUnexpected: number;
  /** Messages that contradict a Raft invariant (e.g. two leaders in a term); never acted on. */
  invariantViolations: number;
  /** Conf entries in the log whose data does not decode; treated as no-ops on every replica. */
  malformedConfEntries: number;
  preVotesStarted: number;
  electionsStarted: number;
  /** Appends this node rejected as a follower because its log did not match. */
  appendsRejected: number;
  snapshotsSent: number;
  snapshotsInstalled: number;
}

function newStats(): CoreStats {
  return {
    ignoredStaleTerm: 0, ignoredUnknownSender: 0, ignoredInLease: 0, ignoredMalformed: 0,
    ignoredMisaddressed: 0, ignoredUnexpected: 0, invariantViolations: 0, malformedConfEntries: 0,
    preVotesStarted: 0, electionsStarted: 0, appendsRejected: 0, snapshotsSent: 0, snapshotsInstalled: 0,
  };
}

const EMPTY = new Uint8Array(0);

type CampaignKind = 'preElection' | 'election' | 'transfer';

export class RaftCore {
  readonly id: NodeId;
  readonly stats: CoreStats = newStats();

  private readonly electionTicks: number;
  private readonly heartbeatTicks: number;
  private readonly random: () => number;
  private readonly preVote: boolean;
  private readonly checkQuorum: boolean;
  private readonly readOnlyMode: 'safe' | 'lease';
  private readonly maxInflight: number;
  private readonly maxMsgBytes: number;
  private readonly maxEntryBytes: number;

  private _term = 0;
  private vote: NodeId = '';
  private _role: Role = 'follower';
  private lead: NodeId | '' = '';

  private readonly log: RaftLog;
  private readonly membership: MembershipHistory;
  /** Leader only: every member except this node. The leader's own match is its last index. */
  private readonly progress = new Map<NodeId, Progress>();
  private readonly votes = new Map<NodeId, boolean>();

  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTimeout: number;

  private leadTransferee: NodeId | '' = '';
  private readonly readOnly = new ReadOnlyQueue();
  /** ReadIndex requests waiting for this leader's first commit in its term (thesis §6.4 step 1). */
  private pendingReads: string[] = [];
  /** Set by proposals and commit advances; flushed as one append per follower in ready(), which is
   *  what batches many proposals between two ready() calls into a single message. */
  private needBroadcast = false;

  /** The latest snapshot the driver holds; what the leader sends to followers that fell behind. */
  private snapshotMeta: SnapshotMeta | undefined;
  /** A snapshot accepted from the leader and not yet handed to the driver. */
  private pendingSnapshot: Snapshot | undefined;

  private outbox: Message[] = [];
  private readStates: ReadState[] = [];
  /** Highest index handed out for applying (in a Ready, or covered by a handed-out snapshot). */
  private applying: number;
  /** Highest index the driver confirmed applied via advance(). */
  private applied: number;
  private prevHard: HardState;
  private prevSoft: SoftState = { role: 'follower', leader: '' };
  /**
   * Highest index known durable on this node's own disk (confirmed by advance()). The leader counts
   * itself toward a commit quorum only up to here, which is what lets the driver send appends to
   * followers in parallel with the leader's own fsync (thesis §10.2.1) without ever committing an
   * entry that a majority has not made durable.
   */
  private persisted: number;
  /** Lowest truncation point since the last ready(): entries the Ready being persisted carried above
   *  it were replaced in memory, so advance() must not count them as durable. */
  private truncatedSinceReady = Infinity;

  constructor(config: CoreConfig) {
    const c = validateConfig(config);
    this.id = c.id;
    this.electionTicks = c.electionTicks;
    this.heartbeatTicks = c.heartbeatTicks;
    this.random = c.random;
    this.preVote = c.preVote ?? true;
    this.checkQuorum = c.checkQuorum ?? true;
    this.readOnlyMode = c.readOnly ?? 'safe';
    this.maxInflight = c.maxInflight ?? DEFAULT_MAX_INFLIGHT;
    this.maxMsgBytes = c.maxMsgBytes ?? DEFAULT_MAX_MSG_BYTES;
    this.maxEntryBytes = c.maxEntryBytes ?? DEFAULT_MAX_ENTRY_BYTES;

    const init = c.initial ?? { hardState: { term: 0, vote: '', commit: 0 }, entries: [] };
    const snap = init.snapshot;
    let entries = init.entries;
    let offset = 0;
    let offsetTerm: number | undefined = 0;
    if (snap) {
      if (entries.length > 0 && entries[entries.length - 1]!.index < snap.index) {
        // Everything stored is older than the snapshot: the snapshot supersedes it.
        entries = [];
      }
      if (entries.length > 0 && entries[0]!.index <= snap.index) {
        // Trailing entries kept below the snapshot index (see InitialState).
        offset = entries[0]!.index - 1;
        offsetTerm = offset === snap.index ? snap.term : undefined;
        const atSnap = entries[snap.index - entries[0]!.index];
        if (atSnap && atSnap.term !== snap.term) {
          throw new InvalidConfigError('initial.entries', `hold term ${atSnap.term} at the snapshot index ${snap.index}, whose term is ${snap.term}`);
        }
      } else {
        offset = snap.index;
        offsetTerm = snap.term;
        if (entries.length > 0 && entries[0]!.index !== snap.index + 1) {
          throw new InvalidConfigError('initial.entries', `start at index ${entries[0]!.index}, leaving a gap after the snapshot index ${snap.index}`);
        }
      }
    } else if (entries.length > 0 && entries[0]!.index !== 1) {
      throw new InvalidConfigError('initial.entries', `start at index ${entries[0]!.index} but there is no snapshot covering the entries before it`);
    }
    const commit = Math.max(init.hardState.commit, snap?.index ?? 0);
    this.log = new RaftLog(offset, offsetTerm, entries, commit);
    if (commit > this.log.lastIndex()) {
      throw new InvalidConfigError('initial.hardState.commit', `is ${commit}, beyond the last log index ${this.log.lastIndex()}`);
    }
    this.membership = snap
      ? new MembershipHistory(snap.index, snap.conf)
      : new MembershipHistory(0, init.conf ?? { voters: [], learners: [] });
    this.membership.append(entries);
    this.stats.malformedConfEntries = this.membership.malformed;
    this.snapshotMeta = snap;

    this.persisted = this.log.lastIndex();
    this.applied = Math.min(Math.max(init.applied ?? 0, snap?.index ?? 0), commit);
    this.applying = this.applied;
    // A node never holds entries of a term newer than its current term; repair a hard state that
    // lags its own log (e.g. a bootstrap that wrote term-1 entries with term 0).
    this._term = Math.max(init.hardState.term, this.log.lastTerm());
    this.vote = this._term === init.hardState.term ? init.hardState.vote : '';
    this.prevHard = { ...init.hardState };
    this.randomizedElectionTimeout = this.nextElectionTimeout();
  }

  get role(): Role { return this._role; }
  get leader(): NodeId | '' { return this.lead; }
  get term(): number { return this._term; }
  /** The commit index (status() without building the rest). */
  get commit(): number { return this.log.committed; }

  // ---------------------------------------------------------------- time

  tick(): void {
    if (this._role === 'leader') this.tickHeartbeat();
    else this.tickElection();
  }

  private tickElection(): void {
    this.electionElapsed++;
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.hup(false);
    }
  }

  private tickHeartbeat(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;

    for (const pr of this.progress.values()) {
      // No acknowledgement for a snapshot within a few election timeouts: assume it was lost and
      // probe again (which re-sends it if still needed). The driver reports no send failures.
      if (pr.state === 'snapshot' && ++pr.snapshotTicks >= 4 * this.electionTicks) {
        pr.pendingSnapshot = 0;
        pr.becomeProbe();
      }
    }

    if (this.electionElapsed >= this.electionTicks) {
      this.electionElapsed = 0;
      // Thesis §6.2: a leader that has not heard from a quorum within an election timeout steps
      // down, so clients stop waiting on it and its lease (used by reads and vote-ignoring) lapses.
      if (this.checkQuorum && !this.quorumActive()) {
        this.becomeFollower(this._term, '');
        return;
      }
      // Thesis §3.10: a transfer that has not completed within an election timeout is abandoned.
      if (this.leadTransferee !== '') this.leadTransferee = '';
    }
    if (this.heartbeatElapsed >= this.heartbeatTicks) {
      this.heartbeatElapsed = 0;
      this.bcastHeartbeat(this.readOnly.lastContext());
    }
  }

  private quorumActive(): boolean {
    const active = new Set<NodeId>([this.id]);
    for (const pr of this.progress.values()) {
      if (pr.recentActive) active.add(pr.id);
      pr.recentActive = false;
    }
    return hasQuorum(this.conf().voters, active);
  }

  private nextElectionTimeout(): number {
    // Raft §5.2: randomized in [e, 2e) so that split votes are rare and resolve quickly.
    const r = this.random();
    const jitter = Math.min(this.electionTicks - 1, Math.max(0, Math.floor(r * this.electionTicks)));
    return this.electionTicks + jitter;
  }

  // ---------------------------------------------------------------- role transitions

  private conf(): ConfState {
    return this.membership.current();
  }

  /** Only voters of the latest configuration campaign (learners and outsiders wait to be contacted). */
  private promotable(): boolean {
    return this.conf().voters.includes(this.id);
  }

  private reset(term: number): void {
    if (this._term !== term) {
      this._term = term;
      this.vote = '';
    }
    this.lead = '';
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.randomizedElectionTimeout = this.nextElectionTimeout();
    this.leadTransferee = '';
    this.votes.clear();
    this.progress.clear();
    // Pending reads were confirmed by nobody yet; a leader that steps down cannot serve them.
    this.readOnly.reset();
    this.pendingReads = [];
    this.needBroadcast = false;
  }

  private becomeFollower(term: number, lead: NodeId | ''): void {
    this.reset(term);
    this._role = 'follower';
    this.lead = lead;
  }

  private becomePreCandidate(): void {
    // Thesis §9.6: a pre-candidate neither bumps its term nor votes; it only asks whether it could win.
    this.votes.clear();
    this.progress.clear();
    this._role = 'preCandidate';
    this.lead = '';
  }

  private becomeCandidate(): void {
    this.reset(this._term + 1);
    this.vote = this.id;
    this._role = 'candidate';
  }

  private becomeLeader(): void {
    this.reset(this._term);
    this._role = 'leader';
    this.lead = this.id;
    this.syncProgress();
    // Check-quorum counts only what followers say to this leader, starting now.
    for (const pr of this.progress.values()) pr.recentActive = false;
    // Raft §5.4.2 / thesis §6.4: a leader commits entries of older terms only by committing one of
    // its own, so it appends an empty entry at once.
    this.appendEntry('normal', EMPTY);
  }

  private hup(transfer: boolean): void {
    if (this._role === 'leader' || !this.promotable()) return;
    if (transfer) this.campaign('transfer');
    else this.campaign(this.preVote ? 'preElection' : 'election');
  }

  private campaign(kind: CampaignKind): void {
    let term: number;
    if (kind === 'preElection') {
      this.becomePreCandidate();
      term = this._term + 1;
      this.stats.preVotesStarted++;
    } else {
      this.becomeCandidate();
      term = this._term;
      this.stats.electionsStarted++;
    }
    if (this.poll(this.id, true) === 'won') {
      // A single-voter configuration wins on its own vote.
      if (kind === 'preElection') this.campaign('election');
      else this.becomeLeader();
      return;
    }
    const type = kind === 'preElection' ? 'preVote' : 'vote';
    for (const v of this.conf().voters) {
      if (v === this.id) continue;
      this.send({
        type, from: this.id, to: v, term, index: this.log.lastIndex(), logTerm: this.log.lastTerm(),
        ...(kind === 'transfer' ? { transfer: true } : {}),
      });
    }
  }

  private poll(from: NodeId, granted: boolean) {
    if (!this.votes.has(from)) this.votes.set(from, granted);
    return voteResult(this.conf().voters, this.votes);
  }

  // ---------------------------------------------------------------- messages

  /** Handles one message from a peer. Never throws: anything it cannot use is counted in `stats`. */
  step(m: Message): void {
    const problem = checkMessage(m);
    if (problem !== undefined) {
      this.stats.ignoredMalformed++;
      return;
    }
    if (m.to !== this.id || m.from === this.id) {
      this.stats.ignoredMisaddressed++;
      return;
    }

    if (m.term > this._term) {
      if (m.type === 'vote' || m.type === 'preVote') {
        // Thesis §4.2.3 / §9.6: a node that heard from a leader within the minimum election timeout
        // does not help depose it. This stops removed or partitioned servers from disrupting the
        // cluster; `transfer` marks an election the leader itself asked for (§3.10).
        const inLease = this.checkQuorum && this.lead !== '' && this.electionElapsed < this.electionTicks;
        if (inLease && !m.transfer) {
          this.stats.ignoredInLease++;
          return;
        }
      }
      if (m.type === 'preVote') {
        // Never change term for a pre-vote: the candidate has not actually started that term.
      } else if (m.type === 'preVoteResp' && !m.reject) {
        // A granted pre-vote carries the term we would campaign in; it is not a newer leader's term.
      } else {
        // Raft §5.1: a newer term always wins. Only leader-originated messages name a leader.
        const fromLeader = m.type === 'app' || m.type === 'heartbeat' || m.type === 'snap';
        this.becomeFollower(m.term, fromLeader ? m.from : '');
      }
    } else if (m.term < this._term) {
      this.stats.ignoredStaleTerm++;
      if ((this.checkQuorum || this.preVote) && (m.type === 'app' || m.type === 'heartbeat')) {
        // A deposed leader cut off by a partition may never learn the new term otherwise: with
        // pre-vote its would-be challengers never raise their term, and with check-quorum we ignore
        // its vote requests. Tell it, so it steps down.
        this.send({ type: 'appResp', from: this.id, to: m.from, term: this._term });
      } else if (m.type === 'preVote' || m.type === 'vote') {
        // Let a (pre-)candidate with an old term learn ours instead of retrying forever (Raft
        // Fig. 2: RequestVote replies with currentTerm). Without it, with pre-vote off, a voter the
        // candidate needs can keep out-running it in term forever (sim finding F1).
        this.send({ type: m.type === 'vote' ? 'voteResp' : 'preVoteResp', from: this.id, to: m.from, term: this._term, reject: true });
      }
      return;
    }

    if (m.type === 'vote' || m.type === 'preVote') {
      this.handleVoteRequest(m);
      return;
    }
    switch (this._role) {
      case 'leader': this.stepLeader(m); break;
      case 'candidate':
      case 'preCandidate': this.stepCandidate(m); break;
      case 'follower': this.stepFollower(m); break;
    }
  }

  /**
   * Vote requests are answered whatever the sender's membership in our configuration: a new voter's
   * configuration can be ahead of ours (we have not appended its conf entry yet), and Raft's safety
   * rests on one vote per term (persisted before the answer is sent) and the up-to-date check, not on
   * who asks. Only the candidate decides whose votes count, by its own configuration.
   */
  private handleVoteRequest(m: Message): void {
    const index = m.index ?? 0;
    const logTerm = m.logTerm ?? 0;
    const respType = m.type === 'vote' ? 'voteResp' : 'preVoteResp';
    // Raft §5.2: at most one vote per term, first come first served; a pre-vote for a future term
    // binds nothing, so it may be granted even after voting in this term.
    const canVote = this.vote === m.from
      || (this.vote === '' && this.lead === '')
      || (m.type === 'preVote' && m.term > this._term);
    // Raft §5.4.1: only for a candidate whose log is at least as up-to-date as ours.
    if (canVote && this.log.isUpToDate(index, logTerm)) {
      this.send({ type: respType, from: this.id, to: m.from, term: m.term, reject: false });
      if (m.type === 'vote') {
        this.electionElapsed = 0;
        this.vote = m.from;
      }
    } else {
      this.send({ type: respType, from: this.id, to: m.from, term: this._term, reject: true });
    }
  }

  private stepLeader(m: Message): void {
    switch (m.type) {
      case 'appResp': this.handleAppendResponse(m); return;
      case 'heartbeatResp': this.handleHeartbeatResponse(m); return;
      case 'app':
      case 'heartbeat':
      case 'snap':
        // Another leader in our own term: impossible if votes are persisted as required.
        this.stats.invariantViolations++;
        return;
      default:
        // Late vote responses, timeoutNow addressed to a former follower self, etc.
        this.stats.ignoredUnexpected++;
    }
  }

  private stepCandidate(m: Message): void {
    const myVoteResp = this._role === 'preCandidate' ? 'preVoteResp' : 'voteResp';
    switch (m.type) {
      case 'app':
        // Raft §5.2: a leader of our term exists; recognize it.
        this.becomeFollower(m.term, m.from);
        this.handleAppend(m);
        return;
      case 'heartbeat':
        this.becomeFollower(m.term, m.from);
        this.handleHeartbeat(m);
        return;
      case 'snap':
        this.becomeFollower(m.term, m.from);
        this.handleSnapshot(m);
        return;
      case myVoteResp: {
        if (!this.conf().voters.includes(m.from)) {
          this.stats.ignoredUnknownSender++;
          return;
        }
        const result = this.poll(m.from, !m.reject);
        if (result === 'won') {
          if (this._role === 'preCandidate') this.campaign('election');
          else this.becomeLeader();
        } else if (result === 'lost') {
          // Pre-vote lost: stay in our term. Vote lost: wait for the winner or the next timeout.
          this.becomeFollower(this._term, '');
        }
        return;
      }
      default:
        this.stats.ignoredUnexpected++;
    }
  }

  private stepFollower(m: Message): void {
    switch (m.type) {
      case 'app':
      case 'heartbeat':
      case 'snap':
        if (this.lead !== '' && this.lead !== m.from) {
          // Two leaders claiming the same term: refuse to act on either's word beyond the first.
          this.stats.invariantViolations++;
          return;
        }
        // Raft §5.2: hearing from the current leader resets the election timer. The sender need not
        // be in our configuration: a node being added learns of its membership from this very log.
        this.electionElapsed = 0;
        this.lead = m.from;
        if (m.type === 'app') this.handleAppend(m);
        else if (m.type === 'heartbeat') this.handleHeartbeat(m);
        else this.handleSnapshot(m);
        return;
      case 'timeoutNow':
        // Thesis §3.10: the leader asks us to start an election now, skipping pre-vote. Only the
        // leader we follow may ask (it sends this only to a follower that acknowledged its log).
        if (m.from !== this.lead) this.stats.ignoredUnknownSender++;
        else if (!this.promotable()) this.stats.ignoredUnexpected++;
        else this.hup(true);
        return;
      default:
        this.stats.ignoredUnexpected++;
    }
  }

  // ---------------------------------------------------------------- follower side of replication

  private handleAppend(m: Message): void {
    const prevIndex = m.index ?? 0;
    const prevTerm = m.logTerm ?? 0;
    const entries = m.entries ?? [];
    if (prevIndex < this.log.committed) {
      // Everything up to our commit index is already settled; tell the leader where we are.
      this.send({ type: 'appResp', from: this.id, to: m.from, term: this._term, index: this.log.committed });
      return;
    }
    if (this.log.matchTerm(prevIndex, prevTerm)) {
      // Raft §5.3 (log matching): the logs agree through prevIndex. Append what we lack, overwriting
      // a conflicting suffix, but never an entry we already hold in the same term.
      const lastNew = prevIndex + entries.length;
      const conflict = this.log.findConflict(entries);
      if (conflict !== 0) {
        if (conflict <= this.log.committed) {
          // A leader contradicting a committed entry: refusing is the only safe answer.
          this.stats.invariantViolations++;
          return;
        }
        this.appendToLog(entries.slice(conflict - (prevIndex + 1)));
      }
      // Only up to what this message proves matches: later entries we hold may still be stale.
      this.log.commitTo(Math.min(m.commit ?? 0, lastNew));
      this.send({ type: 'appResp', from: this.id, to: m.from, term: this._term, index: lastNew });
      return;
    }
    // Raft §5.3: reject, with a hint that lets the leader skip a whole term per round trip.
    this.stats.appendsRejected++;
    let hintIndex: number;
    let hintTerm: number;
    if (prevIndex > this.log.lastIndex()) {
      hintIndex = this.log.lastIndex() + 1;
      hintTerm = 0;
    } else {
      hintTerm = this.log.term(prevIndex) ?? 0;
      // Entries up to the commit index match the leader's, so the hint need not go below it.
      hintIndex = Math.max(this.log.firstIndexOfTerm(prevIndex), this.log.committed + 1);
    }
    this.send({ type: 'appResp', from: this.id, to: m.from, term: this._term, index: prevIndex, reject: true, hintIndex, hintTerm });
  }

  private handleHeartbeat(m: Message): void {
    // The leader sends min(its commit, our match), so everything up to it matches our log.
    this.log.commitTo(Math.min(m.commit ?? 0, this.log.lastIndex()));
    this.send({
      type: 'heartbeatResp', from: this.id, to: m.from, term: this._term,
      ...(m.context !== undefined ? { context: m.context } : {}),
    });
  }

  private handleSnapshot(m: Message): void {
    const meta = m.snapshot!.meta;
    if (meta.index <= this.log.committed) {
      // Old news: we already have (and have committed) everything it covers.
      this.send({ type: 'appResp', from: this.id, to: m.from, term: this._term, index: this.log.committed });
      return;
    }
    if (this.log.matchTerm(meta.index, meta.term)) {
      // We hold the snapshot's last entry, so our log matches through it: commit and keep the log.
      this.log.commitTo(meta.index);
      this.send({ type: 'appResp', from: this.id, to: m.from, term: this._term, index: this.log.committed });
      return;
    }
    // Thesis §5.1 (InstallSnapshot): discard the whole log and restart it at the snapshot.
    this.log.restore(meta.index, meta.term);
    this.persisted = Math.min(this.persisted, meta.index);
    this.truncatedSinceReady = Math.min(this.truncatedSinceReady, meta.index);
    this.membership.reset(meta.index, meta.conf);
    this.snapshotMeta = meta;
    this.pendingSnapshot = { meta, data: m.snapshot!.data ?? EMPTY };
    this.applying = Math.max(this.applying, meta.index);
    this.stats.snapshotsInstalled++;
    this.send({ type: 'appResp', from: this.id, to: m.from, term: this._term, index: this.log.lastIndex() });
  }

  // ---------------------------------------------------------------- leader side of replication

  private handleAppendResponse(m: Message): void {
    const pr = this.progress.get(m.from);
    if (!pr) {
      this.stats.ignoredUnknownSender++;
      return;
    }
    const index = m.index ?? 0;
    if (index > this.log.lastIndex()) {
      // Acknowledges entries we never sent.
      this.stats.ignoredMalformed++;
      return;
    }
    pr.recentActive = true;

    if (m.reject) {
      if (pr.maybeDecrTo(index, this.matchHint(index, m.hintIndex ?? index, m.hintTerm ?? 0))) {
        if (pr.state === 'replicate') pr.becomeProbe();
        this.sendAppend(pr, true);
      }
      return;
    }

    if (pr.maybeUpdate(index)) {
      if (pr.state === 'probe') {
        pr.becomeReplicate();
      } else if (pr.state === 'snapshot' && pr.match + 1 >= this.log.firstIndex()) {
        // The follower installed the snapshot (or caught up otherwise): resume normal replication.
        pr.becomeProbe();
        pr.becomeReplicate();
      } else if (pr.state === 'replicate') {
        pr.inflights.freeLE(pr.match);
        pr.paused = pr.inflights.full();
      }
      if (this.maybeCommit()) {
        if (this._role !== 'leader') return; // stepped down: it removed itself and that committed
        this.needBroadcast = true;
      }
      // The window may have opened: send as much as it allows now.
      while (this.sendAppend(pr, false)) { /* keep filling the window */ }
      if (m.from === this.leadTransferee && pr.match === this.log.lastIndex()) {
        this.sendTimeoutNow(m.from);
      }
    }
  }

  /**
   * The highest index that may still match a follower that rejected an append at `rejected`, given
   * its hint (Raft §5.3's optimization): when we hold the follower's conflicting term, our logs agree
   * through our last entry of that term; when we do not, nothing of that term on the follower
   * matches, and none of our entries of terms above it can either.
   */
  private matchHint(rejected: number, hintIndex: number, hintTerm: number): number {
    if (hintTerm <= 0) return hintIndex - 1;
    const i = this.log.lastIndexWithTermAtMost(rejected, hintTerm);
    if (this.log.term(i) === hintTerm) return i;
    return Math.min(i, hintIndex - 1);
  }

  private handleHeartbeatResponse(m: Message): void {
    const pr = this.progress.get(m.from);
    if (!pr) {
      this.stats.ignoredUnknownSender++;
      return;
    }
    pr.recentActive = true;
    // A heartbeat round trip proves the link works: let one append through even if the window is
    // full or a probe is outstanding, so lost appends cannot stall the follower forever.
    pr.paused = false;
    if (pr.match < this.log.lastIndex() || pr.state === 'probe') this.sendAppend(pr, true);

    if (this.readOnlyMode === 'safe' && m.context !== undefined && m.context !== '') {
      const acks = this.readOnly.recvAck(m.from, m.context);
      if (acks && hasQuorum(this.conf().voters, acks)) {
        for (const rs of this.readOnly.advance(m.context)) this.readStates.push(rs);
      }
    }
  }

  /** Sends the next append (or a snapshot) to `pr`. Returns whether a message went out. */
  private sendAppend(pr: Progress, sendIfEmpty: boolean): boolean {
    if (pr.isPaused()) return false;
    const prevIndex = pr.next - 1;
    const prevTerm = this.log.term(prevIndex);
    const entries = prevTerm === undefined ? undefined : this.log.slice(pr.next, this.log.lastIndex(), this.maxMsgBytes);
    if (prevTerm === undefined || entries === undefined) return this.sendSnapshot(pr);
    if (entries.length === 0 && !sendIfEmpty) return false;
    this.send({
      type: 'app', from: this.id, to: pr.id, term: this._term,
      index: prevIndex, logTerm: prevTerm, entries, commit: this.log.committed,
    });
    pr.sentEntries(entries.length, prevIndex + entries.length);
    pr.sentCommit = this.log.committed;
    return true;
  }

  private sendSnapshot(pr: Progress): boolean {
    const meta = this.snapshotMeta;
    if (!meta) {
      // Entries were compacted without a snapshot to stand for them: nothing we can send.
      this.stats.invariantViolations++;
      return false;
    }
    this.send({ type: 'snap', from: this.id, to: pr.id, term: this._term, snapshot: { meta } });
    pr.becomeSnapshot(meta.index);
    this.stats.snapshotsSent++;
    return true;
  }

  private sendTimeoutNow(to: NodeId): void {
    this.send({ type: 'timeoutNow', from: this.id, to, term: this._term });
  }

  /** Sends new entries to every follower, and an empty append to those that have not been told the
   *  current commit index (or, after an election, have been sent nothing yet). */
  private bcastAppend(): void {
    for (const pr of this.progress.values()) {
      if (this.sendAppend(pr, pr.sentCommit < this.log.committed)) {
        while (this.sendAppend(pr, false)) { /* fill the window */ }
      }
    }
  }

  private bcastHeartbeat(context: string | undefined): void {
    for (const pr of this.progress.values()) {
      this.send({
        type: 'heartbeat', from: this.id, to: pr.id, term: this._term,
        // Never tell a follower to commit past what it is known to hold (it may hold a stale suffix).
        commit: Math.min(pr.match, this.log.committed),
        ...(context !== undefined ? { context } : {}),
      });
    }
  }

  /** Raft §5.4.2: commit the majority-matched index, but only if it is an entry of this term. */
  private maybeCommit(): boolean {
    const last = this.log.lastIndex();
    const self = Math.min(last, this.persisted);
    const mci = committedIndex(this.conf().voters, (id) => id === this.id ? self : this.progress.get(id)?.match ?? 0);
    if (mci <= this.log.committed || this.log.term(mci) !== this._term) return false;
    const hadCommittedInTerm = this.committedInCurrentTerm();
    this.log.commitTo(mci);
    if (!hadCommittedInTerm) {
      const reads = this.pendingReads;
      this.pendingReads = [];
      for (const ctx of reads) this.serveRead(ctx);
    }
    this.maybeStepDownAfterRemoval();
    return true;
  }

  /**
   * Thesis §4.2.2: a leader removed from the configuration keeps managing the cluster until that
   * configuration commits, then steps down. It hands off to an up-to-date voter at once so the
   * cluster does not sit out an election timeout.
   */
  private maybeStepDownAfterRemoval(): void {
    if (this._role !== 'leader' || this.promotable() || this.membership.hasConfEntryAfter(this.log.committed)) return;
    this.bcastAppend(); // let followers learn the new commit index before we go quiet
    let successor: Progress | undefined;
    for (const pr of this.progress.values()) {
      if (!pr.learner && pr.match === this.log.lastIndex()) {
        successor = pr;
        break;
      }
    }
    if (successor) this.sendTimeoutNow(successor.id);
    this.becomeFollower(this._term, '');
  }

  private committedInCurrentTerm(): boolean {
    return this.log.term(this.log.committed) === this._term;
  }

  // ---------------------------------------------------------------- log and membership

  private appendEntry(kind: EntryKind, data: Uint8Array): Entry {
    const e: Entry = { term: this._term, index: this.log.lastIndex() + 1, kind, data };
    this.appendToLog([e]);
    this.needBroadcast = true;
    // With a single voter the leader's own copy is a majority.
    this.maybeCommit();
    return e;
  }

  private appendToLog(entries: readonly Entry[]): void {
    const truncatedFrom = this.log.append(entries);
    if (truncatedFrom !== undefined) {
      this.persisted = Math.min(this.persisted, truncatedFrom - 1);
      this.truncatedSinceReady = Math.min(this.truncatedSinceReady, truncatedFrom - 1);
    }
    let confChanged = false;
    if (truncatedFrom !== undefined) confChanged = this.membership.truncateFrom(truncatedFrom);
    if (this.membership.append(entries)) confChanged = true;
    this.stats.malformedConfEntries = this.membership.malformed;
    if (confChanged && this._role === 'leader') this.syncProgress();
  }

  /** Leader: make progress tracking match the latest configuration. */
  private syncProgress(): void {
    const conf = this.conf();
    const members = new Set<NodeId>([...conf.voters, ...conf.learners]);
    members.delete(this.id);
    for (const id of [...this.progress.keys()]) {
      if (!members.has(id)) {
        this.progress.delete(id);
        if (this.leadTransferee === id) this.leadTransferee = '';
      }
    }
    for (const id of members) {
      const learner = conf.learners.includes(id);
      const pr = this.progress.get(id);
      if (pr) {
        pr.learner = learner;
      } else {
        const fresh = new Progress(id, this.log.lastIndex() + 1, this.maxInflight, learner);
        // A newcomer gets a full check-quorum window before it can count as unresponsive.
        fresh.recentActive = true;
        this.progress.set(id, fresh);
      }
    }
  }

  // ---------------------------------------------------------------- client requests

  /** Appends a normal entry (leader only) and queues it for every follower. */
  propose(data: Uint8Array): ProposeResult {
    this.assertCanPropose();
    if (data.byteLength > this.maxEntryBytes) throw new ProposalTooLargeError(data.byteLength, this.maxEntryBytes);
    const e = this.appendEntry('normal', data);
    return { index: e.index, term: e.term };
  }

  /**
   * Appends a one-server membership change (thesis §4.1). It takes effect on every node as soon as
   * the node appends it; only one may be uncommitted at a time.
   */
  proposeConfChange(cc: ConfChange): ProposeResult {
    this.assertCanPropose();
    if (this.membership.hasConfEntryAfter(this.log.committed)) throw new ConfChangeInProgressError();
    // Thesis §4.1 (and its erratum): without this, a change appended by a new leader can conflict
    // with an uncommitted change from an earlier term and two disjoint majorities can form.
    if (!this.committedInCurrentTerm()) throw new LeaderNotReadyError();
    const problem = confChangeProblem(this.conf(), cc);
    if (problem !== undefined) throw new InvalidConfChangeError(problem);
    const clean: ConfChange = { type: cc.type, node: cc.node, ...(cc.address !== undefined ? { address: cc.address } : {}) };
    const e = this.appendEntry('conf', encodeConfChange(clean));
    return { index: e.index, term: e.term };
  }

  private assertCanPropose(): void {
    if (this._role !== 'leader') throw new NotLeaderError(this.lead);
    if (this.leadTransferee !== '') throw new LeadershipTransferInProgressError(this.leadTransferee);
  }

  /**
   * Thesis §6.4 ReadIndex: the answer appears in ready().readStates as {index, context}; the read
   * is linearizable once the state machine has applied `index`.
   */
  readIndex(context: string): void {
    if (this._role !== 'leader') throw new NotLeaderError(this.lead);
    if (!this.committedInCurrentTerm()) {
      // Step 1: until an entry of this term commits, our commit index may lag the true one.
      this.pendingReads.push(context);
      return;
    }
    this.serveRead(context);
  }

  private serveRead(context: string): void {
    const voters = this.conf().voters;
    if ((voters.length === 1 && voters[0] === this.id) || this.readOnlyMode === 'lease') {
      // Alone, we are trivially still the leader; with a lease (thesis §6.4.1), check-quorum
      // guarantees no other leader exists within the election timeout.
      this.readStates.push({ index: this.log.committed, context });
      return;
    }
    this.readOnly.add(this.log.committed, context, this.id);
    this.bcastHeartbeat(context);
  }

  /** Thesis §3.10: hand leadership to `to`. Proposals are refused until it completes or times out. */
  transferLeader(to: NodeId): void {
    if (this._role !== 'leader') throw new NotLeaderError(this.lead);
    if (to === this.id) {
      // We are already the leader: the caller's goal holds; stop any transfer away from us.
      this.leadTransferee = '';
      return;
    }
    const pr = this.progress.get(to);
    if (!pr || pr.learner) {
      throw new InvalidTransferTargetError(to, pr ? 'it is a learner, and learners cannot lead' : 'it is not a member of the current configuration');
    }
    if (this.leadTransferee === to) return;
    this.leadTransferee = to;
    // The transfer must finish within an election timeout (checked in tickHeartbeat).
    this.electionElapsed = 0;
    if (pr.match === this.log.lastIndex()) this.sendTimeoutNow(to);
    else this.sendAppend(pr, true);
  }

  // ---------------------------------------------------------------- snapshots

  /**
   * The driver saved a snapshot at meta.index (≤ applied). The leader sends it to followers that
   * need entries ≤ compactTo, which are dropped from memory here.
   */
  snapshotTaken(meta: SnapshotMeta, compactTo: number): void {
    if (!Number.isSafeInteger(meta.index) || meta.index < 0) throw new InvalidSnapshotError(`index ${meta.index} is not a non-negative integer`);
    if (meta.index > this.applied) throw new InvalidSnapshotError(`index ${meta.index} is beyond the applied index ${this.applied}`);
    if (!Number.isSafeInteger(compactTo) || compactTo > meta.index) throw new InvalidSnapshotError(`compactTo ${compactTo} must be an integer ≤ the snapshot index ${meta.index}`);
    const t = this.log.term(meta.index);
    if (t !== undefined && t !== meta.term) throw new InvalidSnapshotError(`term ${meta.term} at index ${meta.index} does not match the log's term ${t}`);
    if (!this.snapshotMeta || meta.index >= this.snapshotMeta.index) this.snapshotMeta = meta;
    if (compactTo > this.log.firstIndex() - 1) {
      this.log.compact(compactTo);
      this.membership.compact(compactTo);
    }
  }

  // ---------------------------------------------------------------- Ready hand-off

  private flush(): void {
    if (this.needBroadcast && this._role === 'leader') {
      this.needBroadcast = false;
      this.bcastAppend();
    }
  }

  private hardState(): HardState {
    return { term: this._term, vote: this.vote, commit: this.log.committed };
  }

  private softState(): SoftState {
    return { role: this._role, leader: this.lead };
  }

  hasReady(): boolean {
    this.flush();
    const hs = this.hardState();
    const ss = this.softState();
    return this.outbox.length > 0 || this.readStates.length > 0 || this.pendingSnapshot !== undefined
      || this.log.unstableFrom <= this.log.lastIndex() || this.applying < this.log.committed
      || hs.term !== this.prevHard.term || hs.vote !== this.prevHard.vote || hs.commit !== this.prevHard.commit
      || ss.role !== this.prevSoft.role || ss.leader !== this.prevSoft.leader;
  }

  /**
   * Collects the work for the driver (see Ready in types.ts) and marks it handed out: the next
   * ready() carries only what happened after this one. Call advance(rd) once the work is done.
   */
  ready(): Ready {
    this.flush();
    const entries = this.log.unstableEntries();
    this.log.markHandedOut(this.log.lastIndex());
    this.truncatedSinceReady = Infinity;

    // Committed entries go out only once handed out for persisting (now or earlier), and in
    // bounded batches.
    const committed: Entry[] = [];
    const hi = Math.min(this.log.committed, this.log.unstableFrom - 1);
    let bytes = 0;
    for (let i = this.applying + 1; i <= hi && committed.length < MAX_COMMITTED_ENTRIES_PER_READY; i++) {
      const e = this.log.entry(i);
      if (!e) break;
      bytes += entrySize(e);
      if (committed.length > 0 && bytes > MAX_COMMITTED_BYTES_PER_READY) break;
      committed.push(e);
    }

    const hs = this.hardState();
    const ss = this.softState();
    const hardChanged = hs.term !== this.prevHard.term || hs.vote !== this.prevHard.vote || hs.commit !== this.prevHard.commit;
    const rd: Ready = {
      entries,
      messages: this.outbox,
      committed,
      readStates: this.readStates,
      mustSync: entries.length > 0 || hs.term !== this.prevHard.term || hs.vote !== this.prevHard.vote || this.pendingSnapshot !== undefined,
    };
    if (hardChanged) rd.hardState = hs;
    if (ss.role !== this.prevSoft.role || ss.leader !== this.prevSoft.leader) rd.softState = ss;
    if (this.pendingSnapshot) rd.snapshot = this.pendingSnapshot;

    this.prevHard = hs;
    this.prevSoft = ss;
    this.outbox = [];
    this.readStates = [];
    this.pendingSnapshot = undefined;
    if (committed.length > 0) this.applying = committed[committed.length - 1]!.index;
    return rd;
  }

  /** The driver finished the Ready: its committed entries (and snapshot) are applied. */
  advance(rd: Ready): void {
    if (rd.snapshot) {
      this.applied = Math.max(this.applied, rd.snapshot.meta.index);
      this.persisted = Math.max(this.persisted, Math.min(rd.snapshot.meta.index, this.truncatedSinceReady));
    }
    const last = rd.committed[rd.committed.length - 1];
    if (last) this.applied = Math.max(this.applied, last.index);
    const lastPersisted = rd.entries[rd.entries.length - 1];
    if (lastPersisted) {
      this.persisted = Math.max(this.persisted, Math.min(lastPersisted.index, this.truncatedSinceReady, this.log.lastIndex()));
      // The leader's own durable copy may complete a quorum (always so with a single voter).
      if (this._role === 'leader' && this.maybeCommit()) this.needBroadcast = true;
    }
  }

  // ---------------------------------------------------------------- introspection

  status(): CoreStatus {
    const s: CoreStatus = {
      id: this.id,
      term: this._term,
      vote: this.vote,
      role: this._role,
      leader: this.lead,
      commit: this.log.committed,
      applied: this.applied,
      lastIndex: this.log.lastIndex(),
      firstIndex: this.log.firstIndex(),
      conf: cloneConf(this.conf()),
    };
    if (this._role === 'leader') {
      const conf = this.conf();
      const progress = [...this.progress.values()].map((p) => p.toStatus());
      if (isMember(conf, this.id)) {
        const last = this.log.lastIndex();
        progress.unshift({ id: this.id, match: last, next: last + 1, state: 'replicate', learner: !conf.voters.includes(this.id), recentActive: true });
      }
      s.progress = progress;
      if (this.leadTransferee !== '') s.leadTransferee = this.leadTransferee;
    }
    return s;
  }

  private send(m: Message): void {
    this.outbox.push(m);
  }
}

function validateConfig(c: CoreConfig): CoreConfig {
  if (typeof c !== 'object' || c === null) throw new InvalidConfigError('config', 'must be an object');
  if (typeof c.id !== 'string' || c.id === '') throw new InvalidConfigError('id', 'must be a non-empty node id');
  const positiveInt = (field: string, v: unknown) => {
    if (!Number.isSafeInteger(v) || (v as number) < 1) throw new InvalidConfigError(field, `is ${String(v)}; it must be a positive integer`);
  };
  positiveInt('electionTicks', c.electionTicks);
  positiveInt('heartbeatTicks', c.heartbeatTicks);
  if (c.heartbeatTicks >= c.electionTicks) {
    throw new InvalidConfigError('heartbeatTicks', `is ${c.heartbeatTicks}; it must be less than electionTicks (${c.electionTicks})`);
  }
  if (typeof c.random !== 'function') throw new InvalidConfigError('random', 'must be a function returning a number in [0, 1)');
  if (c.maxInflight !== undefined) positiveInt('maxInflight', c.maxInflight);
  if (c.maxMsgBytes !== undefined) positiveInt('maxMsgBytes', c.maxMsgBytes);
  if (c.maxEntryBytes !== undefined) positiveInt('maxEntryBytes', c.maxEntryBytes);
  if (c.readOnly !== undefined && c.readOnly !== 'safe' && c.readOnly !== 'lease') {
    throw new InvalidConfigError('readOnly', `is ${JSON.stringify(c.readOnly)}; it must be 'safe' or 'lease'`);
  }
  if (c.readOnly === 'lease' && c.checkQuorum === false) {
    throw new InvalidConfigError('readOnly', "is 'lease', which is only safe with checkQuorum enabled (thesis §6.4.1)");
  }
  if (c.initial !== undefined) {
    const hs = c.initial.hardState;
    if (!hs || !Number.isSafeInteger(hs.term) || hs.term < 0 || !Number.isSafeInteger(hs.commit) || hs.commit < 0 || typeof hs.vote !== 'string') {
      throw new InvalidConfigError('initial.hardState', `is ${JSON.stringify(hs)}; it needs non-negative integer term and commit and a string vote`);
    }
    const ents = c.initial.entries;
    if (!Array.isArray(ents)) throw new InvalidConfigError('initial.entries', 'must be an array');
    for (let i = 1; i < ents.length; i++) {
      if (ents[i]!.index !== ents[i - 1]!.index + 1) {
        throw new InvalidConfigError('initial.entries', `are not contiguous: index ${ents[i]!.index} follows ${ents[i - 1]!.index}`);
      }
      if (ents[i]!.term < ents[i - 1]!.term) {
        throw new InvalidConfigError('initial.entries', `have decreasing terms at index ${ents[i]!.index}`);
      }
    }
  }
  return c;
}
