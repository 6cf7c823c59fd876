// How a client agent reaches the servers (Consul's agent/router Manager): the servers of its
// datacenter are the LAN pool's members tagged role=consul (tags.ts parseServer). Calls go to one
// preferred server, chosen at random so clients spread over the servers; when a call to it fails in
// transit the next one is tried and the failed one moves to the back. Writes are retried elsewhere
// only when they certainly did not run (server.ts retryable()), reads whenever they failed in transit.
//
// While the pool knows no live server (the agent has not joined yet, or every server is down) a call
// waits up to rpc_hold_timeout for one, then fails with Consul's "No known Consul servers".
import * as grpc from '@grpc/grpc-js';
import type { GossipPool } from '../gossip/libp2p/pool.ts';
import { parseServer } from '../gossip/tags.ts';
import type { Logger } from '../logger.ts';
import type { Command, CommandResult } from '../state/types.ts';
import { encodeCommand } from '../state/index.ts';
import { wrapToken } from '../rpc/tokenFrame.ts';
import type { ForwardedRequest, ForwardedResponse } from '../http/forward.ts';
import type { RpcClient, CallOptions } from '../rpc/client.ts';
import { RpcCallError, retryable } from '../rpc/errors.ts';
import { decodeCommandResult, decodeNodeState, type NodeCatalogState } from '../rpc/results.ts';

/** Failures that mean "no server can take a write now" (not "the write was refused"). */
const UNREACHABLE_CODES = new Set(['ERR_NO_SERVERS', 'ERR_RPC_UNAVAILABLE', 'ERR_RPC_TIMEOUT', 'ERR_NO_LEADER']);

export function serversUnreachable(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && UNREACHABLE_CODES.has(code);
}

/** A server a call could not reach is not tried again for this long (unless it is the only way left later). */
const FAILED_SERVER_BACKOFF_MS = 5_000;
/**
 * While every server is backed off, one call a second still tries one of them (the one whose back-off
 * ends first); the others fail at once. Without it a client agent failed every call for the rest of
 * the back-off after a partition healed: 5.15 s in a 30-minute chaos run (docs/CHAOS.md), with a
 * leader elected 0.3 s after the heal.
 */
const PROBE_INTERVAL_MS = 1_000;
/** How often the pool is looked at for servers gossip suspects (suspicion raises no member event). */
const SUSPECT_POLL_MS = 200;

/** Every known server failed a call moments ago: fail at once instead of waiting on each again. */
export class ServersUnreachableError extends Error {
  readonly code = 'ERR_RPC_UNAVAILABLE';
  constructor(known: number) {
    super(`rpc error making call: none of the ${known} known server(s) answered in the last ${FAILED_SERVER_BACKOFF_MS / 1000} s`);
    this.name = 'ServersUnreachableError';
  }
}

export class NoServersError extends Error {
  readonly code = 'ERR_NO_SERVERS';
  constructor() {
    super('No known Consul servers');
    this.name = 'NoServersError';
  }
}

export interface ClientServersOptions {
  pool: Pick<GossipPool, 'memberViews' | 'onMembershipChange'>;
  datacenter: string;
  rpc: RpcClient;
  logger: Logger;
  /** Consul's rpc_hold_timeout: how long a call waits for a server to be known. */
  holdTimeoutMs: number;
  random?: () => number;
  /** The clock for back-offs (tests). */
  now?: () => number;
}

/** Longest a forwarded blocking query may wait on the server (Consul caps ?wait at 10 minutes, plus jitter). */
const BLOCKING_CALL_MS = 11 * 60_000;
const CALL_MS = 60_000;

export class ClientServers {
  readonly #o: ClientServersOptions;
  readonly #log: Logger;
  /** Server RPC addresses in preference order (the first is used). */
  #order: string[] = [];
  /** Servers a call just failed to reach: skipped until then (gossip may not have noticed yet). */
  readonly #backoffUntil = new Map<string, number>();
  /** When a call may next try a backed-off server because every server is backed off. */
  #probeAt = 0;
  /** Calls waiting on each server (and whether each may run again elsewhere), so they can be ended
   *  when gossip says it failed or left, or, for those that may, when gossip suspects it. */
  readonly #inflight = new Map<string, Map<AbortController, boolean>>();
  readonly #waiters = new Set<() => void>();
  readonly #unsubscribe: () => void;
  /** Servers gossip suspects (SWIM: a probe went unanswered and nobody vouched for it yet). */
  #suspect = new Set<string>();
  readonly #suspectPoll: NodeJS.Timeout;

  constructor(o: ClientServersOptions) {
    this.#o = o;
    this.#log = o.logger.child({ component: 'agent.client.servers' });
    this.#unsubscribe = o.pool.onMembershipChange(() => this.#refresh());
    this.#refresh();
    this.#suspectPoll = setInterval(() => this.#checkSuspects(), SUSPECT_POLL_MS);
    this.#suspectPoll.unref();
  }

  #now(): number {
    return (this.#o.now ?? Date.now)();
  }

  /** Live servers of this datacenter, preferred first. */
  servers(): string[] {
    return [...this.#order];
  }

  close(): void {
    this.#unsubscribe();
    clearInterval(this.#suspectPoll);
    for (const w of this.#waiters) w();
  }

  #refresh(): void {
    const live = new Set<string>();
    for (const m of this.#o.pool.memberViews()) {
      if (m.state !== 'alive' && m.state !== 'suspect') continue;
      const s = parseServer(m);
      if (s && s.datacenter === this.#o.datacenter) live.add(s.rpcAddr);
    }
    const kept = this.#order.filter((a) => live.has(a));
    for (const a of this.#backoffUntil.keys()) if (!live.has(a)) this.#backoffUntil.delete(a);
    // A server gossip no longer counts as alive will not answer what is waiting on it (a blocking
    // query could wait minutes): end those calls now; reads go on to another server.
    for (const [a, calls] of this.#inflight) {
      if (live.has(a)) continue;
      for (const ac of calls.keys()) ac.abort(new RpcCallError(a, grpc.status.UNAVAILABLE, 'the server failed or left while the call was in flight', true));
      this.#inflight.delete(a);
    }
    const added = [...live].filter((a) => !kept.includes(a));
    for (const a of added) {
      // Insert at a random position: new servers share the load of new clients.
      const at = Math.floor((this.#o.random ?? Math.random)() * (kept.length + 1));
      kept.splice(at, 0, a);
    }
    const changed = kept.length !== this.#order.length || kept.some((a, i) => a !== this.#order[i]);
    this.#order = kept;
    if (changed) this.#log.debug({ servers: kept }, 'servers changed');
    if (kept.length > 0) for (const w of [...this.#waiters]) w();
  }

  /**
   * A server gossip starts to suspect (cut off by a partition, frozen, dead) goes to the back of the
   * line, so new calls go to another server about a second after it stopped answering instead of
   * after gossip declares it failed (~5 s); calls in flight to it that may run again elsewhere (reads)
   * end now and do. Writes in flight stay: they may have arrived, and end with the connection or their
   * deadline. A suspicion that turns out false costs a read one more round trip.
   */
  #checkSuspects(): void {
    const now = new Set<string>();
    for (const m of this.#o.pool.memberViews()) {
      if (m.state !== 'suspect') continue;
      const s = parseServer(m);
      if (s && s.datacenter === this.#o.datacenter) now.add(s.rpcAddr);
    }
    for (const a of now) {
      if (this.#suspect.has(a)) continue;
      this.#demote(a);
      const calls = this.#inflight.get(a);
      const retry = calls ? [...calls].filter(([, idempotent]) => idempotent).map(([ac]) => ac) : [];
      this.#log.debug({ server: a, retried: retry.length }, 'gossip suspects a server; preferring another');
      for (const ac of retry) ac.abort(new RpcCallError(a, grpc.status.UNAVAILABLE, 'gossip suspects the server failed while the call was in flight', true));
    }
    this.#suspect = now;
  }

  /** The failed server goes to the back of the line. */
  #demote(address: string): void {
    const i = this.#order.indexOf(address);
    if (i < 0 || this.#order.length < 2) return;
    this.#order.splice(i, 1);
    this.#order.push(address);
    this.#log.debug({ servers: this.#order }, 'servers changed');
  }

  async #waitForServer(deadline: number, signal?: AbortSignal): Promise<void> {
    while (this.#order.length === 0) {
      const left = deadline - Date.now();
      if (left <= 0 || signal?.aborted) throw new NoServersError();
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(t);
          this.#waiters.delete(done);
          signal?.removeEventListener('abort', done);
          resolve();
        };
        const t = setTimeout(done, left);
        this.#waiters.add(done);
        signal?.addEventListener('abort', done, { once: true });
      });
    }
  }

  /** Runs `fn` against a server, trying the others as `retryable` allows. */
  async call<T>(what: string, o: { idempotent: boolean; signal?: AbortSignal; callMs: number; waitForServerMs?: number },
    fn: (address: string, call: CallOptions) => Promise<T>): Promise<T> {
    await this.#waitForServer(Date.now() + (o.waitForServerMs ?? this.#o.holdTimeoutMs), o.signal);
    const now = this.#now();
    let reachable = this.servers().filter((a) => (this.#backoffUntil.get(a) ?? 0) <= now);
    if (reachable.length === 0) {
      if (now < this.#probeAt || this.#order.length === 0) throw new ServersUnreachableError(this.#order.length);
      this.#probeAt = now + PROBE_INTERVAL_MS;
      const soonest = this.#order.reduce((a, b) => ((this.#backoffUntil.get(b) ?? 0) < (this.#backoffUntil.get(a) ?? 0) ? b : a));
      reachable = [soonest];
    }
    let last: unknown;
    for (const address of reachable) {
      const ac = new AbortController();
      const onAbort = (): void => ac.abort(o.signal?.reason);
      o.signal?.addEventListener('abort', onAbort, { once: true });
      let calls = this.#inflight.get(address);
      if (!calls) this.#inflight.set(address, calls = new Map());
      calls.set(ac, o.idempotent);
      try {
        const r = await fn(address, { deadline: Date.now() + o.callMs, connectTimeoutMs: 2000, signal: ac.signal });
        this.#backoffUntil.delete(address);
        return r;
      } catch (err) {
        // The server already waited rpc_hold_timeout for a leader: the others would wait the same.
        if (o.signal?.aborted || !retryable(err, o.idempotent) || (err as { code?: unknown }).code === 'ERR_NO_LEADER') throw err;
        last = err;
        if (err instanceof RpcCallError) this.#backoffUntil.set(address, this.#now() + FAILED_SERVER_BACKOFF_MS);
        this.#demote(address);
        this.#log.debug({ what, address, err: (err as Error).message }, 'server unavailable; trying another');
      } finally {
        o.signal?.removeEventListener('abort', onAbort);
        calls.delete(ac);
        if (calls.size === 0 && this.#inflight.get(address) === calls) this.#inflight.delete(address);
      }
    }
    throw last ?? new NoServersError();
  }

  /**
   * A state store write, applied by the leader (the server forwards it). `waitForServerMs`: how long
   * to wait for a server to be known at all (default rpc_hold_timeout; 0 fails at once).
   */
  async apply(cmd: Command, o: { signal?: AbortSignal; waitForServerMs?: number; token?: string } = {}): Promise<CommandResult> {
    // With ACLs on, the write carries the token it is made with (rpc/tokenFrame.ts).
    const data = o.token ? wrapToken(o.token, encodeCommand(cmd)) : encodeCommand(cmd);
    // The server holds the call up to rpc_hold_timeout while it has no leader; allow for that.
    const callMs = this.#o.holdTimeoutMs + 10_000;
    const r = await this.call('apply', { idempotent: false, signal: o.signal, callMs, waitForServerMs: o.waitForServerMs },
      (address, call) => this.#o.rpc.apply(address, data, call));
    return decodeCommandResult(r);
  }

  /** An HTTP API request served by a server (forward.ts). */
  async http(req: ForwardedRequest, signal: AbortSignal): Promise<ForwardedResponse> {
    const blocking = /[?&]index=/.test(req.url);
    const idempotent = req.method === 'GET' || req.method === 'HEAD';
    const res = await this.call('http', { idempotent, signal, callMs: blocking ? BLOCKING_CALL_MS : CALL_MS },
      (address, call) => this.#o.rpc.call(address, 'Forward.Http', { method: req.method, url: req.url, headers: req.headers, body: req.body }, call));
    return { status: res.status ?? 500, headers: res.headers ?? {}, body: res.body ?? Buffer.alloc(0) };
  }

  /** The catalog's rows for a node, for anti-entropy. */
  async nodeState(node: string, signal?: AbortSignal): Promise<NodeCatalogState> {
    const res = await this.call('nodeState', { idempotent: true, signal, callMs: CALL_MS },
      (address, call) => this.#o.rpc.call(address, 'Forward.NodeState', { node }, call));
    return decodeNodeState(res.json ?? Buffer.alloc(0));
  }
}
