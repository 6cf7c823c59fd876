// Ordering of the local state's catalog writes, item by item. A task names the items it touches
// (keys such as `svc:web`, `check:web-ttl`) and runs once every earlier task on any of those keys has
// settled; tasks on disjoint keys run side by side. So two writes of one service reach Raft in the
// order they were asked for (an older one never lands after a newer one), while a slow write of one
// service holds up nothing of another.
//
// Keys are taken all at once when the task is queued, so no two tasks can wait for each other.

export class KeyedQueue {
  /** The last task queued on each key (settled tasks are removed). */
  readonly #tails = new Map<string, Promise<void>>();

  /** Runs `fn` after the tasks queued before it on any of `keys`; resolves or rejects as `fn` does. */
  run<T>(keys: Iterable<string>, fn: () => Promise<T>): Promise<T> {
    const ks = [...new Set(keys)];
    const before = ks.map((k) => this.#tails.get(k)).filter((p): p is Promise<void> => p !== undefined);
    const result = (before.length === 0 ? Promise.resolve() : Promise.all(before)).then(fn);
    // Later tasks wait for this one to settle, success or failure.
    const tail = result.then(() => undefined, () => undefined);
    for (const k of ks) this.#tails.set(k, tail);
    void tail.then(() => {
      for (const k of ks) if (this.#tails.get(k) === tail) this.#tails.delete(k);
    });
    return result;
  }

  /** How many keys have a task queued or running (for tests: 0 once everything settled). */
  get busyKeys(): number {
    return this.#tails.size;
  }
}
