// Anti-entropy's scheduler (Consul's agent/ae StateSyncer): when to run a full sync of the local
// state to the catalog. Changes reach the catalog as they happen (LocalState writes them); the full
// sync repairs whatever drifted since (a restored snapshot, a node the leader deregistered while
// this agent was cut off, changes a client agent kept while no server was reachable).
//
// It runs every interval (ae_interval, one minute, scaled up past 128 nodes, with a random stagger so
// a thousand agents do not sync in the same second), soon after `soon()` (a server joined, a change
// was kept locally), and every few seconds while a kept change has not been written. The clock and
// the randomness come in from outside, so tests drive it with a fake clock and no sockets.

/** The timers and time this scheduler runs on (real ones by default). */
export interface AntiEntropyClock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface AntiEntropyOptions {
  /** One full sync (LocalState.syncFull); resolves to the number of catalog writes it made. */
  sync: () => Promise<number>;
  /** True while a change is kept locally that the catalog has not seen (LocalState.outOfSync). */
  outOfSync: () => boolean;
  /** How many nodes the cluster has now (gossip members), for the interval's scale factor. */
  clusterSize: () => number;
  /** ae_interval: the full sync's period on clusters of up to 128 nodes. */
  intervalMs: number;
  clock?: AntiEntropyClock;
  /** Uniform in [0, 1); Math.random by default. */
  random?: () => number;
  /** A sync wrote something (`writes` > 0). */
  onSynced?: (writes: number) => void;
  /** A sync failed; the next runs on the schedule (after RETRY_MS while a kept change is unwritten). */
  onError?: (err: unknown) => void;
}

/** While a change kept locally is unwritten (outOfSync), syncs come this often (plus up to RETRY_STAGGER_MS). */
export const RETRY_MS = 5000;
export const RETRY_STAGGER_MS = 1000;
/** soon(): a sync within SOON_MS..SOON_MS+SOON_STAGGER_MS, unless one is due within SOON_MS+SOON_STAGGER_MS anyway. */
export const SOON_MS = 1000;
export const SOON_STAGGER_MS = 2000;

/** Consul's agent/ae scaleFactor: the interval grows with log2 of the cluster size past 128 nodes. */
export function scaleFactor(nodes: number): number {
  const threshold = 128;
  return nodes <= threshold ? 1 : Math.ceil(Math.log2(nodes) - Math.log2(threshold)) + 1;
}

const realClock: AntiEntropyClock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

export class AntiEntropy {
  readonly #opts: AntiEntropyOptions;
  readonly #clock: AntiEntropyClock;
  readonly #random: () => number;
  #timer: unknown;
  #nextAt = Number.POSITIVE_INFINITY;
  #running = false;
  /** The timer fired while a sync was running: run again as soon as it ends. */
  #again = false;
  #stopped = false;

  constructor(opts: AntiEntropyOptions) {
    this.#opts = opts;
    this.#clock = opts.clock ?? realClock;
    this.#random = opts.random ?? Math.random;
  }

  /** Schedules the first sync after half to one interval (a random stagger, as Consul's). */
  start(): void {
    this.#schedule(this.#opts.intervalMs * (0.5 + this.#random() / 2));
  }

  /** Asks for a sync within a few seconds; a sync already due sooner is kept. */
  soon(): void {
    if (this.#stopped) return;
    if (this.#nextAt - this.#clock.now() > SOON_MS + SOON_STAGGER_MS) this.#schedule(SOON_MS + this.#random() * SOON_STAGGER_MS);
  }

  /** When the next sync is due (clock time), for tests and diagnostics; Infinity while one runs or after stop(). */
  get nextAt(): number {
    return this.#nextAt;
  }

  stop(): void {
    this.#stopped = true;
    this.#clearTimer();
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#nextAt = Number.POSITIVE_INFINITY;
  }

  #schedule(ms: number): void {
    this.#clearTimer();
    if (this.#stopped) return;
    this.#nextAt = this.#clock.now() + ms;
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined;
      this.#nextAt = Number.POSITIVE_INFINITY;
      void this.#run();
    }, ms);
  }

  async #run(): Promise<void> {
    if (this.#stopped) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#running = true;
    try {
      const writes = await this.#opts.sync();
      if (writes > 0) this.#opts.onSynced?.(writes);
    } catch (err) {
      this.#opts.onError?.(err);
    } finally {
      this.#running = false;
    }
    if (this.#stopped) return;
    if (this.#again) {
      this.#again = false;
      this.#schedule(0);
    } else if (this.#opts.outOfSync()) {
      this.#schedule(RETRY_MS + this.#random() * RETRY_STAGGER_MS);
    } else {
      const base = this.#opts.intervalMs * scaleFactor(this.#opts.clusterSize());
      this.#schedule(base + this.#random() * base / 16);
    }
  }
}
