// The public listener's HTTP mode (loaded only when the proxied service's protocol is
// http/http2/grpc): an allowed mTLS connection is parsed as HTTP/1.1 so intentions with
// Permissions can be enforced per request (l7Intentions.ts); a denied request gets Envoy's
// "403 RBAC: access denied" and a log line. Requests go on to the local app over keep-alive
// connections. The intentions are watched: GET /v1/connect/intentions/match?by=destination.
// A caller that negotiated ALPN h2 (an http2/grpc upstream) is served by h2Inbound.ts, imported on
// the first such connection, with the same decisions.

import type http from 'node:http';
import net from 'node:net';
import type tls from 'node:tls';
import { watch, type AgentApi } from './agentApi.ts';
import { decideL7, defaultFromAgentSelf, type IntentionDefault, type L7Intention } from './l7Intentions.ts';
import { IdleGc } from './idleGc.ts';
import type { Logger } from './log.ts';
import { M, type Metrics } from './metrics.ts';
import { requestInfo, type HttpRequestInfo } from './routeMatch.ts';
import type { H2Inbound } from './h2Inbound.ts';
import { hasBody } from './httpBody.ts';
import { H1Pool } from './h1Client.ts';
import { forwardRequestHead, H1ServerConn, nodeHttp, type H1Request } from './h1Server.ts';
import type { AuthorizeResult } from './types.ts';

/** The largest request body the fast path holds; a larger Content-Length is streamed by node:http. */
const MAX_BODY = 16 * 1024 * 1024;
const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer']);

export interface L7InboundOptions {
  api: AgentApi;
  metrics: Metrics;
  logger: Logger;
  service: string;
  localApp: () => { host: string; port: number };
  /** The L4 decision (agent authorize, cached) for callers no intention names. */
  authorize: (uri: string, serial: string) => Promise<AuthorizeResult>;
}

export interface Caller { uri: string; service: string; serial: string }

export class L7Inbound {
  private intentions: L7Intention[] = [];
  /** node:http for what the fast path hands over: made on first use (h1Server.nodeHttp). */
  private server: http.Server | undefined;
  private readonly callers = new WeakMap<object, Caller>();
  // agentKeepAliveTimeoutBuffer: Node drops a pooled socket this long before the app's announced
  // Keep-Alive timeout; its default (1 s) against an app announcing timeout=1 means no socket is
  // ever reused and every request opens a new connection to the app (measured in bench:proxy).
  // The fallback's pool to the app (made on first use).
  private app: http.Agent | undefined;
  /** The fast path's keep-alive connections to the app (h1Client.ts). */
  private readonly pool = new H1Pool((host, port) => ({ socket: net.connect({ host, port }), ready: 'connect' }), { connectMs: 10_000, what: 'connection' });
  /** Connections the fast path serves (closed with the listener). */
  private readonly leanConns = new Set<net.Socket>();
  private readonly stop = new AbortController();
  readonly ready: Promise<void>;
  /** After traffic stops: the pool to the app keeps 2 idle connections, then the heap is collected. */
  private readonly idleGc = new IdleGc(undefined, () => this.pool.trim(2));
  private readonly opts: L7InboundOptions;

  constructor(opts: L7InboundOptions) {
    this.opts = opts;
    let done!: () => void;
    this.ready = new Promise((r) => { done = r; });
    void watch<Record<string, L7Intention[] | null>>({
      api: opts.api, logger: opts.logger, signal: this.stop.signal,
      path: `/v1/connect/intentions/match?by=destination&name=${encodeURIComponent(opts.service)}`,
      onChange: (m) => { this.intentions = m[opts.service] ?? []; done(); },
    });
    void this.intentionDefault();
  }

  private fallback: Promise<IntentionDefault | undefined> | undefined;
  /** The default intention policy (GET /v1/agent/self), read once; after a failure the next request tries again. */
  private intentionDefault(): Promise<IntentionDefault | undefined> {
    this.fallback ??= this.opts.api.get<unknown>('/v1/agent/self', this.stop.signal).then((r) => defaultFromAgentSelf(r.body), (err: Error) => {
      this.opts.logger.warn('default intention policy unknown (agent/self failed): requests no permission matches are denied', { error: err });
      this.fallback = undefined;
      return undefined;
    });
    return this.fallback;
  }

  /** Takes over an authenticated connection; `service` is the caller's from its SPIFFE ID. */
  accept(socket: tls.TLSSocket, caller: Caller): void {
    if (socket.alpnProtocol === 'h2') { this.acceptH2(socket, caller); return; }
    this.callers.set(socket, caller);
    // HTTP/1.1 on the fast path (h1Server.ts); node:http takes what it does not serve, and bodies
    // over MAX_BODY (which it streams to the app instead of holding them).
    this.leanConns.add(socket);
    socket.once('close', () => this.leanConns.delete(socket));
    new H1ServerConn(socket, {
      maxBody: MAX_BODY, large: 'fallback',
      handle: (req, conn) => { void this.handleLean(req, conn, caller); },
      fallback: (s) => { this.fallbackServer().emit('connection', s); s.resume(); },
    });
  }

  private h2: Promise<H2Inbound> | undefined;
  private acceptH2(socket: tls.TLSSocket, caller: Caller): void {
    socket.pause();
    this.h2 ??= import('./h2Inbound.ts').then(({ H2Inbound }) => new H2Inbound({
      logger: this.opts.logger, metrics: this.opts.metrics, localApp: this.opts.localApp,
      decide: (c, info) => this.decide(c, info), touch: () => this.idleGc.touch(),
    }));
    void this.h2.then((h) => { if (this.stop.signal.aborted) socket.destroy(); else h.accept(socket, caller); });
  }

  /** Whether the caller may make this request: its L7 intention, else the L4 answer. */
  async decide(caller: Caller | undefined, info: HttpRequestInfo): Promise<{ allowed: boolean; reason: string }> {
    if (!caller) return { allowed: false, reason: 'no caller identity' };
    const l7 = decideL7(this.intentions, caller.service, info, await this.intentionDefault());
    if (l7) return l7;
    const r = await this.opts.authorize(caller.uri, caller.serial);
    return { allowed: r.Authorized, reason: r.Reason };
  }

  private fallbackServer(): http.Server {
    this.server ??= nodeHttp().createServer({ keepAlive: true }, (req, res) => { void this.handle(req, res); });
    return this.server;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const { logger, metrics } = this.opts;
    this.idleGc.touch();
    const caller = this.callers.get(req.socket);
    const url = req.url ?? '/';
    const info = requestInfo(req.method ?? 'GET', url, req.headers);
    const { allowed, reason } = await this.decide(caller, info);
    if (!allowed) {
      metrics.add(M.denials[0], M.denials[1], {});
      logger.info('request denied', { source: caller?.uri, method: info.method, path: info.path, reason });
      const body = 'RBAC: access denied';
      res.writeHead(403, { 'content-type': 'text/plain', 'content-length': body.length });
      res.end(body);
      return;
    }
    const app = this.opts.localApp();
    const headers: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(req.headers)) if (v !== undefined && !HOP.has(k)) headers[k] = v;
    if (caller) headers['x-forwarded-client-cert'] = `URI=${caller.uri}`;
    this.app ??= new (nodeHttp().Agent)({ keepAlive: true, maxSockets: 256, maxFreeSockets: 64, agentKeepAliveTimeoutBuffer: 100 } as http.AgentOptions);
    const out = nodeHttp().request({ host: app.host, port: app.port, method: req.method, path: url, headers, agent: this.app }, (r) => {
      const rh: Record<string, string | string[]> = {};
      for (const [k, v] of Object.entries(r.headers)) if (v !== undefined && !HOP.has(k)) rh[k] = v;
      res.writeHead(r.statusCode ?? 502, rh);
      r.pipe(res);
      r.once('error', () => res.destroy());
    });
    out.on('error', (err) => {
      logger.warn('local app request failed', { address: `${app.host}:${app.port}`, error: err });
      if (res.headersSent) { res.destroy(); return; }
      const body = 'upstream connect error or disconnect/reset before headers';
      res.writeHead(503, { 'content-type': 'text/plain', 'content-length': body.length });
      res.end(body);
    });
    // A request without a body (most) ends at once: req.pipe would add and remove a handful of
    // listeners on both streams per request, interpreted JavaScript in the proxy's lite mode.
    if (hasBody(req)) req.pipe(out);
    else out.end();
  }

  /** handle() on the fast path: the same decision and answers, without node:http's objects. */
  private async handleLean(req: H1Request, conn: H1ServerConn, caller: Caller): Promise<void> {
    const { logger, metrics } = this.opts;
    this.idleGc.touch();
    const { method, target: url, headers: rq } = req.head;
    const info = requestInfo(method, url, rq);
    const { allowed, reason } = await this.decide(caller, info);
    if (!allowed) {
      metrics.add(M.denials[0], M.denials[1], {});
      logger.info('request denied', { source: caller.uri, method: info.method, path: info.path, reason });
      conn.reply(403, 'RBAC: access denied');
      return;
    }
    const app = this.opts.localApp();
    // The caller's headers without hop-by-hop ones, its identity in XFCC, and (a chunked body was
    // decoded, h1Server.ts) the body's length; written as text at once (forwardRequestHead).
    const head = forwardRequestHead(method, url, rq, ['x-forwarded-client-cert', `URI=${caller.uri}`],
      req.head.body === 'chunked' ? req.body.length : undefined, `${app.host}:${app.port}`);
    const out = await this.pool.request(app.host, app.port, method, head, req.body, undefined);
    if (out.kind === 'error') {
      logger.warn('local app request failed', { address: `${app.host}:${app.port}`, error: out.error });
      conn.reply(503, 'upstream connect error or disconnect/reset before headers');
      return;
    }
    conn.forwardHead(out.res.head);
    out.res.relay(conn);
  }

  close(): void {
    this.idleGc.stop();
    this.pool.close();
    for (const c of this.leanConns) c.destroy();
    this.leanConns.clear();
    this.stop.abort();
    this.server?.closeAllConnections();
    this.app?.destroy();
    void this.h2?.then((h) => h.close());
  }
}
