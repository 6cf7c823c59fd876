// The `txn` command (agent/consul/state/txn.go): every op runs in one write transaction, errors are
// collected per op ({OpIndex, What}) without stopping, and if any op failed the whole transaction
// is rolled back by the caller. Error texts are Consul's, since clients show them to people.
import {
  deleteCheck, deleteCheckCas, deleteNode, deleteNodeCas, deleteService, deleteServiceCas, ensureCheck, ensureCheckCas,
  ensureNode, ensureNodeCas, ensureService, ensureServiceCas,
} from './catalog.ts';
import { StateError, invalidRequest } from './errors.ts';
import { kvsDelete, kvsDeleteCas, kvsDeleteTree, kvsLock, kvsSet, kvsSetCas, kvsUnlock, withoutValue } from './kvs.ts';
import { checkFromInput, isRecord, nodeFromInput, optBytes, optString, optUint, reqString, serviceFromInput } from './rows.ts';
import { sessionDestroy } from './sessions.ts';
import { checkKey, lower, nodeKey, scanPrefix, serviceKey, type WriteTx } from './tables.ts';
import { optUint64 } from './uint64.ts';
import type { DirEntry, TxnError, TxnOp, TxnResponse, TxnResult } from './types.ts';

const q = (s: string): string => JSON.stringify(s);

/** Verbs that only read; a txn of these alone may be served without Raft (Consul's TxnRO). */
const READ_VERBS: ReadonlySet<string> = new Set(['get', 'get-tree', 'check-index', 'check-session', 'check-not-exists']);

/** True when every op only reads, so the HTTP edge may answer it from the local store. */
export function isReadOnlyTxn(ops: readonly TxnOp[]): boolean {
  return ops.every((op) => {
    const inner = isRecord(op) ? Object.values(op)[0] : undefined;
    return isRecord(inner) && typeof inner.Verb === 'string' && READ_VERBS.has(inner.Verb);
  });
}

function txnKv(tx: WriteTx, op: Record<string, unknown>): TxnResult[] {
  const verb = optString(op.Verb, 'KV.Verb');
  const key = reqString(op.Key, 'KV.Key');
  const d = tx.data;
  const write = () => ({ Key: key, Value: optBytes(op.Value, 'KV.Value'), Flags: optUint64(op.Flags, 'KV.Flags') });
  let entry: DirEntry | undefined;
  switch (verb) {
    case 'set':
      entry = kvsSet(tx, write(), false);
      break;
    case 'cas':
      if (!kvsSetCas(tx, write(), optUint(op.Index, 'KV.Index'))) throw new Error(`failed to set key ${q(key)}, index is stale`);
      entry = d.kvs.get(key);
      break;
    case 'lock': {
      const outcome = kvsLock(tx, { ...write(), Session: optString(op.Session, 'KV.Session') });
      if (outcome === 'delayed') throw new Error(`failed to lock key ${q(key)} due to lock delay`);
      if (outcome === 'held') throw new Error(`failed to lock key ${q(key)}, lock is already held`);
      entry = d.kvs.get(key);
      break;
    }
    case 'unlock':
      if (!kvsUnlock(tx, { ...write(), Session: optString(op.Session, 'KV.Session') })) {
        throw new Error(`failed to unlock key ${q(key)}, lock isn't held, or is held by another session`);
      }
      entry = d.kvs.get(key);
      break;
    case 'get':
      entry = d.kvs.get(key);
      if (!entry) throw new Error(`key ${q(key)} doesn't exist`);
      return [{ KV: entry }];
    case 'get-tree': {
      const out: TxnResult[] = [];
      scanPrefix(d.kvs, key, (_k, e) => {
        out.push({ KV: e });
      });
      return out;
    }
    case 'check-index': {
      const index = optUint(op.Index, 'KV.Index');
      entry = d.kvs.get(key);
      if (!entry) throw new Error(`failed to check index, key ${q(key)} doesn't exist`);
      if (entry.ModifyIndex !== index) throw new Error(`failed index check for key ${q(key)}, current modify index ${entry.ModifyIndex} != ${index}`);
      break;
    }
    case 'check-session': {
      const session = optString(op.Session, 'KV.Session');
      entry = d.kvs.get(key);
      if (!entry) throw new Error(`failed to check session, key ${q(key)} doesn't exist`);
      if (lower(entry.Session ?? '') !== lower(session)) {
        throw new Error(`failed session check for key ${q(key)}, current session ${q(entry.Session ?? '')} != ${q(session)}`);
      }
      break;
    }
    case 'check-not-exists':
      if (d.kvs.has(key)) throw new Error(`key ${q(key)} exists`);
      return [];
    case 'delete':
      kvsDelete(tx, key);
      return [];
    case 'delete-cas':
      if (!kvsDeleteCas(tx, key, optUint(op.Index, 'KV.Index'))) throw new Error(`failed to delete key ${q(key)}, index is stale`);
      return [];
    case 'delete-tree':
      kvsDeleteTree(tx, key);
      return [];
    default:
      throw new Error(`unknown KV verb ${q(verb)}`);
  }
  return entry ? [{ KV: withoutValue(entry) }] : [];
}

function txnNode(tx: WriteTx, op: Record<string, unknown>): TxnResult[] {
  const verb = optString(op.Verb, 'Node.Verb');
  if (!isRecord(op.Node)) throw invalidRequest('Node op must carry a Node object');
  const input = op.Node;
  const name = optString(input.Node, 'Node.Node');
  const casIndex = optUint(input.ModifyIndex, 'Node.ModifyIndex');
  const d = tx.data;
  const lookup = () => {
    const id = optString(input.ID, 'Node.ID');
    if (id !== '') {
      const k = d.nodeIds.get(lower(id));
      return k === undefined ? undefined : d.nodes.get(k);
    }
    return d.nodes.get(nodeKey(name));
  };
  switch (verb) {
    case 'get': {
      const n = lookup();
      if (!n) throw new Error(`node ${q(name)} doesn't exist`);
      return [{ Node: n }];
    }
    case 'set':
      return [{ Node: ensureNode(tx, nodeFromInput(input)) }];
    case 'cas':
      if (!ensureNodeCas(tx, nodeFromInput(input), casIndex)) throw new Error(`failed to set node ${q(name)}, index is stale`);
      return [{ Node: lookup()! }];
    case 'delete':
      deleteNode(tx, name);
      return [];
    case 'delete-cas':
      if (!deleteNodeCas(tx, name, casIndex)) throw new Error(`failed to delete node ${q(name)}, index is stale`);
      return [];
    default:
      throw new Error(`unknown Node verb ${q(verb)}`);
  }
}

function txnService(tx: WriteTx, op: Record<string, unknown>): TxnResult[] {
  const verb = optString(op.Verb, 'Service.Verb');
  const nodeName = optString(op.Node, 'Service.Node');
  if (!isRecord(op.Service)) throw invalidRequest('Service op must carry a Service object');
  const input = op.Service;
  const id = optString(input.ID, 'Service.ID') || optString(input.Service, 'Service.Service');
  const casIndex = optUint(input.ModifyIndex, 'Service.ModifyIndex');
  const current = () => tx.data.services.get(serviceKey(nodeName, id))?.Service;
  switch (verb) {
    case 'get': {
      const s = current();
      if (!s) throw new Error(`service ${q(id)} on node ${q(nodeName)} doesn't exist`);
      return [{ Service: s }];
    }
    case 'set':
      return [{ Service: ensureService(tx, nodeName, serviceFromInput(input)) }];
    case 'cas':
      if (!ensureServiceCas(tx, nodeName, serviceFromInput(input), casIndex)) {
        throw new Error(`failed to set service ${q(id)} on node ${q(nodeName)}, index is stale`);
      }
      return [{ Service: current()! }];
    case 'delete':
      deleteService(tx, nodeName, id);
      return [];
    case 'delete-cas':
      if (!deleteServiceCas(tx, nodeName, id, casIndex)) throw new Error(`failed to delete service ${q(id)} on node ${q(nodeName)}, index is stale`);
      return [];
    default:
      throw new Error(`unknown Service verb ${q(verb)}`);
  }
}

function txnCheck(tx: WriteTx, op: Record<string, unknown>): TxnResult[] {
  const verb = optString(op.Verb, 'Check.Verb');
  if (!isRecord(op.Check)) throw invalidRequest('Check op must carry a Check object');
  const input = op.Check;
  const nodeName = optString(input.Node, 'Check.Node');
  const checkId = optString(input.CheckID, 'Check.CheckID') || optString(input.Name, 'Check.Name');
  const casIndex = optUint(input.ModifyIndex, 'Check.ModifyIndex');
  const current = () => tx.data.checks.get(checkKey(nodeName, checkId));
  switch (verb) {
    case 'get': {
      const c = current();
      if (!c) throw new Error(`check ${q(checkId)} on node ${q(nodeName)} doesn't exist`);
      return [{ Check: c }];
    }
    case 'set':
      return [{ Check: ensureCheck(tx, checkFromInput(input, nodeName)) }];
    case 'cas':
      if (!ensureCheckCas(tx, checkFromInput(input, nodeName), casIndex)) {
        throw new Error(`failed to set check ${q(checkId)} on node ${q(nodeName)}, index is stale`);
      }
      return [{ Check: current()! }];
    case 'delete':
      deleteCheck(tx, nodeName, checkId);
      return [];
    case 'delete-cas':
      if (!deleteCheckCas(tx, nodeName, checkId, casIndex)) throw new Error(`failed to delete check ${q(checkId)} on node ${q(nodeName)}, index is stale`);
      return [];
    default:
      throw new Error(`unknown Check verb ${q(verb)}`);
  }
}

function txnSession(tx: WriteTx, op: Record<string, unknown>): TxnResult[] {
  const verb = optString(op.Verb, 'Session.Verb');
  if (verb !== 'delete') throw new Error(`failed to delete session: unknown Session verb ${q(verb)}`);
  if (!isRecord(op.Session)) throw invalidRequest('Session op must carry a Session object');
  // Consul's txn session delete only drops the row; Trellis invalidates it fully (releasing its
  // locks), the same as session/destroy, so a txn cannot leave keys locked by a dead session.
  sessionDestroy(tx, optString(op.Session.ID, 'Session.ID'));
  return [];
}

/**
 * Runs the ops against `tx`. Returns Consul's TxnResponse: results when every op succeeded, else
 * every op's error (the caller must then roll `tx` back).
 */
export function runTxn(tx: WriteTx, ops: unknown): TxnResponse {
  if (!Array.isArray(ops)) throw invalidRequest('Ops must be a list of operations');
  const results: TxnResult[] = [];
  const errors: TxnError[] = [];
  ops.forEach((raw, i) => {
    try {
      if (!isRecord(raw)) throw new Error('no operation specified');
      let out: TxnResult[];
      if (isRecord(raw.KV)) out = txnKv(tx, raw.KV);
      else if (isRecord(raw.Node)) out = txnNode(tx, raw.Node);
      else if (isRecord(raw.Service)) out = txnService(tx, raw.Service);
      else if (isRecord(raw.Check)) out = txnCheck(tx, raw.Check);
      else if (isRecord(raw.Session)) out = txnSession(tx, raw.Session);
      else throw new Error('no operation specified');
      results.push(...out);
    } catch (e) {
      if (e instanceof StateError || e instanceof Error) errors.push({ OpIndex: i, What: e.message });
      else throw e;
    }
  });
  return errors.length > 0 ? { Results: null, Errors: errors } : { Results: results, Errors: null };
}
