// Read barriers on a follower: "wait until my store reflects everything the leader had committed
// when this read arrived", so a follower can answer default and consistent reads from its own store.
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
