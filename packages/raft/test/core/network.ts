// A tiny deterministic cluster for core tests: every node is a RaftCore whose Ready is "persisted"
// into plain arrays, whose messages go through a queue this helper delivers (or drops, across a
// partition), and whose committed entries are "applied" into a list.
import { RaftCore } from '../../src/core/raft.ts';
import type { CoreConfig, InitialState } from '../../src/core/config.ts';
import type { ConfState, Entry, HardState, Message, NodeId, ReadState, Snapshot } from '../../src/core/types.ts';
import { mulberry32 } from '../../../../test/support/random.ts';

/** A small seeded PRNG so each test is reproducible. */
export const seededRandom = mulberry32;

export interface Storage {
  hardState: HardState;
  entries: Entry[];
  snapshot?: Snapshot;
}

export interface SimNode {
  id: NodeId;
  core: RaftCore;
  storage: Storage;
  /** Entries handed out for applying, in order (snapshots appear as a marker entry). */
  applied: Entry[];
  appliedIndex: number;
  readStates: ReadState[];
}

export const enc = (s: string) => new TextEncoder().encode(s);
export const dec = (b: Uint8Array) => new TextDecoder().decode(b);

export function bootstrapEntries(ids: NodeId[]): Entry[] {
  return ids.map((id, i) => ({ term: 1, index: i + 1, kind: 'conf' as const, data: enc(JSON.stringify({ type: 'addVoter', node: id })) }));
}

export type NodeOptions = Partial<Omit<CoreConfig, 'id' | 'random'>>;

export class Network {
  readonly nodes = new Map<NodeId, SimNode>();
  /** Messages in flight, delivered in FIFO order. */
  queue: Message[] = [];
  /** Pairs that cannot talk (both directions), as "a|b" with a < b. */
  private cut = new Set<string>();
  /** Optional filter: return false to drop a message. */
  filter: ((m: Message) => boolean) | undefined;
  /** Every message ever sent, for assertions. */
  sent: Message[] = [];
  private seed: number;
  /** Options every node of this network is created (and restarted) with. */
  private readonly opts: NodeOptions;

  constructor(ids: NodeId[], opts: NodeOptions = {}, seed = 1, conf?: ConfState) {
    this.seed = seed;
    this.opts = opts;
    for (const id of ids) {
      const initial: InitialState = conf
        ? { hardState: { term: 0, vote: '', commit: 0 }, entries: [], conf }
        : { hardState: { term: 1, vote: '', commit: ids.length }, entries: bootstrapEntries(ids) };
      this.add(id, opts, initial);
    }
  }

  add(id: NodeId, opts: NodeOptions = this.opts, initial?: InitialState): SimNode {
    const init: InitialState = initial ?? { hardState: { term: 0, vote: '', commit: 0 }, entries: [] };
    const core = new RaftCore({ id, electionTicks: 10, heartbeatTicks: 1, random: seededRandom(this.seed++ * 7919), ...opts, initial: init });
    const node: SimNode = {
      id, core,
      storage: { hardState: { ...init.hardState }, entries: [...init.entries], ...(init.snapshot ? { snapshot: { meta: init.snapshot, data: new Uint8Array() } } : {}) },
      applied: [],
      appliedIndex: init.applied ?? init.snapshot?.index ?? 0,
      readStates: [],
    };
    this.nodes.set(id, node);
    return node;
  }

  /** Restarts `id` from what it persisted (unsent messages and volatile state are lost). */
  restart(id: NodeId, opts: NodeOptions = this.opts): SimNode {
    const old = this.node(id);
    const s = old.storage;
    const initial: InitialState = {
      hardState: { ...s.hardState },
      entries: [...s.entries],
      ...(s.snapshot ? { snapshot: s.snapshot.meta } : {}),
      applied: s.snapshot?.meta.index ?? 0,
    };
    const core = new RaftCore({ id, electionTicks: 10, heartbeatTicks: 1, random: seededRandom(this.seed++ * 7919), ...opts, initial });
    const node: SimNode = { id, core, storage: s, applied: old.applied.filter((e) => e.index <= (s.snapshot?.meta.index ?? 0)), appliedIndex: s.snapshot?.meta.index ?? 0, readStates: [] };
    this.nodes.set(id, node);
    this.queue = this.queue.filter((m) => m.to !== id && m.from !== id);
    return node;
  }

  node(id: NodeId): SimNode {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  core(id: NodeId): RaftCore {
    return this.node(id).core;
  }

  private key(a: NodeId, b: NodeId): string {
    return a < b ? `${a}|${b}` : `${b}|${a}`;
  }

  /** Cuts every link between the groups (nodes not listed keep all their links). */
  partition(...groups: NodeId[][]): void {
    for (let i = 0; i < groups.length; i++) {
      for (let j = i + 1; j < groups.length; j++) {
        for (const a of groups[i]!) for (const b of groups[j]!) this.cut.add(this.key(a, b));
      }
    }
  }

  isolate(id: NodeId): void {
    for (const other of this.nodes.keys()) if (other !== id) this.cut.add(this.key(id, other));
  }

  heal(): void {
    this.cut.clear();
  }

  /** Processes one Ready on one node: persist, queue messages, apply. */
  processReady(n: SimNode): boolean {
    if (!n.core.hasReady()) return false;
    const rd = n.core.ready();
    if (rd.snapshot) {
      n.storage.snapshot = rd.snapshot;
      // Installing a leader's snapshot replaces the whole log (the core's log restarts after it).
      n.storage.entries = [];
      n.appliedIndex = rd.snapshot.meta.index;
      n.applied = n.applied.filter((e) => e.index <= rd.snapshot!.meta.index);
      // The snapshot stands for entries we never saw individually.
      n.applied.push({ term: rd.snapshot.meta.term, index: rd.snapshot.meta.index, kind: 'normal', data: enc(`<snapshot ${rd.snapshot.meta.index}>`) });
    }
    if (rd.entries.length > 0) {
      const first = rd.entries[0]!.index;
      n.storage.entries = n.storage.entries.filter((e) => e.index < first).concat(rd.entries);
    }
    if (rd.hardState) n.storage.hardState = { ...rd.hardState };
    for (const m of rd.messages) {
      this.sent.push(m);
      this.queue.push(m);
    }
    for (const e of rd.committed) {
      if (e.index !== n.appliedIndex + 1) throw new Error(`${n.id} applied ${e.index} after ${n.appliedIndex}`);
      n.appliedIndex = e.index;
      n.applied.push(e);
    }
    n.readStates.push(...rd.readStates);
    n.core.advance(rd);
    return true;
  }

  /** Drains every node's Ready and delivers every message until quiet (bounded). */
  settle(maxRounds = 10_000): void {
    for (let round = 0; round < maxRounds; round++) {
      let busy = false;
      for (const n of this.nodes.values()) busy = this.processReady(n) || busy;
      if (this.queue.length > 0) {
        busy = true;
        const q = this.queue;
        this.queue = [];
        for (const m of q) this.deliver(m);
      }
      if (!busy) return;
    }
    throw new Error('network did not settle');
  }

  deliver(m: Message): void {
    if (this.cut.has(this.key(m.from, m.to))) return;
    if (this.filter && !this.filter(m)) return;
    const n = this.nodes.get(m.to);
    if (n) n.core.step(m);
  }

  tick(ids: Iterable<NodeId> = this.nodes.keys()): void {
    for (const id of ids) this.node(id).core.tick();
  }

  /** Ticks everyone (settling in between) until `id` leads, or fails. */
  elect(id: NodeId): void {
    // Campaign on `id` by giving it the shortest fuse: tick only it until it campaigns.
    for (let i = 0; i < 100 && this.core(id).role !== 'leader'; i++) {
      this.core(id).tick();
      this.settle();
    }
    if (this.core(id).role !== 'leader') throw new Error(`${id} did not become leader (role ${this.core(id).role}, term ${this.core(id).term})`);
  }

  /** Advances time on all nodes, settling after each tick. */
  run(ticks: number): void {
    for (let i = 0; i < ticks; i++) {
      this.tick();
      this.settle();
    }
  }

  leaders(): SimNode[] {
    return [...this.nodes.values()].filter((n) => n.core.role === 'leader');
  }

  /** Applied normal entries with data, as strings. */
  appliedData(id: NodeId): string[] {
    return this.node(id).applied.filter((e) => e.kind === 'normal' && e.data.length > 0).map((e) => dec(e.data));
  }
}
