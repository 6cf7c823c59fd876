// Go duration strings ("10s", "1m30s", "0.001s", "72h", "-1.5h"), parsed exactly as Go's
// time.ParseDuration does: Consul's config files, CLI flags and HTTP API (session TTLs, lock
// delays, ?wait=) all speak them, and clients depend on Go's exact acceptance rules and rounding.
//
// Internally everything is integer nanoseconds in a bigint (Go's int64 Duration), so overflow is
// detected at the same points as Go and no precision is lost before the caller picks a unit.

export class DurationError extends Error {
  readonly code = 'ERR_INVALID_DURATION';
  readonly input: string;
  constructor(input: string, message: string) {
    super(message);
    this.name = 'DurationError';
    this.input = input;
  }
}

const NS = 1n;
const US = 1000n * NS;
const MS = 1000n * US;
const SEC = 1000n * MS;
const MIN = 60n * SEC;
const HOUR = 60n * MIN;

const UNITS: ReadonlyMap<string, bigint> = new Map([
  ['ns', NS],
  ['us', US],
  ['\u00b5s', US], // U+00B5 MICRO SIGN
  ['\u03bcs', US], // U+03BC GREEK SMALL LETTER MU
  ['ms', MS],
  ['s', SEC],
  ['m', MIN],
  ['h', HOUR],
]);

const MAX_U = 1n << 63n; // Go accumulates in uint64 and checks against 1<<63.

function quote(s: string): string {
  return JSON.stringify(s);
}

function isDigit(c: string): boolean {
  return c >= '0' && c <= '9';
}

/**
 * Parses a Go duration string into nanoseconds. Throws DurationError with Go's own messages
 * (`time: invalid duration "x"`, `time: missing unit in duration "1"`,
 * `time: unknown unit "x" in duration "1x"`).
 */
export function parseGoDurationNs(input: string): bigint {
  const invalid = () => new DurationError(input, `time: invalid duration ${quote(input)}`);
  let s = input;
  let neg = false;
  if (s !== '' && (s[0] === '-' || s[0] === '+')) {
    neg = s[0] === '-';
    s = s.slice(1);
  }
  // Go special-cases a bare zero: it is the only number allowed without a unit.
  if (s === '0') return 0n;
  if (s === '') throw invalid();

  let total = 0n;
  while (s !== '') {
    if (!(s[0] === '.' || isDigit(s[0]!))) throw invalid();

    // Integer part: [0-9]*
    let i = 0;
    let v = 0n;
    while (i < s.length && isDigit(s[i]!)) {
      if (v > MAX_U / 10n) throw invalid();
      v = v * 10n + BigInt(s.charCodeAt(i) - 48);
      if (v > MAX_U) throw invalid();
      i++;
    }
    const pre = i > 0;
    s = s.slice(i);

    // Fraction part: (\.[0-9]*)? Digits beyond uint64 precision are consumed but ignored, as in Go.
    let f = 0n;
    let scale = 1;
    let post = false;
    if (s !== '' && s[0] === '.') {
      s = s.slice(1);
      let j = 0;
      let overflow = false;
      while (j < s.length && isDigit(s[j]!)) {
        if (!overflow) {
          if (f > (MAX_U - 1n) / 10n) {
            overflow = true;
          } else {
            const y = f * 10n + BigInt(s.charCodeAt(j) - 48);
            if (y > MAX_U) overflow = true;
            else { f = y; scale *= 10; }
          }
        }
        j++;
      }
      post = j > 0;
      s = s.slice(j);
    }
    if (!pre && !post) throw invalid();

    // Unit: everything up to the next digit or dot.
    let k = 0;
    while (k < s.length && !(s[k] === '.' || isDigit(s[k]!))) k++;
    if (k === 0) throw new DurationError(input, `time: missing unit in duration ${quote(input)}`);
    const u = s.slice(0, k);
    s = s.slice(k);
    const unit = UNITS.get(u);
    if (unit === undefined) throw new DurationError(input, `time: unknown unit ${quote(u)} in duration ${quote(input)}`);

    if (v > MAX_U / unit) throw invalid();
    v *= unit;
    if (f > 0n) {
      // Go uses float64 here ("needed to be nanosecond accurate for fractions of hours") and truncates.
      v += BigInt(Math.trunc(Number(f) * (Number(unit) / scale)));
      if (v > MAX_U) throw invalid();
    }
    total += v;
    if (total > MAX_U) throw invalid();
  }
  if (neg) return -total;
  if (total > MAX_U - 1n) throw invalid();
  return total;
}

/** Parses a Go duration string into milliseconds (fractional below 1 ms, e.g. "1us" → 0.001). */
export function parseGoDuration(input: string): number {
  const ns = parseGoDurationNs(input);
  // Split to keep integer milliseconds exact even for durations beyond 2^53 ns (~104 days).
  return Number(ns / MS) + Number(ns % MS) / 1e6;
}

/** Formats nanoseconds the way Go's Duration.String() does: "1h2m3.5s", "1.5µs", "0s". */
export function formatGoDurationNs(ns: bigint): string {
  const neg = ns < 0n;
  let u = neg ? -ns : ns;
  let out: string;
  if (u < SEC) {
    if (u === 0n) return '0s';
    let prec: number;
    let unit: string;
    if (u < US) { prec = 0; unit = 'ns'; }
    else if (u < MS) { prec = 3; unit = '\u00b5s'; }
    else { prec = 6; unit = 'ms'; }
    const [frac, whole] = fmtFrac(u, prec);
    out = `${whole}${frac}${unit}`;
  } else {
    const [frac, secs] = fmtFrac(u, 9);
    u = secs;
    out = `${u % 60n}${frac}s`;
    u /= 60n;
    if (u > 0n) {
      out = `${u % 60n}m${out}`;
      u /= 60n;
      if (u > 0n) out = `${u}h${out}`;
    }
  }
  return neg ? `-${out}` : out;
}

/** Formats milliseconds as a Go duration string (sub-nanosecond fractions are truncated). */
export function formatGoDuration(ms: number): string {
  const whole = Math.trunc(ms);
  const ns = BigInt(whole) * MS + BigInt(Math.trunc((ms - whole) * 1e6));
  return formatGoDurationNs(ns);
}

/** Splits v into (fraction text of the lowest `prec` digits without trailing zeros, v / 10^prec). */
function fmtFrac(v: bigint, prec: number): [string, bigint] {
  let digits = '';
  let printed = false;
  for (let i = 0; i < prec; i++) {
    const d = v % 10n;
    printed = printed || d !== 0n;
    if (printed) digits = d.toString() + digits;
    v /= 10n;
  }
  return [printed ? `.${digits}` : '', v];
}
