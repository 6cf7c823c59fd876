// A simulated Raft cluster driven in discrete steps. Each step: the fault schedule may act, writes
// whose fsync latency has passed reach the disk, due messages are delivered (or lost to a
// partition), every live node ticks once, clients invoke and time out operations, an operator may
// change membership or move leadership, and the safety checker runs.
//
// Every node is the RaftNode that ships (node.ts: its Ready loop in readyPlan.ts's order, apply,
// snapshots, reads, proposals), over simulated storage, transport and clock; everything around it
// (disk, network, time, clients) is simulated and draws its randomness from one seed. RaftNode is
// asynchronous; nothing in it waits on real time or real I/O here (its clock, disk and network are
// the simulator's), so after each call into a node the simulator lets every promise that call set
// off run to completion (settle) before the next event: the same seed gives the same run.
import type { CoreStats, RaftCore } from '../core/raft.ts';
import { decodeConfChange, encodeConfChange } from '../core/types.ts';
import type { ConfChange, ConfState, Entry, HardState, Message, NodeId, Ready, Role } from '../core/types.ts';
import { NotLeaderError, ProposalDroppedError, RaftError, StorageIOError } from '../errors.ts';
import { RaftNode, type Clock, type Logger } from '../node.ts';
import { planReady, type ReadyStep } from '../readyPlan.ts';
import type { LogStore, SnapshotStore } from '../storage/types.ts';
import type { Transport } from '../transport/types.ts';
import type { StateMachine } from '../api.ts';
import { HistoryRecorder, type OpId } from './history.ts';
import { SafetyChecker, type Violation, type ViolationKind } from './invariants.ts';
import { decodeCommand, encodeCommand, KvStateMachine, type KvInput, type KvOutput } from './kv.ts';
import { SimNetwork, type NetworkFaults } from './network.ts';
import { Rng } from './rng.ts';
import { SimStorage, StorageContractError, termAt, lastIndexOf, type StorageBug } from './storage.ts';
import { Trace, describeMessage } from './trace.ts';

/** The 'sendBeforeSync' bug: readyPlan.ts with votes and acknowledgements moved before the write
 *  is durable, injected into RaftNode (planReady option). */
function sendBeforeSyncPlan(rd: Ready, persisted: { term: number; vote: string }): ReadyStep[] {
  const steps = planReady(rd, persisted);
  const late = steps.findIndex((s) => s.kind === 'send' && !s.early);
  const save = steps.findIndex((s) => s.kind === 'startSave');
  if (late > save && save >= 0) return [...steps.slice(0, save + 1), steps[late]!, ...steps.slice(save + 1, late), ...steps.slice(late + 1)];
  return steps;
}

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
  /** A node's disk fills up for a while: its writes fail (ENOSPC). RaftNode must stop at once (no
   *  leading, voting or acknowledging) and the process exit, as the Trellis server does; the
   *  supervisor (the restart rate) starts it again, which succeeds once the disk has room. Off by
   *  default (`--rate diskFull=p`). */
  diskFull: number;
}

export const NO_FAULTS: FaultRates = {
  partition: 0, oneWay: 0, isolateLeader: 0, heal: 0, crash: 0, restart: 0, pause: 0, membership: 0, transfer: 0, weather: 0, diskFull: 0,
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
        membership, transfer: r.pick([0, 0.005, 0.01]), weather: 0.005, diskFull: 0,
        ...opts.rates,
      }
      : NO_FAULTS,
    bug: opts.bug,
    traceKeep: opts.traceKeep ?? 400,
  };
}

type NodeState = 'never' | 'up' | 'down' | 'removed';

interface SimClient {
  id: number;
  leaderHint: NodeId | '';
  /** Next step it may invoke an operation. */
  nextAt: number;
  busy?: { opId: OpId; node: NodeId; deadline: number; input: KvInput };
}

/** A node's clock in simulated steps (tickMs = 1): its ticker fires once per step the node runs,
 *  a timeout at the first step at or after it is due; timers fire in the order they were set. */
class SimClock implements Clock {
  private seq = 0;
  private readonly timers = new Map<number, { at: number; every: number; fn: () => void }>();
  private readonly sim: { now: number };
  constructor(sim: { now: number }) {
    this.sim = sim;
  }
  now(): number { return this.sim.now; }
  setTimeout(fn: () => void, ms: number): unknown { return this.add(fn, ms, 0); }
  setInterval(fn: () => void, ms: number): unknown { return this.add(fn, ms, Math.max(1, Math.ceil(ms))); }
  clearTimeout(h: unknown): void { this.timers.delete(h as number); }
  clearInterval(h: unknown): void { this.timers.delete(h as number); }
  private add(fn: () => void, ms: number, every: number): number {
    const id = ++this.seq;
    this.timers.set(id, { at: this.sim.now + Math.max(1, Math.ceil(ms)), every, fn });
    return id;
  }
  /** Runs every timer due now; true if any ran. */
  fire(now: number): boolean {
    let ran = false;
    for (const [id, t] of [...this.timers]) {
      if (t.at > now || !this.timers.has(id)) continue;
      if (t.every > 0) t.at = now + t.every;
      else this.timers.delete(id);
      ran = true;
      t.fn();
    }
    return ran;
  }
}

class SimNode {
  readonly id: NodeId;
  state: NodeState = 'never';
  storage: SimStorage;
  /** The running RaftNode (undefined while down); each start is a new incarnation with new parts. */
  node: RaftNode<KvOutput | undefined> | undefined;
  clock: SimClock | undefined;
  /** RaftNode's transport handler for incoming messages. */
  deliver: ((m: Message) => void) | undefined;
  kv = new KvStateMachine();
  /** Commit index seen in this incarnation's hard states (must never go down). */
  commit = 0;
  lastRole: Role = 'follower';
  lastTerm = 0;
  /** Frozen (no ticks, no message handling, no disk completions) until this step. */
  pausedUntil = 0;
  /** Writes fail (ENOSPC) until this step. */
  diskFullUntil = 0;
  /** The log write on its way to the disk (fsync latency): completed at doneAt. */
  pendingWrite: { doneAt: number; complete: () => void } | undefined;
  incarnation = 0;

  constructor(id: NodeId, bug: StorageBug | undefined) {
    this.id = id;
    this.storage = new SimStorage(bug);
  }

  get core(): RaftCore | undefined {
    return this.node?.inspectCore();
  }

  get applied(): number {
    return this.core ? this.node!.status().appliedIndex : 0;
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
  /** Snap messages RaftNode dropped because their snapshot had been replaced (SIM-FINDINGS F2; counted from its log). */
  staleSnapshotsDropped: number;
  /** Disks that filled up (diskFull rate), and node processes that stopped on a failed write. */
  disksFull: number;
  storageStops: number;
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
    appliedWhileWriting: 0, disksFull: 0, storageStops: 0,
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
    for (const id of voters) this.nodes.get(id)!.storage.bootstrap(voters, encode);
    this.checker.bootstrap(this.nodes.get(voters[0]!)!.storage.current.entries);
    this.operatorConf = this.checker.committedConf();
    for (let i = 0; i < cfg.clients; i++) this.clients.push({ id: i, leaderHint: '', nextAt: 0 });
  }

  /** Starts the bootstrapped voters (RaftNode.start is asynchronous). */
  async init(): Promise<void> {
    for (const id of this.ids) await this.start(this.nodes.get(id)!);
  }

  get violations(): readonly Violation[] {
    return this.checker.violations;
  }

  private fail(kind: ViolationKind, message: string): void {
    this.checker.fail(kind, message);
    this.trace.add(this.now, `VIOLATION ${kind}: ${message}`);
  }

  // ---------------------------------------------------------------- node lifecycle

  /** Starts (or restarts) a node from its disk: a new RaftNode over it, as a restarted process. */
  private async start(n: SimNode): Promise<void> {
    n.incarnation++;
    const inc = n.incarnation;
    n.kv = new KvStateMachine();
    // What the disk holds (after a crash, what was durable; after a stop, also what was written but
    // not synced, which the OS still has). The core starts from its commit index (at least the
    // snapshot's); saves report changes.
    const d = n.storage.current;
    n.commit = Math.max(d.hardState.commit, d.snapshot?.meta.index ?? 0);
    n.pendingWrite = undefined;
    n.deliver = undefined;
    n.clock = new SimClock(this);
    const random = this.rng.fork(`core-${n.id}-${inc}`);
    const node = new RaftNode<KvOutput | undefined>({
      id: n.id,
      transport: this.simTransport(n, inc),
      logStore: this.simLogStore(n, inc),
      snapshotStore: this.simSnapshotStore(n, inc),
      stateMachine: this.simStateMachine(n, inc),
      tickMs: 1,
      electionTicks: this.cfg.electionTicks,
      heartbeatTicks: this.cfg.heartbeatTicks,
      preVote: this.cfg.preVote,
      checkQuorum: this.cfg.checkQuorum,
      readOnly: this.cfg.readOnly,
      maxInflight: this.cfg.maxInflight,
      maxMsgBytes: this.cfg.maxMsgBytes,
      snapshotThreshold: this.cfg.snapshotEvery,
      trailingLogs: this.cfg.snapshotTrail,
      // Clients give up after clientTimeout steps; RaftNode's own read timeout is only a backstop.
      readTimeoutMs: this.cfg.clientTimeout * 2,
      random: () => random.float(),
      clock: n.clock,
      logger: this.simLogger(n, inc),
      ...(this.cfg.bug === 'sendBeforeSync' ? { planReady: sendBeforeSyncPlan } : {}),
    });
    node.on('fatal', ({ error }) => {
      if (inc !== n.incarnation) return;
      if (error instanceof StorageIOError && n.diskFullUntil > this.now) {
        // What the Trellis server does on it (raftServer.ts): exit with status 1 for the supervisor.
        // A process exit, not a power loss: what the OS already has stays on the disk.
        this.stats.storageStops++;
        this.stopVolatile(n, 'exit 1 after a failed write (disk full):');
        n.state = 'down';
        return;
      }
      this.fail('crash', `${n.id} stopped on a driver failure: ${error.stack ?? error}`);
    });
    n.node = node;
    const hs = d.hardState;
    try {
      await node.start();
    } catch (err) {
      this.fail('crash', `${n.id} could not restart from its own disk: ${(err as Error).stack ?? err}`);
      n.node = undefined;
      n.state = 'down';
      return;
    }
    n.state = 'up';
    n.pausedUntil = 0;
    n.lastRole = 'follower';
    n.lastTerm = hs.term;
    this.trace.add(this.now, `start ${n.id} #${inc} term=${hs.term} vote=${hs.vote || '-'} commit=${hs.commit} snap=${d.snapshot?.meta.index ?? 0} log=${d.entries.length ? `${d.entries[0]!.index}..${d.entries[d.entries.length - 1]!.index}` : 'empty'}`);
    await this.settle();
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

  /**
   * The process is gone. Its RaftNode is abandoned where it stands (a crash runs no shutdown code):
   * its parts ignore it from now on (they check the incarnation), its clock never fires again and
   * its write in flight never completes.
   */
  private stopVolatile(n: SimNode, why: string): void {
    if (n.core) this.addCoreStats(n.core.stats);
    n.incarnation++;
    n.node = undefined;
    n.clock = undefined;
    n.deliver = undefined;
    n.pendingWrite = undefined;
    n.storage.dropStaged();
    // Clients waiting on this node never hear back.
    for (const c of this.clients) if (c.busy?.node === n.id) this.giveUp(c);
    this.trace.add(this.now, `${why} ${n.id}`);
  }

  // ---------------------------------------------------------------- driving RaftNode

  /**
   * Lets everything the calls since the last settle set off run to completion: RaftNode's Ready
   * loops and every promise they resolve are microtasks (their disk, network and clock are the
   * simulator's), and all of them run before the next macrotask. Nodes do not interact within a
   * settle (messages wait in the network for a later step), so one settle serves every node. Then
   * the checker observes every node.
   */
  private async settle(): Promise<void> {
    await new Promise<void>((resolve) => setImmediate(resolve));
    for (const n of this.nodes.values()) this.observe(n);
  }

  /** The checker looks at a node right after a call into it (the core changes synchronously). */
  private observe(n: SimNode): void {
    const core = n.core;
    if (!core) return;
    this.observeLeaderCommit(n, core);
    this.observeRole(n, core);
  }

  private simTransport(n: SimNode, inc: number): Transport {
    return {
      start: async (handler) => { if (inc === n.incarnation) n.deliver = handler; },
      stop: async () => {},
      setPeers: () => {},
      localAddress: () => n.id,
      send: (messages) => { if (inc === n.incarnation) this.send(n, messages); },
    };
  }

  private simStateMachine(n: SimNode, inc: number): StateMachine<KvOutput | undefined> {
    return {
      apply: (e) => {
        if (inc !== n.incarnation) throw new Error(`${n.id}: apply after its process crashed`);
        if (e.index > n.commit) this.fail('contract', `${n.id} was handed index ${e.index} to apply beyond its commit index ${n.commit}`);
        // Counted: the order that ships applies while the node's own write is still in flight.
        if (n.storage.hasStaged()) this.stats.appliedWhileWriting++;
        const cmd = decodeCommand(e.data);
        this.checker.observeApply(n.id, e, cmd?.id);
        return cmd?.op ? n.kv.apply(cmd.op) : undefined;
      },
      snapshot: () => n.kv.snapshot(),
      restore: (data) => {
        const kv = new KvStateMachine();
        try {
          kv.restore(data);
        } catch (err) {
          this.fail('contract', `${n.id}: snapshot data does not decode: ${(err as Error).message}`);
        }
        if (inc === n.incarnation) n.kv = kv;
      },
    };
  }

  /** RaftNode's log lines go to the trace (and count the snapshots it drops, SIM-FINDINGS F2). */
  private simLogger(n: SimNode, inc: number): Logger {
    const note = (o: object | string, msg?: string) => {
      if (inc !== n.incarnation) return;
      const text = typeof o === 'string' ? o : msg ?? '';
      if (text.includes('replaced by a newer one')) this.stats.staleSnapshotsDropped++;
      this.trace.add(this.now, `${n.id} ${text}`);
    };
    return { debug() {}, info: note, warn: note, error: note };
  }

  private simLogStore(n: SimNode, inc: number): LogStore {
    const live = () => inc === n.incarnation;
    const never = () => new Promise<never>(() => {});
    const guard = (what: () => void): Promise<void> => {
      try {
        what();
        return Promise.resolve();
      } catch (err) {
        if (!(err instanceof StorageContractError)) throw err;
        this.fail('contract', `${n.id}: ${err.message}`);
        return never();
      }
    };
    return {
      open: async () => {},
      close: async () => {},
      load: async () => {
        const d = n.storage.current;
        return { hardState: { ...d.hardState }, entries: d.entries.slice(), compactedTo: d.compactedTo };
      },
      entries: async (lo, hi) => n.storage.current.entries.filter((e) => e.index >= lo && e.index < hi),
      save: (entries, hardState, sync) => {
        if (!live()) return never();
        if (n.diskFullUntil > this.now) {
          // The Ready's commit index is the core's belief whether or not the write lands (committed
          // entries are applied while it is in flight); the leader's commit is recorded as usual.
          const core = n.core;
          if (core) this.observeLeaderCommit(n, core);
          if (hardState) n.commit = Math.max(n.commit, hardState.commit);
        }
        return this.diskFull(n, 'saving raft log entries') ?? this.save(n, entries, hardState, sync);
      },
      compact: (index) => (!live() ? never() : this.diskFull(n, 'compacting the raft log') ?? guard(() => n.storage.compact(index))),
      reset: (index) => (!live() ? never() : this.diskFull(n, 'resetting the raft log') ?? guard(() => n.storage.reset(index))),
    };
  }

  private simSnapshotStore(n: SimNode, inc: number): SnapshotStore {
    const live = () => inc === n.incarnation;
    return {
      open: async () => {},
      close: async () => {},
      latest: async () => n.storage.current.snapshot,
      latestMeta: async () => n.storage.current.snapshot?.meta,
      save: (snap) => {
        if (!live()) return new Promise<never>(() => {});
        const full = this.diskFull(n, 'writing a snapshot');
        if (full) return full;
        const meta = snap.meta;
        if (meta.index > n.applied) {
          // A leader's snapshot being installed (RaftNode saves it, restores from it, resets the log).
          this.checker.observeSnapshot(n.id, meta);
          this.stats.snapshotsInstalled++;
          this.trace.add(this.now, `${n.id} installs snapshot ${meta.index}/${meta.term} voters=${meta.conf.voters.join(',')} learners=${meta.conf.learners.join(',')}`);
        } else {
          const key = Buffer.from(snap.data).toString('latin1');
          const seen = this.snapshotBytes.get(meta.index);
          if (seen === undefined) this.snapshotBytes.set(meta.index, key);
          else if (seen !== key) this.fail('stateMachineSafety', `${n.id}'s state machine at index ${meta.index} differs from another node's at the same index`);
          if (termAt(n.storage.current, meta.index) !== meta.term) this.fail('contract', `${n.id} took snapshot ${meta.index}/${meta.term}, but its log has term ${termAt(n.storage.current, meta.index)} there`);
          this.stats.snapshotsTaken++;
          this.trace.add(this.now, `${n.id} snapshot ${meta.index}/${meta.term}`);
        }
        try {
          n.storage.saveSnapshotFile(snap);
        } catch (err) {
          if (!(err instanceof StorageContractError)) throw err;
          this.fail('contract', `${n.id}: ${err.message}`);
          return new Promise<never>(() => {});
        }
        return Promise.resolve();
      },
    };
  }

  /** A write to a full disk fails as LevelLogStore's does, and writes nothing. */
  private diskFull(n: SimNode, op: string): Promise<never> | undefined {
    if (n.diskFullUntil <= this.now) return undefined;
    const cause = Object.assign(new Error(`IO error: ${n.id}/raft/log/000003.log: No space left on device`), { code: 'LEVEL_IO_ERROR' });
    this.trace.add(this.now, `${n.id} ${op}: no space left on device`);
    return Promise.reject(new StorageIOError(`${n.id}/raft/log`, op, cause));
  }

  /**
   * LogStore.save: checked against the contract, staged (the node's view of its log includes it at
   * once) and completed after the fsync latency (a crash before then loses it whole).
   */
  private save(n: SimNode, entries: Entry[], hardState: HardState | undefined, sync: boolean): Promise<void> {
    const st = n.storage;
    const core = n.core;
    // A leader's commit is recorded before anything that carries it, its own hard state included.
    if (core) this.observeLeaderCommit(n, core);
    const prevHard = st.view().hardState;
    const voteChanged = hardState !== undefined && (hardState.term !== prevHard.term || hardState.vote !== prevHard.vote);
    if (!sync && (entries.length > 0 || voteChanged)) {
      this.fail('contract', `${n.id}: a write of ${entries.length} entries${voteChanged ? ' and a term/vote change' : ''} is not synced`);
    }
    if (hardState && hardState.term < prevHard.term) {
      this.fail('contract', `${n.id}: hard state term went back from ${prevHard.term} to ${hardState.term}`);
    }
    const prevTerm = entries.length > 0 ? termAt(st.view(), entries[0]!.index - 1) : undefined;
    try {
      st.stage({ entries, hardState });
    } catch (err) {
      if (!(err instanceof StorageContractError)) throw err;
      this.fail('contract', `${n.id}: ${err.message}`);
      return new Promise<never>(() => {});
    }
    if (entries.length > 0) {
      this.checker.observePersist(n.id, entries, prevTerm);
      this.trace.add(this.now, `${n.id} persist ${entries[0]!.index}..${entries[entries.length - 1]!.index} t${entries[entries.length - 1]!.term}`);
    }
    if (hardState) {
      const view = st.view();
      if (hardState.commit < n.commit) this.fail('contract', `${n.id}: commit index went back from ${n.commit} to ${hardState.commit}`);
      if (hardState.commit > lastIndexOf(view)) this.fail('contract', `${n.id}: commit ${hardState.commit} beyond its last index ${lastIndexOf(view)}`);
      n.commit = hardState.commit;
      if (hardState.commit > this.checker.committedIndex()) {
        this.fail('stateMachineSafety', `${n.id} (${core?.role}, term ${core?.term}) believes index ${hardState.commit} is committed, but no leader has committed beyond ${this.checker.committedIndex()}`);
      }
    }
    const complete = () => {
      st.completeStaged(sync);
      if (hardState && hardState.vote !== '') {
        // Raft §5.2: one vote per term, remembered across restarts. The ledger lives with the disk
        // and records a vote once written (a vote lost with an unfinished write was never cast:
        // its message goes out only after the write).
        const earlier = st.votes.get(hardState.term);
        if (earlier === undefined) st.votes.set(hardState.term, hardState.vote);
        else if (earlier !== hardState.vote) this.fail('electionSafety', `${n.id} voted for ${earlier} and then for ${hardState.vote} in term ${hardState.term}`);
      }
    };
    // Only a write that must be synced waits for the disk; a buffered one returns at once.
    const latency = sync ? this.cfg.fsyncSteps : 0;
    if (latency === 0) {
      complete();
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      n.pendingWrite = { doneAt: this.now + latency, complete: () => { complete(); resolve(); } };
    });
  }

  private send(n: SimNode, messages: readonly Message[]): void {
    const core = n.core;
    if (core) this.observeLeaderCommit(n, core);
    for (const m of messages) {
      if ((m.type === 'app' || m.type === 'heartbeat') && (m.commit ?? 0) > this.checker.committedIndex()) {
        // Queued while this node led term m.term (only a leader sends these), perhaps before it
        // stepped down in the same Ready: the commit it carries is that leader's.
        this.checker.observeLeaderCommit(n.id, m.term, m.commit!, n.storage.view(), this.liveLeaders().filter((l) => l.term > m.term));
        this.trace.add(this.now, `${n.id} (leader t${m.term}) commits ${m.commit}`);
        this.onCommittedConf();
      }
      if (m.type === 'snap' && !m.snapshot?.data) {
        // SIM-FINDINGS F2: a snapshot message without its bytes would make the follower restore nothing.
        this.fail('contract', `${n.id} sent snap ${m.snapshot?.meta.index}/${m.snapshot?.meta.term} to ${m.to} without data`);
        continue;
      }
      this.network.send(cloneMessage(m), this.now);
    }
  }

  /**
   * Records a leader's commit advance as soon as the simulator sees it: after each call into the
   * node, before each write and before each send (a commit reaches a follower only in a message).
   * A leader that commits its own removal steps down in that same call (thesis §4.2.2), so
   * "leader before the call, same term now" counts too.
   */
  private observeLeaderCommit(n: SimNode, core: RaftCore): void {
    const asLeader = core.role === 'leader' || (n.lastRole === 'leader' && n.lastTerm === core.term);
    if (!asLeader) return;
    const commit = core.commit;
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
      const core = n.core;
      if (core && core.role === 'leader') out.push({ id: n.id, term: core.term, log: n.storage.view() });
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
  private async followCommittedConf(): Promise<void> {
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
      await this.start(n);
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
    this.trace.add(this.now, `c${c.id} gives up op ${b.opId}`);
  }

  private async runClients(allowNew: boolean): Promise<void> {
    let invoked = false;
    for (const c of this.clients) {
      if (c.busy && this.now >= c.busy.deadline) this.giveUp(c);
      if (!c.busy && allowNew && this.now >= c.nextAt) {
        invoked = true;
        const target = this.invoke(c);
        if (target) this.observe(target);
      }
    }
    if (invoked) await this.settle();
  }

  /** Starts one client operation through RaftNode's API; its promise answers the client later. */
  private invoke(c: SimClient): SimNode | undefined {
    const r = this.clientRng;
    const key = r.pick(this.keys);
    const value = `v${++this.opSeq}`;
    const roll = r.float();
    const input: KvInput = roll < 0.4 ? { kind: 'put', key, value }
      : roll < 0.7 ? { kind: 'get', key }
      : { kind: 'cas', key, expected: r.chance(0.2) ? null : `v${Math.max(1, this.opSeq - 1 - r.int(6))}`, value };
    // A frozen server accepts no connections: clients only reach running ones.
    const up = [...this.nodes.values()].filter((n) => n.state === 'up' && n.node && n.pausedUntil <= this.now);
    if (up.length === 0) return undefined;
    const hinted = c.leaderHint ? this.nodes.get(c.leaderHint) : undefined;
    const target = hinted && up.includes(hinted) ? hinted : r.pick(up);
    const node = target.node!;
    const opId = this.history.invoke(c.id, input, `step ${this.now} → ${target.id}`);
    const viaReadIndex = input.kind === 'get' && r.chance(this.cfg.readIndexShare);
    const deadline = this.now + this.cfg.clientTimeout;
    if (viaReadIndex && this.cfg.bug === 'localReads') {
      const v = target.kv.get(key);
      this.history.ok(opId, { kind: 'get', value: v }, `local read step ${this.now}`);
      this.trace.add(this.now, `c${c.id} local read ${key}=${JSON.stringify(v)} on ${target.id} (bug)`);
      c.nextAt = this.now + 1;
      return undefined;
    }
    c.busy = { opId, node: target.id, deadline, input };
    const refused = (err: unknown) => {
      if (c.busy?.opId !== opId) return;
      if (err instanceof ProposalDroppedError) {
        // Leadership changed (or a snapshot replaced the slot) before the outcome was known.
        this.trace.add(this.now, `c${c.id} op ${opId} dropped on ${target.id}: ${err.message}`);
        this.giveUp(c);
        return;
      }
      if (err instanceof StorageIOError && target.diskFullUntil > this.now) {
        // The write may still commit through the others (its entry may have gone out early).
        this.giveUp(c);
        return;
      }
      if (!(err instanceof RaftError) || err.code === 'ERR_STORAGE_IO') {
        this.fail('crash', `${target.id} failed a client request: ${(err as Error).stack ?? err}`);
        return;
      }
      // Refused before anything was appended (not leader, transfer in progress; a read that timed
      // out or lost leadership changed nothing): the operation did not happen.
      c.busy = undefined;
      this.history.fail(opId);
      this.stats.proposalsRefused++;
      c.leaderHint = err instanceof NotLeaderError ? err.leader : '';
      // Redirected: go straight to the named leader. Otherwise (no leader known, or one busy
      // transferring leadership) back off for a few steps, as a real client would.
      c.nextAt = this.now + (c.leaderHint ? 0 : 2 + r.int(4));
    };
    if (viaReadIndex) {
      this.trace.add(this.now, `c${c.id} read ${key} op ${opId} → ${target.id}`);
      node.read().then(() => {
        if (c.busy?.opId !== opId) return;
        const v = target.kv.get(key);
        this.finish(c, opId);
        this.history.ok(opId, { kind: 'get', value: v }, `read step ${this.now}`);
        this.trace.add(this.now, `c${c.id} read ${key}=${JSON.stringify(v)} on ${target.id}`);
      }, refused);
    } else {
      const cmdId = `o${opId}`;
      this.trace.add(this.now, `c${c.id} propose ${cmdId} ${input.kind} ${key} → ${target.id}`);
      node.propose(encodeCommand({ id: cmdId, op: input })).then((out) => {
        if (c.busy?.opId !== opId) return;
        if (!out) {
          this.fail('contract', `${target.id} answered ${cmdId} without a state machine result`);
          return;
        }
        this.finish(c, opId);
        this.history.ok(opId, out, `applied step ${this.now}`);
        this.trace.add(this.now, `c${c.id} ok ${cmdId} on ${target.id}`);
      }, refused);
    }
    return target;
  }

  // ---------------------------------------------------------------- faults and the operator

  private async injectFaults(): Promise<void> {
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
    // Drawn only when enabled, so that runs without it keep their trajectories.
    if (rates.diskFull > 0 && f.chance(rates.diskFull)) {
      const leader = this.currentLeader();
      const up = all.filter((id) => this.nodes.get(id)!.state === 'up');
      const victim = leader && f.chance(0.5) ? leader.id : up.length > 0 ? f.pick(up) : undefined;
      if (victim) {
        const n = this.nodes.get(victim)!;
        n.diskFullUntil = this.now + f.range(5, 60);
        this.stats.disksFull++;
        this.trace.add(this.now, `disk of ${victim} full until ${n.diskFullUntil}`);
      }
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
        await this.start(n);
      }
    }
    if (f.chance(rates.membership)) await this.changeMembership();
    if (f.chance(rates.transfer)) {
      const leader = this.currentLeader();
      if (leader?.core) {
        const voters = leader.core.status().conf.voters.filter((v) => v !== leader.id);
        if (voters.length > 0) {
          const to = f.pick(voters);
          this.stats.transfers++;
          this.trace.add(this.now, `operator: transfer leadership ${leader.id} → ${to}`);
          leader.node!.transferLeader(to).catch((err: unknown) => {
            if (!(err instanceof RaftError)) this.fail('crash', `${leader.id}.transferLeader threw: ${(err as Error).stack ?? err}`);
            else this.trace.add(this.now, `transfer to ${to}: ${err.code}`);
          });
          await this.settle();
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

  private async changeMembership(): Promise<void> {
    const leader = this.currentLeader();
    if (!leader?.core) return;
    const f = this.faultRng;
    const conf = leader.core.status().conf;
    const members = new Set([...conf.voters, ...conf.learners]);
    const committed = this.checker.committedConf();
    const committedMembers = new Set([...committed.voters, ...committed.learners]);
    const choices: Array<() => Promise<ConfChange | undefined>> = [];
    const outside = (id: NodeId) => !members.has(id) && !committedMembers.has(id);
    // Re-adding a removed server: as a learner with its old disk (its durable term, vote and log
    // intact, so to Raft it is just a follower that was away). A server id is never reused with an
    // empty disk: a stale node whose log still lists that id as a voter could collect the wiped
    // server's forgotten vote (which is why etcd and Consul give a wiped server a new id).
    const removed = this.ids.filter((id) => outside(id) && this.nodes.get(id)!.state === 'removed');
    if (removed.length > 0) choices.push(async () => ({ type: 'addLearner', node: f.pick(removed), address: 'sim' }));
    const fresh = this.freshId(outside);
    if (fresh !== undefined) {
      choices.push(async () => ({ type: 'addLearner', node: fresh, address: 'sim' }));
      // A voter added directly counts toward the quorum as soon as its entry is appended (thesis
      // §4.1), so it must already be running: start it now, with an empty disk and no configuration.
      choices.push(async () => {
        if (!f.chance(0.3)) return undefined;
        const n = this.nodes.get(fresh)!;
        await this.start(n);
        return { type: 'addVoter', node: fresh, address: 'sim' };
      });
    }
    if (conf.learners.length > 0) choices.push(async () => ({ type: 'promote', node: f.pick(conf.learners) }));
    const removable = [...conf.learners, ...(conf.voters.length > 2 ? conf.voters : [])];
    if (removable.length > 0) choices.push(async () => ({ type: 'remove', node: f.pick(removable) }));
    if (choices.length === 0) return;
    const cc = await f.pick(choices)();
    if (!cc || !leader.node) return;
    this.trace.add(this.now, `operator: propose ${cc.type} ${cc.node} via ${leader.id}`);
    this.stats.confChanges++;
    leader.node.proposeConfChange(cc).catch((err: unknown) => {
      if (err instanceof ProposalDroppedError) return; // appended, outcome unknown
      if (!(err instanceof RaftError)) {
        this.fail('crash', `${leader.id}.proposeConfChange threw: ${(err as Error).stack ?? err}`);
        return;
      }
      this.stats.confChanges--;
      this.stats.confChangesRefused++;
      this.trace.add(this.now, `conf change refused: ${err.code}`);
    });
    await this.settle();
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
  async step(phase: 'faults' | 'quiet' | 'drain'): Promise<void> {
    this.now++;
    this.checker.step = this.now;
    if (phase === 'faults') await this.injectFaults();
    let completed = false;
    for (const n of this.nodes.values()) {
      const w = n.pendingWrite;
      if (!w || !n.node || w.doneAt > this.now || n.pausedUntil > this.now) continue;
      n.pendingWrite = undefined;
      w.complete();
      completed = true;
    }
    if (completed) await this.settle();
    // Every due message is stepped into its node's core before the nodes' Ready loops run, as a
    // transport delivering several messages in one turn of the event loop would.
    let delivered = false;
    for (const m of this.network.due(this.now)) {
      const n = this.nodes.get(m.to);
      if (!n?.deliver || n.state !== 'up') continue;
      if (n.pausedUntil > this.now) {
        this.network.holdUntil(m, n.pausedUntil);
        continue;
      }
      this.trace.add(this.now, describeMessage(m));
      n.deliver(m);
      this.observe(n);
      delivered = true;
    }
    if (delivered) await this.settle();
    let ticked = false;
    for (const n of this.nodes.values()) {
      if (n.state === 'up' && n.clock && n.pausedUntil <= this.now && n.clock.fire(this.now)) {
        this.observe(n);
        ticked = true;
      }
    }
    if (ticked) await this.settle();
    await this.runClients(phase !== 'drain');
    await this.followCommittedConf();
    this.checkCoreStats();
    this.checker.checkDurability((id) => {
      const n = this.nodes.get(id);
      return n && n.state !== 'never' ? n.storage.durable : undefined;
    });
  }

  /** Ends the fault phase: the network heals, storms pass, every crashed server comes back. */
  async heal(): Promise<void> {
    this.network.healAll();
    this.network.faults = { lossRate: 0, duplicateRate: 0, minDelay: 1, maxDelay: Math.min(2, this.calmNetwork.maxDelay), reorderRate: this.calmNetwork.reorderRate };
    this.stormUntil = 0;
    for (const n of this.nodes.values()) {
      n.pausedUntil = 0;
      n.diskFullUntil = 0;
      if (n.state === 'down') {
        this.stats.restarts++;
        await this.start(n);
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
