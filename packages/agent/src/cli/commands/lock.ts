// `trellis lock [-n N] [-timeout d] <prefix> <child...>`: run a child process while holding a lock
// (N = 1) or a semaphore slot (N > 1) built from sessions and KV acquire, exactly as Consul's
// `consul lock` with its api.Lock / api.Semaphore does, so Trellis and Consul CLIs (and any other
// client of the same recipe) exclude each other on the same prefix:
//   lock:      key <prefix>/.lock, Flags 0x2ddccbc058a50c18, acquired with ?acquire=<session>
//   semaphore: contender key <prefix>/<session> + coordination key <prefix>/.lock holding
//              {"Limit":N,"Holders":{...}} updated by check-and-set, Flags 0xe0f69a2baa414de0
// The session has a 15 s TTL and is renewed every TTL/2; losing it (or the key) kills the child.
// Unlike Consul (which exits 0 unless -child-exit-code), the exit code is the child's.

import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { constants as osConstants } from 'node:os';
import type { Command, CommandContext } from '../command.ts';
import { agentReachable, apiErrorText, clientFor } from '../command.ts';
import { ApiError, HTTP_CLIENT_FLAGS, HTTP_SERVER_FLAGS, parseJson, type ApiClient } from '../http.ts';
import { kvDelete, kvGet, kvList, kvPut, type KVPair } from './kv.ts';
import { flagBool, flagNumber, flagString } from '../../config/flags.ts';
import { formatGoDuration, parseGoDuration } from '../../config/duration.ts';
import type { SignalName } from '../io.ts';

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

class LockError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}
const errConflict = () => new LockError('ERR_LOCK_CONFLICT', 'Existing key does not match lock use');
const errSemConflict = () => new LockError('ERR_LOCK_CONFLICT', 'Existing key does not match semaphore use');
const errInUse = () => new LockError('ERR_LOCK_IN_USE', 'Lock in use');

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

function isAbort(err: unknown): boolean {
  return (err as Error)?.name === 'AbortError';
}

/** A session created for the lock and kept alive until destroyed. */
class LockSession {
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

interface Holder {
  /** Resolves true when held, false on timeout or abort. */
  acquire(signal: AbortSignal): Promise<boolean>;
  /** Resolves when the lock is lost (or monitoring is stopped by the signal). */
  monitor(signal: AbortSignal): Promise<void>;
  release(): Promise<void>;
  /** Removes the coordination key if nobody uses it; ERR_LOCK_IN_USE when someone does. */
  cleanup(): Promise<void>;
  readonly session: LockSession | undefined;
}

interface HolderOptions {
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

class KeyLock implements Holder {
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

class Semaphore implements Holder {
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

/**
 * Runs the child in its own process group, so that a signal reaches everything it started (a
 * shell's children included); resolves with its exit code (128 + signal number when a signal
 * ended it).
 */
function startChild(ctx: CommandContext, args: string[], shell: boolean, passStdin: boolean): { child: ChildProcess; exited: Promise<number> } {
  const env = { ...process.env, ...ctx.io.env, CONSUL_LOCK_HELD: 'true', TRELLIS_LOCK_HELD: 'true' };
  const opts: SpawnOptions = { env, stdio: ['pipe', 'pipe', 'pipe'], detached: true };
  const child = shell
    ? spawn(ctx.io.env['SHELL'] || '/bin/sh', ['-c', args.join(' ')], opts)
    : spawn(args[0]!, args.slice(1), opts);
  // Piped (not inherited) so the child's output goes wherever this command's output goes.
  child.stdout!.on('data', (b: Buffer) => ctx.io.stdout.write(b));
  child.stderr!.on('data', (b: Buffer) => ctx.io.stderr.write(b));
  child.stdin!.on('error', () => { /* the child closed its stdin early: it does not want more input */ });
  if (passStdin) {
    (async () => {
      try {
        for await (const chunk of ctx.io.stdin) child.stdin!.write(chunk);
      } catch {
        // stdin closed or the child stopped reading: nothing more to pass on.
      }
      child.stdin!.end();
    })();
  } else {
    child.stdin!.end();
  }
  const exited = new Promise<number>((resolve) => {
    child.on('error', (err) => {
      ctx.ui.error(`Error executing handler: ${err.message}`);
      resolve(127);
    });
    child.on('exit', (code, signal) => {
      const status = code !== null ? code : 128 + ((signal && (osConstants.signals as Record<string, number>)[signal]) || 1);
      // Let the pipes deliver what the child wrote last, but do not wait on a grandchild that
      // inherited them and lives on.
      const flushed = setTimeout(() => resolve(status), 500);
      child.on('close', () => { clearTimeout(flushed); resolve(status); });
    });
  });
  return { child, exited };
}

/** Signals the child's whole process group (it was started detached, as its own group). */
function signalChild(child: ChildProcess, sig: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, sig);
  } catch {
    // The group is already gone (ESRCH): the child exited between our check and the signal.
  }
}

async function terminate(child: ChildProcess, exited: Promise<number>, graceMs: number): Promise<number> {
  signalChild(child, 'SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const grace = new Promise<'timeout'>((r) => { timer = setTimeout(() => r('timeout'), graceMs); });
  const first = await Promise.race([exited, grace]);
  clearTimeout(timer);
  if (first === 'timeout') {
    signalChild(child, 'SIGKILL');
    return exited;
  }
  return first;
}

export function makeLockCommand(timing: LockTiming = DEFAULT_LOCK_TIMING): Command {
  return {
    name: 'lock',
    synopsis: 'Execute a command holding a lock',
    help: `Usage: trellis lock [options] prefix child...

  Acquires a lock or semaphore at a given path, and invokes a child process
  when successful. The child process can assume the lock is held while it
  executes. If the lock is lost or communication is disrupted the child
  process will be sent a SIGTERM signal and given time to gracefully exit.
  After the grace period expires the process will be hard terminated.

  When -n=1, only a single lock holder or leader exists providing mutual
  exclusion. Setting a higher value switches to a semaphore allowing multiple
  holders to coordinate. The exit code is the child's.

  The prefix provided must have write privileges.`,
    flags: [
      { name: 'child-exit-code', kind: 'bool', usage: "Accepted for compatibility with Consul: Trellis always exits with the child's exit code." },
      { name: 'monitor-retry', kind: 'int', placeholder: 'n', usage: 'Number of times to retry if the agent returns a 500 error while monitoring the lock. The default value is 3, with a 1s wait between retries. Set this value to 0 to disable retries.' },
      { name: 'n', kind: 'int', placeholder: 'n', usage: 'Optional limit on the number of concurrent lock holders. The underlying implementation switches from a lock to a semaphore when the value is greater than 1. The default value is 1.' },
      { name: 'name', kind: 'string', placeholder: 'name', usage: 'Optional name to associate with the lock session. It not provided, one is generated based on the provided child command.' },
      { name: 'pass-stdin', kind: 'bool', usage: 'Pass stdin to the child process.' },
      { name: 'shell', kind: 'bool', usage: 'Use a shell to run the command (can set a custom shell via the SHELL environment variable). The default value is true.' },
      { name: 'timeout', kind: 'duration', placeholder: 'duration', usage: 'Maximum amount of time to wait to acquire the lock, specified as a duration like "1s" or "3h". The default value is 0 (wait forever).' },
      { name: 'try', kind: 'duration', placeholder: 'duration', usage: 'DEPRECATED. Use -timeout instead.' },
      { name: 'verbose', kind: 'bool', usage: 'Enable verbose (debugging) output.' },
      ...HTTP_CLIENT_FLAGS,
      ...HTTP_SERVER_FLAGS,
    ],
    async run(ctx, flags) {
      const limit = flagNumber(flags, 'n') ?? 1;
      if (limit <= 0) { ctx.ui.error('Lock holder limit must be positive'); return 1; }
      const extra = flags.args;
      // `lock <prefix> -- <child...>`: flag parsing has stopped at the prefix, so Consul hands this
      // `--` to the child (`sh -c "-- true"`, which no shell runs). Read it as the separator meant.
      const childArgs = extra[1] === '--' ? extra.slice(2) : extra.slice(1);
      if (extra.length < 1 || childArgs.length === 0) { ctx.ui.error('Key prefix and child command must be specified'); return 1; }
      const prefix = extra[0]!.replace(/^\/+/, '');
      const timeoutMs = flagNumber(flags, 'timeout') ?? flagNumber(flags, 'try') ?? 0;
      if (timeoutMs < 0) { ctx.ui.error('Timeout must be positive'); return 1; }
      const monitorRetries = flagNumber(flags, 'monitor-retry') ?? 3;
      if (monitorRetries < 0) { ctx.ui.error("Number for 'monitor-retry' must be >= 0"); return 1; }
      const verboseOn = flagBool(flags, 'verbose') ?? false;
      const verbose = (s: string) => { if (verboseOn) ctx.ui.info(s); };
      const name = flagString(flags, 'name') || `Trellis lock for '${childArgs.join(' ')}' at '${prefix}'`;

      const client = clientFor(ctx, flags);
      if (!client) return 1;
      if (!(await agentReachable(ctx, client))) return 1;

      const opts: HolderOptions = { client, prefix, sessionName: name, timeoutMs, monitorRetries, timing, verbose };
      const holder: Holder = limit === 1 ? new KeyLock(opts) : new Semaphore(opts, limit);

      // SIGINT/SIGTERM: stop waiting for the lock, or pass the signal to the child and release.
      const shutdown = new AbortController();
      let child: ChildProcess | undefined;
      const onSignal = (sig: SignalName) => () => {
        shutdown.abort();
        if (child) signalChild(child, sig);
      };
      const handlers = { SIGINT: onSignal('SIGINT'), SIGTERM: onSignal('SIGTERM') };
      ctx.io.signals.on('SIGINT', handlers.SIGINT);
      ctx.io.signals.on('SIGTERM', handlers.SIGTERM);
      try {
        verbose('Attempting lock acquisition');
        let held: boolean;
        try {
          held = await holder.acquire(shutdown.signal);
        } catch (err) {
          await holder.session?.destroy();
          ctx.ui.error(`Lock acquisition failed: ${(err as Error).message}`);
          return 1;
        }
        if (!held) {
          await holder.session?.destroy();
          ctx.ui.error('Shutdown triggered or timeout during lock acquisition');
          return 1;
        }

        let code: number;
        if (shutdown.signal.aborted) {
          ctx.ui.error('Shutdown triggered during lock acquisition');
          code = 1;
        } else {
          verbose('Starting handler');
          const started = startChild(ctx, childArgs, flagBool(flags, 'shell') ?? true, flagBool(flags, 'pass-stdin') ?? false);
          child = started.child;
          const stopMonitor = new AbortController();
          const lost = holder.monitor(stopMonitor.signal).then(() => 'lost' as const);
          const stopping = new Promise<'shutdown'>((resolve) => {
            shutdown.signal.addEventListener('abort', () => resolve('shutdown'), { once: true });
          });
          const outcome = await Promise.race([started.exited.then((c) => ({ c })), lost, stopping]);
          stopMonitor.abort();
          if (outcome === 'lost') {
            ctx.ui.error('Lock lost, killing child');
            code = await terminate(started.child, started.exited, timing.killGraceMs);
            if (code === 0) code = 1; // the child did not finish its work under the lock
          } else if (outcome === 'shutdown') {
            // The signal was passed on to the child; give it the grace period, then insist.
            verbose('Shutdown triggered, killing child');
            const grace = new AbortController();
            const first = await Promise.race([started.exited, sleep(timing.killGraceMs, grace.signal).then(() => undefined)]);
            grace.abort();
            code = first ?? await terminate(started.child, started.exited, timing.killGraceMs);
          } else {
            verbose('Child terminated, releasing lock');
            code = outcome.c;
          }
          await lost;
        }

        try {
          await holder.release();
        } catch (err) {
          ctx.ui.error(`Lock release failed: ${(err as Error).message}`);
          return 1;
        }
        try {
          await holder.cleanup();
          verbose('Cleanup succeeded');
        } catch (err) {
          if ((err as LockError).code === 'ERR_LOCK_IN_USE') verbose('Cleanup aborted, lock in use');
          else {
            ctx.ui.error(`Lock cleanup failed: ${(err as Error).message}`);
            return 1;
          }
        }
        return code;
      } finally {
        ctx.io.signals.off('SIGINT', handlers.SIGINT);
        ctx.io.signals.off('SIGTERM', handlers.SIGTERM);
      }
    },
  };
}

export const lockCommand = makeLockCommand();
