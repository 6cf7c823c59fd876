// The read path of a server (ServerReads, below), built on read barriers on a follower: "wait until
// my store reflects everything the leader had committed when this read arrived", so a follower can
// answer default and consistent reads from its own store.
//
// Consul forwards default and consistent queries to the leader and runs them there. Trellis keeps
// the query local and forwards only the barrier: the follower asks the leader for an index (a
// ReadIndex quorum round for ?consistent; the leader's commit index under its lease for the default
// mode), waits until its own state machine has applied that index, then runs the query. The answer
// is the one the leader would have given at that moment, and blocking queries keep waiting on the
// follower's own watch sets. (etcd serves linearizable reads on followers the same way.)
//
// Reads that arrive while a request to the leader is in flight share the next request, never the
// in-flight one: an index obtained before a read arrived does not cover writes acknowledged between
// that moment and the read's arrival.
import { NotLeaderError } from '@trellis/raft';
import type { RuntimeConfig } from '../config/runtime.ts';
import type { RpcClient } from '../rpc/client.ts';
import { retryable } from '../rpc/errors.ts';
import { abortError, ServerError } from './errors.ts';
import { NoLeaderError, type RaftServer } from './raftServer.ts';
import type { ChaosPlant } from './chaosPlant.ts';
import type { Writes } from './writes.ts';

export interface ReadBarrierOptions {
  /** Asks the leader for the index a read of this mode must wait for. */
  fetchIndex(consistent: boolean, signal: AbortSignal): Promise<number>;
  /** Resolves once the local state machine applied `index` (Raft index). */
  waitApplied(index: number, signal: AbortSignal): Promise<void>;
}

interface Waiter {
  resolve: (index: number) => void;
  reject: (err: unknown) => void;
  signal: AbortSignal | undefined;
}

/**
 * Runs `fetch` once for every group of callers that arrived before it started; callers arriving
 * while it runs share the next run. (The leader uses it to serve many linearizable reads with one
 * ReadIndex round, as etcd's linearizableReadLoop does.)
 */
export class Coalescer {
  #queue: Waiter[] = [];
  #inFlight = false;
  readonly #fetch: (signal: AbortSignal) => Promise<number>;

  constructor(fetch: (signal: AbortSignal) => Promise<number>) {
    this.#fetch = fetch;
  }

  next(signal: AbortSignal | undefined): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      let settled = false;
      const onAbort = () => { if (!settled) { settled = true; reject(signal!.reason); } };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#queue.push({
        resolve: (i) => { if (!settled) { settled = true; signal?.removeEventListener('abort', onAbort); resolve(i); } },
        reject: (e) => { if (!settled) { settled = true; signal?.removeEventListener('abort', onAbort); reject(e); } },
        signal,
      });
      if (!this.#inFlight) {
        this.#inFlight = true;
        // Reads arriving in the same turn of the event loop share the first request.
        queueMicrotask(() => void this.#run());
      }
    });
  }

  async #run(): Promise<void> {
    while (this.#queue.length > 0) {
      const batch = this.#queue.filter((w) => !w.signal?.aborted);
      this.#queue = [];
      if (batch.length === 0) continue;
      // The request is abandoned only when every read waiting for it has gone.
      const ac = new AbortController();
      let live = batch.length;
      const onAbort = () => { if (--live === 0) ac.abort(); };
      for (const w of batch) w.signal?.addEventListener('abort', onAbort, { once: true });
      try {
        const index = await this.#fetch(ac.signal);
        for (const w of batch) w.resolve(index);
      } catch (err) {
        for (const w of batch) w.reject(err);
      } finally {
        for (const w of batch) w.signal?.removeEventListener('abort', onAbort);
      }
    }
    this.#inFlight = false;
  }
}

export class ReadBarrier {
  readonly #o: ReadBarrierOptions;
  readonly #consistent: Coalescer;
  readonly #default: Coalescer;

  constructor(o: ReadBarrierOptions) {
    this.#o = o;
    this.#consistent = new Coalescer((s) => o.fetchIndex(true, s));
    this.#default = new Coalescer((s) => o.fetchIndex(false, s));
  }

  /** Resolves once a read of this mode may run on the local store. */
  async wait(consistent: boolean, signal?: AbortSignal): Promise<void> {
    const index = await (consistent ? this.#consistent : this.#default).next(signal);
    await this.#o.waitApplied(index, signal ?? new AbortController().signal);
  }
}

export interface ServerReadsOptions {
  config: Pick<RuntimeConfig, 'rpcHoldTimeoutMs'>;
  nodeId: string;
  raft: RaftServer;
  rpcClient: RpcClient;
  writes: Writes;
  /** A planted bug for chaos tests (chaosPlant.ts); undefined in every real agent. */
  plant?: ChaosPlant;
}

/**
 * Reads by consistency mode:
 *   default:    leader: local once its lease is established; follower: barrier (ReadBarrier).
 *   consistent: leader: ReadIndex round; follower: barrier after the leader's ReadIndex.
 *   stale:      local, always (the HTTP layer adds X-Consul-LastContact / KnownLeader).
 */
export class ServerReads {
  readonly #o: ServerReadsOptions;
  readonly #barrierOnFollower: ReadBarrier;
  /** One ReadIndex round on the leader serves every read that arrived before it started. */
  readonly #readIndexRounds: Coalescer;
  /** The Raft index from which this leader's lease covers every earlier commit (its first entry). */
  #leaseFrom = Number.POSITIVE_INFINITY;

  constructor(o: ServerReadsOptions) {
    this.#o = o;
    this.#readIndexRounds = new Coalescer(async (signal) => {
      await o.raft.node.read({ signal });
      return o.raft.node.status().appliedIndex;
    });
    this.#barrierOnFollower = new ReadBarrier({
      fetchIndex: (consistent, signal) => this.#fetchReadIndex(consistent, signal),
      waitApplied: (index, signal) => this.#waitApplied(index, signal),
    });
  }

  /**
   * On every leader change. The lease (default reads without a quorum round) starts once this
   * leader's first entry, appended when it took over, has been applied: by then every earlier commit
   * has been too.
   */
  leaderChanged(isLocal: boolean): void {
    this.#leaseFrom = isLocal ? this.#o.raft.node.status().lastIndex : Number.POSITIVE_INFINITY;
  }

  /** Resolves once a read of this mode may run on the local store. */
  async barrier(consistent: boolean, signal?: AbortSignal): Promise<void> {
    // PLANTED BUG (TRELLIS_CHAOS_PLANT=stale-reads): a consistent read without any barrier.
    if (consistent && this.#o.plant === 'stale-reads') return;
    const raft = this.#o.raft;
    if (raft.started && raft.node.isLeader()) {
      try {
        await this.leaderBarrier(consistent, signal);
        return;
      } catch (err) {
        if (!retryable(err, true)) throw err;
        // Lost leadership meanwhile: fall through to the follower path.
      }
    }
    // reroute: a barrier in flight to a leader that is replaced (cut off, frozen) is asked again of
    // the new one at once, rather than waiting out its deadline.
    await this.#o.writes.onLeader('read', { idempotent: true, reroute: true, signal },
      async () => { await this.leaderBarrier(consistent, signal); },
      (_address, call) => this.#barrierOnFollower.wait(consistent, call.signal));
  }

  /** On the leader: resolves when a read of this mode may run; returns the index it covers. */
  async leaderBarrier(consistent: boolean, signal?: AbortSignal): Promise<number> {
    const node = this.#o.raft.node;
    if (!consistent) {
      const st = node.status();
      if (st.role !== 'leader') throw new NotLeaderError(st.leader, st.leaderAddress);
      if (st.appliedIndex >= this.#leaseFrom) return st.commitIndex;
    }
    // The applied index after the round: at least its read index, and all of it committed.
    return this.#readIndexRounds.next(signal);
  }

  async #fetchReadIndex(consistent: boolean, signal: AbortSignal): Promise<number> {
    const st = this.#o.raft.status();
    if (!st.leader || !st.leaderAddress || st.leader === this.#o.nodeId) throw new NoLeaderError();
    const r = await this.#o.rpcClient.call(st.leaderAddress, 'Forward.ReadIndex', { consistent }, {
      deadline: Date.now() + 5000, connectTimeoutMs: 1000, signal,
    });
    return r.index ?? 0;
  }

  async #waitApplied(index: number, signal: AbortSignal): Promise<void> {
    const node = this.#o.raft.node;
    if (node.status().appliedIndex >= index) return;
    const timeoutMs = this.#o.config.rpcHoldTimeoutMs;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        cleanup();
        reject(new ServerError('ERR_TIMEOUT', `this server did not apply index ${index} within ${timeoutMs} ms; it is lagging behind the leader`));
      }, timeoutMs);
      const onAbort = () => { cleanup(); reject(abortError(signal)); };
      const cleanup = () => { clearTimeout(timer); signal.removeEventListener('abort', onAbort); };
      signal.addEventListener('abort', onAbort, { once: true });
      node.waitApplied(index).then(() => { cleanup(); resolve(); }, (err: unknown) => { cleanup(); reject(err); });
    });
  }
}
