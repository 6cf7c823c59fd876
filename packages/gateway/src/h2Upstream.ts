// The upstream listener for chains whose protocol is http2 or grpc (loaded only for those, so a
// proxy without one never loads node:http2). On LocalBindPort it takes HTTP/2 cleartext with prior
// knowledge (h2c: what gRPC clients speak to a plain local port) and, on the same port, HTTP/1.1
// (told apart by the first bytes: only HTTP/2's connection preface starts with "PRI"), like
// Envoy's codec_type AUTO. Each HTTP/2 stream is planned on the compiled chain exactly as an
// HTTP/1.1 request is (chainEval.ts: routes, splits, resolver, failover, header edits, timeout,
// retries) and sent over mTLS to the chosen instance's sidecar, offering ALPN h2 then http/1.1:
// one multiplexed HTTP/2 session per target instance, kept and shared by every request to it; an
// instance whose sidecar picks http/1.1 gets the request over HTTP/1.1 (the base class's pool).

import type http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { Writable } from 'node:stream';
import tls from 'node:tls';
import { applyHeaderMods, chooseTarget, planRequest, rewritePath, type RequestPlan } from './chainEval.ts';
import type { DiscoveryTarget, HeaderModifiers } from './chainTypes.ts';
import { isGrpcContentType } from './grpc.ts';
import { awaitResponse, endToEndHeaders, localReply, relayResponse, type H2Headers } from './h2Relay.ts';
import { HOP, L7UpstreamListener, MAX_BODY, type Inst } from './l7Upstream.ts';
import { M } from './metrics.ts';
import { retryOnFailure, retryOnResponse, retryPolicyOf, type RetryPolicy } from './retryPolicy.ts';
import { requestInfo } from './routeMatch.ts';
import { checkServerSpiffe } from './upstream.ts';
import { checkResumedServer, sessionKey, TlsSessionCache } from './tlsSessions.ts';

/** A request body kept for retries up to this size; a larger one is streamed and not retried (Envoy's buffer limit). */
const RETRY_BUFFER = 1024 * 1024;
/** An HTTP/2 session to a sidecar with no stream for this long is closed (gracefully). */
const SESSION_IDLE_MS = 60_000;
/** How long a new local connection may stay silent before its protocol is known. */
const FIRST_BYTES_MS = 60_000;

type Conn = { kind: 'h2'; session: http2.ClientHttp2Session } | { kind: 'h1' } | { kind: 'error'; error: Error };

/**
 * The caller's request body, fed to the current attempt's stream with backpressure and, while it
 * fits in `keep` bytes, remembered so a retry can send it again.
 */
export class ReplayableBody {
  private readonly chunks: Buffer[] = [];
  private size = 0;
  private overflow = false;
  private ended = false;
  private started = false;
  private current: NodeJS.WritableStream | undefined;
  private readonly src: NodeJS.ReadableStream & { pause(): unknown; resume(): unknown };
  private readonly keep: number;
  constructor(src: NodeJS.ReadableStream & { pause(): unknown; resume(): unknown }, keep: number) {
    this.src = src;
    this.keep = keep;
  }

  /** Whether the body so far (all of it, once ended) can be sent again. */
  get replayable(): boolean {
    return !this.overflow;
  }

  /** Sends the body (what was kept, then the rest as it comes) to `dest`, ending it with the body. */
  attach(dest: NodeJS.WritableStream): void {
    this.current = dest;
    for (const c of this.chunks) dest.write(c);
    if (this.ended) { dest.end(); return; }
    if (this.started) { this.src.resume(); return; }
    this.started = true;
    this.src.on('data', (c: Buffer) => {
      if (!this.overflow) {
        this.size += c.length;
        if (this.size > this.keep) { this.overflow = true; this.chunks.length = 0; } else this.chunks.push(c);
      }
      const d = this.current;
      if (d && !d.write(c)) {
        this.src.pause();
        d.once('drain', () => { if (this.current === d) this.src.resume(); });
      }
    });
    this.src.once('end', () => { this.ended = true; this.current?.end(); });
  }

  /** Stops feeding the current attempt (it is being abandoned for a retry). */
  detach(): void {
    this.current = undefined;
  }

  /** The whole body (for an HTTP/1.1 hop), at most `max` bytes. */
  async readAll(max: number): Promise<Buffer | undefined> {
    const parts: Buffer[] = [];
    let n = 0;
    let tooBig = false;
    await new Promise<void>((resolve, reject) => {
      const sink = new Writable({
        write(c: Buffer, _e: BufferEncoding, cb: () => void) { n += c.length; if (n > max) tooBig = true; else parts.push(c); cb(); },
        final(cb: () => void) { resolve(); cb(); },
      });
      sink.on('error', reject);
      this.attach(sink);
    });
    return tooBig ? undefined : Buffer.concat(parts);
  }
}

export class H2UpstreamListener extends L7UpstreamListener {
  override readonly kind = 'http2';
  /** Sessions to sidecars by target, instance and certificate generation. */
  private readonly conns = new Map<string, Promise<Conn>>();
  private readonly accepted = new Set<net.Socket>();
  private readonly inSessions = new Set<http2.ServerHttp2Session>();
  private h1: http.Server | undefined;
  /** TLS sessions per instance and SNI: a session to a sidecar made again (idle close, failure) resumes. */
  private readonly tlsSessions = new TlsSessionCache(this.opts.tls);

  protected override makeServer(): net.Server {
    const h1 = this.http1Server();
    this.h1 = h1;
    return net.createServer({ noDelay: true }, (socket) => {
      this.accepted.add(socket);
      socket.once('close', () => this.accepted.delete(socket));
      socket.on('error', () => socket.destroy());
      // The first bytes decide the protocol; they are put back for the server that takes the connection.
      // A connection that sends nothing does not hold a socket for ever (the servers' own timeouts start after).
      socket.setTimeout(FIRST_BYTES_MS, () => socket.destroy());
      socket.once('data', (first: Buffer) => {
        socket.setTimeout(0);
        socket.pause();
        socket.unshift(first);
        if (first.subarray(0, 3).toString('latin1') === 'PRI') this.acceptH2(socket);
        else { h1.emit('connection', socket); socket.resume(); }
      });
    });
  }

  private acceptH2(socket: net.Socket): void {
    const session = http2.performServerHandshake(socket);
    this.inSessions.add(session);
    session.once('close', () => this.inSessions.delete(session));
    session.on('error', (err) => this.opts.logger.debug('local HTTP/2 session error', { error: err }));
    session.on('stream', (stream, headers) => { void this.handleStream(stream, headers); });
    // Not resumed: the session reads the socket itself, starting with the unshifted first bytes
    // (resuming would hand them to a 'data' event nobody listens to).
  }

  private async handleStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): Promise<void> {
    const { logger, metrics, upstream: u } = this.opts;
    this.idleGc.touch();
    stream.on('error', () => { /* a caller's reset: the onward stream is cancelled through 'close' */ });
    const chain = this.chain;
    const grpc = isGrpcContentType(headers['content-type']);
    const method = String(headers[':method'] ?? 'GET');
    const url = String(headers[':path'] ?? '/');
    const info = requestInfo(method, url, headers);
    let plan: RequestPlan;
    try {
      plan = planRequest(chain, info);
    } catch (err) {
      localReply(stream, 503, `no route: ${(err as Error).message}`, grpc);
      return;
    }
    const dest = plan.route?.destination;
    const policy = retryPolicyOf(dest);
    const fwd = endToEndHeaders(headers);
    applyHeaderMods(fwd, plan.requestHeaders);
    const path = rewritePath(url, plan.route?.match, dest?.PrefixRewrite);
    const authority = String(headers[':authority'] ?? headers.host ?? u.DestinationName);
    const body = new ReplayableBody(stream, policy ? RETRY_BUFFER : 0);
    const deadline = plan.requestTimeoutMs !== undefined ? Date.now() + plan.requestTimeoutMs : undefined;
    const hashed = this.hashOf(plan, info, stream.session?.socket?.remoteAddress ?? '');
    const responseMods = hashed?.setCookie ? [...plan.responseHeaders, { Add: { 'set-cookie': hashed.setCookie } }] : plan.responseHeaders;
    for (let attempt = 0; ; attempt++) {
      if (stream.closed) return;
      const chosen = chooseTarget(plan.targets, (id) => this.targets.get(id)?.instances ?? []);
      if (!chosen || !this.opts.tls.snapshot) {
        metrics.add(M.dialFailures[0], M.dialFailures[1], { upstream: u.DestinationName });
        logger.warn('no healthy instance of any target', { upstream: u.DestinationName, targets: plan.targets });
        localReply(stream, 503, 'no healthy upstream', grpc);
        return;
      }
      const target = chain.Targets[chosen.id]!;
      const inst = this.balancer.pick(chosen.id, plan.lbPolicy, chosen.instances, { hash: hashed?.hash, attempt, ring: plan.loadBalancer?.RingHashConfig })!;
      const left = deadline === undefined ? undefined : deadline - Date.now();
      if (left !== undefined && left <= 0) { localReply(stream, 504, 'upstream request timeout', grpc); return; }
      const canRetry = (p: RetryPolicy | undefined): p is RetryPolicy => p !== undefined && attempt < p.numRetries && body.replayable;
      const conn = await this.connFor(target, inst);
      if (stream.closed) return; // the caller gave up while the connection was made
      if (conn.kind === 'error') {
        metrics.add(M.dialFailures[0], M.dialFailures[1], { upstream: u.DestinationName });
        if (canRetry(policy) && retryOnFailure(policy, 'connect-failure')) continue;
        logger.warn('upstream connection failed', { upstream: u.DestinationName, target: chosen.id, instance: inst.key, error: conn.error });
        localReply(stream, 503, 'upstream connect error or disconnect/reset before headers', grpc);
        return;
      }
      if (conn.kind === 'h1') { await this.viaHttp1(stream, target, inst, method, path, authority, fwd, body, left, responseMods, grpc); return; }
      let out: http2.ClientHttp2Stream;
      try {
        out = conn.session.request({ ...fwd, ':method': method, ':path': path, ':authority': authority, ':scheme': 'https' }, { endStream: false });
      } catch (err) {
        // The session went away between the lookup and the request (GOAWAY, close): a connect failure for retries.
        this.dropConn(target, inst);
        if (canRetry(policy) && retryOnFailure(policy, 'connect-failure')) continue;
        logger.warn('upstream request failed', { upstream: u.DestinationName, instance: inst.key, error: err as Error });
        localReply(stream, 503, 'upstream connect error or disconnect/reset before headers', grpc);
        return;
      }
      // Errors are read from awaitResponse/relayResponse; an abandoned attempt's late ones must not crash the proxy.
      out.on('error', () => {});
      this.balancer.begin(inst.key);
      out.once('close', () => this.balancer.end(inst.key));
      const onCallerGone = () => { if (!out.closed) out.close(http2.constants.NGHTTP2_CANCEL); };
      stream.once('close', onCallerGone);
      body.attach(out);
      const res = await awaitResponse(out, left);
      if (res.kind === 'error') {
        body.detach();
        if (stream.closed) return;
        if (canRetry(policy) && !res.timeout && retryOnFailure(policy, res.refused ? 'refused-stream' : 'reset')) continue;
        logger.warn('upstream request failed', { upstream: u.DestinationName, target: chosen.id, instance: inst.key, error: res.error });
        localReply(stream, res.timeout ? 504 : 503, res.timeout ? 'upstream request timeout' : 'upstream connect error or disconnect/reset before headers', grpc);
        return;
      }
      if (canRetry(policy) && retryOnResponse(policy, Number(res.headers[':status'] ?? 0), res.headers)) {
        body.detach();
        out.close(http2.constants.NGHTTP2_CANCEL);
        stream.off('close', onCallerGone);
        continue;
      }
      relayResponse(out, stream, res.headers, res.flags, responseMods);
      return;
    }
  }

  /** The peer's sidecar chose HTTP/1.1: the request goes over the HTTP/1.1 pool, its answer back as HTTP/2. */
  private async viaHttp1(stream: http2.ServerHttp2Stream, target: DiscoveryTarget, inst: Inst, method: string, path: string, authority: string, fwd: H2Headers,
    body: ReplayableBody, left: number | undefined, mods: readonly HeaderModifiers[], grpc: boolean): Promise<void> {
    const buf = body.replayable ? await body.readAll(MAX_BODY) : undefined;
    if (!buf) { localReply(stream, 413, 'request body too large', grpc); return; }
    const h: Record<string, string | string[]> = { host: authority };
    for (const [k, v] of Object.entries(fwd)) if (!HOP.has(k)) h[k] = v;
    this.balancer.begin(inst.key);
    const out = await this.send(target, inst, method, path, h, buf, left);
    this.balancer.end(inst.key);
    if (out.kind === 'error') {
      localReply(stream, out.timeout ? 504 : 503, out.timeout ? 'upstream request timeout' : 'upstream connect error or disconnect/reset before headers', grpc);
      return;
    }
    const rh: Record<string, string | string[] | number> = {};
    for (const [k, v] of Object.entries(out.res.headers)) if (v !== undefined && !HOP.has(k) && k !== 'host') rh[k] = v;
    applyHeaderMods(rh as H2Headers, mods);
    rh[':status'] = out.res.statusCode ?? 502;
    if (stream.closed) { out.res.destroy(); return; }
    stream.respond(rh, { waitForTrailers: true });
    stream.once('wantTrailers', () => { if (!stream.closed) stream.sendTrailers(endToEndHeaders(out.res.trailers)); });
    out.res.pipe(stream);
    out.res.once('error', () => stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR));
    stream.once('close', () => { if (!out.res.readableEnded) out.res.destroy(); });
  }

  private connKey(target: DiscoveryTarget, inst: Inst): string {
    return `${target.ID}|${inst.key}`;
  }

  private dropConn(target: DiscoveryTarget, inst: Inst): void {
    this.conns.delete(`${this.connKey(target, inst)}#${this.opts.tls.snapshot?.generation}`);
  }

  /**
   * The session to a target instance's sidecar: made on first use with the target's SNI and
   * identity check, offering ALPN h2 and http/1.1, then shared by every request to it until it
   * closes, goes away or the certificates rotate (the old one then finishes its streams and closes).
   */
  private connFor(target: DiscoveryTarget, inst: Inst): Promise<Conn> {
    const snap = this.opts.tls.snapshot!;
    const base = this.connKey(target, inst);
    const key = `${base}#${snap.generation}`;
    const have = this.conns.get(key);
    if (have) return have;
    for (const [k, old] of this.conns) {
      if (k.startsWith(`${base}#`)) { this.conns.delete(k); void old.then((c) => { if (c.kind === 'h2') c.session.close(); }); }
    }
    const td = snap.roots.TrustDomain || snap.identity.trustDomain;
    const connectMs = this.connectTimeoutMs(target);
    const sessKey = sessionKey(inst.host, inst.port, target.SNI ?? '');
    const checkIdentity = (cert: tls.PeerCertificate) => checkServerSpiffe(cert, { service: target.Service, trustDomain: td });
    const offered = this.tlsSessions.get(sessKey);
    const p = new Promise<Conn>((resolve) => {
      const sock = tls.connect({
        host: inst.host, port: inst.port, servername: target.SNI, secureContext: snap.clientContext, rejectUnauthorized: true,
        ALPNProtocols: ['h2', 'http/1.1'],
        checkServerIdentity: (_h, cert) => checkIdentity(cert),
        session: offered?.session,
      });
      this.tlsSessions.track(sock, sessKey, snap.generation, offered);
      sock.setNoDelay(true); // as every proxied socket (pipe.ts)
      const forget = () => { if (this.conns.get(key) === p) this.conns.delete(key); };
      // Removed once TLS is up (below): a socket that falls back to the HTTP/1.1 pool gets its idle timer re-armed there.
      const onConnectTimeout = () => sock.destroy(Object.assign(new Error(`no TLS connection within ${connectMs} ms`), { code: 'ETIMEDOUT' }));
      sock.setTimeout(connectMs, onConnectTimeout);
      const onError = (error: Error) => { forget(); this.tlsSessions.forget(sessKey); resolve({ kind: 'error', error }); };
      sock.once('error', onError);
      sock.once('secureConnect', () => {
        const wrongServer = checkResumedServer(sock, offered, checkIdentity);
        if (wrongServer) { sock.destroy(wrongServer); return; }
        sock.off('error', onError);
        sock.setTimeout(0);
        sock.off('timeout', onConnectTimeout);
        if (sock.alpnProtocol !== 'h2') {
          sock.destroy();
          this.opts.logger.info('sidecar did not offer h2, using HTTP/1.1', { target: target.ID, instance: inst.key, alpn: sock.alpnProtocol });
          resolve({ kind: 'h1' });
          return;
        }
        const session = http2.connect(`https://${inst.host}:${inst.port}`, { createConnection: () => sock });
        session.on('error', (err) => this.opts.logger.debug('sidecar HTTP/2 session error', { instance: inst.key, error: err }));
        session.once('close', forget);
        session.once('goaway', forget);
        session.setTimeout(SESSION_IDLE_MS, () => { forget(); session.close(); });
        resolve({ kind: 'h2', session });
      });
    });
    this.conns.set(key, p);
    return p;
  }

  protected override async closeConnections(): Promise<void> {
    this.tlsSessions.close();
    for (const p of this.conns.values()) void p.then((c) => { if (c.kind === 'h2') c.session.destroy(); });
    this.conns.clear();
    for (const s of this.inSessions) s.destroy();
    for (const s of this.accepted) s.destroy();
    this.h1?.closeAllConnections();
  }
}
