// Config entries: Consul's agent/config_endpoint.go.
//   PUT    /v1/config                ?cas=<index>  body: the entry — answers true/false
//   GET    /v1/config/:kind/:name                  404 `Config entry not found for "<kind>" / "<name>"`
//   GET    /v1/config/:kind                        the kind's entries (blocking, X-Consul-Index)
//   DELETE /v1/config/:kind/:name     ?cas=<index> answers {} (plain) or true/false (with cas)
// The entry is decoded and validated here (structs/configEntries) before it is proposed, as Consul's
// ConfigEntry.Apply does before raftApply; the protocol gate, which reads other entries, is applied by
// the state machine atomically with the write (state/configEntries.ts). Client agents forward all of
// it to a server (server.ts).

import { ConfigEntryDecodeError, parseConfigEntry, readKindError } from '../../structs/configEntries/index.ts';
import type { ConfigEntry } from '../../state/types.ts';
import { applyOk } from '../../state/apply.ts';
import { RawBody, type RequestContext } from '../context.ts';
import { jsonSyntaxError } from '../decode.ts';
import { badRequest, HttpError } from '../errors.ts';
import type { EndpointSpec, RouteDeps } from '../router.ts';
import { invalidUtf8Error } from '../utf8.ts';
import { readQuery } from './common.ts';

/** Consul's ConfigEntryNotFoundErr. */
export const CONFIG_ENTRY_NOT_FOUND = 'Config entry not found';

const decodingFailed = (detail: string): HttpError => badRequest(`Request decoding failed: ${detail}`);

/** The body as JSON; Consul words every failure "Request decoding failed: ...". */
function parseBody(body: Buffer | undefined): unknown {
  if (body !== undefined) {
    const bad = invalidUtf8Error(body);
    if (bad !== null) throw decodingFailed(bad);
  }
  const text = body === undefined ? '' : body.toString('utf8');
  if (text.trim() === '') throw decodingFailed('EOF');
  try {
    return JSON.parse(text);
  } catch (err) {
    throw decodingFailed(jsonSyntaxError(text, err as Error));
  }
}

/** `?cas=` as Go's strconv.ParseUint; Consul returns the parse error itself. */
function casParam(ctx: RequestContext): number | undefined {
  const v = ctx.get('cas');
  if (v === undefined || v === '') return undefined;
  return ctx.uintParam('cas', `strconv.ParseUint: parsing ${JSON.stringify(v)}: invalid syntax`);
}

/** "<kind>/<name>" → its parts; the name keeps any further slashes (Consul's SplitN(…, 2)). */
function splitPath(rest: string): [string] | [string, string] {
  const at = rest.indexOf('/');
  return at < 0 ? [rest] : [rest.slice(0, at), rest.slice(at + 1)];
}

export function configRoutes(deps: RouteDeps): EndpointSpec[] {
  const { backend, metrics } = deps;

  async function apply(ctx: RequestContext): Promise<boolean> {
    const raw = parseBody(ctx.body);
    let entry;
    try {
      entry = parseConfigEntry(raw);
    } catch (err) {
      if (err instanceof ConfigEntryDecodeError) throw decodingFailed(err.message);
      throw err; // ConfigEntryValidationError: 400 with the rule's text (errors.ts).
    }
    const cas = casParam(ctx);
    const started = performance.now();
    try {
      const { value } = await applyOk(backend.apply, { type: 'configEntrySet', Entry: entry, ...(cas !== undefined ? { Cas: cas } : {}) });
      return value;
    } finally {
      metrics.measureSince('consul.config_entry.apply', started);
    }
  }

  async function get(ctx: RequestContext): Promise<unknown> {
    const parts = splitPath(ctx.rest);
    const kind = parts[0];
    if (kind === '') throw new HttpError(404, 'Must provide either a kind or both kind and name', 'ERR_NOT_FOUND');
    // Consul's ConfigEntry.Get/List refuse a kind it does not know (MakeConfigEntry).
    const why = readKindError(kind);
    if (why !== null) throw badRequest(why);
    const store = backend.store;
    if (parts.length === 2) {
      const name = parts[1];
      const res = await readQuery<ConfigEntry | null>(ctx, deps, (ws) => store.configEntry(kind, name, ws));
      if (res.value === null) {
        // Answered, not thrown, so the read's X-Consul-* headers go with it (clients block on a 404 too).
        ctx.status = 404;
        return new RawBody('text/plain; charset=utf-8', `${CONFIG_ENTRY_NOT_FOUND} for ${JSON.stringify(kind)} / ${JSON.stringify(name)}`);
      }
      return res.value;
    }
    const res = await readQuery<ConfigEntry[]>(ctx, deps, (ws) => store.configEntries(kind, ws));
    return res.value;
  }

  async function del(ctx: RequestContext): Promise<unknown> {
    const parts = splitPath(ctx.rest);
    if (parts.length !== 2) throw new HttpError(404, 'Must provide both a kind and name to delete', 'ERR_NOT_FOUND');
    const [kind, nameIn] = parts;
    const why = readKindError(kind);
    if (why !== null) throw badRequest(why);
    // Consul's Normalize on delete: proxy-defaults is always "global" (another name is refused), mesh always "mesh".
    let name = nameIn;
    if (kind === 'proxy-defaults') {
      if (name !== '' && name !== 'global') throw badRequest(`invalid name (${JSON.stringify(name)}), only "global" is supported`);
      name = 'global';
    } else if (kind === 'mesh') {
      name = 'mesh';
    }
    const cas = casParam(ctx);
    const started = performance.now();
    try {
      const { value } = await applyOk(backend.apply, { type: 'configEntryDelete', Kind: kind, Name: name, ...(cas !== undefined ? { Cas: cas } : {}) });
      // Consul answers the deleted flag only for CAS deletes, {} otherwise (backwards compatibility).
      return cas !== undefined ? value : {};
    } finally {
      metrics.measureSince('consul.config_entry.delete', started);
    }
  }

  return [
    { path: '/v1/config', writesInPrimary: true, methods: { PUT: apply } },
    { path: '/v1/config/', prefix: true, writesInPrimary: true, methods: { GET: get, DELETE: del } },
  ];
}
