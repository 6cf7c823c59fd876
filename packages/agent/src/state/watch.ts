// Watch sets for blocking queries (Consul's memdb.WatchSet, reshaped for one JS thread).
//
// A query records what it read into a WatchSet as topics: a whole table (`t:<table>`), one KV key
// (`kv:<key>`), a KV prefix, or a finer catalog topic (a service name, a node's services...). Each
// committed write publishes the topics it touched to the WatchHub, which wakes exactly the sets that
// read one of them. Nothing is registered until `wait()` is called, and everything a wait registered
// is removed when it ends, so a set that is never waited on (the query answered at once) costs nothing.
//
// The gap between a query and its wait: the hub keeps the last few change batches, so a wait that
// starts after writes it did not see resolves at once if any of those writes touched what it read
// (and if the history no longer reaches back that far, resolves at once to be safe). Calling
// `wait()` synchronously after the query, as the HTTP loop does, makes this moot.
import type { TableName, WatchRecorder } from './types.ts';

/** What one committed write touched. */
export interface ChangeBatch {
  seq: number;
  /** Exact topics: `t:<table>`, `kv:<key>`, catalog topics. */
  topics: ReadonlySet<string>;
  /** KV keys written or deleted, for prefix watches. */
  kvKeys: ReadonlySet<string>;
  /** Everything changed (restore). */
  all: boolean;
}

interface Waiter {
  fire(): void;
}

const HISTORY = 64;

export const tableTopic = (t: TableName): string => `t:${t}`;
export const kvTopic = (key: string): string => `kv:${key}`;

export class WatchHub {
  /** Increases with every published batch. */
  #seq = 0;
  readonly #topics = new Map<string, Set<Waiter>>();
  readonly #prefixes = new Map<string, Set<Waiter>>();
  readonly #history: ChangeBatch[] = [];

  get seq(): number {
    return this.#seq;
  }

  /** Publishes a committed write. */
  publish(topics: ReadonlySet<string>, kvKeys: ReadonlySet<string>): void {
    if (topics.size === 0 && kvKeys.size === 0) return;
    this.#record({ seq: ++this.#seq, topics, kvKeys, all: false });
    const woken = new Set<Waiter>();
    for (const t of topics) for (const w of this.#topics.get(t) ?? []) woken.add(w);
    if (this.#prefixes.size > 0) {
      for (const key of kvKeys) this.#collectPrefixWaiters(key, woken);
    }
    for (const w of woken) w.fire();
  }

  /** Wakes every waiter (a restore replaced the whole state; indexes may have gone backwards). */
  publishAll(): void {
    this.#record({ seq: ++this.#seq, topics: new Set(), kvKeys: new Set(), all: true });
    const woken = new Set<Waiter>();
    for (const set of this.#topics.values()) for (const w of set) woken.add(w);
    for (const set of this.#prefixes.values()) for (const w of set) woken.add(w);
    for (const w of woken) w.fire();
  }

  /** Registered listeners (for leak tests and metrics). */
  listenerCount(): number {
    let n = 0;
    for (const s of this.#topics.values()) n += s.size;
    for (const s of this.#prefixes.values()) n += s.size;
    return n;
  }

  /** True if anything published after `sinceSeq` touched one of the given topics/prefixes. */
  changedSince(sinceSeq: number, topics: ReadonlySet<string>, prefixes: ReadonlySet<string>): boolean {
    if (sinceSeq >= this.#seq) return false;
    const oldest = this.#history[0];
    // History no longer covers every batch after sinceSeq: we cannot tell, so say yes (a spurious
    // wake only costs the caller one more query).
    if (!oldest || oldest.seq > sinceSeq + 1) return true;
    for (const b of this.#history) {
      if (b.seq <= sinceSeq) continue;
      if (b.all) return true;
      for (const t of topics) if (b.topics.has(t)) return true;
      if (prefixes.size > 0) {
        for (const key of b.kvKeys) for (const p of prefixes) if (key.startsWith(p)) return true;
      }
    }
    return false;
  }

  /** Registers `w` on the topics and prefixes; returns the function that removes it again. */
  register(w: Waiter, topics: ReadonlySet<string>, prefixes: ReadonlySet<string>): () => void {
    for (const t of topics) addTo(this.#topics, t, w);
    for (const p of prefixes) addTo(this.#prefixes, p, w);
    return () => {
      for (const t of topics) removeFrom(this.#topics, t, w);
      for (const p of prefixes) removeFrom(this.#prefixes, p, w);
    };
  }

  #record(b: ChangeBatch): void {
    this.#history.push(b);
    if (this.#history.length > HISTORY) this.#history.shift();
  }

  #collectPrefixWaiters(key: string, into: Set<Waiter>): void {
    // Walk whichever is smaller: the key's own prefixes, or the registered prefixes.
    if (key.length + 1 <= this.#prefixes.size) {
      for (let i = 0; i <= key.length; i++) {
        const set = this.#prefixes.get(key.slice(0, i));
        if (set) for (const w of set) into.add(w);
      }
    } else {
      for (const [p, set] of this.#prefixes) if (key.startsWith(p)) for (const w of set) into.add(w);
    }
  }
}

function addTo(m: Map<string, Set<Waiter>>, k: string, w: Waiter): void {
  let s = m.get(k);
  if (!s) m.set(k, (s = new Set()));
  s.add(w);
}

function removeFrom(m: Map<string, Set<Waiter>>, k: string, w: Waiter): void {
  const s = m.get(k);
  if (!s) return;
  s.delete(w);
  if (s.size === 0) m.delete(k);
}

/**
 * What a blocking query read. Create one per query attempt with `store.watchSet()`, pass it to the
 * query, then `await ws.wait(signal)` if the answer's index has not moved past the client's.
 */
export class WatchSet implements WatchRecorder {
  readonly #hub: WatchHub;
  readonly #topics = new Set<string>();
  readonly #prefixes = new Set<string>();
  /** The hub's seq when the first thing was recorded, i.e. the state the query saw. */
  #seenSeq: number | undefined;

  constructor(hub: WatchHub) {
    this.#hub = hub;
  }

  addTable(table: TableName): void {
    this.addTopic(tableTopic(table));
  }

  addTopic(topic: string): void {
    this.#seenSeq ??= this.#hub.seq;
    this.#topics.add(topic);
  }

  addKvPrefix(prefix: string): void {
    this.#seenSeq ??= this.#hub.seq;
    this.#prefixes.add(prefix);
  }

  /** Topics and prefixes recorded (for tests and debugging). */
  describe(): { topics: string[]; kvPrefixes: string[] } {
    return { topics: [...this.#topics].sort(), kvPrefixes: [...this.#prefixes].sort() };
  }

  /**
   * Resolves true when something this set read changes, false when `signal` aborts (a timeout or a
   * closed connection). Never rejects. Every listener it registered is gone when it settles.
   * A set that recorded nothing resolves only on abort.
   */
  wait(signal?: AbortSignal): Promise<boolean> {
    if (signal?.aborted) return Promise.resolve(false);
    const seen = this.#seenSeq ?? this.#hub.seq;
    if (this.#hub.changedSince(seen, this.#topics, this.#prefixes)) return Promise.resolve(true);
    return new Promise<boolean>((resolve) => {
      let unregister = (): void => {};
      let settled = false;
      const settle = (fired: boolean): void => {
        if (settled) return;
        settled = true;
        unregister();
        signal?.removeEventListener('abort', onAbort);
        resolve(fired);
      };
      const onAbort = (): void => settle(false);
      unregister = this.#hub.register({ fire: () => settle(true) }, this.#topics, this.#prefixes);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }
}
