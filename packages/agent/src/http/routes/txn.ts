// PUT /v1/txn: Consul's transaction endpoint (agent/txn_endpoint.go). The body is api.TxnOps; the
// whole list is one Raft entry applied all-or-nothing. Success: 200 {"Results": [...], "Errors":
// null}; a failing op: 409 {"Results": null, "Errors": [{"OpIndex", "What"}]} and nothing changed.
// As in Consul, a transaction of reads only is answered from the local store (honouring ?stale /
// ?consistent, with X-Consul-KnownLeader and -LastContact but no index); any write goes to Raft.

import type { TxnOp, TxnResponse, TxnResult } from '../../state/types.ts';
import { isReadOnlyTxn } from '../../state/txn.ts';
import { validateKvKey } from '../../state/validate.ts';
import { applyOk } from '../../state/apply.ts';
import { parseQueryOptions, prepareRead } from '../blocking.ts';
import type { RequestContext } from '../context.ts';
import { decode, DecodeError, jsonSyntaxError } from '../decode.ts';
import { badRequest, HttpError } from '../errors.ts';
import { parseJsonExact } from '../json.ts';
import { invalidUtf8Error } from '../utf8.ts';
import type { EndpointSpec, RouteDeps } from '../router.ts';
import { TxnOpSchema } from '../schemas.ts';
import { waitLimits } from './common.ts';
import { checkInput, serviceInput } from './convert.ts';
import { dirEntryJson, DEFAULT_KV_MAX_VALUE_BYTES } from './kv.ts';

/** Consul's maxTxnOps. */
export const MAX_TXN_OPS = 128;
/** Consul's default txn_max_req_len. */
export const DEFAULT_TXN_MAX_REQ_BYTES = 512 * 1024;

type Obj = Record<string, unknown>;

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

function decodeValue(v: unknown, opIndex: number): Uint8Array | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'string') throw badRequest(`Failed to parse body: op ${opIndex}: KV.Value must be a base64 string`);
  if (v.length % 4 !== 0 || !BASE64.test(v)) throw badRequest(`Failed to parse body: op ${opIndex}: illegal base64 data in KV.Value`);
  return Buffer.from(v, 'base64');
}

export function txnRoutes(deps: RouteDeps): EndpointSpec[] {
  const { backend, metrics } = deps;
  const kvMax = backend.config.limits?.kvMaxValueSizeBytes ?? DEFAULT_KV_MAX_VALUE_BYTES;
  // As Consul: kv_max_value_size also caps a txn body when it is the larger of the two.
  const maxReq = Math.max(backend.config.limits?.txnMaxReqLenBytes ?? DEFAULT_TXN_MAX_REQ_BYTES, kvMax);

  function convert(raw: unknown): TxnOp[] {
    // Go decodes a JSON null into an empty slice.
    if (raw === null) return [];
    if (!Array.isArray(raw)) {
      throw badRequest(`Failed to parse body: json: cannot unmarshal ${raw === null ? 'null' : typeof raw === 'object' ? 'object' : typeof raw} into Go value of type api.TxnOps`);
    }
    if (raw.length > MAX_TXN_OPS) {
      throw new HttpError(413, `Transaction contains too many operations (${raw.length} > ${MAX_TXN_OPS})`, 'ERR_TOO_LARGE');
    }
    return raw.map((item, i): TxnOp => {
      let op: Obj;
      try {
        op = decode(item, TxnOpSchema);
      } catch (err) {
        if (err instanceof DecodeError) throw badRequest(`Failed to parse body: ${err.message}`);
        throw err;
      }
      const set = ['KV', 'Node', 'Service', 'Check', 'Session'].filter((k) => op[k] !== undefined);
      if (set.length !== 1) throw badRequest(`Failed to parse body: op ${i}: exactly one of KV, Node, Service, Check or Session must be set`);
      if (op.KV) {
        const kv = op.KV as Obj;
        // The same keys as /v1/kv/ takes (a tree verb's prefix may be empty): a key stored here
        // must be one that endpoint can read and delete.
        const key = (kv.Key as string | undefined) ?? '';
        if (key !== '') {
          const why = validateKvKey(key);
          if (why !== null) throw badRequest(`Invalid KV key ${JSON.stringify(key)} in op ${i}: ${why}`);
        }
        const value = decodeValue(kv.Value, i);
        if (value && value.length > kvMax) {
          throw new HttpError(413, `Value for key ${JSON.stringify(kv.Key ?? '')} is too large (${value.length} > ${kvMax} bytes)`, 'ERR_TOO_LARGE');
        }
        return {
          KV: {
            Verb: (kv.Verb ?? '') as never,
            Key: (kv.Key as string | undefined) ?? '',
            ...(value ? { Value: value } : {}),
            ...(kv.Flags !== undefined ? { Flags: kv.Flags as bigint } : {}),
            ...(kv.Index !== undefined ? { Index: kv.Index as number } : {}),
            ...(kv.Session !== undefined ? { Session: kv.Session as string } : {}),
          },
        };
      }
      if (op.Node) {
        const n = op.Node as Obj;
        const node = { ...((n.Node as Obj | undefined) ?? {}) } as Obj;
        if (!node.Datacenter) node.Datacenter = backend.config.datacenter;
        delete node.Partition;
        delete node.CreateIndex;
        return { Node: { Verb: (n.Verb ?? '') as never, Node: node as never } };
      }
      if (op.Service) {
        const s = op.Service as Obj;
        const svc = (s.Service as Obj | undefined) ?? {};
        return { Service: { Verb: (s.Verb ?? '') as never, Node: (s.Node as string | undefined) ?? '', Service: s.Verb === 'get' || s.Verb === 'delete' || s.Verb === 'delete-cas' ? (svc as never) : serviceInput(svc) } };
      }
      if (op.Check) {
        const c = op.Check as Obj;
        const chk = checkInput((c.Check as Obj | undefined) ?? {});
        return { Check: { Verb: (c.Verb ?? '') as never, Check: { ...chk, Node: chk.Node ?? '' } } };
      }
      const s = op.Session as Obj;
      const sess = (s.Session as Obj | undefined) ?? {};
      return { Session: { Verb: (s.Verb ?? '') as never, Session: { ID: (sess.ID as string | undefined) ?? '', ...(sess.Node ? { Node: sess.Node as string } : {}) } } };
    });
  }

  async function txn(ctx: RequestContext): Promise<unknown> {
    let raw: unknown;
    const badUtf8 = ctx.body ? invalidUtf8Error(ctx.body) : null;
    if (badUtf8 !== null) throw badRequest(`Failed to parse body: ${badUtf8}`);
    const text = ctx.body?.toString('utf8') ?? '';
    if (text.trim() === '') throw badRequest('Failed to parse body: EOF');
    try {
      // KV Flags is a uint64 that lock recipes fill above 2^53: keep the digits as sent.
      raw = parseJsonExact(text);
    } catch (err) {
      throw badRequest(`Failed to parse body: ${jsonSyntaxError(text, err as Error)}`);
    }
    const ops = convert(raw);
    // Nothing to do; Consul answers an empty transaction from its read path.
    if (ops.length === 0) return { Results: null, Errors: null };
    const started = performance.now();
    let resp: TxnResponse;
    if (isReadOnlyTxn(ops)) {
      const opts = await prepareRead(backend, parseQueryOptions(ctx, waitLimits(deps)), ctx.signal);
      if (opts.consistent) await backend.consistentRead(ctx.signal);
      resp = backend.store.readTxn(ops);
      const status = backend.raftStatus();
      ctx.header('X-Consul-KnownLeader', status.knownLeader ? 'true' : 'false');
      ctx.header('X-Consul-LastContact', String(opts.stale ? Math.max(0, Math.floor(status.lastContactMs)) : 0));
      metrics.measureSince('consul.txn.read', started);
    } else {
      try {
        ({ value: resp } = await applyOk(backend.apply, { type: 'txn', Ops: ops, now: Date.now() }));
      } finally {
        metrics.measureSince('consul.txn.apply', started);
      }
    }
    if (resp.Errors && resp.Errors.length > 0) {
      ctx.status = 409;
      return { Results: null, Errors: resp.Errors };
    }
    return { Results: (resp.Results ?? []).map(resultJson), Errors: null };
  }

  return [
    {
      path: '/v1/txn',
      bodyLimit: maxReq,
      tooLargeMessage: (_bytes, limit) => `Request body too large, max size: ${limit} bytes`,
      methods: { PUT: txn },
    },
  ];
}

function resultJson(r: TxnResult): unknown {
  if ('KV' in r) return { KV: dirEntryJson(r.KV) };
  return r;
}
