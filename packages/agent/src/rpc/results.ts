// The encoding of what travels in server.proto's bytes fields: a command's result (Forward.Apply's
// `result`, ApplyStream's `ApplyResult.result`) and a node's catalog rows (Forward.NodeState's
// `json`). Servers and client agents of different builds, on different Node versions, exchange these
// during a rolling upgrade, so the encoding is an explicit schema, not node:v8 (whose format belongs
// to the V8 version and is not promised to be read by an older one).
//
// Layout, as the state store's command entries (state/codec.ts format 2):
//   [format = 1][u32 BE length of the JSON][JSON][bytes...]
// Byte fields (a txn result's KV Value) travel raw after the JSON; the JSON holds [offset, length]
// into that tail in their place. KV Flags (uint64) travel as a number while exact, as decimal text
// above 2^53 (uint64Wire). Row shapes are Consul's JSON (state/types.ts).
//
// Compatibility: a newer build may add fields; this decoder reads the fields it knows, by name and
// type, and ignores the rest. A change an older build cannot read takes a new format byte, which
// the decoder refuses by name. Bytes that start with 0xFF are node:v8 from a build before this
// format (a v8 header always starts with 0xFF); they are still read so that an upgrade from such a
// build can roll, and are never written.
import * as v8 from 'node:v8';
import type {
  CommandError, CommandResult, DirEntry, HealthCheck, Node, NodeService, StateErrorCode, TxnError, TxnResponse, TxnResult,
} from '../state/types.ts';
import { parseUint64, uint64Wire } from '../state/uint64.ts';
import { ByteTail } from '../state/codec.ts';

/** The format byte this build writes. */
export const RESULT_FORMAT = 1;
const LEGACY_V8 = 0xff;

/** Forward.NodeState's answer: the catalog's rows for one node. */
export interface NodeCatalogState {
  node: Node | null;
  services: NodeService[];
  checks: HealthCheck[];
}

/** Malformed bytes, or a format this build cannot read. */
export class ResultDecodeError extends Error {
  readonly code = 'ERR_BAD_RESULT';
  constructor(what: string, message: string) {
    super(`${what}: ${message}`);
    this.name = 'ResultDecodeError';
  }
}

// ---- framing ----------------------------------------------------------------------------------

function frame(doc: unknown, tail: ByteTail): Buffer {
  const json = Buffer.from(JSON.stringify(doc));
  const out = Buffer.allocUnsafe(5 + json.length + tail.bytes);
  out[0] = RESULT_FORMAT;
  out.writeUInt32BE(json.length, 1);
  json.copy(out, 5);
  let at = 5 + json.length;
  for (const p of tail.parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

/** The JSON document and its byte tail; `legacy` for node:v8 bytes. */
function unframe(what: string, data: Uint8Array): { doc: unknown; tail: Uint8Array } | { legacy: unknown } {
  if (data.byteLength === 0) throw new ResultDecodeError(what, 'empty');
  if (data[0] === LEGACY_V8) {
    try {
      return { legacy: v8.deserialize(data) };
    } catch (err) {
      throw new ResultDecodeError(what, `unreadable node:v8 bytes from an earlier build: ${(err as Error).message}`);
    }
  }
  if (data[0] !== RESULT_FORMAT) throw new ResultDecodeError(what, `format ${data[0]} is not supported (this build reads ${RESULT_FORMAT})`);
  if (data.byteLength < 5) throw new ResultDecodeError(what, 'truncated');
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const len = buf.readUInt32BE(1);
  if (5 + len > buf.length) throw new ResultDecodeError(what, `truncated: its JSON claims ${len} bytes, ${buf.length - 5} follow`);
  let doc: unknown;
  try {
    doc = JSON.parse(buf.subarray(5, 5 + len).toString('utf8'));
  } catch (err) {
    throw new ResultDecodeError(what, `not valid JSON: ${(err as Error).message}`);
  }
  return { doc, tail: buf.subarray(5 + len) };
}

// ---- a small schema reader --------------------------------------------------------------------

type FieldType = 'string' | 'number' | 'boolean' | 'strings' | 'object';
/** Field name → type; a trailing '?' on the type marks a field that may be absent. */
type Schema = Record<string, FieldType | `${FieldType}?`>;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function typeOk(t: FieldType, v: unknown): boolean {
  switch (t) {
    case 'string': return typeof v === 'string';
    case 'number': return typeof v === 'number' && Number.isFinite(v);
    case 'boolean': return typeof v === 'boolean';
    case 'strings': return Array.isArray(v) && v.every((x) => typeof x === 'string');
    case 'object': return isObject(v);
  }
}

/**
 * The schema's fields of `v`, type-checked, in the order they came (so a row reads as it was
 * written); fields the schema does not name are left out.
 */
function read<T>(schema: Schema, v: unknown, what: string, where: string): T {
  if (!isObject(v)) throw new ResultDecodeError(what, `${where} must be an object`);
  const out: Record<string, unknown> = {};
  for (const [name, x] of Object.entries(v)) {
    const spec = Object.hasOwn(schema, name) ? schema[name] : undefined;
    if (spec === undefined || x === undefined) continue;
    const t = (spec.endsWith('?') ? spec.slice(0, -1) : spec) as FieldType;
    if (!typeOk(t, x)) throw new ResultDecodeError(what, `${where}.${name} must be ${t === 'strings' ? 'an array of strings' : `a ${t}`}`);
    out[name] = x;
  }
  for (const [name, spec] of Object.entries(schema)) {
    if (!spec.endsWith('?') && !(name in out)) throw new ResultDecodeError(what, `${where}.${name} is missing`);
  }
  return out as T;
}

// Consul's JSON shapes (state/types.ts). Open sub-documents (Meta, Proxy, Definition, ...) are
// objects carried as they are, as Consul's own JSON carries them.
const NODE: Schema = {
  ID: 'string', Node: 'string', Address: 'string', Datacenter: 'string', TaggedAddresses: 'object', Meta: 'object',
  CreateIndex: 'number', ModifyIndex: 'number',
};
const SERVICE: Schema = {
  Kind: 'string', ID: 'string', Service: 'string', Tags: 'strings', Address: 'string', TaggedAddresses: 'object',
  Meta: 'object', Port: 'number', SocketPath: 'string?', Weights: 'object', EnableTagOverride: 'boolean',
  Proxy: 'object?', Connect: 'object?', CreateIndex: 'number', ModifyIndex: 'number',
};
const CHECK: Schema = {
  Node: 'string', CheckID: 'string', Name: 'string', Status: 'string', Notes: 'string', Output: 'string',
  ServiceID: 'string', ServiceName: 'string', ServiceTags: 'strings', Type: 'string', Interval: 'string?',
  Timeout: 'string?', ExposedPort: 'number?', Definition: 'object', CreateIndex: 'number', ModifyIndex: 'number',
};
const DIR_ENTRY: Schema = { LockIndex: 'number', Key: 'string', Session: 'string?', CreateIndex: 'number', ModifyIndex: 'number' };
const TXN_ERROR: Schema = { OpIndex: 'number', What: 'string' };
const COMMAND_ERROR: Schema = { code: 'string', message: 'string' };

// ---- CommandResult ----------------------------------------------------------------------------

function dirEntryWire(e: DirEntry, tail: ByteTail): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, v] of Object.entries(e)) {
    if (name === 'Flags') out.Flags = uint64Wire(e.Flags);
    else if (name === 'Value') out.Value = e.Value === null ? null : tail.add(e.Value);
    else out[name] = v;
  }
  return out;
}

function txnResultWire(r: TxnResult, tail: ByteTail): unknown {
  return 'KV' in r ? { KV: dirEntryWire(r.KV, tail) } : r;
}

/** Encodes a command's result for Forward.Apply / ApplyStream. */
export function encodeCommandResult(r: CommandResult): Buffer {
  const tail = new ByteTail();
  let doc: Record<string, unknown>;
  if (!r.ok) {
    doc = { ok: false, index: r.index, error: { code: r.error.code, message: r.error.message } };
  } else {
    const v = r.value as unknown;
    let value: unknown = v;
    if (isObject(v) && !('Results' in v && 'Errors' in v)) {
      // A plain JSON row (the ACL commands' tokens, policies, roles and bootstrap answer): no bytes.
      doc = { ok: true, index: r.index, plain: v };
      return frame(doc, tail);
    }
    if (isObject(v)) {
      const t = v as unknown as TxnResponse;
      value = { Results: t.Results === null ? null : t.Results.map((x) => txnResultWire(x, tail)), Errors: t.Errors };
    }
    doc = { ok: true, index: r.index, value };
  }
  return frame(doc, tail);
}

function readBytes(v: unknown, tail: Uint8Array, what: string, where: string): Uint8Array {
  if (!Array.isArray(v) || v.length !== 2 || !Number.isSafeInteger(v[0]) || !Number.isSafeInteger(v[1]) ||
    v[0] < 0 || v[1] < 0 || v[0] + v[1] > tail.byteLength) {
    throw new ResultDecodeError(what, `${where} must be an [offset, length] inside the ${tail.byteLength} bytes that follow the JSON`);
  }
  // A copy: the rows outlive the message buffer they came in.
  return new Uint8Array(tail.subarray(v[0], v[0] + v[1]));
}

function readFlags(v: unknown, what: string, where: string): bigint {
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return BigInt(v);
  const parsed = typeof v === 'string' ? parseUint64(v) : null;
  if (parsed === null) throw new ResultDecodeError(what, `${where} must be an unsigned 64-bit integer (a safe number or decimal text)`);
  return parsed;
}

function readDirEntry(v: unknown, tail: Uint8Array, what: string, where: string): DirEntry {
  const e = read<Record<string, unknown>>(DIR_ENTRY, v, what, where);
  const raw = v as Record<string, unknown>;
  // Flags and Value sit where the writer put them (its row's field order).
  const out: Record<string, unknown> = {};
  for (const name of Object.keys(raw)) {
    if (name === 'Flags') out.Flags = readFlags(raw.Flags, what, `${where}.Flags`);
    else if (name === 'Value') out.Value = raw.Value === null ? null : readBytes(raw.Value, tail, what, `${where}.Value`);
    else if (name in e) out[name] = e[name];
  }
  out.Flags ??= 0n;
  out.Value ??= null;
  return out as unknown as DirEntry;
}

function readTxnResult(v: unknown, tail: Uint8Array, what: string, where: string): TxnResult {
  if (!isObject(v)) throw new ResultDecodeError(what, `${where} must be an object`);
  if ('KV' in v) return { KV: readDirEntry(v.KV, tail, what, `${where}.KV`) };
  if ('Node' in v) return { Node: read<Node>(NODE, v.Node, what, `${where}.Node`) };
  if ('Service' in v) return { Service: read<NodeService>(SERVICE, v.Service, what, `${where}.Service`) };
  if ('Check' in v) return { Check: read<HealthCheck>(CHECK, v.Check, what, `${where}.Check`) };
  throw new ResultDecodeError(what, `${where} holds no result this build knows (KV, Node, Service, Check): ${Object.keys(v).join(', ')}`);
}

function readTxnResponse(v: Record<string, unknown>, tail: Uint8Array, what: string): TxnResponse {
  const results = v.Results;
  const errors = v.Errors;
  if (results !== null && !Array.isArray(results)) throw new ResultDecodeError(what, 'value.Results must be an array or null');
  if (errors !== null && !Array.isArray(errors)) throw new ResultDecodeError(what, 'value.Errors must be an array or null');
  return {
    Results: results === null ? null : results.map((r, i) => readTxnResult(r, tail, what, `value.Results[${i}]`)),
    Errors: errors === null ? null : errors.map((e, i) => read<TxnError>(TXN_ERROR, e, what, `value.Errors[${i}]`)),
  };
}

/** Decodes Forward.Apply's / ApplyStream's result bytes. Throws ResultDecodeError on bad input. */
export function decodeCommandResult(data: Uint8Array): CommandResult {
  const what = 'the command result from the server';
  const u = unframe(what, data);
  if ('legacy' in u) return u.legacy as CommandResult;
  const { doc, tail } = u;
  const head = read<{ ok: boolean; index: number }>({ ok: 'boolean', index: 'number' }, doc, what, 'result');
  const d = doc as Record<string, unknown>;
  if (!head.ok) {
    const e = read<CommandError>(COMMAND_ERROR, d.error, what, 'error');
    // A code this build does not know is still a refusal; it keeps the text it came with.
    return { ok: false, index: head.index, error: { code: e.code as StateErrorCode, message: e.message } };
  }
  if (isObject(d.plain)) return { ok: true, index: head.index, value: d.plain } as unknown as CommandResult;
  const v = d.value;
  let value: unknown;
  if (typeof v === 'boolean' || typeof v === 'string') value = v;
  else if (isObject(v)) value = readTxnResponse(v, tail, what);
  else throw new ResultDecodeError(what, 'value must be a boolean, a string or a txn response');
  return { ok: true, index: head.index, value } as CommandResult;
}

// ---- NodeCatalogState -------------------------------------------------------------------------

/** Encodes Forward.NodeState's answer. */
export function encodeNodeState(s: NodeCatalogState): Buffer {
  return frame({ node: s.node, services: s.services, checks: s.checks }, new ByteTail());
}

/** Decodes Forward.NodeState's answer. Throws ResultDecodeError on bad input. */
export function decodeNodeState(data: Uint8Array): NodeCatalogState {
  const what = 'the node state from the server';
  const u = unframe(what, data);
  if ('legacy' in u) return u.legacy as NodeCatalogState;
  const doc = u.doc;
  if (!isObject(doc)) throw new ResultDecodeError(what, 'must be an object');
  const list = (name: 'services' | 'checks') => {
    const x = doc[name] ?? [];
    if (!Array.isArray(x)) throw new ResultDecodeError(what, `${name} must be an array`);
    return x;
  };
  return {
    node: doc.node === null || doc.node === undefined ? null : read<Node>(NODE, doc.node, what, 'node'),
    services: list('services').map((s, i) => read<NodeService>(SERVICE, s, what, `services[${i}]`)),
    checks: list('checks').map((c, i) => read<HealthCheck>(CHECK, c, what, `checks[${i}]`)),
  };
}
