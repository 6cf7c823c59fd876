// Lifeguard §4.2, dynamic suspicion timeouts (memberlist suspicion.go), without timers: the core
// keeps one Suspicion per suspected member and asks it for its deadline.
//
// A suspicion starts at `maxMs` and falls toward `minMs` as independent members confirm it:
//   timeout(n) = max(minMs, maxMs − log(n + 1) / log(k + 1) × (maxMs − minMs))
// so one slow member's accusation alone gives the accused the longest time to refute, while k
// independent confirmations bring detection down to the classic SWIM timeout.

/** memberlist suspicionTimeout: suspicionMult × max(1, log10(max(1, n))) × probeInterval, in whole ms. */
export function suspicionMinTimeoutMs(suspicionMult: number, clusterSize: number, probeIntervalMs: number): number {
  const nodeScale = Math.max(1, Math.log10(Math.max(1, clusterSize)));
  return Math.floor(suspicionMult * nodeScale * probeIntervalMs);
}

/** The total timeout (from the start of the suspicion) after `n` confirmations, k wanted. */
export function suspicionTimeoutMs(n: number, k: number, minMs: number, maxMs: number): number {
  if (k < 1) return minMs;
  const frac = Math.log(n + 1) / Math.log(k + 1);
  const raw = maxMs - frac * (maxMs - minMs);
  return Math.max(minMs, Math.floor(raw));
}

export class Suspicion {
  readonly startedMs: number;
  readonly k: number;
  readonly minMs: number;
  readonly maxMs: number;
  /** Who has independently suspected the member; the first accuser is counted but does not confirm. */
  readonly #confirmedBy = new Set<string>();
  #n = 0;

  constructor(from: string, k: number, minMs: number, maxMs: number, startedMs: number) {
    this.k = k;
    this.minMs = minMs;
    this.maxMs = maxMs;
    this.startedMs = startedMs;
    // Our own accusation may be gossiped back to us: it must not count as a confirmation.
    this.#confirmedBy.add(from);
  }

  get confirmations(): number {
    return this.#n;
  }

  /** Records that `from` also suspects the member. True when it is new information (worth re-gossiping). */
  confirm(from: string): boolean {
    if (this.#n >= this.k) return false;
    if (this.#confirmedBy.has(from)) return false;
    this.#confirmedBy.add(from);
    this.#n++;
    return true;
  }

  /** When the member is to be declared dead unless it refutes first. */
  deadlineMs(): number {
    const timeout = this.k < 1 ? this.minMs : suspicionTimeoutMs(this.#n, this.k, this.minMs, this.maxMs);
    return this.startedMs + timeout;
  }
}
