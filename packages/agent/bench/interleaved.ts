// The statistics of bench:kv --acl (issue 17), apart from the bench so that a unit test can check
// them: the order servers run in within a round, a per-round ratio's median with a distribution-free
// confidence interval, and the verdict against a target ratio read against a control's noise floor.

/** The six orders of three servers; round r runs ROUND_ORDERS[r % 6] forwards, then backwards. */
export const ROUND_ORDERS = [[0, 1, 2], [1, 2, 0], [2, 0, 1], [0, 2, 1], [2, 1, 0], [1, 0, 2]] as const;

/** The slots of round r: XYZZYX, so a linear drift over the round falls alike on all three. */
export function roundSlots(r: number): number[] {
  const order = ROUND_ORDERS[r % ROUND_ORDERS.length]!;
  return [...order, ...[...order].reverse()];
}

/**
 * A per-round ratio over the rounds: its median, range, and a distribution-free confidence interval
 * for the median (order statistics x(k) and x(n+1-k), the widest k whose coverage is still >= 95%;
 * with 6 to 9 rounds that is the range (96.9% or more); below 6 no k reaches 95% and the range is
 * given with its lower coverage).
 */
export interface Spread { median: number; min: number; max: number; ciLow: number; ciHigh: number; ciCoverage: number; values: number[] }

export function spread(values: number[]): Spread {
  if (values.length === 0) throw new Error('spread of no values');
  const s = [...values].sort((a, b) => a - b);
  const n = s.length;
  const mid = n >> 1;
  const median = n % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
  // P(Binomial(n, 1/2) <= j): the chance that at most j of n rounds fall below the true median.
  const binomCdf = (j: number) => {
    let sum = 0;
    let term = 0.5 ** n; // C(n, 0) / 2^n
    for (let i = 0; i <= j; i++) {
      sum += term;
      term = (term * (n - i)) / (i + 1);
    }
    return sum;
  };
  let k = 1; // rank from each end, 1-based
  while (k + 1 <= n / 2 && 1 - 2 * binomCdf(k) >= 0.95) k++;
  return { median, min: s[0]!, max: s[n - 1]!, ciLow: s[k - 1]!, ciHigh: s[n - k]!, ciCoverage: 1 - 2 * binomCdf(k - 1), values };
}

export type Verdict = 'met' | 'NOT met' | 'undecided';

/**
 * The verdict on `measured` (per-round ratios of the system under test over the baseline) against
 * `target` (at least), read against `control` (per-round ratios of a second, identical baseline over
 * the first). Two things blur the median: round-to-round scatter (its confidence interval) and a
 * per-process difference that interleaving cannot remove, measured by the control as
 * |median control - 1| (the noise floor). Met: the interval's low end less the noise floor is still
 * >= target. NOT met: its high end plus the noise floor is below target. Otherwise undecided.
 */
export function verdict(measured: Spread, control: Spread, target: number): { verdict: Verdict; margin: number; noise: number } {
  const noise = Math.abs(control.median - 1);
  const margin = measured.median - target;
  const v: Verdict = measured.ciLow - noise >= target ? 'met' : measured.ciHigh + noise < target ? 'NOT met' : 'undecided';
  return { verdict: v, margin, noise };
}
