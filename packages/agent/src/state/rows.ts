// Turning command inputs into stored rows: type checks (apply never trusts decoded JSON), Consul's
// defaults, deep freezing (rows are shared with readers), and "is this the same row" comparisons
// (Consul skips writes that change nothing, so indexes and watches do not churn).
import { invalidRequest } from './errors.ts';
import { isCheckStatus } from './validate.ts';
import type {
  CheckStatus, ConnectProxyConfig, HealthCheck, HealthCheckDefinition, HealthCheckInput, Node, NodeInput,
  NodeService, NodeServiceInput, ServiceAddress, ServiceConnect, ServiceKind, Weights,
} from './types.ts';

const SERVICE_KINDS: ReadonlySet<string> = new Set(['', 'connect-proxy', 'mesh-gateway', 'terminating-gateway', 'ingress-gateway', 'api-gateway']);

// ---- field readers: each names the field it refuses -------------------------------------------

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : `a ${typeof v}`;
}

export function reqString(v: unknown, field: string): string {
  if (typeof v !== 'string') throw invalidRequest(`${field} must be a string, got ${describe(v)}`);
  return v;
}

export function optString(v: unknown, field: string, def = ''): string {
  return v === undefined || v === null ? def : reqString(v, field);
}

export function optBool(v: unknown, field: string, def = false): boolean {
  if (v === undefined || v === null) return def;
  if (typeof v !== 'boolean') throw invalidRequest(`${field} must be a boolean, got ${describe(v)}`);
  return v;
}

/** Non-negative integers that JS represents exactly (Consul's uint64 fields; indexes, flags). */
export function optUint(v: unknown, field: string, def = 0): number {
  if (v === undefined || v === null) return def;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    throw invalidRequest(`${field} must be a non-negative integer, got ${typeof v === 'number' ? v : describe(v)}`);
  }
  return v;
}

export function optInt(v: unknown, field: string, def = 0): number {
  if (v === undefined || v === null) return def;
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw invalidRequest(`${field} must be an integer, got ${describe(v)}`);
  return v;
}

export function optStringArray(v: unknown, field: string): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw invalidRequest(`${field} must be a list of strings, got ${describe(v)}`);
  return v.map((x, i) => reqString(x, `${field}[${i}]`));
}

export function optStringMap(v: unknown, field: string): Record<string, string> {
  if (v === undefined || v === null) return {};
  if (!isRecord(v)) throw invalidRequest(`${field} must be an object of strings, got ${describe(v)}`);
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(v)) out[k] = reqString(x, `${field}.${k}`);
  return out;
}

/** Opaque JSON objects (Proxy, Connect, Definition) are copied so the caller cannot mutate the row. */
function optJsonObject<T>(v: unknown, field: string): T | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isRecord(v)) throw invalidRequest(`${field} must be an object, got ${describe(v)}`);
  return structuredClone(v) as T;
}

export function optBytes(v: unknown, field: string): Uint8Array {
  if (v === undefined || v === null) return new Uint8Array(0);
  if (!(v instanceof Uint8Array)) throw invalidRequest(`${field} must be bytes, got ${describe(v)}`);
  return v;
}

// ---- rows --------------------------------------------------------------------------------------

/** Freezes plain objects and arrays recursively; byte arrays cannot be frozen and are left alone. */
export function deepFreeze<T>(v: T): T {
  if (typeof v !== 'object' || v === null || v instanceof Uint8Array || Object.isFrozen(v)) return v;
  for (const x of Object.values(v)) deepFreeze(x);
  return Object.freeze(v);
}

/** Structural equality of plain data, ignoring the named top-level fields. */
export function sameData(a: unknown, b: unknown, ignore: ReadonlySet<string> = NO_FIELDS): boolean {
  if (a === b) return true;
  if (a instanceof Uint8Array || b instanceof Uint8Array) {
    return a instanceof Uint8Array && b instanceof Uint8Array && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b);
  }
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    return a.length === bb.length && a.every((x, i) => sameData(x, bb[i]));
  }
  const ao = a as Record<string, unknown>;
  const bo = b as Record<string, unknown>;
  const keys = new Set([...Object.keys(ao), ...Object.keys(bo)]);
  for (const k of keys) {
    if (ignore.has(k)) continue;
    // A field absent on one side equals an explicit undefined on the other.
    if (!sameData(ao[k], bo[k])) return false;
  }
  return true;
}
const NO_FIELDS: ReadonlySet<string> = new Set();
export const INDEX_FIELDS: ReadonlySet<string> = new Set(['CreateIndex', 'ModifyIndex']);

/** Node row (indexes left 0 for the caller to stamp). */
export function nodeFromInput(input: NodeInput | Record<string, unknown>, field = 'Node'): Node {
  const r = input as Record<string, unknown>;
  const name = reqString(r.Node, `${field}.Node`);
  if (name === '') throw invalidRequest('Must provide node');
  if (name.includes('\0')) throw invalidRequest(`${field}.Node must not contain NUL characters`);
  return {
    ID: optString(r.ID, `${field}.ID`),
    Node: name,
    Address: optString(r.Address, `${field}.Address`),
    Datacenter: optString(r.Datacenter, `${field}.Datacenter`),
    TaggedAddresses: optStringMap(r.TaggedAddresses, `${field}.TaggedAddresses`),
    Meta: optStringMap(r.Meta, `${field}.Meta`),
    CreateIndex: 0,
    ModifyIndex: 0,
  };
}

function optWeights(v: unknown, field: string): Weights {
  if (v === undefined || v === null) return { Passing: 1, Warning: 1 };
  if (!isRecord(v)) throw invalidRequest(`${field} must be an object, got ${describe(v)}`);
  return { Passing: optInt(v.Passing, `${field}.Passing`, 1), Warning: optInt(v.Warning, `${field}.Warning`, 1) };
}

function optServiceAddresses(v: unknown, field: string): Record<string, ServiceAddress> {
  if (v === undefined || v === null) return {};
  if (!isRecord(v)) throw invalidRequest(`${field} must be an object, got ${describe(v)}`);
  const out: Record<string, ServiceAddress> = {};
  for (const [k, x] of Object.entries(v)) {
    if (!isRecord(x)) throw invalidRequest(`${field}.${k} must be an object with Address and Port`);
    out[k] = { Address: optString(x.Address, `${field}.${k}.Address`), Port: optInt(x.Port, `${field}.${k}.Port`) };
  }
  return out;
}

/**
 * Service row. Applies Catalog.Register's rules: ID defaults to the name; an ID without a name and
 * a wildcard address are refused; NUL (the store's index separator) is refused in names and IDs.
 */
export function serviceFromInput(input: NodeServiceInput | Record<string, unknown>, field = 'Service'): NodeService {
  if (!isRecord(input)) throw invalidRequest(`${field} must be an object, got ${describe(input)}`);
  const r = input;
  const name = optString(r.Service, `${field}.Service`);
  let id = optString(r.ID, `${field}.ID`);
  if (id === '' && name !== '') id = name;
  if (name === '') throw invalidRequest(id === '' ? 'Must provide service name' : 'Must provide service name with ID');
  if (name.includes('\0') || id.includes('\0')) throw invalidRequest(`${field} name and ID must not contain NUL characters`);
  const address = optString(r.Address, `${field}.Address`);
  if (address === '0.0.0.0' || address === '::' || address === '[::]') throw invalidRequest('Invalid service address');
  const kind = optString(r.Kind, `${field}.Kind`);
  if (!SERVICE_KINDS.has(kind)) throw invalidRequest(`${field}.Kind ${JSON.stringify(kind)} is not a service kind`);
  const port = optInt(r.Port, `${field}.Port`);
  const row: NodeService = {
    Kind: kind as ServiceKind,
    ID: id,
    Service: name,
    Tags: optStringArray(r.Tags, `${field}.Tags`),
    Address: address,
    TaggedAddresses: optServiceAddresses(r.TaggedAddresses, `${field}.TaggedAddresses`),
    Meta: optStringMap(r.Meta, `${field}.Meta`),
    Port: port,
    Weights: optWeights(r.Weights, `${field}.Weights`),
    EnableTagOverride: optBool(r.EnableTagOverride, `${field}.EnableTagOverride`),
    CreateIndex: 0,
    ModifyIndex: 0,
  };
  if (r.SocketPath !== undefined && r.SocketPath !== null) row.SocketPath = reqString(r.SocketPath, `${field}.SocketPath`);
  const proxy = optJsonObject<ConnectProxyConfig>(r.Proxy, `${field}.Proxy`);
  if (proxy) row.Proxy = proxy;
  const connect = optJsonObject<ServiceConnect>(r.Connect, `${field}.Connect`);
  if (connect) row.Connect = connect;
  return row;
}

/**
 * Check row. CheckID defaults to Name and Node to `defaultNode` (Catalog.Register's rules); Status
 * defaults to critical (ensureCheckTxn's). ServiceName/ServiceTags are filled by the store.
 */
export function checkFromInput(input: HealthCheckInput | Record<string, unknown>, defaultNode: string, field = 'Check'): HealthCheck {
  if (!isRecord(input)) throw invalidRequest(`${field} must be an object, got ${describe(input)}`);
  const r = input;
  const name = optString(r.Name, `${field}.Name`);
  let id = optString(r.CheckID, `${field}.CheckID`);
  if (id === '') id = name;
  if (id === '') throw invalidRequest(`${field} must have a CheckID or a Name`);
  if (id.includes('\0')) throw invalidRequest(`${field}.CheckID must not contain NUL characters`);
  const statusIn = optString(r.Status, `${field}.Status`);
  const status: CheckStatus = statusIn === '' ? 'critical' : (isCheckStatus(statusIn) ? statusIn : invalidStatus(statusIn));
  const row: HealthCheck = {
    Node: optString(r.Node, `${field}.Node`, defaultNode) || defaultNode,
    CheckID: id,
    Name: name,
    Status: status,
    Notes: optString(r.Notes, `${field}.Notes`),
    Output: optString(r.Output, `${field}.Output`),
    ServiceID: optString(r.ServiceID, `${field}.ServiceID`),
    ServiceName: '',
    ServiceTags: [],
    Type: optString(r.Type, `${field}.Type`),
    Definition: optJsonObject<HealthCheckDefinition>(r.Definition, `${field}.Definition`) ?? {},
    CreateIndex: 0,
    ModifyIndex: 0,
  };
  if (r.Interval !== undefined && r.Interval !== null) row.Interval = reqString(r.Interval, `${field}.Interval`);
  if (r.Timeout !== undefined && r.Timeout !== null) row.Timeout = reqString(r.Timeout, `${field}.Timeout`);
  if (r.ExposedPort !== undefined && r.ExposedPort !== null) row.ExposedPort = optInt(r.ExposedPort, `${field}.ExposedPort`);
  return row;
}

function invalidStatus(s: string): never {
  throw invalidRequest(`Invalid check status ${JSON.stringify(s)}: must be one of passing, warning, critical`);
}
