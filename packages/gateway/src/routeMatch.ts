// Which route of a compiled discovery chain an HTTP request takes (what Envoy does with the route
// table Consul generates from a router node; agent/xds/routes.go makeRouteMatchForDiscoveryRoute).
// Pure: the proxy calls it per request.
//
//   matchRoute(chain, { method: 'GET', path: '/currency/GBP', headers: { group: 'dev' }, query: {} })
//     → { index: 0, route, nextNode: 'resolver:currency.default.default.dc1' }
//
// Semantics, as Envoy applies them: routes are tried in order and the first whose every condition
// holds wins (the catch-all `PathPrefix: "/"` the compiler appends makes the last one match all);
// a route with no HTTP match matches everything. The path is compared without its query string;
// prefix and exact matches are case-sensitive; a regex must match the whole value. Header names are
// case-insensitive; a header given several times is compared as its values joined with ",". Invert
// negates the header's condition (so Present + Invert means "absent"). Methods, when listed, must
// include the request's method.
//
// Regexes: Consul (Envoy) uses RE2; JavaScript's engine differs. We translate what RE2 spells
// differently — `(?P<name>` named groups, a leading `(?i)`/`(?s)`/`(?m)` flag group, `\A` and `\z`
// anchors — and otherwise use the pattern as a JavaScript regex, anchored to match the whole value.
// What RE2 refuses but JavaScript accepts (backreferences, lookaround) is refused here too, so a
// route behaves the same or fails the same; RE2-only syntax this does not translate (e.g. `\C`,
// Unicode classes like `\pL` without braces) is an invalid regex here: such a route never matches.
import type { ChainRoute, CompiledDiscoveryChain, DiscoveryRoute } from './chainTypes.ts';

export interface HttpRequestInfo {
  method: string;
  /** The request target's path, without the query string (a `?…` suffix is cut off if present). */
  path: string;
  headers: Readonly<Record<string, string | readonly string[] | undefined>>;
  query: Readonly<Record<string, string | readonly string[] | undefined>>;
}

export interface RouteChoice {
  index: number;
  route: DiscoveryRoute;
  nextNode: string;
}

type Json = Record<string, unknown>;
const str = (v: unknown): string => (typeof v === 'string' ? v : '');
const records = (v: unknown): Json[] => (Array.isArray(v) ? v.filter((x): x is Json => typeof x === 'object' && x !== null) : []);

const regexCache = new Map<string, RegExp | null>();

/** An RE2 pattern as a JavaScript RegExp matching whole values; null when it is not one we can run. */
export function re2ToRegExp(pattern: string): RegExp | null {
  const cached = regexCache.get(pattern);
  if (cached !== undefined) return cached;
  let re: RegExp | null = null;
  let src = pattern;
  let flags = '';
  const lead = /^\(\?([ims]+)\)/.exec(src);
  if (lead) {
    flags = [...new Set(lead[1]!.split(''))].join('');
    src = src.slice(lead[0].length);
  }
  // Backreferences and lookaround are not RE2: refuse them rather than run a different language.
  if (!/\\[1-9]|\(\?[=!]|\(\?<[=!]/.test(src)) {
    src = src.replace(/\(\?P</g, '(?<').replace(/\\A/g, '^').replace(/\\z/g, '$');
    try {
      re = new RegExp(`^(?:${src})$`, flags);
    } catch {
      re = null;
    }
  }
  if (regexCache.size > 1000) regexCache.clear();
  regexCache.set(pattern, re);
  return re;
}

function fullMatch(pattern: string, value: string): boolean {
  const re = re2ToRegExp(pattern);
  return re !== null && re.test(value);
}

function headerValue(headers: HttpRequestInfo['headers'], name: string): string | undefined {
  const want = name.toLowerCase();
  for (const [k, v] of Object.entries(headers)) {
    if (k.toLowerCase() !== want || v === undefined) continue;
    return typeof v === 'string' ? v : v.join(',');
  }
  return undefined;
}

function queryValue(query: HttpRequestInfo['query'], name: string): string | undefined {
  const v = query[name];
  if (v === undefined) return undefined;
  return typeof v === 'string' ? v : v[0];
}

function headerMatches(h: Json, headers: HttpRequestInfo['headers']): boolean {
  const value = headerValue(headers, str(h.Name));
  let ok: boolean;
  if (h.Present === true) ok = value !== undefined;
  else if (value === undefined) ok = false;
  else if (str(h.Exact) !== '') ok = value === h.Exact;
  else if (str(h.Prefix) !== '') ok = value.startsWith(str(h.Prefix));
  else if (str(h.Suffix) !== '') ok = value.endsWith(str(h.Suffix));
  else if (str(h.Regex) !== '') ok = fullMatch(str(h.Regex), value);
  else ok = true;
  return h.Invert === true ? !ok : ok;
}

function queryMatches(q: Json, query: HttpRequestInfo['query']): boolean {
  const value = queryValue(query, str(q.Name));
  if (value === undefined) return false;
  if (q.Present === true) return true;
  if (str(q.Exact) !== '') return value === q.Exact;
  if (str(q.Regex) !== '') return fullMatch(str(q.Regex), value);
  return true;
}

/** Whether one route's Match holds for the request. */
export function routeMatches(route: ChainRoute, req: HttpRequestInfo): boolean {
  const http = (route.Match as Json | undefined)?.HTTP as Json | undefined;
  if (!http) return true;
  const q = req.path.indexOf('?');
  const path = q >= 0 ? req.path.slice(0, q) : req.path;
  if (str(http.PathExact) !== '' && path !== http.PathExact) return false;
  if (str(http.PathPrefix) !== '' && !path.startsWith(str(http.PathPrefix))) return false;
  if (str(http.PathRegex) !== '' && !fullMatch(str(http.PathRegex), path)) return false;
  for (const h of records(http.Header)) if (!headerMatches(h, req.headers)) return false;
  for (const p of records(http.QueryParam)) if (!queryMatches(p, req.query)) return false;
  const methods = Array.isArray(http.Methods) ? (http.Methods as unknown[]).map(str) : [];
  if (methods.length > 0 && !methods.includes(req.method.toUpperCase())) return false;
  return true;
}

/**
 * The route the request takes at the chain's start node and the node it leads to; null when the
 * chain does not start with a router (its start node is where every request goes) or, which the
 * catch-all route prevents, no route matches.
 */
export function matchRoute(chain: CompiledDiscoveryChain, req: HttpRequestInfo): RouteChoice | null {
  const start = chain.Nodes[chain.StartNode];
  if (!start || start.Type !== 'router') return null;
  const routes = start.Routes ?? [];
  for (let i = 0; i < routes.length; i++) {
    const route = routes[i]!;
    if (routeMatches(route.Definition, req)) return { index: i, route, nextNode: route.NextNode };
  }
  return null;
}

/**
 * What routing and L7 intentions see of a request, from its method, request target (path and
 * query) and headers, whichever HTTP version carried it: HTTP/2's `:authority` is also offered as
 * `host` and HTTP/1.1's `host` as `:authority` (Envoy keeps the two as one header), so a match on
 * either name works over both. A query parameter given twice is matched on its first value.
 */
export function requestInfo(method: string, target: string, headers: Readonly<Record<string, string | readonly string[] | undefined>>): HttpRequestInfo {
  const qi = target.indexOf('?');
  const query: Record<string, string> = {};
  if (qi >= 0) for (const [k, v] of new URLSearchParams(target.slice(qi + 1))) if (!(k in query)) query[k] = v;
  const h: Record<string, string | readonly string[] | undefined> = { ...headers };
  const authority = headers[':authority'] ?? headers['host'];
  if (authority !== undefined) { h[':authority'] = authority; h['host'] = authority; }
  return { method, path: qi >= 0 ? target.slice(0, qi) : target, headers: h, query };
}
