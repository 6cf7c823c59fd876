// Certificate policy of the built-in CA: TTL bounds, defaults and when a leaf is renewed. Pure: the
// random source is passed in, so the renewal point is testable.

export const HOUR_MS = 3_600_000;
/** Consul's bounds on LeafCertTTL (ca/provider_consul_config.go). */
export const MIN_LEAF_TTL_MS = 1 * HOUR_MS;
export const MAX_LEAF_TTL_MS = 8_760 * HOUR_MS;
export const DEFAULT_LEAF_TTL_MS = 72 * HOUR_MS;
export const DEFAULT_INTERMEDIATE_TTL_MS = 8_760 * HOUR_MS;
export const DEFAULT_ROOT_TTL_MS = 87_600 * HOUR_MS;
/** Certificates are dated a minute in the past so slightly skewed clocks accept them at once (Consul). */
export const BACKDATE_MS = 60_000;

/** Consul's error texts for an out-of-range LeafCertTTL (structs.CommonCAProviderConfig.Validate). */
export function leafTtlError(ttlMs: number): string | null {
  if (ttlMs < MIN_LEAF_TTL_MS) return 'leaf cert TTL must be greater or equal than 1h0m0s';
  if (ttlMs > MAX_LEAF_TTL_MS) return 'leaf cert TTL must be less than 8760h0m0s';
  return null;
}

/**
 * When to renew a certificate valid from `validAfterMs` to `validBeforeMs`: a random point between
 * 60% and 90% of its lifetime (Consul's leafcert calculateSoftExpiry), so that a fleet issued at
 * once does not renew at once. `random` returns a number in [0, 1).
 */
export function renewAt(validAfterMs: number, validBeforeMs: number, random: () => number): number {
  const life = Math.max(0, validBeforeMs - validAfterMs);
  const r = Math.min(Math.max(random(), 0), 1);
  return validAfterMs + Math.round((life * 6) / 10 + (life * 3 * r) / 10);
}

/** Lower-case colon-separated hex (Consul's connect.HexString), as CA IDs and key IDs are shown. */
export function colonHex(bytes: Uint8Array): string {
  const out: string[] = [];
  for (const b of bytes) out.push(b.toString(16).padStart(2, '0'));
  return out.join(':');
}
