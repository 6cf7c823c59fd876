// The public listener's HTTP/2 mode: a caller whose sidecar negotiated ALPN h2 over the mTLS
// connection (an upstream of protocol http2 or grpc) gets an HTTP/2 session here. Each stream is
// decided like an HTTP/1.1 request (L7 intentions, else the L4 answer; l7Inbound.ts decide()) —
// for gRPC the path is /pkg.Service/Method, so permissions match methods — and a denied one gets
// Envoy's RBAC answer: 403 "RBAC: access denied", or for a gRPC call HTTP 200 with grpc-status 7
// (PERMISSION_DENIED) and that grpc-message, since gRPC clients read only grpc-status. Allowed
// streams go to the local app over one shared HTTP/2 cleartext (h2c) session, as Envoy's
// local_app cluster does for http2/grpc services; trailers and streaming pass through (h2Relay.ts).

import http2 from 'node:http2';
import type tls from 'node:tls';
import { isGrpcContentType } from './grpc.ts';
import { awaitResponse, endToEndHeaders, localReply, relayResponse } from './h2Relay.ts';
import type { Caller } from './types.ts';
import type { Logger } from './log.ts';
import { M, type Metrics } from './metrics.ts';
import { requestInfo, type HttpRequestInfo } from './routeMatch.ts';

export interface H2InboundOptions {
  logger: Logger;
  metrics: Metrics;
  localApp: () => { host: string; port: number };
  decide: (caller: Caller, info: HttpRequestInfo) => Promise<{ allowed: boolean; reason: string }>;
  touch: () => void;
}

export class H2Inbound {
  private readonly sessions = new Set<http2.Http2Session>();
  private app: { key: string; session: http2.ClientHttp2Session } | undefined;
  private closed = false;
  private readonly opts: H2InboundOptions;
  constructor(opts: H2InboundOptions) {
    this.opts = opts;
  }

  accept(socket: tls.TLSSocket, caller: Caller): void {
    const session = http2.performServerHandshake(socket);
    this.sessions.add(session);
    session.once('close', () => this.sessions.delete(session));
    session.on('error', (err) => this.opts.logger.debug('caller HTTP/2 session error', { source: caller.uri, error: err }));
    session.on('stream', (stream, headers) => { void this.handle(stream, headers, caller); });
    // Not resumed: the session reads the socket itself (bytes already buffered included).
  }

  /** One h2c session to the local app, made again when it closes or the app's address changes. */
  private appSession(): http2.ClientHttp2Session {
    const { host, port } = this.opts.localApp();
    const key = `${host}:${port}`;
    const cur = this.app;
    if (cur && cur.key === key && !cur.session.closed && !cur.session.destroyed) return cur.session;
    cur?.session.close();
    const session = http2.connect(`http://${host.includes(':') ? `[${host}]` : host}:${port}`);
    const entry = { key, session };
    session.on('error', (err) => this.opts.logger.warn('local app connection failed', { address: key, error: err }));
    const forget = () => { if (this.app === entry) this.app = undefined; };
    session.once('close', forget);
    session.once('goaway', forget);
    this.app = entry;
    return session;
  }

  private async handle(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, caller: Caller): Promise<void> {
    const { logger, metrics } = this.opts;
    this.opts.touch();
    stream.on('error', () => { /* the caller's reset: the app's stream is cancelled through 'close' */ });
    const grpc = isGrpcContentType(headers['content-type']);
    const method = String(headers[':method'] ?? 'GET');
    const url = String(headers[':path'] ?? '/');
    stream.pause();
    const { allowed, reason } = await this.opts.decide(caller, requestInfo(method, url, headers));
    if (!allowed) {
      metrics.add(M.denials[0], M.denials[1], {});
      logger.info('request denied', { source: caller.uri, method, path: url, grpc, reason });
      localReply(stream, 403, 'RBAC: access denied', grpc);
      return;
    }
    if (stream.closed || this.closed) return;
    const fwd = endToEndHeaders(headers);
    fwd['x-forwarded-client-cert'] = `URI=${caller.uri}`;
    let out: http2.ClientHttp2Stream;
    try {
      out = this.appSession().request({ ...fwd, ':method': method, ':path': url, ':authority': String(headers[':authority'] ?? 'localhost'), ':scheme': 'http' }, { endStream: false });
    } catch (err) {
      logger.warn('local app request failed', { error: err as Error });
      localReply(stream, 503, 'upstream connect error or disconnect/reset before headers', grpc);
      return;
    }
    out.on('error', () => { /* read by awaitResponse / relayResponse */ });
    stream.once('close', () => { if (!out.closed) out.close(http2.constants.NGHTTP2_CANCEL); });
    stream.pipe(out);
    const res = await awaitResponse(out, undefined);
    if (res.kind === 'error') {
      if (!stream.closed) logger.warn('local app request failed', { address: this.app?.key, error: res.error });
      localReply(stream, 503, 'upstream connect error or disconnect/reset before headers', grpc);
      return;
    }
    relayResponse(out, stream, res.headers, res.flags);
  }

  close(): void {
    this.closed = true;
    for (const s of this.sessions) s.destroy();
    this.app?.session.destroy();
    this.app = undefined;
  }
}
