// Reads with Consul's query options: consistency modes (?stale / ?consistent / default), blocking
// queries (?index / ?wait) and the X-Consul-* response headers.
//
// Blocking follows Consul's agent/consul/rpc.go blockingQuery:
//   - ?index=0 (or absent) never blocks;
//   - the query runs, recording what it read in a watch set; if its index is still ≤ ?index it waits
//     until something it read changes (a write to anything else does not wake it) or the wait ends,
//     then runs again;
//   - the wait is ?wait (default 5 min, clamped to 10 min) plus a random jitter of up to wait/16, so
//     that many clients started together do not come back together;
//   - if ?index is ahead of everything the store has applied (the index went backwards after a
//     snapshot restore), it answers at once so the client resets instead of hanging;
//   - X-Consul-Index is never 0: a client that got 0 would pass ?index=0 and spin.

import { parseGoDurationNs } from '../config/duration.ts';
import type { QueryResult, WatchRecorder } from '../state/types.ts';
import type { AgentBackend } from './backend.ts';
import type { QueryOptions, RequestContext } from './context.ts';
import { badRequest, HttpError } from './errors.ts';

export const DEFAULT_WAIT_MS = 5 * 60_000;
export const MAX_WAIT_MS = 10 * 60_000;

/** A watch set a query records into and the HTTP layer then waits on (state/watch.ts's WatchSet). */
export interface WatchSetLike extends WatchRecorder {
  /** Resolves true when something recorded changes, false when `signal` aborts; releases its listeners. */
  wait(signal?: AbortSignal): Promise<boolean>;
}

export interface WaitLimits {
  /** Consul's default_query_time: the wait when ?wait is absent. */
  defaultWaitMs?: number;
  /** Consul's max_query_time: longer waits are clamped to it. */
  maxWaitMs?: number;
}

/** Parses ?stale, ?consistent, ?index, ?wait and ?filter (Consul's parseConsistency + parseWait). */
export function parseQueryOptions(ctx: RequestContext, limits: WaitLimits = {}): QueryOptions {
  const maxWaitMs = limits.maxWaitMs ?? MAX_WAIT_MS;
  const stale = ctx.has('stale');
  const consistent = ctx.has('consistent');
  if (stale && consistent) {
    throw badRequest('Cannot specify ?stale with ?consistent, conflicting semantics.');
  }
  let waitMs = Math.min(limits.defaultWaitMs ?? DEFAULT_WAIT_MS, maxWaitMs);
  const wait = ctx.get('wait');
  if (wait !== undefined && wait !== '') {
    let ns: bigint;
    try {
      ns = parseGoDurationNs(wait);
    } catch {
      throw badRequest('Invalid wait time');
    }
    // Negative waits are accepted by Go's ParseDuration; Consul then treats them as "no wait".
    waitMs = ns <= 0n ? 0 : Math.min(maxWaitMs, Number(ns / 1_000_000n));
  }
  let minIndex = 0;
  const index = ctx.get('index');
  if (index !== undefined && index !== '') {
    if (!/^[0-9]+$/.test(index) || !Number.isSafeInteger(Number(index))) throw badRequest('Invalid index');
    minIndex = Number(index);
  }
  return { stale, consistent, minIndex, waitMs, blocking: minIndex > 0, filter: ctx.get('filter') ?? '' };
}

/** Sets X-Consul-Index (≥ 1), X-Consul-KnownLeader, X-Consul-LastContact and, when the read's
 *  mode is known, X-Consul-Effective-Consistency ("leader", "stale" or "consistent"). */
export function setQueryMeta(ctx: RequestContext, backend: AgentBackend, index: number, stale: boolean, opts?: QueryOptions): void {
  const status = backend.raftStatus();
  ctx.header('X-Consul-Index', String(Math.max(1, Math.floor(index))));
  ctx.header('X-Consul-KnownLeader', status.knownLeader ? 'true' : 'false');
  // Only a stale read can be behind; a leader (or a consistent read) is by definition current.
  ctx.header('X-Consul-LastContact', String(stale ? Math.max(0, Math.floor(status.lastContactMs)) : 0));
  if (opts) ctx.header('X-Consul-Effective-Consistency', opts.consistent ? 'consistent' : opts.stale ? 'stale' : 'leader');
  // ?cached is accepted; this agent always answers from the store, which Consul reports as a miss.
  if (ctx.has('cached')) ctx.header('X-Cache', 'MISS');
}

export interface BlockingDeps {
  backend: AgentBackend;
  newWatchSet: () => WatchSetLike;
  /** [0,1) source for the wait jitter; injectable for tests. */
  random: () => number;
}

/**
 * Runs `query` with the request's consistency and blocking options and sets the meta headers.
 * `query` must be synchronous over the local store and record what it reads into `ws`.
 */
export async function blockingRead<T>(
  ctx: RequestContext,
  deps: BlockingDeps,
  opts: QueryOptions,
  query: (ws: WatchRecorder) => QueryResult<T>,
): Promise<QueryResult<T>> {
  const { backend } = deps;
  if (!opts.stale && !opts.consistent && !backend.raftStatus().knownLeader) {
    // A default-mode read is served by the leader (with its lease); without one, Consul fails it.
    throw new HttpError(500, 'No cluster leader', 'ERR_NO_LEADER');
  }
  const jitter = opts.blocking && opts.waitMs > 0 ? Math.floor(deps.random() * (opts.waitMs / 16)) : 0;
  const deadline = performance.now() + opts.waitMs + jitter;
  for (;;) {
    if (opts.consistent) await backend.consistentRead(ctx.signal);
    const ws = deps.newWatchSet();
    const result = query(ws);
    const done =
      !opts.blocking ||
      result.index > opts.minIndex ||
      opts.minIndex > backend.store.lastIndex() ||
      ctx.signal.aborted;
    const remaining = deadline - performance.now();
    if (done || remaining <= 0) {
      setQueryMeta(ctx, backend, result.index, opts.stale, opts);
      return result;
    }
    await waitWithTimeout(ws, remaining, ctx.signal);
  }
}

/** Waits on `ws` until it fires, `ms` pass, or `signal` aborts; leaves no timer or listener behind. */
export async function waitWithTimeout(ws: { wait(signal: AbortSignal): Promise<boolean> }, ms: number, signal: AbortSignal): Promise<boolean> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), ms);
  const onAbort = (): void => ac.abort();
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    return await ws.wait(ac.signal);
  } finally {
    clearTimeout(timer);
    signal.removeEventListener('abort', onAbort);
  }
}
