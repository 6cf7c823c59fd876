// /v1/kv/<key>: Consul's KV endpoint (agent/kvs_endpoint.go).
//   GET    ?recurse | ?keys[&separator=] | ?raw    — 404 with an empty body when nothing matches
//   PUT    ?flags ?cas ?acquire ?release            — answers the JSON literal true/false
//   DELETE ?recurse ?cas                           — answers true/false
// Values are the raw request body (512 KiB by default) and base64 in JSON answers.

import type { Command, DirEntry } from '../../state/types.ts';
import { validateKvKey } from '../../state/validate.ts';
import { applyOk } from '../../state/apply.ts';
import { RawBody, type RequestContext } from '../context.ts';
import { badRequest, HttpError } from '../errors.ts';
import type { EndpointSpec, RouteDeps } from '../router.ts';
import { FILTERED_HEADER } from '../aclEnforce.ts';
import { readQuery } from './common.ts';

/** Consul's default kv_max_value_size (the suggested Raft entry size). */
export const DEFAULT_KV_MAX_VALUE_BYTES = 512 * 1024;

/** DirEntry as Consul's JSON orders it; an empty value is null (Go's nil []byte). Flags stays a
 *  bigint, which encodeJson prints as an exact number. */
export function dirEntryJson(e: DirEntry): Record<string, unknown> {
  const out: Record<string, unknown> = {
    LockIndex: e.LockIndex,
    Key: e.Key,
    Flags: e.Flags,
    Value: e.Value && e.Value.length > 0 ? e.Value : null,
  };
  if (e.Session) out.Session = e.Session;
  out.CreateIndex = e.CreateIndex;
  out.ModifyIndex = e.ModifyIndex;
  return out;
}

/** Consul's conflictingFlags: at most one of `flags` may be present. */
function rejectConflicting(ctx: RequestContext, ...flags: string[]): void {
  if (flags.filter((f) => ctx.has(f)).length > 1) {
    throw badRequest(`Conflicting flags: ${ctx.query.toString()}\n`);
  }
}

export function kvRoutes(deps: RouteDeps): EndpointSpec[] {
  const { backend, metrics } = deps;
  const maxValue = backend.config.limits?.kvMaxValueSizeBytes ?? DEFAULT_KV_MAX_VALUE_BYTES;

  const checkKey = (key: string): void => {
    if (key === '') return;
    const why = validateKvKey(key);
    if (why !== null) throw badRequest(why);
  };

  const apply = async (cmd: Command): Promise<boolean> => {
    const started = performance.now();
    try {
      const { value } = await applyOk(backend.apply, cmd);
      return value as boolean;
    } finally {
      metrics.measureSince('consul.kvs.apply', started);
    }
  };

  async function get(ctx: RequestContext): Promise<unknown> {
    const key = ctx.rest;
    checkKey(key);
    const store = backend.store;
    // With ACLs on, listings keep what the token may read, filtered here before the 404 check and
    // (for ?keys) before folding, as Consul's KVS.List / ListKeys do; a 404 may then be the filter's.
    const who = ctx.identity?.authorizer;
    let filtered = false;
    const visible = who ? (k: string): boolean => {
      if (who.allowed('key', 'read', k)) return true;
      filtered = true;
      return false;
    } : undefined;
    if (ctx.has('keys')) {
      // Consul historically spelled it "seperator" and still accepts both.
      const sep = ctx.get('separator') ?? ctx.get('seperator') ?? '';
      const res = await readQuery(ctx, deps, (ws) => {
        filtered = false; // a blocking query's later round answers alone
        return store.kvKeys(key, sep, ws, visible);
      });
      if (filtered) ctx.header(FILTERED_HEADER, 'true');
      // No 404 for the root: an empty store lists [].
      if (res.value.length === 0 && key !== '') {
        ctx.status = 404;
        return undefined;
      }
      return res.value;
    }
    if (ctx.has('recurse')) {
      const res = await readQuery(ctx, deps, (ws) => {
        filtered = false;
        const r = store.kvList(key, ws);
        return visible ? { index: r.index, value: r.value.filter((e) => visible(e.Key)) } : r;
      });
      if (filtered) ctx.header(FILTERED_HEADER, 'true');
      if (res.value.length === 0) {
        ctx.status = 404;
        return undefined;
      }
      return res.value.map(dirEntryJson);
    }
    if (key === '') throw badRequest('Missing key name');
    const res = await readQuery(ctx, deps, (ws) => store.kvGet(key, ws));
    const e = res.value;
    if (!e) {
      ctx.status = 404;
      return undefined;
    }
    if (ctx.has('raw')) {
      // Consul's defences against a KV value rendered as HTML in a browser.
      ctx.header('X-Content-Type-Options', 'nosniff');
      ctx.header('Content-Security-Policy', 'sandbox');
      return new RawBody('text/plain', Buffer.from(e.Value ?? new Uint8Array()));
    }
    return [dirEntryJson(e)];
  }

  async function put(ctx: RequestContext): Promise<boolean> {
    const key = ctx.rest;
    if (key === '') throw badRequest('Missing key name');
    checkKey(key);
    rejectConflicting(ctx, 'cas', 'acquire', 'release');
    // uint64, exact: the lock and semaphore recipes mark their keys with values above 2^53.
    const flags = ctx.uint64Param('flags', `Invalid flags: ${JSON.stringify(ctx.get('flags'))}: must be an unsigned 64-bit integer (0 to 18446744073709551615)`) ?? 0n;
    const cas = ctx.uintParam('cas', `Invalid cas index: ${JSON.stringify(ctx.get('cas'))}: must be an unsigned integer`);
    const body = ctx.body ?? Buffer.alloc(0);
    if (body.length > maxValue) {
      // Normally caught by the route's body limit; kept for bodies that arrive without a length.
      throw new HttpError(413, kvTooLarge(body.length, maxValue), 'ERR_TOO_LARGE');
    }
    const value = new Uint8Array(body.buffer, body.byteOffset, body.length);
    const now = Date.now();
    if (ctx.has('acquire')) {
      const session = ctx.get('acquire') ?? '';
      // Consul's KVS.Apply refuses a lock inside the key's lock-delay without a Raft write.
      if (backend.store.kvLockDelay(key) > now) return false;
      return apply({ type: 'kvLock', Key: key, Value: value, Flags: flags, Session: session, now });
    }
    if (ctx.has('release')) {
      return apply({ type: 'kvUnlock', Key: key, Value: value, Flags: flags, Session: ctx.get('release') ?? '', now });
    }
    if (cas !== undefined) {
      return apply({ type: 'kvCas', Key: key, Value: value, Flags: flags, Index: cas, now });
    }
    await apply({ type: 'kvSet', Key: key, Value: value, Flags: flags, now });
    return true;
  }

  async function del(ctx: RequestContext): Promise<boolean> {
    const key = ctx.rest;
    checkKey(key);
    rejectConflicting(ctx, 'recurse', 'cas');
    const now = Date.now();
    if (ctx.has('recurse')) {
      await apply({ type: 'kvDeleteTree', Prefix: key, now });
      return true;
    }
    if (key === '') throw badRequest('Missing key name');
    const cas = ctx.uintParam('cas', `Invalid cas index: ${JSON.stringify(ctx.get('cas'))}: must be an unsigned integer`);
    if (cas !== undefined) return apply({ type: 'kvDeleteCas', Key: key, Index: cas, now });
    await apply({ type: 'kvDelete', Key: key, now });
    return true;
  }

  return [
    {
      path: '/v1/kv/',
      prefix: true,
      bodyLimit: maxValue,
      tooLargeMessage: (bytes, limit) => kvTooLarge(bytes, limit),
      methods: { GET: get, PUT: put, DELETE: del },
    },
  ];
}

/** Consul's 413 text for a KV value over kv_max_value_size. */
function kvTooLarge(bytes: number | undefined, limit: number): string {
  return `Request body(${bytes ?? `more than ${limit}`} bytes) too large, max size: ${limit} bytes`;
}
