// An agent-side cache of one kind of config entries, kept current by a blocking query in the
// background (Consul's agent/cache with a blocking cache type, e.g. IntentionMatch). The first
// get() starts the watch and waits for the first answer; from then on get() answers from memory at
// once, and the watch replaces the value whenever the server's index moves. So a client agent's
// POST /v1/agent/connect/authorize never waits for a server round trip once warm, and follows a
// change within one blocking-query return.
//
// Failures: the first fill's error goes to the callers waiting for it (as Consul's cache.Get
// returns the RPC error); afterwards the last good value is served while the watch retries with
// capped exponential backoff. close() ends the watch (its in-flight request is aborted).

import type { ConfigEntry } from '../state/types.ts';
import { sleep } from '../sleep.ts';

export interface EntriesPage {
  /** X-Consul-Index of the answer. */
  index: number;
  entries: ConfigEntry[];
}

/** One blocking read: answers when the index moves past `minIndex` (0: at once) or the wait ends. */
export type FetchEntries = (minIndex: number, signal: AbortSignal) => Promise<EntriesPage>;

export interface EntriesCacheOptions {
  retryMinMs?: number;
  retryMaxMs?: number;
  /** Called with each failed fetch (for a log line). */
  onError?: (err: unknown, failures: number) => void;
}

export class EntriesCache {
  readonly #fetch: FetchEntries;
  readonly #retryMinMs: number;
  readonly #retryMaxMs: number;
  readonly #onError: ((err: unknown, failures: number) => void) | undefined;
  readonly #ac = new AbortController();
  #value: ConfigEntry[] | undefined;
  #index = 0;
  #running = false;
  #waiters: Array<{ resolve: (v: ConfigEntry[]) => void; reject: (e: unknown) => void }> = [];

  constructor(fetch: FetchEntries, opts: EntriesCacheOptions = {}) {
    this.#fetch = fetch;
    this.#retryMinMs = opts.retryMinMs ?? 250;
    this.#retryMaxMs = opts.retryMaxMs ?? 10_000;
    this.#onError = opts.onError;
  }

  /** Whether a value is held (a get() would answer without waiting). */
  get warm(): boolean {
    return this.#value !== undefined;
  }

  /** The current entries; the first call waits for the first fill (or its failure). */
  get(signal?: AbortSignal): Promise<ConfigEntry[]> {
    if (this.#value !== undefined) return Promise.resolve(this.#value);
    if (this.#ac.signal.aborted) return Promise.reject(new Error('the agent is shutting down'));
    const p = new Promise<ConfigEntry[]>((resolve, reject) => {
      const waiter = { resolve, reject };
      this.#waiters.push(waiter);
      signal?.addEventListener('abort', () => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        reject(signal.reason ?? new Error('aborted'));
      }, { once: true });
    });
    if (!this.#running) void this.#run();
    return p;
  }

  close(): void {
    this.#ac.abort();
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w.reject(new Error('the agent is shutting down'));
  }

  async #run(): Promise<void> {
    this.#running = true;
    let failures = 0;
    const signal = this.#ac.signal;
    try {
      while (!signal.aborted) {
        try {
          const page = await this.#fetch(this.#index, signal);
          // An index that went backwards (a snapshot restore) is simply the new starting point.
          this.#index = page.index;
          this.#value = page.entries;
          failures = 0;
          const waiters = this.#waiters;
          this.#waiters = [];
          for (const w of waiters) w.resolve(page.entries);
        } catch (err) {
          if (signal.aborted) return;
          failures++;
          this.#onError?.(err, failures);
          if (this.#value === undefined) {
            const waiters = this.#waiters;
            this.#waiters = [];
            for (const w of waiters) w.reject(err);
            // Nobody is waiting and nothing is held: stop; the next get() starts again.
            return;
          }
          const delay = Math.min(this.#retryMaxMs, this.#retryMinMs * 2 ** Math.min(failures - 1, 16));
          await sleep(delay, signal);
        }
      }
    } finally {
      this.#running = false;
    }
  }
}

