// The L7 upstream listener (loaded only for an upstream whose chain protocol is http/http2/grpc, so
// a TCP-only proxy never pays for node:http): the app speaks HTTP/1.1 to LocalBindPort; per request
// the proxy walks the compiled discovery chain (chainEval.ts), picks an instance of the chosen
// target (its subset's instances from GET /v1/health/connect/<service>?filter=<Subset.Filter>,
// watched), and sends the request over mTLS to that sidecar with the target's SNI, reusing
// keep-alive connections per target (ARCHITECTURE "TLS cost"). The proxy watches the chain with
// blocking queries (sidecarProxy.ts): a new one applies to the next request, requests in flight
// finish on the old plan.

import type http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import { watch, type AgentApi } from './agentApi.ts';
import { applyHeaderMods, Balancer, chooseTarget, planRequest, rewritePath, type RequestPlan } from './chainEval.ts';
import { requestHash, type RequestHash } from './hashLb.ts';
import type { CompiledDiscoveryChain, DiscoveryTarget } from './chainTypes.ts';
import { H1Pool } from './h1Client.ts';
import type { ResponseHead } from './h1Parse.ts';
import { forwardHeaders, forwardRequestHead, H1ServerConn, nodeHttp, requestHead, type H1Request } from './h1Server.ts';
import { hasBody, readBody } from './httpBody.ts';
import { IdleGc } from './idleGc.ts';
import type { Logger } from './log.ts';
import { M, type Metrics } from './metrics.ts';
import { requestInfo, type HttpRequestInfo } from './routeMatch.ts';
import { retryOnFailure, retryOnResponse, retryPolicyOf } from './retryPolicy.ts';
import type { TlsMaterial } from './tlsMaterial.ts';
import { checkServerSpiffe, instanceAddress, upstreamKey } from './upstream.ts';
import { gatewayAddress, gatewayRoute, resolveMeshGatewayMode } from './meshGatewayMode.ts';
import type { ServiceEntry, Upstream } from './types.ts';

export interface Inst { key: string; host: string; port: number }

/** Hop-by-hop headers are not forwarded (RFC 9110 §7.6.1). */
export const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer']);
export const MAX_BODY = 16 * 1024 * 1024;

export interface L7UpstreamOptions {
  api: AgentApi;
  tls: TlsMaterial;
  metrics: Metrics;
  logger: Logger;
  upstream: Upstream;
  /** The chain the proxy read (it watches the chain: setChain gives later ones). */
  chain: CompiledDiscoveryChain;
  /** The proxy registration's MeshGateway (cross-datacenter targets; see meshGatewayMode.ts). */
  proxyMeshGateway?: () => { Mode?: string } | null | undefined;
}

/** Instances of one target, watched while the chain names it. */
export class TargetWatch {
  instances: Inst[] = [];
  readonly stop = new AbortController();
  readonly first: Promise<void>;
  constructor(api: AgentApi, t: DiscoveryTarget, logger: Logger, gateway?: { path: string; side: 'lan' | 'wan' }) {
    const q = new URLSearchParams();
    // OnlyPassing: warning instances are left out too; otherwise only critical ones are (Consul's rule).
    if (t.Subset?.OnlyPassing) q.set('passing', '1');
    if (t.Subset?.Filter) q.set('filter', t.Subset.Filter);
    if (t.Datacenter) q.set('dc', t.Datacenter);
    let done!: () => void;
    this.first = new Promise((r) => { done = r; });
    void watch<Array<ServiceEntry & { Checks?: Array<{ Status: string }> }> | null>({
      api, logger, signal: this.stop.signal,
      // A target in another datacenter behind mesh gateways (meshGatewayMode.ts): dial the gateways,
      // with the target's SNI and identity check as ever.
      path: gateway?.path ?? `/v1/health/connect/${encodeURIComponent(t.Service)}${q.size ? `?${q.toString()}` : ''}`,
      onChange: (entries) => {
        this.instances = (entries ?? [])
          .filter((e) => !(e.Checks ?? []).some((c) => c.Status === 'critical'))
          .map((e) => { const a = gateway ? gatewayAddress(e, gateway.side) : instanceAddress(e); return { key: `${a.host}:${a.port}`, ...a }; });
        logger.debug('target instances', { target: t.ID, instances: this.instances.map((i) => i.key) });
        done();
      },
    });
  }
}

export class L7UpstreamListener {
  /** Which protocols this listener speaks (sidecarProxy.ts replaces it when the chain's protocol needs another). */
  readonly kind: 'http' | 'http2' = 'http';
  private server: net.Server | undefined;
  protected chain: CompiledDiscoveryChain;
  protected readonly targets = new Map<string, TargetWatch>();
  private readonly agents = new Map<string, http.Agent>();
  /** The fast path's connection pools (h1Client.ts), keyed as the agents are. */
  private readonly pools = new Map<string, H1Pool>();
  /** poolFor's last answer per target object. */
  private readonly lastPool = new WeakMap<DiscoveryTarget, { generation: number; key: string; pool: H1Pool }>();
  /** Connections the fast path serves (closed with the listener). */
  private readonly leanConns = new Set<net.Socket>();
  /** node:http for what the fast path hands over (HTTP/1.0, Upgrade, Expect, ...): made on first use. */
  private fallbackServer: http.Server | undefined;
  protected readonly balancer = new Balancer<Inst>();
  /** After traffic stops: the pools keep 2 idle connections per instance, then the heap is collected. */
  protected readonly idleGc = new IdleGc(undefined, () => { for (const p of this.pools.values()) p.trim(2); });
  protected readonly opts: L7UpstreamOptions;

  constructor(opts: L7UpstreamOptions) {
    this.opts = opts;
    this.chain = opts.chain;
    this.syncTargets();
  }

  /** A new chain (the proxy watches it): the next request is planned on it; requests in flight finish on theirs. */
  setChain(chain: CompiledDiscoveryChain): void {
    this.chain = chain;
    this.syncTargets();
    this.opts.logger.info('discovery chain updated', { upstream: this.opts.upstream.DestinationName, start: chain.StartNode });
  }

  get key(): string {
    return upstreamKey(this.opts.upstream);
  }

  /** Starts watches for targets the chain names and stops those it no longer does. */
  private syncTargets(): void {
    const wanted = this.chain.Targets ?? {};
    for (const [id, w] of this.targets) if (!(id in wanted)) { w.stop.abort(); this.targets.delete(id); }
    const localDc = this.opts.tls.snapshot?.identity.datacenter;
    for (const [id, t] of Object.entries(wanted)) {
      if (this.targets.has(id)) continue;
      const mode = resolveMeshGatewayMode(this.opts.upstream.MeshGateway, this.opts.proxyMeshGateway?.(), t.MeshGateway);
      this.targets.set(id, new TargetWatch(this.opts.api, t, this.opts.logger, gatewayRoute(t.Datacenter, localDc, mode)));
    }
  }

  healthKnown(ms: number): Promise<void> {
    return Promise.race([Promise.all([...this.targets.values()].map((t) => t.first)).then(() => undefined), new Promise<void>((r) => setTimeout(r, ms).unref())]);
  }

  /** The HTTP/1.1 server (the HTTP/2 listener hands it the connections that are not HTTP/2). */
  protected http1Server(): http.Server {
    return nodeHttp().createServer({ keepAlive: true }, (req, res) => { void this.handle(req, res); });
  }

  /**
   * The server that listens on LocalBindPort: HTTP/1.1 parsed by the fast path (h1Server.ts), which
   * hands node:http the connections it does not serve itself.
   */
  protected makeServer(): net.Server {
    return net.createServer((socket) => this.acceptHttp1(socket));
  }

  /** Serves an HTTP/1.1 connection on the fast path. */
  protected acceptHttp1(socket: net.Socket): void {
    this.leanConns.add(socket);
    socket.once('close', () => this.leanConns.delete(socket));
    new H1ServerConn(socket, {
      maxBody: MAX_BODY, large: 'reject',
      handle: (req, conn) => { void this.handleLean(req, conn); },
      fallback: (s) => {
        this.fallbackServer ??= this.http1Server();
        this.fallbackServer.emit('connection', s);
        s.resume();
      },
    });
  }

  async listen(): Promise<net.AddressInfo> {
    const u = this.opts.upstream;
    const server = this.makeServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(u.LocalBindPort, u.LocalBindAddress || '127.0.0.1', () => { server.off('error', reject); resolve(); });
    });
    this.server = server;
    const addr = server.address() as net.AddressInfo;
    this.opts.logger.info(`upstream listener started (${this.kind === 'http' ? 'http' : 'http2, http'})`, { upstream: u.DestinationName, address: `${addr.address}:${addr.port}` });
    return addr;
  }

  address(): net.AddressInfo | undefined {
    return (this.server?.address() as net.AddressInfo | null) ?? undefined;
  }

  /** ring_hash / maglev: the request's hash from the resolver's HashPolicies (hashLb.ts); undefined for other policies. */
  protected hashOf(plan: RequestPlan, info: HttpRequestInfo, sourceIp: string): RequestHash | undefined {
    return plan.lbPolicy === 'ring_hash' || plan.lbPolicy === 'maglev' ? requestHash(plan.loadBalancer?.HashPolicies ?? [], { req: info, sourceIp }) : undefined;
  }

  /** One keep-alive pool per target: its connections carry that target's SNI and identity check. */
  protected agentFor(target: DiscoveryTarget): http.Agent {
    const snap = this.opts.tls.snapshot!;
    // The connect timeout is in the key: a resolver's new ConnectTimeout (same target ID) must reach
    // the pool's new connections, which its createConnection below would otherwise keep at the old value.
    const connectMs = this.connectTimeoutMs(target);
    const key = `${target.ID}#${snap.generation}#${connectMs}`;
    let a = this.agents.get(key);
    if (a) return a;
    // A rotated leaf or root (or timeout): new connections use it; the old pool's requests in flight finish, its idle sockets go.
    for (const [k, old] of this.agents) if (k.startsWith(`${target.ID}#`)) { retire(old); this.agents.delete(k); }
    const td = snap.roots.TrustDomain || snap.identity.trustDomain;
    a = new (nodeHttp().Agent)({ keepAlive: true, maxSockets: 256, maxFreeSockets: 64, timeout: 60_000 });
    a.createConnection = ((options: { host?: string; port?: number }, cb: (err: Error | null, s?: net.Socket) => void) => {
      const conn = tls.connect({
        host: options.host, port: options.port, servername: target.SNI, secureContext: snap.clientContext, rejectUnauthorized: true,
        checkServerIdentity: (_h, cert) => checkServerSpiffe(cert, { service: target.Service, trustDomain: td }),
      });
      // A request goes out as several small writes (head, then body or end): with Nagle's algorithm
      // the later ones wait for the peer's delayed ACK (measured: p50 28.5 → 5.6 ms through the L7
      // path at 20 requests/s). node:http sets this on the sockets it makes itself.
      conn.setNoDelay(true);
      // The connect timeout is this listener's alone and goes once TLS is up: http.Agent re-arms the
      // socket's timer for idle keep-alive sockets, and a listener left here would then destroy a
      // reused, healthy connection with a false "no TLS connection" error (a 503 on its next request).
      const onConnectTimeout = () => conn.destroy(Object.assign(new Error(`no TLS connection within ${connectMs} ms`), { code: 'ETIMEDOUT' }));
      conn.setTimeout(connectMs, onConnectTimeout);
      conn.once('secureConnect', () => { conn.setTimeout(0); conn.off('timeout', onConnectTimeout); });
      void cb;
      return conn;
    }) as unknown as http.Agent['createConnection'];
    this.agents.set(key, a);
    return a;
  }

  /** The fast path's pool per target, as agentFor: the target's SNI and identity check, new ones after a rotation. */
  protected poolFor(target: DiscoveryTarget): H1Pool {
    const snap = this.opts.tls.snapshot!;
    // Per request: the last answer for this target object (a new chain brings new ones) while the
    // TLS material's generation holds and the pool is still the one under its key (no key string
    // built, no timeout parsed).
    const last = this.lastPool.get(target);
    if (last !== undefined && last.generation === snap.generation && this.pools.get(last.key) === last.pool) return last.pool;
    const connectMs = this.connectTimeoutMs(target);
    const key = `${target.ID}#${snap.generation}#${connectMs}`;
    let p = this.pools.get(key);
    if (p) { this.lastPool.set(target, { generation: snap.generation, key, pool: p }); return p; }
    for (const [k, old] of this.pools) if (k.startsWith(`${target.ID}#`)) { old.close(); this.pools.delete(k); }
    const td = snap.roots.TrustDomain || snap.identity.trustDomain;
    // TLS 1.3 resumption for the pool's new connections (a session ticket from an earlier one).
    let session: Buffer | undefined;
    p = new H1Pool((host, port) => {
      const socket = tls.connect({
        host, port, servername: target.SNI, secureContext: snap.clientContext, rejectUnauthorized: true, session,
        checkServerIdentity: (_h, cert) => checkServerSpiffe(cert, { service: target.Service, trustDomain: td }),
      });
      socket.once('session', (s: Buffer) => { session = s; });
      return { socket, ready: 'secureConnect' };
    }, { connectMs, what: 'TLS connection', maxIdlePerPeer: 64 });
    this.pools.set(key, p);
    this.lastPool.set(target, { generation: snap.generation, key, pool: p });
    return p;
  }

  protected connectTimeoutMs(t: DiscoveryTarget): number {
    const c = Number(this.opts.upstream.Config?.['connect_timeout_ms']);
    if (Number.isFinite(c) && c > 0) return c;
    const s = t.ConnectTimeout;
    if (typeof s === 'string' && /^\d+(\.\d+)?s$/.test(s)) return parseFloat(s) * 1000;
    if (typeof s === 'number' && s > 0) return s / 1e6;
    return 5000;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const { logger, metrics, upstream: u } = this.opts;
    this.idleGc.touch();
    const chain = this.chain;
    const url = req.url ?? '/';
    const info = requestInfo(req.method ?? 'GET', url, req.headers);
    let plan: RequestPlan;
    try {
      plan = planRequest(chain, info);
    } catch (err) {
      reply(res, 503, `no route: ${(err as Error).message}`);
      return;
    }
    // The body is held so a retry can send it again. Most requests have none (no Content-Length,
    // no Transfer-Encoding): they skip the read entirely (no async iterator, no promise turns:
    // interpreted JavaScript in the proxy's lite mode, ~2% of the upstream side's CPU profile).
    let body: Buffer = EMPTY;
    if (hasBody(req)) {
      const read = await readBody(req, MAX_BODY);
      if (read === 'too large') { reply(res, 413, 'request body too large'); return; }
      if (read === undefined) return;
      body = read;
    }
    const headers: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(req.headers)) if (v !== undefined && !HOP.has(k)) headers[k] = v;
    applyHeaderMods(headers, plan.requestHeaders);
    const dest = plan.route?.destination;
    const path = rewritePath(url, plan.route?.match, dest?.PrefixRewrite);
    const policy = retryPolicyOf(dest);
    const deadline = plan.requestTimeoutMs !== undefined ? Date.now() + plan.requestTimeoutMs : undefined;
    const hashed = this.hashOf(plan, info, req.socket.remoteAddress ?? '');
    for (let attempt = 0; ; attempt++) {
      const chosen = chooseTarget(plan.targets, (id) => this.targets.get(id)?.instances ?? []);
      if (!chosen || !this.opts.tls.snapshot) {
        metrics.add(M.dialFailures[0], M.dialFailures[1], { upstream: u.DestinationName });
        logger.warn('no healthy instance of any target', { upstream: u.DestinationName, targets: plan.targets });
        reply(res, 503, 'no healthy upstream');
        return;
      }
      const target = chain.Targets[chosen.id]!;
      const inst = this.balancer.pick(chosen.id, plan.lbPolicy, chosen.instances, { hash: hashed?.hash, attempt, ring: plan.loadBalancer?.RingHashConfig })!;
      const left = deadline === undefined ? undefined : deadline - Date.now();
      if (left !== undefined && left <= 0) { reply(res, 504, 'upstream request timeout'); return; }
      this.balancer.begin(inst.key);
      const out = await this.send(target, inst, req.method ?? 'GET', path, headers, body, left);
      this.balancer.end(inst.key);
      const canRetry = policy !== undefined && attempt < policy.numRetries && !res.headersSent;
      if (out.kind === 'error') {
        // The route's RequestTimeout is for the whole request: a timed-out attempt is not tried again.
        if (canRetry && !out.timeout && retryOnFailure(policy, out.connect ? 'connect-failure' : 'reset')) continue;
        logger.warn('upstream request failed', { upstream: u.DestinationName, target: chosen.id, instance: inst.key, error: out.error });
        reply(res, out.timeout ? 504 : 503, out.timeout ? 'upstream request timeout' : 'upstream connect error or disconnect/reset before headers');
        return;
      }
      if (canRetry && retryOnResponse(policy, out.res.statusCode ?? 0, out.res.headers)) { out.res.resume(); continue; }
      const rh: Record<string, string | string[]> = {};
      for (const [k, v] of Object.entries(out.res.headers)) if (v !== undefined && !HOP.has(k)) rh[k] = v;
      applyHeaderMods(rh, plan.responseHeaders);
      if (hashed?.setCookie) rh['set-cookie'] = [...[rh['set-cookie'] ?? []].flat(), hashed.setCookie];
      res.writeHead(out.res.statusCode ?? 502, rh);
      out.res.pipe(res);
      out.res.once('error', () => res.destroy());
      return;
    }
  }

  /** handle() on the fast path: the same plan, retries and answers, without node:http's objects. */
  private async handleLean(req: H1Request, conn: H1ServerConn): Promise<void> {
    const { logger, metrics, upstream: u } = this.opts;
    this.idleGc.touch();
    const chain = this.chain;
    const { method, target: url, headers: reqHeaders } = req.head;
    const info = requestInfo(method, url, reqHeaders);
    let plan: RequestPlan;
    try {
      plan = planRequest(chain, info);
    } catch (err) {
      conn.reply(503, `no route: ${(err as Error).message}`);
      return;
    }
    const dest = plan.route?.destination;
    const path = rewritePath(url, plan.route?.match, dest?.PrefixRewrite);
    let head: string;
    if (plan.requestHeaders.length === 0) {
      // No header changes on the way (most routes): the head's text straight from the request's headers.
      head = forwardRequestHead(method, path, reqHeaders, undefined, req.body.length, u.DestinationName);
    } else {
      const headers: Record<string, string | string[]> = {};
      for (const k in reqHeaders) if (!HOP.has(k)) headers[k] = reqHeaders[k]!;
      applyHeaderMods(headers, plan.requestHeaders);
      headers['content-length'] = String(req.body.length);
      headers.host ??= u.DestinationName;
      head = requestHead(method, path, headers);
    }
    const policy = retryPolicyOf(dest);
    const deadline = plan.requestTimeoutMs !== undefined ? Date.now() + plan.requestTimeoutMs : undefined;
    const hashed = this.hashOf(plan, info, conn.socket.remoteAddress ?? '');
    for (let attempt = 0; ; attempt++) {
      const chosen = chooseTarget(plan.targets, (id) => this.targets.get(id)?.instances ?? []);
      if (!chosen || !this.opts.tls.snapshot) {
        metrics.add(M.dialFailures[0], M.dialFailures[1], { upstream: u.DestinationName });
        logger.warn('no healthy instance of any target', { upstream: u.DestinationName, targets: plan.targets });
        conn.reply(503, 'no healthy upstream');
        return;
      }
      const target = chain.Targets[chosen.id]!;
      const inst = this.balancer.pick(chosen.id, plan.lbPolicy, chosen.instances, { hash: hashed?.hash, attempt, ring: plan.loadBalancer?.RingHashConfig })!;
      const left = deadline === undefined ? undefined : deadline - Date.now();
      if (left !== undefined && left <= 0) { conn.reply(504, 'upstream request timeout'); return; }
      this.balancer.begin(inst.key);
      const out = await this.poolFor(target).request(inst.host, inst.port, method, head, req.body, left, inst.key);
      this.balancer.end(inst.key);
      const canRetry = policy !== undefined && attempt < policy.numRetries && !conn.headSent;
      if (out.kind === 'error') {
        if (canRetry && !out.timeout && retryOnFailure(policy, out.connect ? 'connect-failure' : 'reset')) continue;
        logger.warn('upstream request failed', { upstream: u.DestinationName, target: chosen.id, instance: inst.key, error: out.error });
        conn.reply(out.timeout ? 504 : 503, out.timeout ? 'upstream request timeout' : 'upstream connect error or disconnect/reset before headers');
        return;
      }
      const rhead = out.res.head;
      if (canRetry && retryOnResponse(policy, rhead.status, rhead.headers)) { out.res.discard(); continue; }
      if (plan.responseHeaders.length === 0 && !hashed?.setCookie) conn.forwardHead(rhead);
      else conn.writeHead(rhead.status, rhead.reason, forwardedResponseHeaders(conn, rhead, plan.responseHeaders, hashed?.setCookie));
      out.res.relay(conn);
      return;
    }
  }

  protected send(target: DiscoveryTarget, inst: Inst, method: string, path: string, headers: Record<string, string | string[]>, body: Buffer, timeoutMs: number | undefined):
    Promise<{ kind: 'ok'; res: http.IncomingMessage } | { kind: 'error'; error: Error; connect: boolean; timeout: boolean }> {
    return new Promise((resolve) => {
      let connected = false;
      let timedOut = false;
      const h = { ...headers, 'content-length': String(body.length) };
      const r = nodeHttp().request({ host: inst.host, port: inst.port, method, path, headers: h, agent: this.agentFor(target) }, (res) => {
        if (timer) clearTimeout(timer);
        resolve({ kind: 'ok', res });
      });
      const timer = timeoutMs !== undefined ? setTimeout(() => { timedOut = true; r.destroy(new Error(`no answer within ${Math.round(timeoutMs)} ms`)); }, timeoutMs) : undefined;
      r.on('socket', (s) => { if ((s as tls.TLSSocket).encrypted && !s.connecting && (s as tls.TLSSocket).authorized) connected = true; else s.once('secureConnect', () => { connected = true; }); });
      r.on('error', (error) => {
        if (timer) clearTimeout(timer);
        resolve({ kind: 'error', error, connect: !connected, timeout: timedOut });
      });
      r.end(body);
    });
  }

  async close(): Promise<void> {
    this.idleGc.stop();
    for (const t of this.targets.values()) t.stop.abort();
    this.targets.clear();
    for (const a of this.agents.values()) a.destroy();
    this.agents.clear();
    for (const p of this.pools.values()) p.close();
    this.pools.clear();
    for (const c of this.leanConns) c.destroy();
    this.leanConns.clear();
    this.fallbackServer?.closeAllConnections();
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    const closed = new Promise<void>((r) => s.close(() => r()));
    (s as Partial<http.Server>).closeAllConnections?.();
    await this.closeConnections();
    await closed;
  }

  /** Connections the HTTP/2 listener holds itself. */
  protected async closeConnections(): Promise<void> {}
}

const EMPTY = Buffer.alloc(0);

/** The peer's answer headers as forwarded (h1Server.forwardHeaders), with the chain's changes and the hash policy's cookie. */
function forwardedResponseHeaders(conn: H1ServerConn, head: ResponseHead, mods: RequestPlan['responseHeaders'], setCookie?: string): Record<string, string | string[]> {
  const rh = forwardHeaders(conn, head);
  applyHeaderMods(rh, mods);
  if (setCookie) rh['set-cookie'] = [...[rh['set-cookie'] ?? []].flat(), setCookie];
  return rh;
}

function retire(a: http.Agent): void {
  (a as http.Agent & { keepAlive: boolean }).keepAlive = false;
  for (const list of Object.values(a.freeSockets)) for (const sock of list ?? []) sock.destroy();
}

function reply(res: http.ServerResponse, status: number, text: string): void {
  if (res.headersSent) { res.destroy(); return; }
  res.writeHead(status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
