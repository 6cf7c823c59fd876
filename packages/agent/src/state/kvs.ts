// KV writes, with Consul's semantics (agent/consul/state/kvs.go):
// - set keeps CreateIndex and the holding session, takes LockIndex and Flags from the request, and
//   is skipped entirely (no index bump, no wake-up) when nothing would change;
// - cas with index 0 creates only if absent, otherwise writes only at that ModifyIndex;
// - lock needs a live session, bumps LockIndex when the lock changes hands, fails while another
//   session holds the key; unlock only by the holder; neither changes a lock-delayed key;
// - deletes leave tombstones so that a prefix list's index does not go backwards.
import { StateError, invalidSession } from './errors.ts';
import { sameData, deepFreeze } from './rows.ts';
import { lower, scanPrefix, sessionKey, type StateData, type WriteTx } from './tables.ts';
import type { DirEntry } from './types.ts';

export interface KvWrite {
  Key: string;
  Value: Uint8Array;
  /** Already validated as a uint64 (optUint64). */
  Flags: bigint;
  LockIndex?: number;
  Session?: string;
}

/** Consul's DirEntry.Equal: the fields that make a write a change. */
const KV_IDENTITY_IGNORED: ReadonlySet<string> = new Set(['CreateIndex', 'ModifyIndex']);

/**
 * Writes an entry (Consul's kvsSetTxn). With `updateSession` the entry's Session (possibly none)
 * replaces the holder; otherwise the existing holder is kept. Returns the row now stored.
 */
export function kvsSet(tx: WriteTx, w: KvWrite, updateSession: boolean): DirEntry {
  const existing = tx.data.kvs.get(w.Key);
  const session = updateSession ? w.Session : existing?.Session;
  // Field order is Consul's JSON order; Session is omitted when empty (Consul's omitempty).
  const row: DirEntry = {
    LockIndex: w.LockIndex ?? 0,
    Key: w.Key,
    Flags: w.Flags,
    Value: w.Value,
    ...(session ? { Session: session } : {}),
    CreateIndex: existing ? existing.CreateIndex : tx.index,
    ModifyIndex: tx.index,
  };
  if (existing && sameData(existing, row, KV_IDENTITY_IGNORED)) return existing;
  const frozen = Object.freeze(row);
  tx.putKv(w.Key, frozen);
  return frozen;
}

/** Consul's kvsSetCASTxn. */
export function kvsSetCas(tx: WriteTx, w: KvWrite, casIndex: number): boolean {
  const existing = tx.data.kvs.get(w.Key);
  if (casIndex === 0 && existing) return false;
  if (casIndex !== 0 && (!existing || existing.ModifyIndex !== casIndex)) return false;
  kvsSet(tx, w, false);
  return true;
}

/** True while a lock delay (set when a session holding `key` was invalidated) is in force. */
export function lockDelayed(data: StateData, key: string, now: number | undefined): boolean {
  if (now === undefined) return false;
  const until = data.lockDelays.get(key);
  return until !== undefined && until > now;
}

export type LockOutcome = 'acquired' | 'held' | 'delayed';

/** Consul's kvsLockTxn, plus the lock-delay check Consul does on the leader before Raft. */
export function kvsLock(tx: WriteTx, w: KvWrite & { Session: string }): LockOutcome {
  if (lockDelayed(tx.data, w.Key, tx.now)) return 'delayed';
  if (w.Session === '') throw new StateError('ERR_INVALID_SESSION', 'missing session');
  const sess = tx.data.sessions.get(sessionKey(w.Session));
  if (!sess) throw invalidSession(w.Session);
  const existing = tx.data.kvs.get(w.Key);
  let lockIndex: number;
  if (!existing) lockIndex = 1;
  else if (existing.Session && lower(existing.Session) === lower(sess.ID)) lockIndex = existing.LockIndex;
  else if (existing.Session) return 'held';
  else lockIndex = existing.LockIndex + 1;
  kvsSet(tx, { ...w, LockIndex: lockIndex, Session: sess.ID }, true);
  return 'acquired';
}

/** Consul's kvsUnlockTxn: only the holder releases; the value is written with the release. */
export function kvsUnlock(tx: WriteTx, w: KvWrite & { Session: string }): boolean {
  if (w.Session === '') throw new StateError('ERR_INVALID_SESSION', 'missing session');
  const existing = tx.data.kvs.get(w.Key);
  if (!existing || !existing.Session || lower(existing.Session) !== lower(w.Session)) return false;
  kvsSet(tx, { Key: w.Key, Value: w.Value, Flags: w.Flags, LockIndex: existing.LockIndex }, true);
  return true;
}

/** Deletes one key and leaves a tombstone; a missing key is a no-op. */
export function kvsDelete(tx: WriteTx, key: string): void {
  if (!tx.data.kvs.has(key)) return;
  tx.putTombstone(key, tx.index);
  tx.putKv(key, undefined);
}

/** Consul's kvsDeleteCASTxn: true also when the key is already gone. */
export function kvsDeleteCas(tx: WriteTx, key: string, casIndex: number): boolean {
  const existing = tx.data.kvs.get(key);
  if (!existing) return true;
  if (existing.ModifyIndex !== casIndex) return false;
  kvsDelete(tx, key);
  return true;
}

/** Deletes every key under `prefix` ('' = all); one tombstone for the prefix, as Consul does. */
export function kvsDeleteTree(tx: WriteTx, prefix: string): number {
  const keys: string[] = [];
  scanPrefix(tx.data.kvs, prefix, (k) => {
    keys.push(k);
  });
  if (keys.length === 0) return 0;
  tx.putTombstone(prefix, tx.index);
  for (const k of keys) tx.putKv(k, undefined);
  return keys.length;
}

/** Forgets tombstones at or below `upTo` (Consul's ReapTombstones). Wakes nobody. */
export function kvsReapTombstones(tx: WriteTx, upTo: number): number {
  const doomed: string[] = [];
  tx.data.tombstones.forEachPair((k, idx) => {
    if (idx <= upTo) doomed.push(k);
  });
  for (const k of doomed) tx.putTombstone(k, undefined, false);
  return doomed.length;
}

/**
 * Drops lock delays that expired by the proposer's clock `now`. Deterministic: it depends only on
 * the command, so every replica prunes the same entries.
 */
export function pruneLockDelays(data: StateData, now: number): void {
  // The map is kept roughly in expiry order (entries are re-inserted when set), so stop at the first
  // live one; a few expired entries behind it wait for a later prune.
  for (const [k, until] of data.lockDelays) {
    if (until > now) return;
    data.lockDelays.delete(k);
  }
}

/** Consul's DirEntry clone with the value blanked (txn results of write verbs). */
export function withoutValue(e: DirEntry): DirEntry {
  return deepFreeze({ ...e, Value: null });
}
