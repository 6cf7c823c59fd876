// The driver: runs the pure RaftCore against real storage, a transport and timers, and applies
// committed entries to the application's StateMachine. One loop processes one Ready at a time, in
// the order of readyPlan.ts (shared with the simulator): start the write (one batch, synced) → apply
// committed entries while it is in flight → await it → send → advance. Everything that arrives while a batch is
// being synced (proposals, messages) accumulates in the core and goes out in the next Ready, which is
// how many proposals share one fsync.
import { EventEmitter } from 'node:events';
import { RaftCore } from './core/raft.ts';
import type { CoreConfig, InitialState } from './core/config.ts';
import {
  decodeConfChange, encodeConfChange,
  type ConfChange, type ConfState, type Entry, type Message, type NodeId, type Ready, type Snapshot, type SnapshotMeta,
} from './core/types.ts';
import type { LogStore, SnapshotStore } from './storage/types.ts';
import { planReady } from './readyPlan.ts';
import type { Transport } from './transport/types.ts';
import type { NodeEvents, NodeStatus, ProposeOptions, RaftNodeApi, ReadOptions, StateMachine } from './api.ts';
import { NotLeaderError, ProposalDroppedError, RaftError, StoppedError, TimeoutError } from './errors.ts';

export interface Logger {
  debug(obj: object | string, msg?: string): void;
  info(obj: object | string, msg?: string): void;
  warn(obj: object | string, msg?: string): void;
  error(obj: object | string, msg?: string): void;
}

const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };

/** Time as the driver sees it. The default is the real clock; the simulator injects one that
 *  advances in steps, so that a seeded run of RaftNode is reproducible. */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  setInterval(fn: () => void, ms: number): unknown;
  clearInterval(handle: unknown): void;
}

const realClock: Clock = {
  // Monotonic: now() only measures durations (last leader contact, a transfer's deadline), which a
  // step of the wall clock (NTP, an operator; chaos clock-step) must not stretch or shrink.
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
  setInterval: (fn, ms) => setInterval(fn, ms),
  clearInterval: (h) => clearInterval(h as NodeJS.Timeout),
};

export interface RaftNodeOptions<R> {
  id: NodeId;
  transport: Transport;
  logStore: LogStore;
  snapshotStore: SnapshotStore;
  stateMachine: StateMachine<R>;
  /** Milliseconds per core tick. Default 100. */
  tickMs?: number;
  /** Election timeout in ticks (randomized in [e, 2e)). Default 10. */
  electionTicks?: number;
  /** Heartbeat interval in ticks. Default 1. */
  heartbeatTicks?: number;
  /** Take a snapshot once this many entries were applied since the last one. Default 16384 (Consul's raft_snapshot_threshold). */
  snapshotThreshold?: number;
  /** Entries kept in the log behind a snapshot so slightly lagging followers need no snapshot. Default 10240 (Consul's raft_trailing_logs). */
  trailingLogs?: number;
  /** Default 512 KiB. */
  maxEntryBytes?: number;
  preVote?: boolean;
  checkQuorum?: boolean;
  readOnly?: 'safe' | 'lease';
  maxInflight?: number;
  /** Largest append message in bytes (the core batches entries up to it). Default: the core's. */
  maxMsgBytes?: number;
  /** How long read() waits for its ReadIndex round before failing. Default 5000 ms. */
  readTimeoutMs?: number;
  random?: () => number;
  logger?: Logger;
  /** Addresses of existing members, for a node that joins a running cluster: it must be able to answer
   *  the leader before the log (which carries every member's address) has reached it. */
  knownPeers?: Record<NodeId, string>;
  /** Default: the real clock (performance.now, setTimeout, setInterval). */
  clock?: Clock;
  /** Testing only: replaces readyPlan.ts's plan (the simulator injects a deliberately wrong order to
   *  prove its checkers see one). */
  planReady?: typeof planReady;
}

interface PendingProposal<R> {
  term: number;
  resolve: (r: R) => void;
  reject: (e: Error) => void;
}

interface PendingRead {
  index: number; // -1 until the core answers
  resolve: () => void;
  reject: (e: Error) => void;
  timer: unknown;
}

function abortError(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new DOMException('The operation was aborted', 'AbortError');
}

export class RaftNode<R = unknown> implements RaftNodeApi<R> {
  readonly id: NodeId;
  private readonly opts: Required<Omit<RaftNodeOptions<R>, 'random' | 'logger' | 'maxMsgBytes' | 'clock' | 'planReady'>> &
    { random: () => number; logger: Logger; maxMsgBytes: number | undefined };
  private readonly clock: Clock;
  private readonly plan: typeof planReady;
  private core!: RaftCore;
  private readonly events = new EventEmitter();
  private readonly addresses = new Map<NodeId, string>();
  private readonly pending = new Map<number, PendingProposal<R>>();
  private readonly reads = new Map<string, PendingRead>();
  private readSeq = 0;
  private ticker: unknown;
  private wake: (() => void) | undefined;
  private loopDone: Promise<void> | undefined;
  private started = false;
  private stopped = false;
  private closed = false;
  private fatal: Error | undefined;
  private applied = 0;
  private appliedTerm = 0;
  private appliedConf: ConfState = { voters: [], learners: [] };
  private snapshotMeta: SnapshotMeta | undefined;
  private snapshotCache: Snapshot | undefined;
  private lastLeaderContact = 0;
  private leader: NodeId | '' = '';
  private readonly waitingApplied: Array<{ index: number; fn: () => void }> = [];

  constructor(options: RaftNodeOptions<R>) {
    this.id = options.id;
    for (const [id, addr] of Object.entries(options.knownPeers ?? {})) this.addresses.set(id, addr);
    this.opts = {
      knownPeers: {}, tickMs: 100, electionTicks: 10, heartbeatTicks: 1, snapshotThreshold: 16384, trailingLogs: 10240,
      maxEntryBytes: 512 * 1024, preVote: true, checkQuorum: true, readOnly: 'safe', maxInflight: 256,
      readTimeoutMs: 5000, ...options,
      random: options.random ?? Math.random, logger: options.logger ?? silentLogger, maxMsgBytes: options.maxMsgBytes,
    };
    this.clock = options.clock ?? realClock;
    this.plan = options.planReady ?? planReady;
  }

  /** True when storage holds no state at all (a node that was never bootstrapped or joined). */
  async isEmpty(): Promise<boolean> {
    await this.openStores();
    const { hardState, entries } = await this.opts.logStore.load();
    const meta = await this.opts.snapshotStore.latestMeta();
    return hardState.term === 0 && entries.length === 0 && !meta;
  }

  /**
   * Creates a new cluster's first configuration: one addVoter entry per member at term 1, marked
   * committed. Every founding member must be bootstrapped with the same map (same order), which keeps
   * their logs identical (log matching holds for index 1..n). Refuses on a node that has state.
   */
  async bootstrap(members: Record<NodeId, string>): Promise<void> {
    if (this.started) throw new RaftError('ERR_ALREADY_STARTED', 'bootstrap must be called before start()');
    if (!(await this.isEmpty())) throw new RaftError('ERR_NOT_EMPTY', 'cannot bootstrap: this node already has Raft state');
    const ids = Object.keys(members).sort();
    if (!ids.includes(this.id)) throw new RaftError('ERR_INVALID_BOOTSTRAP', `bootstrap members must include this node (${this.id})`);
    const entries: Entry[] = ids.map((node, i) => ({
      term: 1, index: i + 1, kind: 'conf', data: encodeConfChange({ type: 'addVoter', node, address: members[node] }),
    }));
    await this.opts.logStore.save(entries, { term: 1, vote: '', commit: entries.length }, true);
  }

  private storesOpen = false;
  private async openStores(): Promise<void> {
    if (this.storesOpen) return;
    await this.opts.logStore.open();
    await this.opts.snapshotStore.open();
    this.storesOpen = true;
  }

  async start(): Promise<void> {
    if (this.started) return;
    await this.openStores();
    const { hardState, entries } = await this.opts.logStore.load();
    this.persistedHard = { term: hardState.term, vote: hardState.vote };
    const snap = await this.opts.snapshotStore.latest();
    const initial: InitialState = { hardState, entries, snapshot: snap?.meta };
    if (snap) {
      await this.opts.stateMachine.restore(snap.data);
      this.applied = snap.meta.index;
      this.appliedTerm = snap.meta.term;
      this.appliedConf = structuredClone(snap.meta.conf);
      this.snapshotMeta = snap.meta;
      for (const [id, addr] of Object.entries(snap.meta.addresses ?? {})) this.addresses.set(id, addr);
      initial.applied = snap.meta.index;
    }
    // Addresses from the log's conf entries, in log order so a later address for a member wins over
    // the snapshot's and over earlier entries.
    for (const e of entries) if (e.kind === 'conf') this.learnAddress(decodeConfChange(e.data));

    const config: CoreConfig = {
      id: this.id, electionTicks: this.opts.electionTicks, heartbeatTicks: this.opts.heartbeatTicks,
      random: this.opts.random, preVote: this.opts.preVote, checkQuorum: this.opts.checkQuorum,
      readOnly: this.opts.readOnly, maxInflight: this.opts.maxInflight, maxEntryBytes: this.opts.maxEntryBytes, initial,
      ...(this.opts.maxMsgBytes !== undefined ? { maxMsgBytes: this.opts.maxMsgBytes } : {}),
    };
    this.core = new RaftCore(config);
    this.started = true;
    this.syncTransportPeers();
    await this.opts.transport.start((m) => this.onMessage(m));

    // etcd's initial-election-tick-advance: a sole voter need not wait a whole election timeout
    // (nobody else can be leader), so fast-forward its election clock to make a -dev agent usable at once.
    const conf = this.core.status().conf;
    if (conf.voters.length === 1 && conf.voters[0] === this.id && conf.learners.length === 0) {
      for (let i = 0; i < this.opts.electionTicks * 2 && this.core.role !== 'leader'; i++) this.core.tick();
    }
    this.ticker = this.startTicker();
    this.loopDone = this.loop();
    this.kick();
  }

  async stop(): Promise<void> {
    // A node stopped by a storage failure still holds its transport and stores: release them too.
    if (this.closed) return;
    this.closed = true;
    this.stopped = true;
    if (this.ticker) this.clock.clearInterval(this.ticker);
    this.kick();
    await this.loopDone?.catch(() => { /* the loop's fatal error was already logged */ });
    this.failAll(new StoppedError());
    await this.opts.transport.stop();
    if (this.storesOpen) {
      await this.opts.logStore.close();
      await this.opts.snapshotStore.close();
    }
  }

  on<K extends keyof NodeEvents>(event: K, fn: (e: NodeEvents[K]) => void): void {
    this.events.on(event, fn);
  }

  off<K extends keyof NodeEvents>(event: K, fn: (e: NodeEvents[K]) => void): void {
    this.events.off(event, fn);
  }

  isLeader(): boolean {
    return this.started && !this.fatal && this.core.role === 'leader';
  }

  /** The core, for the simulator's checkers (read its state; driving it directly breaks the node). */
  inspectCore(): RaftCore | undefined {
    return this.started ? this.core : undefined;
  }

  /** The storage or state machine failure that stopped this node, if one did (see the 'fatal' event). */
  get failure(): Error | undefined {
    return this.fatal;
  }

  private ensureRunning(): void {
    if (this.fatal) throw this.fatal;
    if (!this.started || this.stopped) throw new StoppedError();
  }

  propose(data: Uint8Array, opts: ProposeOptions = {}): Promise<R> {
    try {
      this.ensureRunning();
      if (opts.signal?.aborted) return Promise.reject(abortError(opts.signal));
      const { index, term } = this.core.propose(data);
      return this.track(index, term, opts.signal);
    } catch (err) {
      return Promise.reject(this.withLeaderAddress(err));
    }
  }

  async proposeConfChange(cc: ConfChange, opts: ProposeOptions = {}): Promise<void> {
    this.ensureRunning();
    if (cc.address) this.addresses.set(cc.node, cc.address);
    let res;
    try {
      res = this.core.proposeConfChange(cc);
    } catch (err) {
      throw this.withLeaderAddress(err);
    }
    this.syncTransportPeers();
    await this.track(res.index, res.term, opts.signal);
  }

  private track(index: number, term: number, signal: AbortSignal | undefined): Promise<R> {
    this.kick();
    return new Promise<R>((resolve, reject) => {
      if (signal) {
        const onAbort = () => { this.pending.delete(index); reject(abortError(signal)); };
        signal.addEventListener('abort', onAbort, { once: true });
        const done = <T>(fn: (v: T) => void) => (v: T) => { signal.removeEventListener('abort', onAbort); fn(v); };
        this.pending.set(index, { term, resolve: done(resolve), reject: done(reject) });
      } else {
        this.pending.set(index, { term, resolve, reject });
      }
    });
  }

  read(opts: ReadOptions = {}): Promise<void> {
    try {
      this.ensureRunning();
      if (opts.signal?.aborted) return Promise.reject(abortError(opts.signal));
      const ctx = `${this.id}:${++this.readSeq}`;
      this.core.readIndex(ctx);
      this.kick();
      return new Promise<void>((resolve, reject) => {
        const finish = (fn: () => void) => {
          this.clock.clearTimeout(timer);
          this.reads.delete(ctx);
          opts.signal?.removeEventListener('abort', onAbort);
          fn();
        };
        const onAbort = () => finish(() => reject(abortError(opts.signal!)));
        const timer = this.clock.setTimeout(() => finish(() => reject(new TimeoutError('linearizable read (ReadIndex)'))), this.opts.readTimeoutMs);
        opts.signal?.addEventListener('abort', onAbort, { once: true });
        this.reads.set(ctx, { index: -1, resolve: () => finish(resolve), reject: (e) => finish(() => reject(e)), timer });
      });
    } catch (err) {
      return Promise.reject(this.withLeaderAddress(err));
    }
  }

  async transferLeader(to: NodeId, opts: { signal?: AbortSignal } = {}): Promise<void> {
    this.ensureRunning();
    if (this.core.role !== 'leader') throw this.withLeaderAddress(new NotLeaderError(this.core.leader));
    if (to === this.id) return;
    this.core.transferLeader(to);
    this.kick();
    const deadline = this.clock.now() + this.opts.tickMs * this.opts.electionTicks * 2;
    while (this.core.leader !== to) {
      if (opts.signal?.aborted) throw abortError(opts.signal);
      if (this.clock.now() > deadline) throw new TimeoutError(`leadership transfer to ${to}`);
      if (this.stopped) throw new StoppedError();
      await new Promise<void>((r) => { this.clock.setTimeout(r, this.opts.tickMs / 2); });
    }
  }

  /** Resolves once the local state machine has applied `index`. */
  waitApplied(index: number): Promise<void> {
    if (this.applied >= index) return Promise.resolve();
    return new Promise((resolve) => this.waitingApplied.push({ index, fn: resolve }));
  }

  status(): NodeStatus {
    const s = this.core.status();
    const now = this.clock.now();
    const peersSeen = new Set<NodeId>();
    const peers = [...s.conf.voters.map((id) => ({ id, voter: true })), ...s.conf.learners.map((id) => ({ id, voter: false }))]
      .filter((p) => !peersSeen.has(p.id) && peersSeen.add(p.id))
      .map((p) => {
        const pr = s.progress?.find((x) => x.id === p.id);
        return { id: p.id, address: this.addresses.get(p.id) ?? '', voter: p.voter, matchIndex: pr?.match ?? 0 };
      });
    // A node stopped by a failure leads nothing and knows no leader (its core is frozen as it was).
    const role = this.fatal ? 'follower' : s.role;
    const leader = this.fatal ? '' : s.leader;
    return {
      id: this.id, term: s.term, role, leader, leaderAddress: leader ? this.addresses.get(leader) ?? '' : '',
      commitIndex: s.commit, appliedIndex: this.applied, lastIndex: s.lastIndex, snapshotIndex: this.snapshotMeta?.index ?? 0,
      peers, lastContactMs: s.role === 'leader' ? 0 : this.lastLeaderContact ? now - this.lastLeaderContact : -1,
    };
  }

  /** Tells the node how to reach a member (e.g. learned from gossip). Addresses in the log win later. */
  setPeerAddress(id: NodeId, address: string): void {
    if (id === this.id || this.addresses.get(id) === address) return;
    this.addresses.set(id, address);
    if (this.started) this.syncTransportPeers();
  }

  addressOf(id: NodeId): string {
    return this.addresses.get(id) ?? '';
  }

  // ---- internals ----

  private withLeaderAddress(err: unknown): unknown {
    if (err instanceof NotLeaderError && err.leader && !err.leaderAddress) {
      return new NotLeaderError(err.leader, this.addresses.get(err.leader) ?? '');
    }
    return err;
  }

  private learnAddress(cc: ConfChange): void {
    if (cc.address && (cc.type === 'addVoter' || cc.type === 'addLearner')) this.addresses.set(cc.node, cc.address);
  }

  private syncTransportPeers(): void {
    this.opts.transport.setPeers(Object.fromEntries([...this.addresses].filter(([id]) => id !== this.id)));
  }

  private onMessage(m: Message): void {
    if (!this.started || this.stopped) return;
    if ((m.type === 'app' || m.type === 'heartbeat' || m.type === 'snap') && m.term >= this.core.term) {
      this.lastLeaderContact = this.clock.now();
    }
    try {
      this.core.step(m);
    } catch (err) {
      // The core's contract is that step never throws; if it does, that is a bug worth a loud log,
      // but one bad message must not take the node down.
      this.opts.logger.error({ err, type: m.type, from: m.from }, 'raft: core rejected a message');
    }
    this.kick();
  }

  private kick(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      if (!this.core.hasReady()) {
        await new Promise<void>((resolve) => { this.wake = resolve; });
        continue;
      }
      const rd = this.core.ready();
      try {
        await this.handleReady(rd);
        await this.maybeSnapshot();
      } catch (err) {
        this.failStop(err instanceof Error ? err : new Error(String(err)));
        return;
      }
    }
  }

  /** Executes the Ready plan (readyPlan.ts), the same steps in the same order as the simulator. */
  private async handleReady(rd: Ready): Promise<void> {
    if (rd.softState) this.onSoftState(rd.softState.leader, rd.softState.role);

    let confAppended = false;
    for (const e of rd.entries) if (e.kind === 'conf') { this.learnAddress(decodeConfChange(e.data)); confAppended = true; }
    if (confAppended) this.syncTransportPeers();

    let saving: Promise<void> | undefined;
    for (const step of this.plan(rd, this.persistedHard)) {
      switch (step.kind) {
        case 'send':
          this.opts.transport.send(await this.attachSnapshots(step.messages));
          break;
        case 'installSnapshot':
          await this.installSnapshot(step.snapshot);
          break;
        case 'startSave':
          saving = this.opts.logStore.save(step.entries, step.hardState, step.sync);
          // Keep the rejection observed even if apply throws first; it is re-raised by awaitSave.
          saving.catch(() => {});
          break;
        case 'apply':
          for (const e of step.entries) await this.applyEntry(e);
          break;
        case 'awaitSave':
          await saving;
          if (rd.hardState) this.persistedHard = rd.hardState;
          break;
        case 'readStates':
          for (const rs of step.readStates) {
            const r = this.reads.get(rs.context);
            if (!r) continue;
            r.index = rs.index;
            if (this.applied >= rs.index) r.resolve();
            else this.waitApplied(rs.index).then(() => r.resolve());
          }
          break;
        case 'advance':
          this.core.advance(rd);
          break;
      }
    }
  }

  private persistedHard = { term: 0, vote: '' };


  /**
   * The core's clock. With the real clock, ticks follow elapsed (monotonic) time rather than the
   * number of times the interval fired: Node runs an interval late when the event loop is busy and
   * never catches up, so under load a 100 ms tick took 130 ms or more, and election timeouts and
   * check-quorum stretched with it (a failover that must take < 5 s took 7.1 s on a loaded machine).
   * hashicorp/raft's timers are wall-clock timers too. A stall longer than an election timeout (a
   * SIGSTOP, a long GC) counts as one tick short of it, so a node that wakes reads what arrived
   * meanwhile before its election timer can fire. The simulator's clock keeps one tick per firing.
   */
  private startTicker(): unknown {
    const tickMs = this.opts.tickMs;
    if (this.clock !== realClock) return this.clock.setInterval(() => { this.core.tick(); this.kick(); }, tickMs);
    const maxTicks = Math.max(1, this.opts.electionTicks - 1);
    let last = performance.now();
    return setInterval(() => {
      const now = performance.now();
      let n = Math.floor((now - last) / tickMs);
      if (n <= 0) return;
      if (n > maxTicks) {
        n = maxTicks;
        last = now;
      } else {
        last += n * tickMs;
      }
      for (let i = 0; i < n; i++) this.core.tick();
      this.kick();
    }, tickMs);
  }

  private onSoftState(leader: NodeId | '', role: string): void {
    const wasLeader = this.leader === this.id;
    if (leader !== this.leader) {
      this.leader = leader;
      this.events.emit('leaderChange', { leader, term: this.core.term, isLocal: leader === this.id });
      this.opts.logger.info({ leader, term: this.core.term }, leader ? 'raft: leader elected' : 'raft: no leader');
    }
    if (wasLeader && role !== 'leader') {
      // hashicorp/raft does the same: a deposed leader cannot know whether its in-flight entries will
      // commit, so callers learn "unknown outcome" rather than waiting forever.
      const err = new ProposalDroppedError('leadership lost before the entry was known to commit; it may or may not apply');
      for (const [, p] of this.pending) p.reject(err);
      this.pending.clear();
      for (const [, r] of this.reads) r.reject(this.withLeaderAddress(new NotLeaderError(leader)) as Error);
    }
  }

  private async installSnapshot(snap: Snapshot): Promise<void> {
    await this.opts.snapshotStore.save(snap);
    await this.opts.stateMachine.restore(snap.data);
    await this.opts.logStore.reset(snap.meta.index);
    this.applied = snap.meta.index;
    this.appliedTerm = snap.meta.term;
    this.appliedConf = structuredClone(snap.meta.conf);
    this.snapshotMeta = snap.meta;
    this.snapshotCache = undefined;
    for (const [id, addr] of Object.entries(snap.meta.addresses ?? {})) this.addresses.set(id, addr);
    this.syncTransportPeers();
    for (const [index, p] of this.pending) if (index <= snap.meta.index) { p.reject(new ProposalDroppedError('replaced by a snapshot from the leader')); this.pending.delete(index); }
    this.notifyApplied();
    this.events.emit('applied', { index: this.applied });
  }

  /** Attaches the snapshot bytes to 'snap' messages. One whose snapshot was replaced by a newer one
   *  since the core queued it is dropped (never sent without data: sim finding F2); the core retries
   *  that follower with the newer snapshot after its snapshot timeout. */
  private async attachSnapshots(messages: Message[]): Promise<Message[]> {
    if (!messages.some((m) => m.type === 'snap')) return messages;
    const out: Message[] = [];
    for (const m of messages) {
      if (m.type !== 'snap' || !m.snapshot) { out.push(m); continue; }
      if (!this.snapshotCache || this.snapshotCache.meta.index !== m.snapshot.meta.index) {
        this.snapshotCache = await this.opts.snapshotStore.latest();
      }
      if (!this.snapshotCache || this.snapshotCache.meta.index !== m.snapshot.meta.index || this.snapshotCache.meta.term !== m.snapshot.meta.term) {
        this.opts.logger.info({ to: m.to, index: m.snapshot.meta.index }, 'raft: snapshot to send was replaced by a newer one; dropped (the follower is retried)');
        continue;
      }
      out.push({ ...m, snapshot: { meta: this.snapshotCache.meta, data: this.snapshotCache.data } });
    }
    return out;
  }

  private async applyEntry(e: Entry): Promise<void> {
    if (e.index <= this.applied) return;
    let result: R | undefined;
    if (e.kind === 'conf') {
      this.applyConf(decodeConfChange(e.data));
    } else if (e.data.length > 0) {
      result = this.opts.stateMachine.apply(e);
    }
    this.applied = e.index;
    this.appliedTerm = e.term;
    const p = this.pending.get(e.index);
    if (p) {
      this.pending.delete(e.index);
      if (p.term === e.term) p.resolve(result as R);
      else p.reject(new ProposalDroppedError('a new leader overwrote the entry'));
    }
    this.notifyApplied();
  }

  private applyConf(cc: ConfChange): void {
    const c = this.appliedConf;
    const without = (xs: NodeId[]) => xs.filter((x) => x !== cc.node);
    switch (cc.type) {
      case 'addVoter': c.voters = [...without(c.voters), cc.node]; c.learners = without(c.learners); break;
      case 'addLearner': c.learners = [...without(c.learners), cc.node]; break;
      case 'promote': c.learners = without(c.learners); c.voters = [...without(c.voters), cc.node]; break;
      case 'remove': c.voters = without(c.voters); c.learners = without(c.learners); break;
    }
  }

  private notifyApplied(): void {
    if (this.waitingApplied.length === 0) return;
    for (let i = this.waitingApplied.length - 1; i >= 0; i--) {
      const w = this.waitingApplied[i]!;
      if (w.index <= this.applied) { this.waitingApplied.splice(i, 1); w.fn(); }
    }
  }

  private async maybeSnapshot(): Promise<void> {
    const last = this.snapshotMeta?.index ?? 0;
    if (this.applied - last < this.opts.snapshotThreshold) return;
    const data = await this.opts.stateMachine.snapshot();
    const members = new Set([...this.appliedConf.voters, ...this.appliedConf.learners]);
    const meta: SnapshotMeta = {
      index: this.applied, term: this.appliedTerm, conf: structuredClone(this.appliedConf),
      addresses: Object.fromEntries([...this.addresses].filter(([id]) => members.has(id))),
    };
    const snap = { meta, data };
    await this.opts.snapshotStore.save(snap);
    const compactTo = Math.max(0, meta.index - this.opts.trailingLogs);
    this.core.snapshotTaken(meta, compactTo);
    if (compactTo > 0) await this.opts.logStore.compact(compactTo);
    this.snapshotMeta = meta;
    // Not kept in memory: most snapshots are never sent (a follower needs one only when it fell
    // behind the trailing logs); attachSnapshots loads it from the store when one is.
    this.snapshotCache = undefined;
    this.opts.logger.info({ index: meta.index, bytes: data.length, compactedTo: compactTo }, 'raft: snapshot taken');
  }

  /**
   * A write to storage (or an apply) failed. Continuing could acknowledge writes that are not
   * durable or let replicas diverge, and what reached the disk is unknown (a LevelDB write that
   * failed leaves the store refusing further writes). So the node stops at once, as if it had
   * crashed: it steps down (isLeader() false, status() shows no leader, leaderChange fires), sends
   * nothing more (no heartbeat, vote or acknowledgement, so it no longer counts toward any quorum),
   * ticks no more, and rejects every waiting and later call with the error. It does not try to
   * resume in-process: committed entries may already be applied beyond what its own log holds (they
   * are applied while the write is in flight), so only a restart, which rebuilds the state machine
   * from what is durable, is sound. The embedder decides how to restart (the 'fatal' event).
   */
  private failStop(err: Error): void {
    this.fatal = err;
    this.stopped = true;
    if (this.ticker) this.clock.clearInterval(this.ticker);
    this.opts.logger.error({ err }, 'raft: storage or state machine failure; node stopped: it no longer leads, votes or acknowledges until restarted');
    this.failAll(err);
    this.onSoftState('', 'follower');
    this.events.emit('fatal', { error: err });
  }

  private failAll(err: Error): void {
    for (const [, p] of this.pending) p.reject(err);
    this.pending.clear();
    for (const [, r] of this.reads) r.reject(err);
  }
}
