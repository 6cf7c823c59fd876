// Session writes (agent/consul/state/session.go): creation checks the node and the bound checks;
// destruction (explicit, TTL expiry proposed by the leader, node deregistration, a bound check going
// critical or away) releases or deletes the keys the session holds and starts their lock delays.
import { StateError, invalidRequest, missingNode } from './errors.ts';
import { kvsDelete, kvsSet } from './kvs.ts';
import { deepFreeze, isRecord, optString, optStringArray, optUint, reqString } from './rows.ts';
import { checkKey, nodeKey, sessionCheckIds, sessionKey, sortedMembers, type WriteTx } from './tables.ts';
import { MAX_LOCK_DELAY_NS } from './validate.ts';
import type { ServiceCheck, Session, SessionBehavior } from './types.ts';

function serviceChecksFromInput(v: unknown): ServiceCheck[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw invalidRequest('Session.ServiceChecks must be a list');
  return v.map((x, i) => {
    if (!isRecord(x)) throw invalidRequest(`Session.ServiceChecks[${i}] must be an object with an ID`);
    const sc: ServiceCheck = { ID: reqString(x.ID, `Session.ServiceChecks[${i}].ID`) };
    if (x.Namespace !== undefined && x.Namespace !== null) sc.Namespace = reqString(x.Namespace, `Session.ServiceChecks[${i}].Namespace`);
    return sc;
  });
}

/** Consul's sessionCreateTxn. The ID comes from the proposer; a taken ID is refused. */
export function sessionCreate(tx: WriteTx, input: unknown): Session {
  if (!isRecord(input)) throw invalidRequest('Session must be an object');
  const id = optString(input.ID, 'Session.ID');
  if (id === '') throw invalidRequest('Missing session ID');
  const key = sessionKey(id);
  if (tx.data.sessions.has(key)) throw new StateError('ERR_SESSION_EXISTS', `Session ${JSON.stringify(id)} already exists`);

  const behaviorIn = optString(input.Behavior, 'Session.Behavior');
  if (behaviorIn !== '' && behaviorIn !== 'release' && behaviorIn !== 'delete') {
    throw invalidRequest(`Invalid session behavior: ${behaviorIn}`);
  }
  const behavior: SessionBehavior = behaviorIn === 'delete' ? 'delete' : 'release';

  const nodeName = optString(input.Node, 'Session.Node');
  if (nodeName === '') throw invalidRequest('Must provide Node');
  const node = tx.data.nodes.get(nodeKey(nodeName));
  if (!node) throw missingNode();

  const row: Session = {
    ID: id,
    Name: optString(input.Name, 'Session.Name'),
    Node: node.Node,
    LockDelay: optUint(input.LockDelay, 'Session.LockDelay'),
    Behavior: behavior,
    TTL: optString(input.TTL, 'Session.TTL'),
    NodeChecks: optStringArray(input.NodeChecks, 'Session.NodeChecks'),
    ServiceChecks: serviceChecksFromInput(input.ServiceChecks),
    CreateIndex: tx.index,
    ModifyIndex: tx.index,
  };
  if (input.Checks !== undefined && input.Checks !== null) row.Checks = optStringArray(input.Checks, 'Session.Checks');

  // validateSessionChecksTxn: every bound check exists on the node and is not critical.
  for (const checkId of sessionCheckIds(row)) {
    const check = tx.data.checks.get(checkKey(node.Node, checkId));
    if (!check) throw new StateError('ERR_MISSING_CHECK', `Missing check '${checkId}' registration`);
    if (check.Status === 'critical') throw new StateError('ERR_CHECK_CRITICAL', `Check '${checkId}' is in ${check.Status} state`);
  }

  const frozen = deepFreeze(row);
  tx.putSession(key, frozen);
  return frozen;
}

/**
 * Consul's deleteSessionTxn. Returns false when there was no such session (not an error: destroy
 * is idempotent). Lock delays start at the command's `now`, capped at 60 s like Consul's.
 */
export function sessionDestroy(tx: WriteTx, id: string): boolean {
  const key = sessionKey(id);
  const sess = tx.data.sessions.get(key);
  if (!sess) return false;
  tx.putSession(key, undefined);

  const delayMs = Math.min(sess.LockDelay, MAX_LOCK_DELAY_NS) / 1e6;
  for (const k of sortedMembers(tx.data.kvBySession, key)) {
    const e = tx.data.kvs.get(k);
    if (!e) continue;
    if (sess.Behavior === 'delete') {
      kvsDelete(tx, k);
    } else {
      kvsSet(tx, { Key: e.Key, Value: e.Value ?? new Uint8Array(0), Flags: e.Flags, LockIndex: e.LockIndex }, true);
    }
    if (delayMs > 0 && tx.now !== undefined) tx.setLockDelay(k, tx.now + delayMs);
  }
  return true;
}

/** Invalidates every session bound to a check (it went critical or away). */
export function invalidateCheckSessions(tx: WriteTx, node: string, checkId: string): void {
  for (const s of sortedMembers(tx.data.sessionsByCheck, checkKey(node, checkId))) sessionDestroy(tx, s);
}

/** Invalidates every session of a node (the node was deregistered). */
export function invalidateNodeSessions(tx: WriteTx, node: string): void {
  for (const s of sortedMembers(tx.data.sessionsByNode, nodeKey(node))) sessionDestroy(tx, s);
}
