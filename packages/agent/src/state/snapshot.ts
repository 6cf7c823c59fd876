// Snapshot format of the state store: a magic line, then one JSON document.
//
//   TRELLIS-STATE\n{"version":1,"lastIndex":…,"tableIndexes":{…},…,"kvs":[{…,"Value":"<base64>"}],…}
//
// A KV row's Flags (uint64) is a number while that is exact and decimal text above 2^53, so a
// snapshot without such values is byte for byte what earlier builds wrote, and theirs load here.
//
// Everything the FSM needs is in it: rows, table indexes, per-service indexes, the extinction index,
// KV tombstones and lock delays. Secondary indexes are rebuilt on load. Encoding is deterministic
// (ordered trees, sorted maps), so equal states give equal bytes. Loading validates every row and
// builds a new StateData without touching the live one: a bad snapshot changes nothing.
import { BTree } from './btree.ts';
import { SnapshotFormatError, StateError } from './errors.ts';
import { configEntryFromSnapshot } from './configEntries.ts';
import { caConfigFromInput, caProviderStateFromInput, caRootFromInput } from './connectCA.ts';
import { aclPolicyFromInput, aclRoleFromInput, aclTokenFromInput } from './acl.ts';
import { checkFromInput, isRecord, nodeFromInput, optString, optUint, reqString, serviceFromInput, deepFreeze } from './rows.ts';
import { ALL_TABLES, FUTURE_TABLES, StateData, checkKey, configEntryKey, nodeKey, serviceKey, sessionKey } from './tables.ts';
import { isCheckStatus } from './validate.ts';
import type { DirEntry, HealthCheck, Node, NodeService, ServiceCheck, Session, TableName } from './types.ts';
import { optUint64, uint64Wire } from './uint64.ts';

const MAGIC = 'TRELLIS-STATE\n';
export const SNAPSHOT_VERSION = 1;

function toBase64(b: Uint8Array | null): string {
  return b === null ? '' : Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64');
}

/** Decodes base64 into an exact-size array (not a view of Buffer's shared pool, which it would pin). */
/**
 * Small values (KV values are mostly tens of bytes) are copied into shared 64 KiB slabs instead of
 * one ArrayBuffer each: a separate backing store costs ~300 bytes of bookkeeping per value, and
 * 100,000 long-lived small mallocs interleaved with request garbage fragment the native heap (RSS
 * far above the live data). Values are immutable, so views into a shared slab are safe; a slab is
 * freed once no value in it is referenced.
 */
const SLAB_BYTES = 64 * 1024;
const SLAB_MAX_VALUE = 1024;
let slab = new ArrayBuffer(SLAB_BYTES);
let slabUsed = 0;

export function fromBase64(s: string): Uint8Array {
  const b = Buffer.from(s, 'base64');
  if (b.length > SLAB_MAX_VALUE || b.length === 0) {
    const out = new Uint8Array(b.length);
    out.set(b);
    return out;
  }
  if (slabUsed + b.length > SLAB_BYTES) {
    slab = new ArrayBuffer(SLAB_BYTES);
    slabUsed = 0;
  }
  const out = new Uint8Array(slab, slabUsed, b.length);
  out.set(b);
  slabUsed += b.length;
  return out;
}

function entries<V>(tree: BTree<string, V>): V[] {
  return tree.valuesArray();
}

export function encodeSnapshot(d: StateData): Uint8Array {
  const tableIndexes: Record<string, number> = {};
  for (const t of ALL_TABLES) tableIndexes[t] = d.tableIndex(t);
  const future: Record<string, [string, unknown][]> = {};
  for (const t of FUTURE_TABLES) future[t] = d.future[t].toArray();
  const doc = {
    version: SNAPSHOT_VERSION,
    lastIndex: d.lastIndex,
    tableIndexes,
    serviceIndexes: Object.fromEntries([...d.serviceIndexes].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))),
    serviceExtinctionIndex: d.serviceExtinctionIndex,
    nodes: entries(d.nodes),
    services: entries(d.services),
    checks: entries(d.checks),
    kvs: entries(d.kvs).map((e) => ({ ...e, Flags: uint64Wire(e.Flags), Value: toBase64(e.Value) })),
    tombstones: d.tombstones.toArray(),
    sessions: entries(d.sessions),
    lockDelays: [...d.lockDelays].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
    configEntries: entries(d.configEntries),
    connectCA: { config: d.caConfig ?? null, roots: entries(d.caRoots), providerState: entries(d.caProviderState) },
    acl: {
      tokens: entries(d.aclTokens), policies: entries(d.aclPolicies), roles: entries(d.aclRoles),
      bootstrapIndex: d.aclBootstrapIndex, serverSecret: d.aclServerSecret,
    },
    future,
  };
  return Buffer.from(MAGIC + JSON.stringify(doc));
}

// ---- decoding ----------------------------------------------------------------------------------

function fail(where: string, what: string): never {
  throw new SnapshotFormatError(`${where}: ${what}`);
}

/** Runs a row parser, turning its StateError into a SnapshotFormatError that says where. */
function row<T>(where: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof StateError) fail(where, e.message);
    throw e;
  }
}

function list(doc: Record<string, unknown>, field: string): unknown[] {
  const v = doc[field];
  if (!Array.isArray(v)) fail(field, 'missing or not a list');
  return v;
}

function indexes<T extends { CreateIndex: number; ModifyIndex: number }>(r: T, raw: Record<string, unknown>, where: string): T {
  r.CreateIndex = optUint(raw.CreateIndex, `${where}.CreateIndex`);
  r.ModifyIndex = optUint(raw.ModifyIndex, `${where}.ModifyIndex`);
  return r;
}

function pairList(doc: Record<string, unknown>, field: string): [string, number][] {
  return list(doc, field).map((p, i) => {
    if (!Array.isArray(p) || p.length !== 2 || typeof p[0] !== 'string' || typeof p[1] !== 'number' || !Number.isFinite(p[1])) {
      fail(`${field}[${i}]`, 'expected a [string, number] pair');
    }
    return [p[0], p[1]];
  });
}

export function decodeSnapshot(bytes: Uint8Array): StateData {
  if (!(bytes instanceof Uint8Array)) fail('snapshot', 'not bytes');
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.length < MAGIC.length || buf.subarray(0, MAGIC.length).toString('latin1') !== MAGIC) {
    fail('snapshot', 'not a Trellis state snapshot (bad magic)');
  }
  let doc: unknown;
  try {
    doc = JSON.parse(buf.subarray(MAGIC.length).toString('utf8'));
  } catch (e) {
    fail('snapshot', `body is not valid JSON (${(e as Error).message})`);
  }
  if (!isRecord(doc)) fail('snapshot', 'body is not an object');
  if (doc.version !== SNAPSHOT_VERSION) fail('version', `unsupported snapshot version ${JSON.stringify(doc.version)} (this build reads ${SNAPSHOT_VERSION})`);

  const d = new StateData();
  d.lastIndex = row('lastIndex', () => optUint(doc.lastIndex, 'lastIndex'));
  d.serviceExtinctionIndex = row('serviceExtinctionIndex', () => optUint(doc.serviceExtinctionIndex, 'serviceExtinctionIndex'));

  if (!isRecord(doc.tableIndexes)) fail('tableIndexes', 'missing or not an object');
  for (const [t, v] of Object.entries(doc.tableIndexes)) {
    if (!(ALL_TABLES as readonly string[]).includes(t)) fail('tableIndexes', `unknown table ${JSON.stringify(t)}`);
    d.tableIndexes.set(t as TableName, row(`tableIndexes.${t}`, () => optUint(v, t)));
  }
  if (!isRecord(doc.serviceIndexes)) fail('serviceIndexes', 'missing or not an object');
  for (const [name, v] of Object.entries(doc.serviceIndexes)) {
    d.serviceIndexes.set(name, row(`serviceIndexes.${name}`, () => optUint(v, name)));
  }

  list(doc, 'nodes').forEach((raw, i) => {
    const where = `nodes[${i}]`;
    if (!isRecord(raw)) fail(where, 'not an object');
    const n: Node = row(where, () => indexes(nodeFromInput(raw, where), raw, where));
    const key = nodeKey(n.Node);
    if (d.nodes.has(key)) fail(where, `duplicate node ${JSON.stringify(n.Node)}`);
    d.setNode(key, deepFreeze(n));
  });

  list(doc, 'services').forEach((raw, i) => {
    const where = `services[${i}]`;
    if (!isRecord(raw) || !isRecord(raw.Service)) fail(where, 'expected {Node, Service}');
    const nodeName = row(where, () => reqString(raw.Node, `${where}.Node`));
    if (!d.nodes.has(nodeKey(nodeName))) fail(where, `service on unknown node ${JSON.stringify(nodeName)}`);
    const rawSvc = raw.Service;
    const svc: NodeService = row(where, () => indexes(serviceFromInput(rawSvc, `${where}.Service`), rawSvc, where));
    d.setService(serviceKey(nodeName, svc.ID), { Node: nodeName, Service: deepFreeze(svc) });
  });

  list(doc, 'checks').forEach((raw, i) => {
    const where = `checks[${i}]`;
    if (!isRecord(raw)) fail(where, 'not an object');
    const hc: HealthCheck = row(where, () => {
      const c = indexes(checkFromInput(raw, '', where), raw, where);
      if (!isCheckStatus(raw.Status)) throw new StateError('ERR_INVALID_REQUEST', `${where}.Status is not a check status`);
      c.ServiceName = optString(raw.ServiceName, `${where}.ServiceName`);
      if (!Array.isArray(raw.ServiceTags) || !raw.ServiceTags.every((t) => typeof t === 'string')) {
        throw new StateError('ERR_INVALID_REQUEST', `${where}.ServiceTags must be a list of strings`);
      }
      c.ServiceTags = [...raw.ServiceTags];
      return c;
    });
    if (!d.nodes.has(nodeKey(hc.Node))) fail(where, `check on unknown node ${JSON.stringify(hc.Node)}`);
    d.setCheck(checkKey(hc.Node, hc.CheckID), deepFreeze(hc));
  });

  list(doc, 'kvs').forEach((raw, i) => {
    const where = `kvs[${i}]`;
    if (!isRecord(raw)) fail(where, 'not an object');
    const e: DirEntry = row(where, () => {
      const value = reqString(raw.Value, `${where}.Value`);
      const session = optString(raw.Session, `${where}.Session`);
      const out: DirEntry = {
        LockIndex: optUint(raw.LockIndex, `${where}.LockIndex`),
        Key: reqString(raw.Key, `${where}.Key`),
        Flags: optUint64(raw.Flags, `${where}.Flags`),
        Value: fromBase64(value),
        ...(session !== '' ? { Session: session } : {}),
        CreateIndex: 0,
        ModifyIndex: 0,
      };
      return indexes(out, raw, where);
    });
    d.setKv(e.Key, Object.freeze(e));
  });

  for (const [k, idx] of pairList(doc, 'tombstones')) d.setTombstone(k, idx);

  list(doc, 'sessions').forEach((raw, i) => {
    const where = `sessions[${i}]`;
    if (!isRecord(raw)) fail(where, 'not an object');
    const s: Session = row(where, () => {
      const behavior = reqString(raw.Behavior, `${where}.Behavior`);
      if (behavior !== 'release' && behavior !== 'delete') throw new StateError('ERR_INVALID_REQUEST', `${where}.Behavior must be release or delete`);
      const strings = (v: unknown, f: string): string[] => {
        if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw new StateError('ERR_INVALID_REQUEST', `${where}.${f} must be a list of strings`);
        return [...v];
      };
      if (!Array.isArray(raw.ServiceChecks)) throw new StateError('ERR_INVALID_REQUEST', `${where}.ServiceChecks must be a list`);
      const out: Session = {
        ID: reqString(raw.ID, `${where}.ID`),
        Name: optString(raw.Name, `${where}.Name`),
        Node: reqString(raw.Node, `${where}.Node`),
        LockDelay: optUint(raw.LockDelay, `${where}.LockDelay`),
        Behavior: behavior,
        TTL: optString(raw.TTL, `${where}.TTL`),
        NodeChecks: strings(raw.NodeChecks, 'NodeChecks'),
        ServiceChecks: raw.ServiceChecks.map((c, j): ServiceCheck => {
          if (!isRecord(c)) throw new StateError('ERR_INVALID_REQUEST', `${where}.ServiceChecks[${j}] must be an object`);
          const sc: ServiceCheck = { ID: reqString(c.ID, `${where}.ServiceChecks[${j}].ID`) };
          if (c.Namespace !== undefined) sc.Namespace = reqString(c.Namespace, `${where}.ServiceChecks[${j}].Namespace`);
          return sc;
        }),
        CreateIndex: 0,
        ModifyIndex: 0,
      };
      if (raw.Checks !== undefined) out.Checks = strings(raw.Checks, 'Checks');
      return indexes(out, raw, where);
    });
    if (!d.nodes.has(nodeKey(s.Node))) fail(where, `session on unknown node ${JSON.stringify(s.Node)}`);
    d.setSession(sessionKey(s.ID), deepFreeze(s));
  });

  for (const [k, until] of pairList(doc, 'lockDelays')) d.lockDelays.set(k, until);

  // Absent in snapshots written before the table existed (they had no entries).
  (doc.configEntries === undefined ? [] : list(doc, 'configEntries')).forEach((raw, i) => {
    const where = `configEntries[${i}]`;
    if (!isRecord(raw)) fail(where, 'not an object');
    const e = row(where, () => configEntryFromSnapshot(raw, where));
    const key = configEntryKey(e.Kind, e.Name);
    if (d.configEntries.has(key)) fail(where, `duplicate config entry ${e.Kind}/${e.Name}`);
    d.setConfigEntry(key, e);
  });

  // Absent in snapshots written before the CA existed.
  if (doc.connectCA !== undefined) {
    const ca = doc.connectCA;
    if (!isRecord(ca)) fail('connectCA', 'not an object');
    if (ca.config !== null && ca.config !== undefined) d.caConfig = deepFreeze(row('connectCA.config', () => caConfigFromInput(ca.config, 'connectCA.config')));
    (Array.isArray(ca.roots) ? ca.roots : []).forEach((raw, i) => {
      const r = row(`connectCA.roots[${i}]`, () => caRootFromInput(raw, `connectCA.roots[${i}]`));
      if (d.caRoots.has(r.ID)) fail(`connectCA.roots[${i}]`, `duplicate root ${r.ID}`);
      d.setCARoot(r.ID, deepFreeze(r));
    });
    (Array.isArray(ca.providerState) ? ca.providerState : []).forEach((raw, i) => {
      const s = row(`connectCA.providerState[${i}]`, () => caProviderStateFromInput(raw, `connectCA.providerState[${i}]`));
      d.setCAProviderState(s.ID, deepFreeze(s));
    });
  }

  // Absent in snapshots written before ACLs existed.
  if (doc.acl !== undefined) {
    const acl = doc.acl;
    if (!isRecord(acl)) fail('acl', 'not an object');
    (Array.isArray(acl.policies) ? acl.policies : []).forEach((raw, i) => {
      const p = deepFreeze(row(`acl.policies[${i}]`, () => aclPolicyFromInput(raw, `acl.policies[${i}]`)));
      if (d.aclPolicies.has(p.ID) || d.aclPolicyNames.has(p.Name)) fail(`acl.policies[${i}]`, `duplicate policy ${p.ID}`);
      d.setAclPolicy(p.ID, p);
    });
    (Array.isArray(acl.roles) ? acl.roles : []).forEach((raw, i) => {
      const r = deepFreeze(row(`acl.roles[${i}]`, () => aclRoleFromInput(raw, `acl.roles[${i}]`)));
      if (d.aclRoles.has(r.ID) || d.aclRoleNames.has(r.Name)) fail(`acl.roles[${i}]`, `duplicate role ${r.ID}`);
      d.setAclRole(r.ID, r);
    });
    (Array.isArray(acl.tokens) ? acl.tokens : []).forEach((raw, i) => {
      const t = deepFreeze(row(`acl.tokens[${i}]`, () => aclTokenFromInput(raw, `acl.tokens[${i}]`)));
      if (d.aclTokens.has(t.AccessorID) || d.aclTokenSecrets.has(t.SecretID)) fail(`acl.tokens[${i}]`, 'duplicate token');
      d.setAclToken(t.AccessorID, t);
    });
    d.aclBootstrapIndex = row('acl.bootstrapIndex', () => optUint(acl.bootstrapIndex, 'acl.bootstrapIndex'));
    d.aclServerSecret = row('acl.serverSecret', () => optString(acl.serverSecret, 'acl.serverSecret'));
  }

  if (!isRecord(doc.future)) fail('future', 'missing or not an object');
  for (const t of FUTURE_TABLES) {
    const rows = doc.future[t] ?? [];
    if (!Array.isArray(rows)) fail(`future.${t}`, 'not a list');
    for (const [i, p] of rows.entries()) {
      if (!Array.isArray(p) || p.length !== 2 || typeof p[0] !== 'string') fail(`future.${t}[${i}]`, 'expected a [key, row] pair');
      d.future[t].set(p[0], deepFreeze(p[1]));
    }
  }
  return d;
}
