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

/** Parses ?stale, ?consistent, ?max_stale, ?index, ?wait and ?filter (Consul's parseConsistency +
 *  parseWait). A positive ?max_stale implies ?stale, as in Consul. */
export function parseQueryOptions(ctx: RequestContext, limits: WaitLimits = {}): QueryOptions {
  const maxWaitMs = limits.maxWaitMs ?? MAX_WAIT_MS;
  let stale = ctx.has('stale');
  const consistent = ctx.has('consistent');
  let maxStaleMs = 0;
  const maxStale = ctx.get('max_stale');
  if (maxStale !== undefined && maxStale !== '') {
    let ns: bigint;
    try {
      ns = parseGoDurationNs(maxStale);
    } catch {
      throw badRequest(`Invalid max_stale value ${JSON.stringify(maxStale)}`);
    }
    if (ns > 0n) {
      // Sub-millisecond bounds round up so that "1us" still means "some staleness is fine".
      maxStaleMs = Math.max(1, Number(ns / 1_000_000n));
      stale = true;
    }
  }
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
  return { stale, consistent, minIndex, waitMs, blocking: minIndex > 0, filter: ctx.get('filter') ?? '', maxStaleMs };
}

/**
 * Brings the local store up to what the read's consistency mode promises, before its first query,
 * and returns the mode the read is actually served in:
 *   - ?stale: nothing to wait for, unless ?max_stale is set and this server has not heard from the
 *     leader for longer than that; then, like Consul's agent (which retries such a read once without
 *     AllowStale), it is served in default mode and reports X-Consul-LastContact 0;
 *   - default: awaits `defaultRead` (on a follower: the leader's commit index under its lease,
 *     applied here); without that hook, fails at once when no leader is known;
 *   - ?consistent: left to the caller, which awaits `consistentRead` before every query it runs.
 * Errors keep their `.code` (ERR_NO_LEADER / ERR_NOT_LEADER → 500 "No cluster leader").
 */
export async function prepareRead(backend: AgentBackend, opts: QueryOptions, signal?: AbortSignal): Promise<QueryOptions> {
  let mode = opts;
  if (mode.stale && mode.maxStaleMs > 0 && backend.raftStatus().lastContactMs > mode.maxStaleMs) {
    mode = { ...mode, stale: false, maxStaleMs: 0 };
  }
  if (mode.stale || mode.consistent) return mode;
  if (backend.defaultRead) {
    // Like Consul's forwarding, the backend rides out a short election (rpc_hold_timeout) before it
    // gives up with ERR_NO_LEADER.
    await backend.defaultRead(signal);
  } else if (!backend.raftStatus().knownLeader) {
    // No hook (a single server): the local store is the leader's, if there is one.
    throw new HttpError(500, 'No cluster leader', 'ERR_NO_LEADER');
  }
  return mode;
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
  // Once, before the first query: a later round runs because the local store applied something the
  // query read, so it is at least as current as the first.
  opts = await prepareRead(backend, opts, ctx.signal);
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
