// WAN federation of a server agent (Consul's serf WAN pool and its router): the servers of every
// federated datacenter gossip in one WAN pool, a second instance of the gossip stack on the serf WAN
// port (gossip/fromConfig.ts wanPoolOptions: Consul's WAN timing, members named <node>.<dc>, the
// same -encrypt key). What the pool says is the only source of where other datacenters are:
//
//   datacenters()      GET /v1/catalog/datacenters and DNS: every dc with a server in the pool
//   forwardHttp(dc)    ?dc=<other>: the HTTP request goes whole over the server RPC (Forward.Http)
//                      to a live server of that dc, which answers it from its own HTTP API (with
//                      ?dc naming its own datacenter, it does not forward again). Blocking queries
//                      wait there. No live server, or none reachable: Consul's "No path to datacenter".
//   rpcCall(dc)        any server RPC to a live server of a dc (replication, secondary CA).
import type { RuntimeConfig } from '../config/runtime.ts';
import { GossipError } from '../gossip/core/errors.ts';
import { wanPoolOptions } from '../gossip/fromConfig.ts';
import { GossipPool } from '../gossip/libp2p/pool.ts';
import { retryJoin } from '../gossip/retryJoin.ts';
import { parseServer, type AgentMemberRow } from '../gossip/tags.ts';
import type { ForwardedRequest, ForwardedResponse } from '../http/forward.ts';
import type { Logger } from '../logger.ts';
import { RpcClient, type CallOptions } from '../rpc/client.ts';
import { RpcCallError } from '../rpc/errors.ts';
import { rpcTlsFromConfig } from '../rpc/tls.ts';

/** Consul's structs.ErrNoDCPath. */
export class NoPathToDatacenterError extends Error {
  readonly code = 'ERR_NO_DC_PATH';
  readonly datacenter: string;
  constructor(datacenter: string) {
    super('No path to datacenter');
    this.datacenter = datacenter;
    this.name = 'NoPathToDatacenterError';
  }
}

/** Longest a forwarded blocking query may wait in the other datacenter (Consul caps ?wait at 10 minutes, plus jitter). */
const BLOCKING_CALL_MS = 11 * 60_000;
const CALL_MS = 60_000;
/** A server of another datacenter that does not accept a connection this fast is skipped. */
const CONNECT_TIMEOUT_MS = 3_000;

export interface WanFederationOptions {
  config: RuntimeConfig;
  nodeId: string;
  logger: Logger;
  rpc: RpcClient;
  random?: () => number;
}

export class WanFederation {
  readonly pool: GossipPool;
  readonly #o: WanFederationOptions;
  readonly #log: Logger;
  readonly #abort = new AbortController();
  /** With verify_server_hostname: a client per other datacenter, checking server.<that dc>.<domain>. */
  readonly #clients = new Map<string, RpcClient>();

  private constructor(o: WanFederationOptions, pool: GossipPool) {
    this.#o = o;
    this.pool = pool;
    this.#log = o.logger.child({ component: 'agent.server.wan' });
  }

  /** Creates and starts the WAN pool (listening on the serf WAN port, alone until joined). */
  static async start(o: WanFederationOptions): Promise<WanFederation> {
    const pool = await GossipPool.create(wanPoolOptions(o.config, { nodeId: o.nodeId, logger: o.logger.child({ component: 'agent.gossip.wan' }) }));
    await pool.start();
    return new WanFederation(o, pool);
  }

  /**
   * -join-wan (fails when no address answers, as -join does for the LAN) and -retry-join-wan (in
   * the background until one answers, retry_max_wan attempts at most).
   */
  async joinAtStart(): Promise<void> {
    const c = this.#o.config;
    if (c.startJoinWan.length > 0) {
      try {
        const n = await this.pool.join(c.startJoinWan);
        this.#log.info({ joined: n }, '(WAN) joined');
      } catch (err) {
        throw new Error(`could not join the WAN pool through -join-wan ${c.startJoinWan.join(', ')}: ${(err as Error).message}`, { cause: err });
      }
    }
    if (c.retryJoinWan.length > 0) {
      void retryJoin(this.pool, c.retryJoinWan, {
        intervalMs: c.retryIntervalWanMs, maxAttempts: c.retryMaxAttemptsWan, signal: this.#abort.signal, logger: this.#log,
      }).catch((err: Error) => {
        if (!this.#abort.signal.aborted) this.#log.error({ err: err.message }, '(WAN) retry join failed: giving up (-retry-max-wan)');
      });
    }
  }

  /** PUT /v1/agent/join/:addr?wan=1. */
  join(address: string): Promise<number> {
    return this.pool.join([address]);
  }

  /** GET /v1/agent/members?wan=1. */
  members(): AgentMemberRow[] {
    return this.pool.members();
  }

  /** PUT /v1/agent/force-leave/:node?wan=1: WAN members are named <node>.<dc>. */
  forceLeave(name: string, prune: boolean): void {
    this.pool.forceLeave(name, prune);
  }

  /**
   * Every datacenter with a server in the WAN pool (failed ones included, as Consul's router keeps
   * them until reaped), this one first, then by name. Consul sorts by estimated round-trip time
   * from network coordinates, which Trellis does not keep; its own datacenter is first there too.
   */
  datacenters(): string[] {
    const own = this.#o.config.datacenter;
    const others = new Set<string>();
    for (const m of this.pool.memberViews()) {
      const srv = parseServer(m);
      if (srv && m.state !== 'left' && srv.datacenter !== own) others.add(srv.datacenter);
    }
    return [own, ...[...others].sort()];
  }

  /** RPC addresses of the live servers of `dc`, in random order (Consul's router picks one at random). */
  liveServers(dc: string): string[] {
    const out: string[] = [];
    for (const m of this.pool.memberViews()) {
      if (m.state !== 'alive' && m.state !== 'suspect') continue;
      const srv = parseServer(m);
      if (srv && srv.datacenter === dc) out.push(srv.rpcAddr);
    }
    const random = this.#o.random ?? Math.random;
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [out[i], out[j]] = [out[j]!, out[i]!];
    }
    return out;
  }

  /**
   * Runs `fn` against a live server of `dc`. Another server is tried when the call certainly never
   * reached the first (no connection), so a forwarded write never runs twice; an idempotent call
   * whose connection dropped (the server died after the channel was up) is sent once more on a
   * fresh connection. No live server, or none that accepts a connection: NoPathToDatacenterError.
   */
  async rpcCall<T>(dc: string, o: { callMs: number; idempotent: boolean; signal?: AbortSignal },
    fn: (rpc: RpcClient, address: string, call: CallOptions) => Promise<T>): Promise<T> {
    const rpc = this.#rpcFor(dc);
    for (const address of this.liveServers(dc)) {
      for (let attempt = 1; attempt <= 2; attempt++) {
        try {
          return await fn(rpc, address, { deadline: Date.now() + o.callMs, connectTimeoutMs: CONNECT_TIMEOUT_MS, ...(o.signal ? { signal: o.signal } : {}) });
        } catch (err) {
          if (o.signal?.aborted || !(err instanceof RpcCallError)) throw err;
          if (!err.mayHaveArrived) {
            this.#log.debug({ datacenter: dc, address, err: err.message }, 'server of another datacenter unreachable; trying another');
            break;
          }
          if (!o.idempotent || err.code === 'ERR_RPC_TIMEOUT' || attempt === 2) throw err;
        }
      }
    }
    throw new NoPathToDatacenterError(dc);
  }

  /** An HTTP API request with ?dc=<dc>, answered by a server of that datacenter (see the top). */
  async forwardHttp(dc: string, req: ForwardedRequest, signal: AbortSignal): Promise<ForwardedResponse> {
    const blocking = /[?&]index=/.test(req.url);
    const idempotent = req.method === 'GET' || req.method === 'HEAD';
    const res = await this.rpcCall(dc, { callMs: blocking ? BLOCKING_CALL_MS : CALL_MS, idempotent, signal }, (rpc, address, call) =>
      rpc.call(address, 'Forward.Http', { method: req.method, url: req.url, headers: req.headers, body: req.body }, call));
    return { status: res.status ?? 500, headers: res.headers ?? {}, body: res.body ?? Buffer.alloc(0) };
  }

  /** Graceful: the other datacenters see this server leave rather than fail. */
  async leave(): Promise<void> {
    try {
      await this.pool.leave();
    } catch (err) {
      if (!(err instanceof GossipError)) throw err;
    }
  }

  async stop(): Promise<void> {
    this.#abort.abort();
    for (const c of this.#clients.values()) c.close();
    this.#clients.clear();
    await this.pool.stop();
  }

  /**
   * The RPC client for calls into `dc`. Servers of another datacenter carry certificates for
   * server.<their dc>.<domain> (as in Consul): with verify_server_hostname that is the name checked.
   */
  #rpcFor(dc: string): RpcClient {
    const c = this.#o.config;
    if (dc === c.datacenter || !c.tls.internalRpc.verifyServerHostname) return this.#o.rpc;
    let client = this.#clients.get(dc);
    if (!client) {
      client = new RpcClient({ credentials: rpcTlsFromConfig({ ...c, datacenter: dc })?.client, logger: this.#o.logger, localAddress: c.bindAddr });
      this.#clients.set(dc, client);
    }
    return client;
  }
}
