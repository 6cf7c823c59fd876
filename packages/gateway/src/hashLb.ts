// Consistent-hash load balancing for a service-resolver's `LoadBalancer.Policy` `ring_hash` and
// `maglev` (what Envoy does with the clusters and route hash policies Consul generates:
// agent/xds/clusters.go sets the cluster's lb_policy and RingHashConfig; routes.go
// injectLBToRouteAction turns `HashPolicies` into the route's hash_policy list). Pure: a request's
// hash comes from `requestHash`, an instance from a `KetamaRing` or `MaglevTable` built over the
// target's instances (rebuilt only when that set changes).
//
// Envoy's algorithms, written anew here:
// - ketama ring (ring_hash_lb.cc): each host gets ceil(MinimumRingSize / N) points (the ring
//   capped at MaximumRingSize), point i of host "ip:port" at xxHash64("ip:port_i"); a request hash h
//   goes to the first point ≥ h, wrapping to the first point.
// - maglev (maglev_lb.cc, "Maglev: A Fast and Reliable Software Network Load Balancer" §3.4):
//   a table of 65537 slots (prime); host k has offset xxHash64(k) mod M and skip
//   xxHash64(k, seed 1) mod (M-1) + 1; hosts, sorted by key, take turns claiming the next free
//   slot of their permutation. A request hash h goes to slot h mod M.
// - hash policies (source/common/http/hash_policy.cc): each policy that yields a value contributes
//   xxHash64(value); hashes combine as rotl(h, 1) XOR new; a Terminal policy that produced a hash
//   stops the list. No hash at all: a random one (Envoy's behaviour).
// Removing one of N hosts moves only the keys that hashed to it (≈1/N), which is the point of both.

import type { HttpRequestInfo } from './routeMatch.ts';

const MASK = (1n << 64n) - 1n;
const P1 = 0x9e3779b185ebca87n;
const P2 = 0xc2b2ae3d27d4eb4fn;
const P3 = 0x165667b19e3779f9n;
const P4 = 0x85ebca77c2b2ae63n;
const P5 = 0x27d4eb2f165667c5n;

const rotl = (v: bigint, r: bigint): bigint => ((v << r) | (v >> (64n - r))) & MASK;
const round = (acc: bigint, lane: bigint): bigint => (rotl((acc + lane * P2) & MASK, 31n) * P1) & MASK;
const merge = (acc: bigint, v: bigint): bigint => (((acc ^ round(0n, v)) * P1) + P4) & MASK;

/** XXH64 of the UTF-8 bytes of `input` (Envoy's HashUtil::xxHash64). */
export function xxHash64(input: string | Uint8Array, seed = 0n): bigint {
  const b = typeof input === 'string' ? Buffer.from(input, 'utf8') : Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  const len = b.length;
  let p = 0;
  let h: bigint;
  if (len >= 32) {
    let v1 = (seed + P1 + P2) & MASK;
    let v2 = (seed + P2) & MASK;
    let v3 = seed & MASK;
    let v4 = (seed - P1) & MASK;
    for (; p + 32 <= len; p += 32) {
      v1 = round(v1, b.readBigUInt64LE(p));
      v2 = round(v2, b.readBigUInt64LE(p + 8));
      v3 = round(v3, b.readBigUInt64LE(p + 16));
      v4 = round(v4, b.readBigUInt64LE(p + 24));
    }
    h = (rotl(v1, 1n) + rotl(v2, 7n) + rotl(v3, 12n) + rotl(v4, 18n)) & MASK;
    h = merge(merge(merge(merge(h, v1), v2), v3), v4);
  } else {
    h = (seed + P5) & MASK;
  }
  h = (h + BigInt(len)) & MASK;
  for (; p + 8 <= len; p += 8) {
    h ^= round(0n, b.readBigUInt64LE(p));
    h = (rotl(h, 27n) * P1 + P4) & MASK;
  }
  if (p + 4 <= len) {
    h ^= (BigInt(b.readUInt32LE(p)) * P1) & MASK;
    h = (rotl(h, 23n) * P2 + P3) & MASK;
    p += 4;
  }
  for (; p < len; p++) {
    h ^= (BigInt(b[p]!) * P5) & MASK;
    h = (rotl(h, 11n) * P1) & MASK;
  }
  h ^= h >> 33n;
  h = (h * P2) & MASK;
  h ^= h >> 29n;
  h = (h * P3) & MASK;
  h ^= h >> 32n;
  return h;
}

/** A hash-based balancer over a fixed list of host keys: `pick(hash)` is an index into that list. */
export interface HashTable {
  pick(hash: bigint, attempt?: number): number;
}

export const DEFAULT_MIN_RING_SIZE = 1024;
export const DEFAULT_MAX_RING_SIZE = 8 * 1024 * 1024;
/** Envoy's default maglev table size (a prime). */
export const MAGLEV_TABLE_SIZE = 65537;

/** Envoy's ring_hash with equal host weights (Consul gives every instance of a target the same weight here). */
export class KetamaRing implements HashTable {
  readonly hashes: BigUint64Array;
  readonly hosts: Uint32Array;

  constructor(keys: readonly string[], minRingSize = DEFAULT_MIN_RING_SIZE, maxRingSize = DEFAULT_MAX_RING_SIZE) {
    const n = keys.length;
    if (n === 0) { this.hashes = new BigUint64Array(0); this.hosts = new Uint32Array(0); return; }
    if (minRingSize > maxRingSize) throw new RangeError(`ring hash: minimum_ring_size (${minRingSize}) > maximum_ring_size (${maxRingSize})`);
    // Envoy: scale = min(ceil(w_min * min) / w_min, max) with w_min = 1/N; each host takes scale/N points.
    const scale = Math.min(Math.ceil(minRingSize / n) * n, maxRingSize);
    const entries: Array<{ h: bigint; host: number }> = [];
    let current = 0;
    let target = 0;
    for (let host = 0; host < n; host++) {
      target += scale / n;
      for (let i = 0; current < target; i++, current++) entries.push({ h: xxHash64(`${keys[host]}_${i}`), host });
    }
    entries.sort((a, b) => (a.h < b.h ? -1 : a.h > b.h ? 1 : 0));
    this.hashes = BigUint64Array.from(entries, (e) => e.h);
    this.hosts = Uint32Array.from(entries, (e) => e.host);
  }

  pick(hash: bigint, attempt = 0): number {
    const size = this.hashes.length;
    if (size === 0) return -1;
    // The first point at or above the hash; past the last one wraps to the first (ketama_get_server).
    let lo = 0;
    let hi = size;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.hashes[mid]! < hash) lo = mid + 1; else hi = mid;
    }
    let at = lo === size ? 0 : lo;
    // Envoy on a retry: behave as if this point were not on the ring.
    if (attempt > 0) at = (at + attempt) % size;
    return this.hosts[at]!;
  }
}

/** Envoy's maglev table with equal host weights. */
export class MaglevTable implements HashTable {
  readonly table: Int32Array;

  constructor(keys: readonly string[], size = MAGLEV_TABLE_SIZE) {
    this.table = new Int32Array(keys.length === 0 ? 0 : size).fill(-1);
    if (keys.length === 0) return;
    const m = BigInt(size);
    // Stable order: the table is filled in this order, so the same set always gives the same table.
    const order = keys.map((k, i) => ({ k, i })).sort((a, b) => (a.k < b.k ? -1 : a.k > b.k ? 1 : 0));
    const perms = order.map(({ k, i }) => ({
      host: i,
      offset: Number(xxHash64(k) % m),
      skip: Number(xxHash64(k, 1n) % (m - 1n)) + 1,
      next: 0,
    }));
    let filled = 0;
    while (filled < size) {
      for (const e of perms) {
        if (filled >= size) break;
        // (offset + skip * next) mod size, kept below 2^53 by reducing each step.
        let c = (e.offset + ((e.skip * e.next) % size)) % size;
        while (this.table[c] !== -1) {
          e.next++;
          c = (e.offset + ((e.skip * e.next) % size)) % size;
        }
        this.table[c] = e.host;
        e.next++;
        filled++;
      }
    }
  }

  pick(hash: bigint, attempt = 0): number {
    const size = this.table.length;
    if (size === 0) return -1;
    // Envoy on a retry: flip most bits of the hash so the retry lands elsewhere.
    const h = attempt > 0 ? hash ^ ((MASK - BigInt(attempt) + 1n) & MASK) : hash;
    return this.table[Number(h % BigInt(size))]!;
  }
}

/** One entry of a service-resolver's LoadBalancer.HashPolicies (Consul's field names). */
export interface HashPolicy {
  Field?: string;
  FieldValue?: string;
  CookieConfig?: { Session?: boolean; TTL?: string | number; Path?: string } | null;
  SourceIP?: boolean;
  Terminal?: boolean;
}

export interface RequestHashInput {
  req: HttpRequestInfo;
  /** The downstream's address (the app's socket remoteAddress). */
  sourceIp: string;
}

export interface RequestHash {
  /** undefined: no policy produced a value (the caller draws a random hash). */
  hash?: bigint;
  /** A cookie Envoy would generate for a cookie policy with a TTL (or Session) when the request had none. */
  setCookie?: string;
}

const first = (v: string | readonly string[] | undefined): string | undefined => (v === undefined ? undefined : typeof v === 'string' ? v : v[0]);

/** Value of cookie `name` in a Cookie header (several headers are joined with "; "). */
export function cookieValue(header: string | readonly string[] | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  const all = typeof header === 'string' ? header : header.join('; ');
  for (const part of all.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim().replace(/^"(.*)"$/, '$1');
  }
  return undefined;
}

/** Go duration (or nanoseconds) in whole seconds, for a cookie's Max-Age. */
function ttlSeconds(v: string | number | undefined): number {
  if (typeof v === 'number') return Math.floor(v / 1e9);
  if (typeof v !== 'string' || v === '') return 0;
  const units: Record<string, number> = { ns: 1e-9, us: 1e-6, '\u00b5s': 1e-6, ms: 1e-3, s: 1, m: 60, h: 3600 };
  let total = 0;
  for (const m of v.matchAll(/(\d+(?:\.\d+)?)(ns|us|\u00b5s|ms|s|m|h)/g)) total += Number(m[1]) * units[m[2]!]!;
  return Math.floor(total);
}

/** The request's hash under `policies`, as Envoy's HashPolicyImpl::generateHash computes it. */
export function requestHash(policies: readonly HashPolicy[], { req, sourceIp }: RequestHashInput): RequestHash {
  let hash: bigint | undefined;
  let setCookie: string | undefined;
  for (const p of policies) {
    let value: string | undefined;
    if (p.SourceIP) {
      value = sourceIp || undefined;
    } else if (p.Field === 'header') {
      const h = req.headers[(p.FieldValue ?? '').toLowerCase()];
      // Several values: Envoy hashes them sorted, so their order does not matter.
      value = h === undefined ? undefined : typeof h === 'string' ? h : [...h].sort().join('');
    } else if (p.Field === 'query_parameter') {
      value = first(req.query[p.FieldValue ?? '']);
    } else if (p.Field === 'cookie') {
      const name = p.FieldValue ?? '';
      value = cookieValue(req.headers['cookie'], name);
      const cc = p.CookieConfig;
      // Consul sets Envoy's ttl when CookieConfig has a TTL (or Session: ttl 0, a session cookie);
      // then a request without the cookie gets one derived from its source, sent back on the response.
      if (value === undefined && cc && (cc.Session === true || ttlSeconds(cc.TTL) > 0)) {
        value = xxHash64(sourceIp).toString(16).padStart(16, '0');
        const ttl = cc.Session === true ? 0 : ttlSeconds(cc.TTL);
        setCookie = `${name}="${value}"${ttl > 0 ? `; Max-Age=${ttl}` : ''}${cc.Path ? `; Path=${cc.Path}` : ''}; HttpOnly`;
      }
    }
    if (value !== undefined) {
      const h = xxHash64(value);
      // Rotating the old value keeps two equal policies from cancelling out.
      hash = hash === undefined ? h : rotl(hash, 1n) ^ h;
    }
    if (p.Terminal === true && hash !== undefined) break;
  }
  return { hash, setCookie };
}

/** A random 64-bit hash (Envoy's fallback when no policy yields one). */
export function randomHash(random: () => number = Math.random): bigint {
  return (BigInt(Math.floor(random() * 2 ** 32)) << 32n) | BigInt(Math.floor(random() * 2 ** 32));
}
