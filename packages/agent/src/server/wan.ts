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
//
// With connect.enable_mesh_gateway_wan_federation (Consul 1.8+'s WAN federation via mesh gateways)
// no server RPC goes to another datacenter's server directly: the call is TLS to a mesh gateway
// whose SNI is the remote server's name, <node>.server.<dc>.<domain> (Consul's agent/pool), which
// the gateways route (packages/gateway meshGateway.ts): this datacenter's gateway to the remote
// datacenter's gateway (WAN), that one to the server's RPC port. Paths, in order (Consul's
// gateway_locator.go picks local gateways first, the primary's own gateways as the fallback):
//   1. a healthy mesh gateway of this datacenter (its LAN address, from the local catalog);
//   2. a gateway of the target datacenter itself (its WAN address): the ones the target's servers
//      advertise in their WAN pool tag `mgw_wan` (Trellis's stand-in for Consul's federation
//      states), and for the primary datacenter primary_gateways. This is how the first calls get
//      through before this datacenter's gateway has learnt the remote gateways (it learns them
//      with a ?dc= query that these calls carry).
// WAN gossip to other datacenters' servers takes the same paths (server/wanGossip.ts: the WAN
// pool's packets and push-pulls as TLS with ALPN consul/wan-gossip/packet|stream, accepted on the
// server RPC port), and a secondary joins the WAN pool through primary_gateways (every
// primary_gateways_interval while it knows no live server of the primary), as Consul's servers do:
// only the gateways' WAN ports need to be reachable between datacenters.
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
import type { RpcServer } from '../rpc/server.ts';
import { WAN_GOSSIP_PROTOCOLS, WanGossipAcceptor, WanGossipTransport } from './wanGossip.ts';

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

/** A mesh gateway of this datacenter: where servers reach it (LAN) and where others do (WAN). */
export interface LocalGateway { lan: string; wan: string }

/** The WAN pool tag listing a datacenter's mesh gateways' WAN addresses (comma-separated). */
export const GATEWAYS_TAG = 'mgw_wan';
/** At most this many addresses in the tag: serf tags are 512 bytes in all. */
const MAX_TAGGED_GATEWAYS = 4;
/** How often a server re-reads its datacenter's gateways for the tag. */
const GATEWAY_TAG_REFRESH_MS = 5_000;

export interface WanFederationOptions {
  config: RuntimeConfig;
  nodeId: string;
  logger: Logger;
  rpc: RpcClient;
  random?: () => number;
  /** With WAN federation through mesh gateways: this datacenter's healthy mesh gateways (local catalog). */
  localGateways?: () => LocalGateway[];
  /** The server RPC port, where WAN gossip through mesh gateways arrives (RpcServer.divert). */
  rpcServer?: Pick<RpcServer, 'divert'>;
}

export class WanFederation {
  readonly pool: GossipPool;
  readonly #o: WanFederationOptions;
  readonly #log: Logger;
  readonly #abort = new AbortController();
  /** With verify_server_hostname: a client per other datacenter, checking server.<that dc>.<domain>. */
  readonly #clients = new Map<string, RpcClient>();
  /** WAN federation through mesh gateways: a client per remote server name (its SNI). */
  readonly #viaGateway = new Map<string, RpcClient>();
  readonly #tags: Record<string, string>;
  #taggedGateways = '';
  #tagTimer: NodeJS.Timeout | undefined;
  /** WAN gossip through mesh gateways (viaGateways): the pool's router and its receiving side. */
  gossipTransport: WanGossipTransport | undefined;
  gossipAcceptor: WanGossipAcceptor | undefined;
  #primaryJoinTimer: NodeJS.Timeout | undefined;

  private constructor(o: WanFederationOptions, pool: GossipPool, tags: Record<string, string>) {
    this.#o = o;
    this.pool = pool;
    this.#tags = tags;
    this.#log = o.logger.child({ component: 'agent.server.wan' });
  }

  /** Creates and starts the WAN pool (listening on the serf WAN port, alone until joined). */
  static async start(o: WanFederationOptions): Promise<WanFederation> {
    const c = o.config;
    let transport: WanGossipTransport | undefined;
    let wan: WanFederation | undefined;
    const rpcTls = c.connect.enableMeshGatewayWanFederation ? rpcTlsFromConfig(c) : undefined;
    if (c.connect.enableMeshGatewayWanFederation) {
      // Config validation refuses the setting without TLS; this is the last line of that defence.
      if (!rpcTls) throw new Error('WAN federation through mesh gateways needs TLS on the server port');
      transport = new WanGossipTransport({
        datacenter: c.datacenter, domain: c.domain, localAddress: c.bindAddr, logger: o.logger,
        tls: { ...rpcTls.raft, verifyServerHostname: rpcTls.verifyServerHostname },
        gateways: (dc) => wan?.gatewayPaths(dc) ?? [],
      });
    }
    const opts = wanPoolOptions(c, { nodeId: o.nodeId, logger: o.logger.child({ component: 'agent.gossip.wan' }), ...(transport ? { router: transport } : {}) });
    const pool = await GossipPool.create(opts);
    await pool.start();
    wan = new WanFederation(o, pool, { ...opts.tags });
    if (transport && rpcTls) {
      wan.gossipTransport = transport;
      wan.gossipAcceptor = new WanGossipAcceptor({ pool, domain: c.domain, logger: o.logger, tls: { ...rpcTls.raft, verifyServerHostname: rpcTls.verifyServerHostname } });
      const acceptor = wan.gossipAcceptor;
      o.rpcServer?.divert(WAN_GOSSIP_PROTOCOLS, (socket) => acceptor.handle(socket));
    }
    if (wan.viaGateways) {
      wan.#tagGateways();
      wan.#tagTimer = setInterval(() => wan.#tagGateways(), GATEWAY_TAG_REFRESH_MS);
      wan.#tagTimer.unref();
    }
    return wan;
  }

  /** connect.enable_mesh_gateway_wan_federation: server RPC to other datacenters crosses mesh gateways. */
  get viaGateways(): boolean {
    return this.#o.config.connect.enableMeshGatewayWanFederation;
  }

  /** Advertises this datacenter's gateways (WAN addresses) in the WAN pool when they changed. */
  #tagGateways(): void {
    let list: string;
    try {
      list = [...new Set((this.#o.localGateways?.() ?? []).map((g) => g.wan))].sort().slice(0, MAX_TAGGED_GATEWAYS).join(',');
    } catch (err) {
      this.#log.warn({ err: (err as Error).message }, 'reading the local mesh gateways failed');
      return;
    }
    if (list === this.#taggedGateways) return;
    const tags = { ...this.#tags };
    if (list) tags[GATEWAYS_TAG] = list;
    try {
      this.pool.setTags(tags);
      this.#taggedGateways = list;
    } catch (err) {
      this.#log.warn({ err: (err as Error).message }, '(WAN) advertising the mesh gateways failed');
    }
  }

  /** The WAN addresses of `dc`'s mesh gateways its live servers advertise (and primary_gateways for the primary). */
  remoteGateways(dc: string): string[] {
    const out = new Set<string>();
    for (const m of this.pool.memberViews()) {
      if (m.state !== 'alive' && m.state !== 'suspect') continue;
      const srv = parseServer(m);
      if (!srv || srv.datacenter !== dc) continue;
      for (const a of (m.tags[GATEWAYS_TAG] ?? '').split(',')) if (a) out.add(a);
    }
    const c = this.#o.config;
    if (dc === c.primaryDatacenter) for (const a of c.primaryGateways) out.add(a);
    return [...out];
  }

  /**
   * -join-wan (fails when no address answers, as -join does for the LAN) and -retry-join-wan (in
   * the background until one answers, retry_max_wan attempts at most).
   */
  async joinAtStart(): Promise<void> {
    const c = this.#o.config;
    if (this.viaGateways && c.datacenter !== c.primaryDatacenter && c.primaryGateways.length > 0) this.#joinThroughPrimaryGateways();
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

  /**
   * A secondary's way into the WAN pool with WAN federation through mesh gateways (Consul's
   * primary_gateways): a push-pull with any server of the primary (SNI server.<primary>.<domain>)
   * through the gateway paths (this datacenter's gateways, then primary_gateways), now and then
   * every primary_gateways_interval while no server of the primary is alive in the pool (a
   * partition that outlived the reconnect timeout, a primary whose servers all restarted).
   */
  #joinThroughPrimaryGateways(): void {
    const c = this.#o.config;
    const primary = c.primaryDatacenter;
    let logged = false;
    const attempt = async (): Promise<void> => {
      if (this.#abort.signal.aborted) return;
      const known = this.pool.memberViews().some((m) => (m.state === 'alive' || m.state === 'suspect') && parseServer(m)?.datacenter === primary);
      if (!known) {
        try {
          await this.pool.joinRouted({ name: `*.${primary}`, addr: '', port: 0, peerId: '' });
          this.#log.info({ primary, gateways: this.gatewayPaths(primary) }, '(WAN) joined through the primary datacenter\'s mesh gateways');
          logged = false;
        } catch (err) {
          if (this.#abort.signal.aborted) return;
          // Once per failure streak at warn (every attempt at debug): a primary not up yet is normal at start.
          if (!logged) this.#log.warn({ primary, err: (err as Error).message }, '(WAN) joining through primary_gateways failed; retrying every primary_gateways_interval');
          else this.#log.debug({ primary, err: (err as Error).message }, '(WAN) joining through primary_gateways failed');
          logged = true;
        }
      }
      if (this.#abort.signal.aborted) return;
      this.#primaryJoinTimer = setTimeout(() => void attempt(), c.primaryGatewaysIntervalMs);
      this.#primaryJoinTimer.unref();
    };
    void attempt();
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
    const failFast = this.viaGateways && dc !== this.#o.config.datacenter;
    for (const { rpc, address } of this.#paths(dc)) {
      for (let attempt = 1; attempt <= 2; attempt++) {
        try {
          return await fn(rpc, address, { deadline: Date.now() + o.callMs, connectTimeoutMs: CONNECT_TIMEOUT_MS, failFast, ...(o.signal ? { signal: o.signal } : {}) });
        } catch (err) {
          if (o.signal?.aborted || !(err instanceof RpcCallError)) throw err;
          if (!err.mayHaveArrived) {
            this.#log.debug({ datacenter: dc, address, err: err.message }, 'server of another datacenter unreachable; trying another path');
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
    clearInterval(this.#tagTimer);
    clearTimeout(this.#primaryJoinTimer);
    this.gossipTransport?.stop();
    for (const c of [...this.#clients.values(), ...this.#viaGateway.values()]) c.close();
    this.#clients.clear();
    this.#viaGateway.clear();
    await this.pool.stop();
  }

  /**
   * Where calls to `dc` go, in the order to try them. Direct: each live server's RPC address.
   * Through gateways (see the top): pairs of a gateway and a live server's name, as many as the
   * longer of the two lists, so every gateway and every server is tried once (a gateway that
   * cannot route a name closes the connection at once, and the next pair is tried).
   */
  #paths(dc: string): Array<{ rpc: RpcClient; address: string }> {
    const servers = this.liveServers(dc);
    const c = this.#o.config;
    if (!this.viaGateways || dc === c.datacenter) {
      const rpc = this.#rpcFor(dc);
      return servers.map((address) => ({ rpc, address }));
    }
    const names = this.liveServerNames(dc);
    const gateways = this.gatewayPaths(dc);
    if (gateways.length === 0 || names.length === 0) return [];
    const n = Math.max(gateways.length, names.length);
    const out: Array<{ rpc: RpcClient; address: string }> = [];
    for (let k = 0; k < n; k++) out.push({ rpc: this.#viaGatewayRpc(dc, names[k % names.length]!), address: gateways[k % gateways.length]! });
    return out;
  }

  /** Mesh gateways to reach `dc` through, in the order to try them: this datacenter's (LAN), then `dc`'s own (WAN). */
  gatewayPaths(dc: string): string[] {
    let local: LocalGateway[] = [];
    try {
      local = this.#o.localGateways?.() ?? [];
    } catch (err) {
      this.#log.debug({ err: (err as Error).message }, 'reading the local mesh gateways failed');
    }
    return [...new Set([...local.map((g) => g.lan), ...this.remoteGateways(dc)])];
  }

  /** Node names (lower case) of the live servers of `dc`, in random order. */
  liveServerNames(dc: string): string[] {
    const suffix = `.${dc}`;
    const out: string[] = [];
    for (const m of this.pool.memberViews()) {
      if (m.state !== 'alive' && m.state !== 'suspect') continue;
      const srv = parseServer(m);
      if (srv && srv.datacenter === dc) out.push((m.name.endsWith(suffix) ? m.name.slice(0, -suffix.length) : m.name).toLowerCase());
    }
    const random = this.#o.random ?? Math.random;
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [out[i], out[j]] = [out[j]!, out[i]!];
    }
    return out;
  }

  /**
   * The client whose connections carry the SNI <node>.server.<dc>.<domain> (server.<dc>.<domain>
   * when the node name is not a DNS label), with TLS credentials checking server.<dc>.<domain>
   * when verify_server_hostname is on (the chain against the CA always).
   */
  #viaGatewayRpc(dc: string, node: string): RpcClient {
    const c = this.#o.config;
    const domain = c.domain.replace(/\.$/, '').toLowerCase();
    const sni = /^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?$/.test(node) ? `${node}.server.${dc}.${domain}` : `server.${dc}.${domain}`;
    let client = this.#viaGateway.get(sni);
    if (!client) {
      const tls = rpcTlsFromConfig({ ...c, datacenter: dc });
      // Config validation refuses the setting without TLS; this is the last line of that defence.
      if (!tls) throw new Error('WAN federation through mesh gateways needs TLS on the server port');
      client = new RpcClient({ credentials: tls.client, logger: this.#o.logger, localAddress: c.bindAddr, serverNameOverride: sni });
      this.#viaGateway.set(sni, client);
    }
    return client;
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
