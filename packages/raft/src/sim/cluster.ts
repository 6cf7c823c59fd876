// A simulated Raft cluster driven in discrete steps. Each step: the fault schedule may act, due
// messages are delivered (or lost to a partition), every live node ticks once, clients invoke and
// time out operations, an operator may change membership or move leadership, and the safety
// checker runs. Every node is a real RaftCore; everything around it (disk, network, clocks,
// clients) is simulated and draws its randomness from one seed.
//
// The driver executes the Ready plan RaftNode ships (readyPlan.ts: start the write, apply while it
// is in flight, await it, send, advance), draining the core after every call into it so the
// checker sees each state the core passes through.
import { RaftCore, type CoreStats } from '../core/raft.ts';
import { decodeConfChange, encodeConfChange } from '../core/types.ts';
import type { ConfChange, ConfState, Entry, HardState, Message, NodeId, Ready, Role, Snapshot } from '../core/types.ts';
import { planReady, type ReadyStep } from '../readyPlan.ts';
import { NotLeaderError, RaftError } from '../errors.ts';
import { HistoryRecorder, type OpId } from './history.ts';
import { nextConf, SafetyChecker, type Violation, type ViolationKind } from './invariants.ts';
import { decodeCommand, encodeCommand, KvStateMachine, type KvInput, type KvOutput } from './kv.ts';
import { SimNetwork, type NetworkFaults } from './network.ts';
import { Rng } from './rng.ts';
import { SimStorage, StorageContractError, termAt, lastIndexOf, type StorageBug } from './storage.ts';
import { Trace, describeMessage } from './trace.ts';

/** Deliberate bugs outside the core, to prove the checkers catch what they cause. */
export type SimBug =
  | StorageBug
  /** The driver answers reads from its local state machine on whatever node the client reached,
   *  without ReadIndex (the classic stale-read bug: followers and deposed leaders lag). */
  | 'localReads'
  /** The quiet phase never heals the network: every node stays cut off (liveness must fail). */
  | 'neverHeal'
  /** The Ready plan sends votes and append acknowledgements before the write is durable (a driver
   *  that reorders readyPlan.ts's steps; durability or election safety must fail). */
  | 'sendBeforeSync';

/** Everything that shapes one run. `randomClusterConfig` draws one from a seed. */
export interface ClusterConfig {
  seed: number;
  /** Steps with faults; then `quietSteps` without faults (clients still active); then up to
   *  `drainSteps` without new client operations, within which the cluster must converge. */
  faultSteps: number;
  quietSteps: number;
  drainSteps: number;
  initialVoters: number;
  /** How many servers beyond the initial voters may run at once (the operator adds fresh ones). */
  spareNodes: number;
  electionTicks: number;
  heartbeatTicks: number;
  preVote: boolean;
  checkQuorum: boolean;
  readOnly: 'safe' | 'lease';
  maxInflight: number;
  maxMsgBytes: number;
  /** Steps a synced write (Ready with mustSync) takes to reach the disk (0 = at once). Meanwhile the core keeps
   *  running, and a leader's replication traffic goes out before its own write completes. */
  fsyncSteps: number;
  /** Take a snapshot every this many applied entries; keep up to `snapshotTrail` entries below it. */
  snapshotEvery: number;
  snapshotTrail: number;
  network: NetworkFaults;
  clients: number;
  keys: number;
  /** Steps a client waits for an answer before giving up (the outcome becomes unknown). */
  clientTimeout: number;
  /** Fraction of reads served by ReadIndex (the rest go through the log). */
  readIndexShare: number;
  /** Per-step probabilities of fault events (all 0 = a fault-free run). */
  rates: FaultRates;
  bug?: SimBug;
  /** Trace events kept for a failure report. */
  traceKeep: number;
}

export interface FaultRates {
  partition: number;
  oneWay: number;
  isolateLeader: number;
  heal: number;
  crash: number;
  /** Per down node per step. */
  restart: number;
  /** A node freezes (GC pause, VM migration) for a while: no ticks, messages wait for it. */
  pause: number;
  membership: number;
  transfer: number;
  /** Change the network's loss/duplication/delay for a while. */
  weather: number;
}

export const NO_FAULTS: FaultRates = {
  partition: 0, oneWay: 0, isolateLeader: 0, heal: 0, crash: 0, restart: 0, pause: 0, membership: 0, transfer: 0, weather: 0,
};

/** A config drawn from the seed: cluster shape, timing, flow-control limits and fault mix vary. */
export function randomClusterConfig(seed: number, opts: {
  faultSteps: number; quietSteps: number; drainSteps: number; faults: boolean; bug?: SimBug; traceKeep?: number; rates?: Partial<FaultRates>;
  readOnly?: 'safe' | 'lease';
}): ClusterConfig {
  const r = new Rng(seed).fork('config');
  const electionTicks = r.pick([6, 8, 10]);
  // Lease reads are only allowed with check-quorum (thesis §6.4.1).
  const checkQuorum = r.chance(0.8) || opts.readOnly === 'lease';
  const snapshotEvery = r.pick([8, 16, 32, 64]);
  const faults = opts.faults;
  // Without pre-vote, a voter whose log predates the current configuration runs its term ahead of
  // the candidates that need its vote; they catch up only because stale vote requests are answered
  // with the newer term (SIM-FINDINGS.md, F1). Both are drawn together here on purpose.
  const preVote = r.chance(0.8);
  const membership = r.pick([0, 0.01, 0.02]);
  return {
    seed,
    faultSteps: opts.faultSteps,
    quietSteps: opts.quietSteps,
    drainSteps: opts.drainSteps,
    initialVoters: r.pick([1, 3, 3, 3, 5, 5]),
    spareNodes: r.pick([0, 1, 2, 2]),
    electionTicks,
    heartbeatTicks: r.pick([1, 1, 2]),
    preVote,
    checkQuorum,
    readOnly: opts.readOnly ?? 'safe',
    maxInflight: r.pick([2, 4, 256]),
    maxMsgBytes: r.pick([150, 600, 1 << 20]),
    // Raft needs broadcast time ≪ election timeout (§5.6); a round trip that includes an fsync on
    // each side must stay well inside electionTicks even with the slowest links.
    fsyncSteps: r.pick([0, 0, 1, electionTicks >= 10 ? 2 : 1]),
    snapshotEvery,
    snapshotTrail: r.int(snapshotEvery + 1),
    network: faults
      ? { lossRate: r.pick([0, 0.01, 0.05, 0.1]), duplicateRate: r.pick([0, 0.01, 0.05]), minDelay: 1, maxDelay: r.pick([1, 2, 3, 5]), reorderRate: r.pick([0, 0.02, 0.2, 1]) }
      : { lossRate: 0, duplicateRate: 0, minDelay: 1, maxDelay: 2, reorderRate: 0 },
    clients: r.range(2, 4),
    keys: r.range(2, 4),
    clientTimeout: electionTicks * r.pick([4, 8]),
    readIndexShare: r.pick([0, 0.5, 1]),
    rates: faults
      ? {
        partition: 0.006, oneWay: 0.006, isolateLeader: 0.004, heal: 0.02, crash: 0.006, restart: 0.03, pause: 0.004,
        membership, transfer: r.pick([0, 0.005, 0.01]), weather: 0.005,
        ...opts.rates,
      }
      : NO_FAULTS,
    bug: opts.bug,
    traceKeep: opts.traceKeep ?? 400,
  };
}

type NodeState = 'never' | 'up' | 'down' | 'removed';

interface PendingProposal {
  opId: OpId;
  cmdId: string;
  client: SimClient;
  index: number;
  term: number;
}

interface PendingRead {
  opId: OpId;
  client: SimClient;
  key: string;
  /** Set once the core answered with a read state. */
  index?: number;
}

interface SimClient {
  id: number;
  leaderHint: NodeId | '';
  /** Next step it may invoke an operation. */
  nextAt: number;
  busy?: { opId: OpId; node: NodeId; deadline: number; input: KvInput; ctx?: string; cmdId?: string };
}

class SimNode {
  readonly id: NodeId;
  state: NodeState = 'never';
  storage: SimStorage;
  core: RaftCore | undefined;
  kv = new KvStateMachine();
  /** Highest index applied to `kv` (volatile; rebuilt from the snapshot on restart). */
  applied = 0;
  /** Membership as of `applied`, for snapshot metadata. */
  conf: ConfState = { voters: [], learners: [] };
  snapshotIndex = 0;
  /** Commit index seen in this incarnation's hard states (must never go down). */
  commit = 0;
  lastRole: Role = 'follower';
  lastTerm = 0;
  /** Frozen (no ticks, no message handling) until this step. */
  pausedUntil = 0;
  /** A Ready whose plan waits at step `at` for a write still on its way to the disk (fsync latency). */
  inflight: { rd: Ready; steps: ReadyStep[]; at: number; doneAt: number } | undefined;
  incarnation = 0;
  /** Client proposals waiting on this node, by log index. */
  proposals = new Map<number, PendingProposal[]>();
  reads = new Map<string, PendingRead>();

  constructor(id: NodeId, bug: StorageBug | undefined) {
    this.id = id;
    this.storage = new SimStorage(bug);
  }
}

function cloneMessage(m: Message): Message {
  return { ...m };
}

export interface ClusterStats {
  steps: number;
  leadersElected: number;
  maxTerm: number;
  committed: number;
  crashes: number;
  restarts: number;
  partitions: number;
  confChanges: number;
  confChangesRefused: number;
  transfers: number;
  snapshotsTaken: number;
  snapshotsInstalled: number;
  proposalsRefused: number;
  pauses: number;
  /** Snap messages whose snapshot the driver had already replaced (see send()). */
  staleSnapshotsDropped: number;
  /** Committed entries applied while the node's own write was still in flight (readyPlan.ts). */
  appliedWhileWriting: number;
  /** RaftCore.stats summed over every core of the run (coverage: which protocol paths ran). */
  core: Record<string, number>;
  /** Log suffixes overwritten, and unsynced writes lost in crashes. */
  disk: { truncations: number; lostWrites: number };
  messages: SimNetwork['stats'];
  ops: HistoryRecorder<KvInput, KvOutput>['counts'];
}

export class SimCluster {
  readonly cfg: ClusterConfig;
  readonly checker = new SafetyChecker(decodeConfChange);
  readonly history = new HistoryRecorder<KvInput, KvOutput>();
  readonly trace: Trace;
  readonly network: SimNetwork;
  readonly nodes = new Map<NodeId, SimNode>();
  /** Every server id so far; fresh servers get new ones (an id that has run is never reused). */
  private readonly ids: NodeId[];
  private readonly rng: Rng;
  private readonly faultRng: Rng;
  private readonly clientRng: Rng;
  private readonly clients: SimClient[] = [];
  private readonly keys: string[];
  now = 0;
  private readonly stats = {
    leadersElected: 0, crashes: 0, restarts: 0, partitions: 0, confChanges: 0, confChangesRefused: 0,
    transfers: 0, snapshotsTaken: 0, snapshotsInstalled: 0, proposalsRefused: 0, pauses: 0, staleSnapshotsDropped: 0,
    appliedWhileWriting: 0,
  };
  /** Committed membership the operator last acted on (decommissions follow it). */
  private operatorConf: ConfState = { voters: [], learners: [] };
  /** index → state machine bytes, from the first snapshot taken there (every node must agree). */
  private readonly snapshotBytes = new Map<number, string>();
  private opSeq = 0;
  private confPending = false;
  /** Core counters of cores that have stopped (crashed, decommissioned), summed by name. */
  private readonly coreStats: Record<string, number> = {};
  /** Per node: core-reported invariant violations already turned into a report. */
  private readonly coreViolationsSeen = new Map<string, number>();
  private stormUntil = 0;
  private readonly calmNetwork: NetworkFaults;

  constructor(cfg: ClusterConfig) {
    this.cfg = cfg;
    this.rng = new Rng(cfg.seed);
    this.faultRng = this.rng.fork('faults');
    this.clientRng = this.rng.fork('clients');
    this.network = new SimNetwork(this.rng.fork('network'), { ...cfg.network });
    this.calmNetwork = { ...cfg.network };
    this.trace = new Trace(cfg.traceKeep);
    this.ids = Array.from({ length: cfg.initialVoters }, (_, i) => `n${i + 1}`);
    this.keys = Array.from({ length: cfg.keys }, (_, i) => `k${i}`);
    for (const id of this.ids) this.nodes.set(id, new SimNode(id, this.storageBug()));

    // Bootstrap (config.ts): one addVoter conf entry per initial member at term 1, commit = n.
    const voters = this.ids.slice();
    const encode = (node: string) => encodeConfChange({ type: 'addVoter', node, address: 'sim' });
    for (const id of voters) {
      const n = this.nodes.get(id)!;
      n.storage.bootstrap(voters, encode);
      this.start(n);
    }
    this.checker.bootstrap(this.nodes.get(voters[0]!)!.storage.current.entries);
    this.operatorConf = this.checker.committedConf();
    for (let i = 0; i < cfg.clients; i++) this.clients.push({ id: i, leaderHint: '', nextAt: 0 });
  }

  get violations(): readonly Violation[] {
    return this.checker.violations;
  }

  private fail(kind: ViolationKind, message: string): void {
    this.checker.fail(kind, message);
    this.trace.add(this.now, `VIOLATION ${kind}: ${message}`);
  }

  // ---------------------------------------------------------------- node lifecycle

  /** Starts (or restarts) a node from its disk: volatile state is rebuilt from the durable snapshot. */
  private start(n: SimNode): void {
    n.incarnation++;
    const init = n.storage.initialState();
    const snap = n.storage.durable.snapshot;
    n.kv = new KvStateMachine();
    if (snap) n.kv.restore(snap.data);
    n.applied = snap?.meta.index ?? 0;
    n.snapshotIndex = n.applied;
    n.conf = snap ? snap.meta.conf : { voters: [], learners: [] };
    // The core starts from the durable commit index (at least the snapshot's); Readies report changes.
    n.commit = Math.max(init.hardState.commit, init.snapshot?.index ?? 0);
    n.proposals.clear();
    n.reads.clear();
    const random = this.rng.fork(`core-${n.id}-${n.incarnation}`);
    try {
      n.core = new RaftCore({
        id: n.id,
        electionTicks: this.cfg.electionTicks,
        heartbeatTicks: this.cfg.heartbeatTicks,
        random: () => random.float(),
        preVote: this.cfg.preVote,
        checkQuorum: this.cfg.checkQuorum,
        readOnly: this.cfg.readOnly,
        maxInflight: this.cfg.maxInflight,
        maxMsgBytes: this.cfg.maxMsgBytes,
        initial: init,
      });
    } catch (err) {
      this.fail('crash', `${n.id} could not restart from its own disk: ${(err as Error).stack ?? err}`);
      n.core = undefined;
      n.state = 'down';
      return;
    }
    n.state = 'up';
    n.pausedUntil = 0;
    n.lastRole = 'follower';
    n.lastTerm = n.core.term;
    this.trace.add(this.now, `start ${n.id} #${n.incarnation} term=${init.hardState.term} vote=${init.hardState.vote || '-'} commit=${init.hardState.commit} snap=${init.snapshot?.index ?? 0} log=${init.entries.length ? `${init.entries[0]!.index}..${init.entries[init.entries.length - 1]!.index}` : 'empty'}`);
  }

  private addCoreStats(s: CoreStats): void {
    for (const [k, v] of Object.entries(s)) this.coreStats[k] = (this.coreStats[k] ?? 0) + v;
  }

  /** Power loss: unsynced writes may vanish, every volatile thing is gone. */
  private crash(n: SimNode): void {
    n.storage.crash(this.faultRng);
    this.stopVolatile(n, 'crash');
    n.state = 'down';
    this.stats.crashes++;
  }

  private stopVolatile(n: SimNode, why: string): void {
    if (n.core) this.addCoreStats(n.core.stats);
    n.core = undefined;
    n.inflight = undefined;
    n.storage.dropStaged();
    // Clients waiting on this node never hear back.
    for (const list of n.proposals.values()) for (const p of list) this.giveUp(p.client);
    for (const r of n.reads.values()) this.giveUp(r.client);
    n.proposals.clear();
    n.reads.clear();
    this.trace.add(this.now, `${why} ${n.id}`);
  }

  // ---------------------------------------------------------------- the Ready loop

  /** Calls into one node's core, then drains its Ready; a throw is a core bug. */
  private call(n: SimNode, what: string, fn: (core: RaftCore) => void): void {
    const core = n.core;
    if (!core) return;
    try {
      fn(core);
    } catch (err) {
      this.fail('crash', `${n.id}.${what} threw: ${(err as Error).stack ?? err}`);
      return;
    }
    this.drain(n);
  }

  private drain(n: SimNode): void {
    if (n.core) this.observeLeaderCommit(n, n.core);
    // While a Ready is being persisted the driver takes no other (one Ready at a time, as in etcd);
    // the core keeps stepping messages and ticking meanwhile.
    for (let rounds = 0; n.core && !n.inflight && n.core.hasReady(); rounds++) {
      if (rounds > 50) {
        this.fail('contract', `${n.id}.hasReady() stayed true after 50 Ready rounds`);
        return;
      }
      // advance() may have moved a leader's commit (its own write completing a quorum).
      this.observeLeaderCommit(n, n.core);
      let rd: Ready;
      try {
        rd = n.core.ready();
      } catch (err) {
        this.fail('crash', `${n.id}.ready() threw: ${(err as Error).stack ?? err}`);
        return;
      }
      this.takeReady(n, n.core, rd);
    }
    if (n.core) this.observeRole(n, n.core);
  }

  /**
   * Checks a Ready against the contract, then executes the Ready plan (readyPlan.ts): the same steps
   * in the same order as RaftNode. With fsync latency, a step that waits for the disk
   * (installSnapshot, awaitSave) suspends the plan until the write completes; the core keeps
   * stepping messages and ticking meanwhile, and the driver takes no other Ready.
   */
  private takeReady(n: SimNode, core: RaftCore, rd: Ready): void {
    const prevHard = n.storage.view().hardState;
    const voteChanged = rd.hardState !== undefined && (rd.hardState.term !== prevHard.term || rd.hardState.vote !== prevHard.vote);
    if (!rd.mustSync && (rd.entries.length > 0 || rd.snapshot !== undefined || voteChanged)) {
      this.fail('contract', `${n.id}: Ready has ${rd.entries.length} entries${rd.snapshot ? ', a snapshot' : ''}${voteChanged ? ', a term/vote change' : ''} but mustSync is false`);
    }
    if (rd.hardState && rd.hardState.term < prevHard.term) {
      this.fail('contract', `${n.id}: hard state term went back from ${prevHard.term} to ${rd.hardState.term}`);
    }
    if (rd.snapshot) this.checker.observeSnapshot(n.id, rd.snapshot.meta);
    // The hard state last written: nothing is staged between Readies, so the view is the disk's.
    let steps = planReady(rd, prevHard);
    if (this.cfg.bug === 'sendBeforeSync') {
      const late = steps.findIndex((s) => s.kind === 'send' && !s.early);
      const save = steps.findIndex((s) => s.kind === 'startSave');
      if (late > save && save >= 0) steps = [...steps.slice(0, save + 1), steps[late]!, ...steps.slice(save + 1, late), ...steps.slice(late + 1)];
    }
    this.runPlan(n, core, rd, steps, 0);
  }

  /** Runs plan steps from `from` until the end or until one waits for the disk. */
  private runPlan(n: SimNode, core: RaftCore, rd: Ready, steps: ReadyStep[], from: number): void {
    for (let i = from; i < steps.length; i++) {
      const step = steps[i]!;
      switch (step.kind) {
        case 'send':
          this.send(n, step.messages);
          break;
        case 'installSnapshot':
          // Written and synced (FileSnapshotStore fsyncs, the log reset is synced) before the log write.
          if (!this.stage(n, { snapshot: step.snapshot, entries: [] })) return;
          if (this.cfg.fsyncSteps > 0) {
            n.inflight = { rd, steps, at: i, doneAt: this.now + this.cfg.fsyncSteps };
            return;
          }
          this.completeStep(n, step);
          break;
        case 'startSave':
          if (!this.startSave(n, core, step)) return;
          break;
        case 'apply':
          // Counted: the order that ships applies while the node's own write is still in flight.
          if (n.storage.hasStaged()) this.stats.appliedWhileWriting += step.entries.length;
          for (const e of step.entries) this.applyEntry(n, e);
          // RaftNode's waitApplied resolves reads whose index is now applied.
          this.serveReads(n);
          break;
        case 'awaitSave': {
          // Only a write that must be synced waits for the disk; a buffered write (e.g. a
          // commit-index update) returns at once.
          if (rd.mustSync && this.cfg.fsyncSteps > 0) {
            n.inflight = { rd, steps, at: i, doneAt: this.now + this.cfg.fsyncSteps };
            return;
          }
          this.completeStep(n, step, rd);
          break;
        }
        case 'readStates':
          for (const rs of step.readStates) {
            const r = n.reads.get(rs.context);
            if (r) r.index = rs.index;
          }
          this.serveReads(n);
          break;
        case 'advance':
          try {
            core.advance(rd);
          } catch (err) {
            this.fail('crash', `${n.id}.advance() threw: ${(err as Error).stack ?? err}`);
            return;
          }
          if (n.applied - n.snapshotIndex >= this.cfg.snapshotEvery) this.takeSnapshot(n, core);
          break;
      }
    }
  }

  /** The disk finished the write a suspended plan waits for: complete it and run the rest. */
  private resumePlan(n: SimNode, core: RaftCore): void {
    const f = n.inflight!;
    n.inflight = undefined;
    this.completeStep(n, f.steps[f.at]!, f.rd);
    this.runPlan(n, core, f.rd, f.steps, f.at + 1);
  }

  private stage(n: SimNode, w: { snapshot?: Snapshot; entries: Entry[]; hardState?: HardState }): boolean {
    try {
      n.storage.stage(w);
      return true;
    } catch (err) {
      if (err instanceof StorageContractError) this.fail('contract', `${n.id}: ${err.message}`);
      else throw err;
      return false;
    }
  }

  /** startSave: the write is checked and staged (the node's view of its log includes it at once). */
  private startSave(n: SimNode, core: RaftCore, step: Extract<ReadyStep, { kind: 'startSave' }>): boolean {
    const st = n.storage;
    const before = st.view();
    const prevTerm = step.entries.length > 0 ? termAt(before, step.entries[0]!.index - 1) : undefined;
    if (!this.stage(n, { entries: step.entries, hardState: step.hardState })) return false;
    if (step.entries.length > 0) {
      this.checker.observePersist(n.id, step.entries, prevTerm);
      this.trace.add(this.now, `${n.id} persist ${step.entries[0]!.index}..${step.entries[step.entries.length - 1]!.index} t${step.entries[step.entries.length - 1]!.term}`);
    }
    if (step.hardState) {
      const hs = step.hardState;
      const view = st.view();
      if (hs.commit < n.commit) this.fail('contract', `${n.id}: commit index went back from ${n.commit} to ${hs.commit}`);
      if (hs.commit > lastIndexOf(view)) this.fail('contract', `${n.id}: commit ${hs.commit} beyond its last index ${lastIndexOf(view)}`);
      n.commit = hs.commit;
      // Every leader commit was recorded right after the call that made it (observeLeaderCommit);
      // a commit index nobody recorded came from somewhere else.
      if (hs.commit > this.checker.committedIndex()) {
        this.fail('stateMachineSafety', `${n.id} (${core.role}, term ${core.term}) believes index ${hs.commit} is committed, but no leader has committed beyond ${this.checker.committedIndex()}`);
      }
    }
    return true;
  }

  /** The staged write of an installSnapshot or awaitSave step reached the disk. */
  private completeStep(n: SimNode, step: ReadyStep, rd?: Ready): void {
    if (step.kind === 'installSnapshot') {
      n.storage.completeStaged(true);
      const meta = step.snapshot.meta;
      this.trace.add(this.now, `${n.id} installs snapshot ${meta.index}/${meta.term} voters=${meta.conf.voters.join(',')} learners=${meta.conf.learners.join(',')}`);
      try {
        n.kv.restore(step.snapshot.data);
      } catch (err) {
        this.fail('contract', `${n.id}: snapshot ${meta.index}/${meta.term} data does not decode: ${(err as Error).message}`);
      }
      if (meta.index <= n.applied) {
        this.fail('contract', `${n.id}: handed snapshot ${meta.index} at or below its applied index ${n.applied}`);
      }
      n.applied = Math.max(n.applied, meta.index);
      n.snapshotIndex = meta.index;
      n.conf = meta.conf;
      this.stats.snapshotsInstalled++;
      // Proposals whose slot the snapshot skipped over can no longer be matched to an outcome.
      for (const [index, list] of n.proposals) {
        if (index > meta.index) continue;
        for (const p of list) this.giveUp(p.client);
        n.proposals.delete(index);
      }
      return;
    }
    if (step.kind !== 'awaitSave' || !rd) throw new Error(`completeStep: ${step.kind} does not wait for the disk`);
    n.storage.completeStaged(rd.mustSync);
    if (rd.hardState && rd.hardState.vote !== '') {
      // Raft §5.2: one vote per term, remembered across restarts. The ledger lives with the disk
      // and records a vote once written (a vote lost with an unfinished write was never cast:
      // its message goes out only after the write).
      const hs = rd.hardState;
      const earlier = n.storage.votes.get(hs.term);
      if (earlier === undefined) n.storage.votes.set(hs.term, hs.vote);
      else if (earlier !== hs.vote) this.fail('electionSafety', `${n.id} voted for ${earlier} and then for ${hs.vote} in term ${hs.term}`);
    }
  }

  private send(n: SimNode, messages: readonly Message[]): void {
    for (const m of messages) {
      const out = cloneMessage(m);
      if (out.type === 'snap') {
        // The core names the snapshot; the driver attaches the bytes of the one it holds.
        const snap = n.storage.current.snapshot;
        const meta = out.snapshot?.meta;
        if (!meta) {
          this.fail('contract', `${n.id} sent a snap message without snapshot metadata`);
          continue;
        }
        if (!snap || snap.meta.index < meta.index || (snap.meta.index === meta.index && snap.meta.term !== meta.term)) {
          this.fail('contract', `${n.id} sent a snapshot ${meta.index}/${meta.term} newer than any the driver holds (${snap ? `${snap.meta.index}/${snap.meta.term}` : 'none'})`);
          continue;
        }
        if (snap.meta.index !== meta.index) {
          // The core queued this message before the driver replaced that snapshot with a newer one
          // (snapshotTaken between the message and its Ready). The bytes are gone: drop it, as a
          // lossy link would; the leader re-probes and names the new snapshot. (Sending it without
          // data would make the follower restore an empty state machine.)
          this.stats.staleSnapshotsDropped++;
          this.trace.add(this.now, `${n.id} drops snap ${meta.index}/${meta.term} to ${out.to}: replaced by ${snap.meta.index}/${snap.meta.term}`);
          continue;
        }
        out.snapshot = { meta, data: snap.data };
      }
      this.network.send(out, this.now);
    }
  }

  private applyEntry(n: SimNode, e: Entry): void {
    if (e.index !== n.applied + 1) {
      this.fail('contract', `${n.id} was handed index ${e.index} to apply after applying ${n.applied}`);
      return;
    }
    if (e.index > n.commit) {
      this.fail('contract', `${n.id} was handed index ${e.index} to apply beyond its commit index ${n.commit}`);
    }
    let cmdId: string | undefined;
    let output: KvOutput | undefined;
    if (e.kind === 'conf') {
      const cc = decodeConfChange(e.data);
      n.conf = nextConf(n.conf, cc);
      this.checker.observeApply(n.id, e, undefined);
    } else {
      const cmd = decodeCommand(e.data);
      cmdId = cmd?.id;
      this.checker.observeApply(n.id, e, cmdId);
      if (cmd?.op) output = n.kv.apply(cmd.op);
    }
    n.applied = e.index;

    // Answer the client waiting on this slot, or tell it its proposal lost the slot.
    const waiting = n.proposals.get(e.index);
    if (waiting) {
      n.proposals.delete(e.index);
      for (const p of waiting) {
        if (p.cmdId === cmdId && p.term === e.term) {
          this.finish(p.client, p.opId);
          this.history.ok(p.opId, output!, `applied @${e.index} step ${this.now}`);
          this.trace.add(this.now, `c${p.client.id} ok ${p.cmdId} @${e.index} on ${n.id}`);
        } else {
          // A different entry committed at (index): ours, (index, p.term), never will.
          this.finish(p.client, p.opId);
          this.history.fail(p.opId);
          this.trace.add(this.now, `c${p.client.id} lost slot ${p.cmdId} @${e.index}/${p.term} on ${n.id}`);
        }
      }
    }
  }

  private serveReads(n: SimNode): void {
    for (const [ctx, r] of n.reads) {
      if (r.index === undefined) continue;
      if (r.index > n.applied) continue;
      n.reads.delete(ctx);
      const value = n.kv.get(r.key);
      this.finish(r.client, r.opId);
      this.history.ok(r.opId, { kind: 'get', value }, `read index ${r.index} step ${this.now}`);
      this.trace.add(this.now, `c${r.client.id} read ${r.key}=${JSON.stringify(value)} @${r.index} on ${n.id}`);
    }
  }

  private takeSnapshot(n: SimNode, core: RaftCore): void {
    const index = n.applied;
    const term = termAt(n.storage.current, index);
    if (term === undefined) {
      this.fail('contract', `${n.id} applied index ${index} that its log does not hold`);
      return;
    }
    const data = n.kv.snapshot();
    const key = Buffer.from(data).toString('latin1');
    const seen = this.snapshotBytes.get(index);
    if (seen === undefined) this.snapshotBytes.set(index, key);
    else if (seen !== key) this.fail('stateMachineSafety', `${n.id}'s state machine at index ${index} differs from another node's at the same index`);
    const snap: Snapshot = { meta: { index, term, conf: { voters: [...n.conf.voters], learners: [...n.conf.learners] } }, data };
    const compactTo = Math.max(0, index - this.cfg.snapshotTrail);
    n.storage.saveLocalSnapshot(snap, compactTo);
    n.snapshotIndex = index;
    this.stats.snapshotsTaken++;
    try {
      core.snapshotTaken(snap.meta, compactTo);
    } catch (err) {
      this.fail('crash', `${n.id}.snapshotTaken(${index}/${term}, ${compactTo}) threw: ${(err as Error).message}`);
    }
    this.trace.add(this.now, `${n.id} snapshot ${index}/${term} compact≤${compactTo}`);
  }

  /**
   * Records a leader's commit advance right after the call into the core that made it, before any
   * message can carry it to a follower, and while the node's role still shows who committed: with
   * fsync latency several calls may pass before its next Ready. A leader that commits its own
   * removal steps down in that same call (thesis §4.2.2), so "leader before the call, same term
   * now" counts too.
   */
  private observeLeaderCommit(n: SimNode, core: RaftCore): void {
    const asLeader = core.role === 'leader' || (n.lastRole === 'leader' && n.lastTerm === core.term);
    if (!asLeader) return;
    const commit = core.status().commit;
    if (commit <= this.checker.committedIndex()) return;
    const later = this.liveLeaders().filter((l) => l.term > core.term);
    this.checker.observeLeaderCommit(n.id, core.term, commit, n.storage.view(), later);
    this.trace.add(this.now, `${n.id} (leader t${core.term}) commits ${commit}`);
    this.onCommittedConf();
  }

  private observeRole(n: SimNode, core: RaftCore): void {
    const role = core.role;
    const term = core.term;
    if (role === 'leader') {
      if (n.lastRole !== 'leader' || n.lastTerm !== term) {
        this.stats.leadersElected++;
        this.trace.add(this.now, `${n.id} LEADER t${term} last=${lastIndexOf(n.storage.view())}`);
      }
      this.checker.observeLeader(n.id, term, n.storage.view());
    } else if (n.lastRole === 'leader') {
      this.trace.add(this.now, `${n.id} steps down t${term} → ${role}`);
    }
    n.lastRole = role;
    n.lastTerm = term;
  }

  private liveLeaders(): Array<{ id: NodeId; term: number; log: SimStorage['current'] }> {
    const out = [];
    for (const n of this.nodes.values()) {
      if (n.core && n.core.role === 'leader') out.push({ id: n.id, term: n.core.term, log: n.storage.view() });
    }
    return out;
  }

  /** A leader committed a conf entry: the operator reacts at the end of the step (never in the
   *  middle of a node's Ready), as an operator watching the cluster would. */
  private onCommittedConf(): void {
    if (this.checker.committedConf() !== this.operatorConf) this.confPending = true;
  }

  /**
   * The operator follows the committed configuration: a server removed from it is shut down; a
   * learner added to it is started (etcd's order: add the member, then start the server, so a join
   * whose entry was lost leaves no stray server behind that still believes an old configuration).
   */
  private followCommittedConf(): void {
    this.stopStrays();
    if (!this.confPending) return;
    this.confPending = false;
    const conf = this.checker.committedConf();
    const before = this.operatorConf;
    this.operatorConf = conf;
    const members = new Set([...conf.voters, ...conf.learners]);
    for (const id of [...before.voters, ...before.learners]) {
      if (members.has(id)) continue;
      const n = this.nodes.get(id);
      if (!n || n.state === 'removed') continue;
      if (n.state === 'up') this.stopVolatile(n, 'decommission');
      n.state = 'removed';
      this.trace.add(this.now, `operator: ${id} removed from the configuration`);
    }
    for (const id of members) {
      const n = this.nodes.get(id)!;
      if (n.state !== 'never' && n.state !== 'removed') continue;
      this.trace.add(this.now, `operator: ${id} joined the configuration`);
      this.start(n);
      this.drain(n);
    }
  }

  private storageBug(): StorageBug | undefined {
    return this.cfg.bug === 'forgetVoteOnCrash' || this.cfg.bug === 'ignoreSync' ? this.cfg.bug : undefined;
  }

  // ---------------------------------------------------------------- clients

  private finish(c: SimClient, opId: OpId): void {
    if (c.busy?.opId === opId) {
      c.busy = undefined;
      c.nextAt = this.now + this.clientRng.int(3);
    }
  }

  /** The client stops waiting: the operation's outcome is unknown to it. */
  private giveUp(c: SimClient): void {
    const b = c.busy;
    if (!b) return;
    c.busy = undefined;
    c.nextAt = this.now + 1;
    c.leaderHint = '';
    this.history.indeterminate(b.opId, b.input.kind !== 'get');
    const n = this.nodes.get(b.node);
    if (n) {
      if (b.ctx) n.reads.delete(b.ctx);
      for (const [index, list] of n.proposals) {
        const rest = list.filter((p) => p.opId !== b.opId);
        if (rest.length === 0) n.proposals.delete(index);
        else if (rest.length !== list.length) n.proposals.set(index, rest);
      }
    }
    this.trace.add(this.now, `c${c.id} gives up op ${b.opId}`);
  }

  private runClients(allowNew: boolean): void {
    for (const c of this.clients) {
      if (c.busy && this.now >= c.busy.deadline) this.giveUp(c);
      if (!c.busy && allowNew && this.now >= c.nextAt) this.invoke(c);
    }
  }

  private invoke(c: SimClient): void {
    const r = this.clientRng;
    const key = r.pick(this.keys);
    const value = `v${++this.opSeq}`;
    const roll = r.float();
    const input: KvInput = roll < 0.4 ? { kind: 'put', key, value }
      : roll < 0.7 ? { kind: 'get', key }
      : { kind: 'cas', key, expected: r.chance(0.2) ? null : `v${Math.max(1, this.opSeq - 1 - r.int(6))}`, value };
    // A frozen server accepts no connections: clients only reach running ones.
    const up = [...this.nodes.values()].filter((n) => n.state === 'up' && n.pausedUntil <= this.now);
    if (up.length === 0) return;
    const hinted = c.leaderHint ? this.nodes.get(c.leaderHint) : undefined;
    const target = hinted && up.includes(hinted) ? hinted : r.pick(up);
    const core = target.core!;
    const opId = this.history.invoke(c.id, input, `step ${this.now} → ${target.id}`);
    const viaReadIndex = input.kind === 'get' && r.chance(this.cfg.readIndexShare);
    const deadline = this.now + this.cfg.clientTimeout;
    if (viaReadIndex && this.cfg.bug === 'localReads') {
      const value = target.kv.get(key);
      this.history.ok(opId, { kind: 'get', value }, `local read step ${this.now}`);
      this.trace.add(this.now, `c${c.id} local read ${key}=${JSON.stringify(value)} on ${target.id} (bug)`);
      c.nextAt = this.now + 1;
      return;
    }
    try {
      if (viaReadIndex) {
        const ctx = `r${opId}`;
        core.readIndex(ctx);
        c.busy = { opId, node: target.id, deadline, input, ctx };
        target.reads.set(ctx, { opId, client: c, key });
        this.trace.add(this.now, `c${c.id} readIndex ${key} op ${opId} → ${target.id}`);
      } else {
        const cmdId = `o${opId}`;
        const res = core.propose(encodeCommand({ id: cmdId, op: input }));
        c.busy = { opId, node: target.id, deadline, input, cmdId };
        const list = target.proposals.get(res.index) ?? [];
        list.push({ opId, cmdId, client: c, index: res.index, term: res.term });
        target.proposals.set(res.index, list);
        this.trace.add(this.now, `c${c.id} propose ${cmdId} ${input.kind} ${key} → ${target.id} @${res.index}/${res.term}`);
      }
    } catch (err) {
      if (!(err instanceof RaftError)) {
        this.fail('crash', `${target.id} threw on a client request: ${(err as Error).stack ?? err}`);
        return;
      }
      // Refused before anything was appended: the operation did not happen.
      this.history.fail(opId);
      this.stats.proposalsRefused++;
      c.leaderHint = err instanceof NotLeaderError ? err.leader : '';
      // Redirected: go straight to the named leader. Otherwise (no leader known, or one busy
      // transferring leadership) back off for a few steps, as a real client would.
      c.nextAt = this.now + (c.leaderHint ? 0 : 2 + r.int(4));
      return;
    }
    this.drain(target);
  }

  // ---------------------------------------------------------------- faults and the operator

  private injectFaults(): void {
    const f = this.faultRng;
    const rates = this.cfg.rates;
    const all = this.ids;
    if (f.chance(rates.partition)) {
      const shuffled = f.shuffle(all.slice());
      const cut = 1 + f.int(Math.max(1, shuffled.length - 1));
      const a = shuffled.slice(0, cut);
      const b = shuffled.slice(cut);
      this.network.partition(a, b);
      this.stats.partitions++;
      this.trace.add(this.now, `partition [${a.join(',')}] | [${b.join(',')}]`);
    }
    if (f.chance(rates.oneWay)) {
      const from = f.pick(all);
      const others = all.filter((x) => x !== from);
      if (others.length > 0) {
        const to = f.pick(others);
        this.network.block(from, to);
        this.trace.add(this.now, `cut ${from} → ${to}`);
      }
    }
    if (f.chance(rates.isolateLeader)) {
      const leader = this.currentLeader();
      if (leader) {
        this.network.partition([leader.id], all.filter((x) => x !== leader.id));
        this.stats.partitions++;
        this.trace.add(this.now, `isolate leader ${leader.id}`);
      }
    }
    if (f.chance(rates.heal)) {
      this.network.healAll();
      this.trace.add(this.now, 'heal network');
    }
    if (f.chance(rates.weather)) {
      const storm: NetworkFaults = {
        lossRate: f.pick([0.05, 0.2, 0.4]), duplicateRate: f.pick([0, 0.05, 0.2]), minDelay: 1, maxDelay: f.pick([2, 6, 12]),
        reorderRate: f.pick([0, 0.5, 1]),
      };
      this.network.faults = storm;
      this.stormUntil = this.now + f.range(10, 80);
      this.trace.add(this.now, `storm loss=${storm.lossRate} dup=${storm.duplicateRate} delay≤${storm.maxDelay}`);
    } else if (this.stormUntil !== 0 && this.now >= this.stormUntil) {
      this.network.faults = { ...this.calmNetwork };
      this.stormUntil = 0;
      this.trace.add(this.now, 'storm over');
    }
    if (f.chance(rates.crash)) {
      const up = all.filter((id) => this.nodes.get(id)!.state === 'up');
      // Crash the leader more often than chance: that is where the interesting recoveries are.
      const leader = this.currentLeader();
      const victim = leader && f.chance(0.4) ? leader.id : up.length > 0 ? f.pick(up) : undefined;
      if (victim) this.crash(this.nodes.get(victim)!);
    }
    if (f.chance(rates.pause)) {
      // Freezing the leader is the interesting case: it wakes up still believing it leads.
      const leader = this.currentLeader();
      const up = all.filter((id) => this.nodes.get(id)!.state === 'up');
      const victim = leader && f.chance(0.6) ? leader.id : up.length > 0 ? f.pick(up) : undefined;
      if (victim) {
        const n = this.nodes.get(victim)!;
        n.pausedUntil = this.now + f.range(5, 8 * this.cfg.electionTicks);
        this.stats.pauses++;
        this.trace.add(this.now, `pause ${victim} until ${n.pausedUntil}`);
      }
    }
    for (const id of all) {
      const n = this.nodes.get(id)!;
      if (n.state === 'down' && f.chance(rates.restart)) {
        this.stats.restarts++;
        this.start(n);
        this.drain(n);
      }
    }
    if (f.chance(rates.membership)) this.changeMembership();
    if (f.chance(rates.transfer)) {
      const leader = this.currentLeader();
      if (leader?.core) {
        const voters = leader.core.status().conf.voters.filter((v) => v !== leader.id);
        if (voters.length > 0) {
          const to = f.pick(voters);
          this.stats.transfers++;
          this.trace.add(this.now, `operator: transfer leadership ${leader.id} → ${to}`);
          this.call(leader, 'transferLeader', (core) => {
            try {
              core.transferLeader(to);
            } catch (err) {
              if (!(err instanceof RaftError)) throw err;
              this.trace.add(this.now, `transfer refused: ${err.code}`);
            }
          });
        }
      }
    }
  }

  /** The up node that is leader in the highest term, if any. */
  private currentLeader(): SimNode | undefined {
    let best: SimNode | undefined;
    for (const n of this.nodes.values()) {
      if (n.core?.role === 'leader' && (!best || n.core.term > best.core!.term)) best = n;
    }
    return best;
  }

  private changeMembership(): void {
    const leader = this.currentLeader();
    if (!leader?.core) return;
    const f = this.faultRng;
    const conf = leader.core.status().conf;
    const members = new Set([...conf.voters, ...conf.learners]);
    const committed = this.checker.committedConf();
    const committedMembers = new Set([...committed.voters, ...committed.learners]);
    const choices: Array<() => ConfChange | undefined> = [];
    const outside = (id: NodeId) => !members.has(id) && !committedMembers.has(id);
    // Re-adding a removed server: as a learner with its old disk (its durable term, vote and log
    // intact, so to Raft it is just a follower that was away). A server id is never reused with an
    // empty disk: a stale node whose log still lists that id as a voter could collect the wiped
    // server's forgotten vote (which is why etcd and Consul give a wiped server a new id).
    const removed = this.ids.filter((id) => outside(id) && this.nodes.get(id)!.state === 'removed');
    if (removed.length > 0) choices.push(() => ({ type: 'addLearner', node: f.pick(removed), address: 'sim' }));
    const fresh = this.freshId(outside);
    if (fresh !== undefined) {
      choices.push(() => ({ type: 'addLearner', node: fresh, address: 'sim' }));
      // A voter added directly counts toward the quorum as soon as its entry is appended (thesis
      // §4.1), so it must already be running: start it now, with an empty disk and no configuration.
      choices.push(() => {
        if (!f.chance(0.3)) return undefined;
        const n = this.nodes.get(fresh)!;
        this.start(n);
        this.drain(n);
        return { type: 'addVoter', node: fresh, address: 'sim' };
      });
    }
    if (conf.learners.length > 0) choices.push(() => ({ type: 'promote', node: f.pick(conf.learners) }));
    const removable = [...conf.learners, ...(conf.voters.length > 2 ? conf.voters : [])];
    if (removable.length > 0) choices.push(() => ({ type: 'remove', node: f.pick(removable) }));
    if (choices.length === 0) return;
    const cc = f.pick(choices)();
    if (!cc) return;
    this.trace.add(this.now, `operator: propose ${cc.type} ${cc.node} via ${leader.id}`);
    this.call(leader, 'proposeConfChange', (core) => {
      try {
        const r = core.proposeConfChange(cc);
        this.stats.confChanges++;
        this.trace.add(this.now, `conf change ${cc.type} ${cc.node} @${r.index}/${r.term}`);
      } catch (err) {
        if (!(err instanceof RaftError)) throw err;
        this.stats.confChangesRefused++;
        this.trace.add(this.now, `conf change refused: ${err.code}`);
      }
    });
  }

  /**
   * A server started for a direct addVoter whose entry was refused or then lost is in neither the
   * leader's nor the committed configuration: shut it down (keeping its disk), as an operator whose
   * "member add" failed would, before it campaigns on a config entry no one else kept. Should the
   * entry still commit later, followCommittedConf starts it again.
   */
  private stopStrays(): void {
    const leader = this.currentLeader();
    if (!leader?.core) return;
    const conf = leader.core.status().conf;
    const committed = this.checker.committedConf();
    for (const id of this.ids) {
      const n = this.nodes.get(id)!;
      if (n.state !== 'up') continue;
      if (conf.voters.includes(id) || conf.learners.includes(id) || committed.voters.includes(id) || committed.learners.includes(id)) continue;
      this.stopVolatile(n, 'operator: stop stray');
      n.state = 'removed';
    }
  }

  /** An id that has never run (reusable: it holds no state anywhere), or a new one while the
   *  cluster has room for another server. */
  private freshId(outside: (id: NodeId) => boolean): NodeId | undefined {
    const unused = this.ids.find((id) => this.nodes.get(id)!.state === 'never' && outside(id));
    if (unused !== undefined) return unused;
    const live = this.ids.filter((id) => this.nodes.get(id)!.state !== 'removed').length;
    if (live >= this.cfg.initialVoters + this.cfg.spareNodes) return undefined;
    const id = `n${this.ids.length + 1}`;
    this.ids.push(id);
    this.nodes.set(id, new SimNode(id, this.storageBug()));
    return id;
  }

  // ---------------------------------------------------------------- the run

  /** One step of simulated time. */
  step(phase: 'faults' | 'quiet' | 'drain'): void {
    this.now++;
    this.checker.step = this.now;
    if (phase === 'faults') this.injectFaults();
    for (const n of this.nodes.values()) {
      const f = n.inflight;
      if (!f || !n.core || f.doneAt > this.now || n.pausedUntil > this.now) continue;
      this.resumePlan(n, n.core);
      this.drain(n);
    }
    for (const m of this.network.due(this.now)) {
      const n = this.nodes.get(m.to);
      if (!n?.core) continue;
      if (n.pausedUntil > this.now) {
        this.network.holdUntil(m, n.pausedUntil);
        continue;
      }
      this.trace.add(this.now, describeMessage(m));
      this.call(n, 'step', (core) => core.step(m));
    }
    for (const n of this.nodes.values()) {
      if (n.core && n.pausedUntil <= this.now) this.call(n, 'tick', (core) => core.tick());
    }
    this.runClients(phase !== 'drain');
    this.followCommittedConf();
    this.checkCoreStats();
    this.checker.checkDurability((id) => {
      const n = this.nodes.get(id);
      return n && n.state !== 'never' ? n.storage.durable : undefined;
    });
  }

  /** Ends the fault phase: the network heals, storms pass, every crashed server comes back. */
  heal(): void {
    this.network.healAll();
    this.network.faults = { lossRate: 0, duplicateRate: 0, minDelay: 1, maxDelay: Math.min(2, this.calmNetwork.maxDelay), reorderRate: this.calmNetwork.reorderRate };
    this.stormUntil = 0;
    for (const n of this.nodes.values()) {
      n.pausedUntil = 0;
      if (n.state === 'down') {
        this.stats.restarts++;
        this.start(n);
        this.drain(n);
      }
    }
    if (this.cfg.bug === 'neverHeal') {
      for (const a of this.ids) for (const b of this.ids) if (a !== b) this.network.block(a, b);
    }
    this.trace.add(this.now, 'quiet phase: network healed, all servers up');
  }

  /**
   * What still keeps the healed cluster from having converged, or undefined if nothing: exactly one
   * leader (of the highest term), nothing it holds left uncommitted, every member running and
   * applied up to its commit, no client waiting on it, and equal state machines everywhere.
   */
  livenessProblem(): { kind: ViolationKind; message: string } | undefined {
    // Judged among members of the committed configuration (a server outside it may still be
    // running, e.g. one whose join never committed; it cannot block the members).
    const committed = this.checker.committedConf();
    const up = [...committed.voters, ...committed.learners].map((id) => this.nodes.get(id)!).filter((n) => n.core);
    const maxTerm = Math.max(0, ...up.map((n) => n.core!.term));
    const leader = up.find((n) => n.core!.role === 'leader' && n.core!.term === maxTerm);
    if (!leader) {
      return { kind: 'liveness', message: `no leader (max term ${maxTerm}; roles: ${up.map((n) => `${n.id}:${n.core!.role}/t${n.core!.term}`).join(' ')})` };
    }
    const st = leader.core!.status();
    if (st.commit !== st.lastIndex) {
      return { kind: 'liveness', message: `leader ${leader.id} (term ${st.term}) still has entries ${st.commit + 1}..${st.lastIndex} uncommitted; progress: ${JSON.stringify(st.progress)}` };
    }
    const members = [...st.conf.voters, ...st.conf.learners];
    for (const id of members) {
      const n = this.nodes.get(id)!;
      if (!n.core) return { kind: 'liveness', message: `member ${id} is not running (state ${n.state})` };
      if (n.applied !== st.commit) {
        return { kind: 'liveness', message: `${n.id} applied ${n.applied}, but the leader ${leader.id} (term ${st.term}) committed ${st.commit}` };
      }
    }
    for (const c of this.clients) {
      if (c.busy && c.busy.node === leader.id) {
        return { kind: 'liveness', message: `client ${c.id}'s operation ${c.busy.opId} on leader ${leader.id} is still unanswered` };
      }
    }
    let reference: string | undefined;
    for (const id of members) {
      const bytes = Buffer.from(this.nodes.get(id)!.kv.snapshot()).toString('latin1');
      if (reference === undefined) reference = bytes;
      else if (bytes !== reference) {
        return { kind: 'stateMachineSafety', message: `${id}'s state machine differs from ${members[0]}'s at the same applied index ${st.commit}` };
      }
    }
    return undefined;
  }

  /** Fails the run if the cluster has not converged (see livenessProblem). */
  checkLiveness(context: string): void {
    const p = this.livenessProblem();
    if (p) this.fail(p.kind, `${p.message} ${context}`);
  }

  /** Core-reported anomalies (messages that contradict an invariant) are bugs too. */
  private checkCoreStats(): void {
    for (const n of this.nodes.values()) {
      const v = n.core?.stats.invariantViolations ?? 0;
      const key = `${n.id}#${n.incarnation}`;
      if (v > (this.coreViolationsSeen.get(key) ?? 0)) {
        this.coreViolationsSeen.set(key, v);
        this.fail('contract', `${n.id}'s core counted ${v} message(s) contradicting a Raft invariant (a second leader in its term, or an append contradicting a committed entry)`);
      }
    }
  }

  summary(): ClusterStats {
    let maxTerm = 0;
    for (const n of this.nodes.values()) maxTerm = Math.max(maxTerm, n.core?.term ?? n.storage.durable.hardState.term);
    const core: Record<string, number> = { ...this.coreStats };
    const disk = { truncations: 0, lostWrites: 0 };
    for (const n of this.nodes.values()) {
      if (n.core) for (const [k, v] of Object.entries(n.core.stats)) core[k] = (core[k] ?? 0) + v;
      disk.truncations += n.storage.truncations;
      disk.lostWrites += n.storage.lostWrites;
    }
    return {
      core,
      disk,
      steps: this.now,
      ...this.stats,
      maxTerm,
      committed: this.checker.committedIndex(),
      messages: { ...this.network.stats },
      ops: { ...this.history.counts },
    };
  }
}
