// Helpers shared by the route modules: the read path (options → filter → blocking query → meta
// headers) and small parsing utilities.

import { compileFilter, type Filter, type FilterSchema } from '../../filter/index.ts';
import type { QueryResult, WatchRecorder } from '../../state/types.ts';
import { blockingRead, parseQueryOptions, type WaitLimits } from '../blocking.ts';
import type { RequestContext } from '../context.ts';
import { badRequest } from '../errors.ts';
import type { RouteDeps } from '../router.ts';

/**
 * A catalog/health/KV/session read: parses the query options, compiles ?filter (before any waiting,
 * so a bad filter is a 400 at once), runs the query as a blocking query, and sets X-Consul-*.
 * Returns the result with the filter applied to list values.
 */
export async function readQuery<T>(
  ctx: RequestContext,
  deps: RouteDeps,
  query: (ws: WatchRecorder) => QueryResult<T>,
  filterSchema?: FilterSchema,
): Promise<QueryResult<T>> {
  const opts = parseQueryOptions(ctx, waitLimits(deps));
  const filter = opts.filter !== '' ? compileFilter(opts.filter, filterSchema) : undefined;
  const res = await blockingRead(ctx, deps, opts, query);
  if (filter && Array.isArray(res.value)) {
    return { index: res.index, value: filter.apply(res.value) as T };
  }
  return res;
}

/** Compiles ?filter for endpoints that do not block (agent/*); undefined when absent. */
export function filterParam(ctx: RequestContext, schema?: FilterSchema): Filter | undefined {
  const expr = ctx.get('filter');
  return expr ? compileFilter(expr, schema) : undefined;
}

/** Applies a filter to the values of a map (Consul's bexpr over map[string]T filters values). */
export function filterMap<T>(map: Record<string, T>, filter: Filter | undefined): Record<string, T> {
  if (!filter) return map;
  const out: Record<string, T> = {};
  for (const [k, v] of Object.entries(map)) if (filter.matches(v)) out[k] = v;
  return out;
}

/** The path remainder as an identifier; Consul's "Missing ..." 400 when empty. */
export function requireRest(ctx: RequestContext, what: string): string {
  if (ctx.rest === '') throw badRequest(`Missing ${what}`);
  return ctx.rest;
}

/** The agent's default_query_time / max_query_time. */
export function waitLimits(deps: RouteDeps): WaitLimits {
  const c = deps.backend.config;
  return { defaultWaitMs: c.defaultQueryTimeMs, maxWaitMs: c.maxQueryTimeMs };
}
