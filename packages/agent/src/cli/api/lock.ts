// Consul's lock and semaphore recipes (api/lock.go, api/semaphore.go) over the HTTP API, so
// Trellis and Consul clients (and any other client of the same recipe) exclude each other on the
// same prefix:
//   lock:      key <prefix>/.lock, Flags 0x2ddccbc058a50c18, acquired with ?acquire=<session>
//   semaphore: contender key <prefix>/<session> + coordination key <prefix>/.lock holding
//              {"Limit":N,"Holders":{...}} updated by check-and-set, Flags 0xe0f69a2baa414de0
// A holder's session has a TTL and is renewed every TTL/2 until released; `monitor` resolves when
// the hold is lost. `trellis lock` (../commands/lock.ts) runs a child process under one.
import { ApiError, parseJson, type ApiClient } from '../http.ts';
import { kvDelete, kvGet, kvList, kvPut, type KVPair } from './kv.ts';
import { formatGoDuration, parseGoDuration } from '../../config/duration.ts';
import { sleep } from '../../sleep.ts';

export const LOCK_FLAG_VALUE = 0x2ddccbc058a50c18n;
export const SEMAPHORE_FLAG_VALUE = 0xe0f69a2baa414de0n;
export const SEMAPHORE_KEY = '.lock';

export interface LockTiming {
  /** How long one blocking query waits (api.DefaultLockWaitTime). */
  waitMs: number;
  /** Pause after a failed acquire before trying again (api.DefaultLockRetryTime; covers lock-delay). */
  retryMs: number;
  /** Pause between retries of a failing monitor query. */
  monitorRetryMs: number;
  /** Session TTL as a Go duration (api.DefaultLockSessionTTL). */
  sessionTtl: string;
  /** SIGTERM → SIGKILL grace for the child (Consul's lockKillGracePeriod). */
  killGraceMs: number;
}

export const DEFAULT_LOCK_TIMING: LockTiming = { waitMs: 15_000, retryMs: 5_000, monitorRetryMs: 1_000, sessionTtl: '15s', killGraceMs: 5_000 };

export class LockError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}
const errConflict = () => new LockError('ERR_LOCK_CONFLICT', 'Existing key does not match lock use');
const errSemConflict = () => new LockError('ERR_LOCK_CONFLICT', 'Existing key does not match semaphore use');
const errInUse = () => new LockError('ERR_LOCK_IN_USE', 'Lock in use');

function isAbort(err: unknown): boolean {
  return (err as Error)?.name === 'AbortError';
}

/** A session created for the lock and kept alive until destroyed. */
export class LockSession {
  readonly id: string;
  private readonly client: ApiClient;
  private readonly stopRenew = new AbortController();
  private renewing: Promise<void> | undefined;

  private constructor(client: ApiClient, id: string) {
    this.client = client;
    this.id = id;
  }

  static async create(client: ApiClient, name: string, ttl: string, behavior?: 'delete'): Promise<LockSession> {
    const body: Record<string, string> = { Name: name, TTL: ttl };
    if (behavior) body['Behavior'] = behavior;
    const { value } = await client.json<{ ID?: string }>('PUT', '/v1/session/create', { body: JSON.stringify(body) });
    if (!value?.ID) throw new LockError('ERR_BAD_RESPONSE', 'the agent did not return a session ID');
    const s = new LockSession(client, value.ID);
    s.renewing = s.renewLoop(ttl);
    return s;
  }

  /** Renews every TTL/2 (the server may change the TTL) until destroyed or the session is gone. */
  private async renewLoop(ttl: string): Promise<void> {
    let ttlMs = parseGoDuration(ttl);
    const signal = this.stopRenew.signal;
    while (!signal.aborted) {
      await sleep(ttlMs / 2, signal);
      if (signal.aborted) return;
      try {
        const res = await this.client.json<Array<{ TTL?: string }>>('PUT', `/v1/session/renew/${encodeURIComponent(this.id)}`, { accept: [404], signal });
        if (res.status === 404 || !res.value?.[0]) return; // session invalidated: the monitor sees the lock go
        if (res.value[0].TTL) ttlMs = parseGoDuration(res.value[0].TTL);
      } catch (err) {
        // As Consul's renewSession: stop renewing on error; the lock monitor reports the loss.
        if (!isAbort(err)) return;
      }
    }
  }

  async destroy(): Promise<void> {
    this.stopRenew.abort();
    await this.renewing;
    try {
      await this.client.request('PUT', `/v1/session/destroy/${encodeURIComponent(this.id)}`);
    } catch {
      // Best effort, as in Consul: an undestroyed session expires after its TTL anyway.
    }
  }
}

export interface Holder {
  /** Resolves true when held, false on timeout or abort. */
  acquire(signal: AbortSignal): Promise<boolean>;
  /** Resolves when the lock is lost (or monitoring is stopped by the signal). */
  monitor(signal: AbortSignal): Promise<void>;
  release(): Promise<void>;
  /** Removes the coordination key if nobody uses it; ERR_LOCK_IN_USE when someone does. */
  cleanup(): Promise<void>;
  readonly session: LockSession | undefined;
}

export interface HolderOptions {
  client: ApiClient;
  prefix: string;
  sessionName: string;
  /** 0: wait forever; else give up after this long (Consul's LockTryOnce + LockWaitTime). */
  timeoutMs: number;
  monitorRetries: number;
  timing: LockTiming;
  verbose: (s: string) => void;
}

function joinKey(prefix: string, name: string): string {
  return prefix === '' ? name : `${prefix.replace(/\/+$/, '')}/${name}`;
}

/** Deadline bookkeeping for one-shot (timeout) mode; unlimited otherwise. */
function waitBudget(o: HolderOptions) {
  const start = Date.now();
  let attempts = 0;
  return {
    /** The wait for the next blocking query, or undefined when the budget is spent. */
    next(): number | undefined {
      if (o.timeoutMs > 0 && attempts > 0) {
        const left = o.timeoutMs - (Date.now() - start);
        if (left <= 0) return undefined;
        attempts++;
        return Math.min(left, o.timing.waitMs);
      }
      attempts++;
      return o.timeoutMs > 0 ? Math.min(o.timeoutMs, o.timing.waitMs) : o.timing.waitMs;
    },
  };
}

/**
 * Watches a held lock with blocking reads until it is lost (Consul's monitorLock): returns when
 * `poll` says it is no longer held, when the signal aborts, or after `monitorRetries` consecutive
 * 500s from the agent (a leaderless moment is retried; anything else ends the hold).
 */
async function monitorHeld(o: HolderOptions, signal: AbortSignal, poll: (index: bigint) => Promise<{ held: boolean; index: bigint }>): Promise<void> {
  let index = 0n;
  let retries = o.monitorRetries;
  while (!signal.aborted) {
    try {
      const got = await poll(index);
      if (!got.held) return;
      index = got.index;
      // An agent that answers without an index would make this a busy loop: pace it.
      if (index === 0n) await sleep(o.timing.retryMs, signal);
      retries = o.monitorRetries;
    } catch (err) {
      if (isAbort(err)) return;
      if (err instanceof ApiError && err.status === 500 && retries > 0) {
        retries--;
        await sleep(o.timing.monitorRetryMs, signal);
        continue;
      }
      return;
    }
  }
}

export class KeyLock implements Holder {
  session: LockSession | undefined;
  private readonly o: HolderOptions;
  private readonly key: string;

  constructor(o: HolderOptions) {
    this.o = o;
    this.key = joinKey(o.prefix, SEMAPHORE_KEY);
    o.verbose(`Setting up lock at path: ${this.key}`);
  }

  async acquire(signal: AbortSignal): Promise<boolean> {
    const { client, timing } = this.o;
    try {
      this.session = await LockSession.create(client, this.o.sessionName, timing.sessionTtl);
    } catch (err) {
      throw new LockError('ERR_SESSION', `failed to create session: ${(err as Error).message}`);
    }
    const budget = waitBudget(this.o);
    let index = 0n;
    for (;;) {
      if (signal.aborted) return false;
      const wait = budget.next();
      if (wait === undefined) return false;
      let got: { pair: KVPair | undefined; index: bigint };
      try {
        got = await kvGet(client, this.key, { index, wait: formatGoDuration(wait), signal });
      } catch (err) {
        if (isAbort(err)) return false;
        throw new LockError('ERR_LOCK_READ', `failed to read lock: ${(err as Error).message}`);
      }
      const { pair } = got;
      if (pair && BigInt(pair.Flags) !== LOCK_FLAG_VALUE) throw errConflict();
      if (pair?.Session) {
        index = got.index;
        // Held by someone else: block until the key changes. An agent that sent no index cannot
        // block, so pace the polling instead of spinning on it.
        if (index === 0n) await sleep(timing.retryMs, signal);
        continue;
      }
      let locked: boolean;
      try {
        locked = await kvPut(client, this.key, Buffer.alloc(0), { flags: LOCK_FLAG_VALUE, acquire: this.session.id });
      } catch (err) {
        throw new LockError('ERR_LOCK_ACQUIRE', `failed to acquire lock: ${(err as Error).message}`);
      }
      if (locked) return true;
      // Lost a race, or lock-delay is in force after a holder's session was invalidated.
      await sleep(timing.retryMs, signal);
      index = 0n;
    }
  }

  monitor(signal: AbortSignal): Promise<void> {
    return monitorHeld(this.o, signal, async (index) => {
      const got = await kvGet(this.o.client, this.key, { consistent: true, index, wait: formatGoDuration(this.o.timing.waitMs), signal });
      return { held: got.pair?.Session === this.session?.id, index: got.index };
    });
  }

  async release(): Promise<void> {
    const session = this.session;
    if (!session) return;
    try {
      await kvPut(this.o.client, this.key, Buffer.alloc(0), { flags: LOCK_FLAG_VALUE, release: session.id });
    } catch (err) {
      throw new LockError('ERR_LOCK_RELEASE', `failed to release lock: ${(err as Error).message}`);
    } finally {
      await session.destroy();
    }
  }

  async cleanup(): Promise<void> {
    const { pair } = await kvGet(this.o.client, this.key);
    if (!pair) return;
    if (BigInt(pair.Flags) !== LOCK_FLAG_VALUE) throw errConflict();
    if (pair.Session) throw errInUse();
    if (!(await kvDelete(this.o.client, this.key, { cas: pair.ModifyIndex }))) throw errInUse();
  }
}

interface SemaphoreLock {
  Limit: number;
  Holders: Record<string, boolean>;
}

export class Semaphore implements Holder {
  session: LockSession | undefined;
  private readonly o: HolderOptions;
  private readonly limit: number;
  private readonly lockKey: string;

  constructor(o: HolderOptions, limit: number) {
    this.o = o;
    this.limit = limit;
    this.lockKey = joinKey(o.prefix, SEMAPHORE_KEY);
    o.verbose(`Setting up semaphore (limit ${limit}) at prefix: ${o.prefix}`);
  }

  private findLock(pairs: KVPair[]): KVPair {
    return pairs.find((p) => p.Key === this.lockKey) ?? { Key: this.lockKey, Flags: SEMAPHORE_FLAG_VALUE, Value: null, CreateIndex: 0, ModifyIndex: 0, LockIndex: 0 };
  }

  private decode(pair: KVPair): SemaphoreLock {
    if (!pair.Value) return { Limit: this.limit, Holders: {} };
    try {
      const l = parseJson<SemaphoreLock>(Buffer.from(pair.Value, 'base64').toString('utf8'));
      return { Limit: l.Limit, Holders: { ...(l.Holders ?? {}) } };
    } catch (err) {
      throw new LockError('ERR_LOCK_DECODE', `lock decoding failed: ${(err as Error).message}`);
    }
  }

  /** Holders whose contender key no longer carries a session are gone (their session ended). */
  private prune(lock: SemaphoreLock, pairs: KVPair[]): void {
    const alive = new Set(pairs.filter((p) => p.Session).map((p) => p.Session!));
    for (const h of Object.keys(lock.Holders)) if (!alive.has(h)) delete lock.Holders[h];
  }

  private encode(lock: SemaphoreLock): Buffer {
    // Go's json.Marshal sorts map keys.
    const holders = Object.fromEntries(Object.keys(lock.Holders).sort().map((k) => [k, true]));
    return Buffer.from(JSON.stringify({ Limit: lock.Limit, Holders: holders }));
  }

  async acquire(signal: AbortSignal): Promise<boolean> {
    const { client, timing } = this.o;
    try {
      this.session = await LockSession.create(client, this.o.sessionName, timing.sessionTtl, 'delete');
    } catch (err) {
      throw new LockError('ERR_SESSION', `failed to create session: ${(err as Error).message}`);
    }
    const session = this.session;
    let made: boolean;
    try {
      made = await kvPut(client, joinKey(this.o.prefix, session.id), Buffer.alloc(0), { flags: SEMAPHORE_FLAG_VALUE, acquire: session.id });
    } catch (err) {
      throw new LockError('ERR_LOCK_ACQUIRE', `failed to make contender entry: ${(err as Error).message}`);
    }
    if (!made) throw new LockError('ERR_LOCK_ACQUIRE', 'failed to make contender entry');

    const budget = waitBudget(this.o);
    let index = 0n;
    for (;;) {
      if (signal.aborted) return false;
      const wait = budget.next();
      if (wait === undefined) return false;
      let got: { pairs: KVPair[]; index: bigint };
      try {
        got = await kvList(client, this.o.prefix, { index, wait: formatGoDuration(wait), signal });
      } catch (err) {
        if (isAbort(err)) return false;
        throw new LockError('ERR_LOCK_READ', `failed to read prefix: ${(err as Error).message}`);
      }
      const lockPair = this.findLock(got.pairs);
      if (BigInt(lockPair.Flags) !== SEMAPHORE_FLAG_VALUE) throw errSemConflict();
      const lock = this.decode(lockPair);
      if (lock.Limit !== this.limit) {
        throw new LockError('ERR_LOCK_CONFLICT', `semaphore limit conflict (lock: ${lock.Limit}, local: ${this.limit})`);
      }
      this.prune(lock, got.pairs);
      if (Object.keys(lock.Holders).length >= lock.Limit) {
        index = got.index;
        if (index === 0n) await sleep(timing.retryMs, signal);
        continue;
      }
      lock.Holders[session.id] = true;
      let ok: boolean;
      try {
        ok = await kvPut(client, this.lockKey, this.encode(lock), { flags: SEMAPHORE_FLAG_VALUE, cas: lockPair.ModifyIndex });
      } catch (err) {
        throw new LockError('ERR_LOCK_ACQUIRE', `failed to update lock: ${(err as Error).message}`);
      }
      if (ok) return true;
      index = 0n; // raced another contender: read again
    }
  }

  monitor(signal: AbortSignal): Promise<void> {
    return monitorHeld(this.o, signal, async (index) => {
      const got = await kvList(this.o.client, this.o.prefix, { consistent: true, index, wait: formatGoDuration(this.o.timing.waitMs), signal });
      const lock = this.decode(this.findLock(got.pairs));
      this.prune(lock, got.pairs);
      return { held: this.session !== undefined && Boolean(lock.Holders[this.session.id]), index: got.index };
    });
  }

  async release(): Promise<void> {
    const session = this.session;
    if (!session) return;
    try {
      for (;;) {
        const { pair } = await kvGet(this.o.client, this.lockKey);
        const current = pair ?? this.findLock([]);
        const lock = this.decode(current);
        if (!lock.Holders[session.id]) break;
        delete lock.Holders[session.id];
        if (await kvPut(this.o.client, this.lockKey, this.encode(lock), { flags: SEMAPHORE_FLAG_VALUE, cas: current.ModifyIndex })) break;
      }
      await kvDelete(this.o.client, joinKey(this.o.prefix, session.id));
    } catch (err) {
      if (err instanceof LockError) throw err;
      throw new LockError('ERR_LOCK_RELEASE', `failed to update lock: ${(err as Error).message}`);
    } finally {
      await session.destroy();
    }
  }

  async cleanup(): Promise<void> {
    const { pairs } = await kvList(this.o.client, this.o.prefix);
    const lockPair = this.findLock(pairs);
    if (lockPair.ModifyIndex === 0) return;
    if (BigInt(lockPair.Flags) !== SEMAPHORE_FLAG_VALUE) throw errSemConflict();
    const lock = this.decode(lockPair);
    this.prune(lock, pairs);
    if (Object.keys(lock.Holders).length > 0) throw errInUse();
    if (!(await kvDelete(this.o.client, this.lockKey, { cas: lockPair.ModifyIndex }))) throw errInUse();
  }
}
