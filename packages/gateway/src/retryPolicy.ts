// When the L7 proxy tries a request again (Consul's agent/xds/routes.go makeRetryPolicy, applied
// as Envoy's router applies its retry_on conditions). Pure: both upstream listeners (HTTP/1.1 and
// HTTP/2) ask it per attempt.
//
// Consul builds Envoy's retry_on from the route destination: its RetryOn list, plus
// "connect-failure" for RetryOnConnectFailure, plus "retriable-status-codes" (with the codes) for
// RetryOnStatusCodes; a destination with none of these and NumRetries 0 has no retry policy. When
// it has one, NumRetries 0 leaves Envoy's default of 1 retry.

import type { RouteDestination } from './chainTypes.ts';
import { GRPC_STATUS } from './grpc.ts';

export interface RetryPolicy {
  numRetries: number;
  /** Envoy retry_on conditions (Consul's RetryOn names plus retriable-status-codes). */
  on: ReadonlySet<string>;
  statusCodes: ReadonlySet<number>;
}

/** How an attempt failed before a response: Envoy's reset reasons, as far as this proxy tells them apart. */
export type AttemptFailure = 'connect-failure' | 'reset' | 'refused-stream';

const MAX_RETRIES = 10;

/** Retriable gRPC statuses by Consul's RetryOn name (Envoy's x-envoy-retry-grpc-on). */
const GRPC_ON: Readonly<Record<string, number>> = {
  cancelled: GRPC_STATUS.CANCELLED,
  'deadline-exceeded': GRPC_STATUS.DEADLINE_EXCEEDED,
  internal: GRPC_STATUS.INTERNAL,
  'resource-exhausted': GRPC_STATUS.RESOURCE_EXHAUSTED,
  unavailable: GRPC_STATUS.UNAVAILABLE,
};

export function retryPolicyOf(dest: RouteDestination | undefined): RetryPolicy | undefined {
  if (!dest) return undefined;
  const n = Number(dest.NumRetries ?? 0) || 0;
  const retryOn = Array.isArray(dest.RetryOn) ? (dest.RetryOn as unknown[]).filter((x): x is string => typeof x === 'string') : [];
  const codes = Array.isArray(dest.RetryOnStatusCodes) ? dest.RetryOnStatusCodes.filter((x) => Number.isInteger(x)) : [];
  const has = n > 0 || dest.RetryOnConnectFailure === true || codes.length > 0 || retryOn.length > 0;
  if (!has) return undefined;
  const on = new Set(retryOn);
  if (dest.RetryOnConnectFailure === true) on.add('connect-failure');
  if (codes.length > 0) on.add('retriable-status-codes');
  return { numRetries: Math.min(n > 0 ? n : 1, MAX_RETRIES), on, statusCodes: new Set(codes) };
}

/** Whether a response (its status and, for a gRPC trailers-only answer, its grpc-status header) is tried again. */
export function retryOnResponse(p: RetryPolicy, status: number, headers: Readonly<Record<string, unknown>> = {}): boolean {
  if (p.on.has('5xx') && status >= 500 && status <= 599) return true;
  if (p.on.has('gateway-error') && (status === 502 || status === 503 || status === 504)) return true;
  if (p.on.has('retriable-4xx') && status === 409) return true;
  if (p.on.has('retriable-status-codes') && p.statusCodes.has(status)) return true;
  if (p.on.has('envoy-ratelimited') && headers['x-envoy-ratelimited'] !== undefined) return true;
  const g = headers['grpc-status'];
  if (g !== undefined && String(g) !== '') {
    const code = Number(g);
    for (const [name, c] of Object.entries(GRPC_ON)) if (p.on.has(name) && code === c) return true;
  }
  return false;
}

/** Whether an attempt that got no response is tried again. */
export function retryOnFailure(p: RetryPolicy, why: AttemptFailure): boolean {
  // 5xx and gateway-error cover "no response at all" too (Envoy: they include connect-failure,
  // reset and refused-stream); reset covers a connection that could not be made as well.
  if (p.on.has('5xx') || p.on.has('gateway-error') || p.on.has('reset')) return true;
  if (why === 'connect-failure') return p.on.has('connect-failure');
  if (why === 'refused-stream') return p.on.has('refused-stream');
  return false;
}
