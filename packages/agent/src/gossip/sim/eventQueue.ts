// A binary min-heap of timed events, ordered by time and then by insertion (so equal times keep
// the order they were scheduled in: deterministic).

export interface Timed {
  at: number;
  seq: number;
}

export class EventQueue<T extends Timed> {
  #heap: T[] = [];
  #seq = 0;

  get size(): number {
    return this.#heap.length;
  }

  nextSeq(): number {
    return this.#seq++;
  }

  push(e: T): void {
    const h = this.#heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!less(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  peek(): T | undefined {
    return this.#heap[0];
  }

  pop(): T | undefined {
    const h = this.#heap;
    if (h.length === 0) return undefined;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && less(h[l]!, h[m]!)) m = l;
        if (r < h.length && less(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }
}

function less(a: Timed, b: Timed): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}
