// Consul's uint64 fields that really use all 64 bits. KV Flags is the one that matters: Consul's lock
// and semaphore recipes (the `consul lock` command, the Go api's Lock/Semaphore, and through them
// Vault HA) mark their keys with 0x2ddccbc058a50c18 and 0xe0f69a2baa414de0, far above 2^53, where a
// JS number silently rounds and the recipe then sees "not a lock key" and refuses the key. So these
// values live as bigint in the store, and travel as text wherever JSON would round them.
//
// Raft indexes stay numbers on purpose: they count log entries and cannot reach 2^53.
import { invalidRequest } from './errors.ts';

export const UINT64_MAX = (1n << 64n) - 1n;

const DECIMAL = /^[0-9]+$/;

/**
 * Parses an unsigned 64-bit decimal as Go's strconv.ParseUint(s, 10, 64) does: ASCII digits only
 * (leading zeros allowed), no sign, no exponent, no fraction, no spaces, at most 2^64−1. Returns
 * null for anything else, including the empty string.
 */
export function parseUint64(s: string): bigint | null {
  if (!DECIMAL.test(s)) return null;
  const v = BigInt(s);
  return v <= UINT64_MAX ? v : null;
}

/**
 * A command's or snapshot's uint64 field, in any form this build has ever written: a bigint, a
 * number that is a safe integer (everything written before Flags went 64-bit, and small values
 * still), or a decimal string (how large values are written). `undefined`/`null` give `def`.
 *
 * A number above 2^53 is refused rather than taken: it has already been rounded, and storing a
 * value other than the one the client sent is the bug this type exists to prevent.
 */
export function optUint64(v: unknown, field: string, def = 0n): bigint {
  if (v === undefined || v === null) return def;
  if (typeof v === 'bigint') {
    if (v < 0n || v > UINT64_MAX) throw invalidRequest(`${field} must be a non-negative integer below 2^64, got ${v}`);
    return v;
  }
  if (typeof v === 'number') {
    // 0 (nearly every row's Flags) as the one 0n constant rather than a new bigint per row.
    if (Number.isSafeInteger(v) && v >= 0) return v === 0 ? 0n : BigInt(v);
    if (Number.isInteger(v) && v > 0) {
      throw invalidRequest(`${field} must be a non-negative integer below 2^64 given exactly (a bigint or decimal text above 2^53), got the rounded number ${v}`);
    }
    throw invalidRequest(`${field} must be a non-negative integer below 2^64, got ${v}`);
  }
  if (typeof v === 'string') {
    const parsed = parseUint64(v);
    if (parsed === null) throw invalidRequest(`${field} must be a non-negative integer below 2^64, got ${JSON.stringify(v)}`);
    return parsed;
  }
  throw invalidRequest(`${field} must be a non-negative integer below 2^64, got ${v === null ? 'null' : Array.isArray(v) ? 'an array' : `a ${typeof v}`}`);
}

/**
 * The JSON form of a uint64 inside Trellis's own formats (Raft command entries, state snapshots): a
 * number while it is exact as one, so those bytes are what builds before 64-bit Flags wrote and can
 * read; decimal text above 2^53, which JSON.parse keeps exact and `optUint64` reads back.
 */
export function uint64Wire(v: bigint | number): number | string {
  if (typeof v === 'number') return v;
  return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString();
}
