// Moving one HTTP/2 exchange from the stream a caller opened to the stream the proxy opened onward
// (used by the upstream listener, h2Upstream.ts, and the public listener's HTTP/2 mode,
// h2Inbound.ts): headers without the connection-specific ones, bodies piped both ways (so HTTP/2
// flow control pushes back to the sender: a slow reader slows the writer, nothing piles up in
// the proxy), trailers passed on (gRPC's status travels in them), and a trailers-only answer kept
// trailers-only. Loaded only when a chain's protocol is http2 or grpc.

import http2 from 'node:http2';
import { applyHeaderMods } from './chainEval.ts';
import type { HeaderModifiers } from './chainTypes.ts';
import { grpcLocalReply } from './grpc.ts';

const { NGHTTP2_CANCEL, NGHTTP2_INTERNAL_ERROR, NGHTTP2_FLAG_END_STREAM } = http2.constants;

/** Connection-specific headers HTTP/2 forbids (RFC 9113 §8.2.2); `host` travels as :authority. */
const DROP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'host', 'http2-settings']);

export type H2Headers = Record<string, string | string[]>;

/** The caller's request or response headers minus pseudo-headers and connection-specific ones ("te: trailers" stays: gRPC needs it). */
export function endToEndHeaders(h: http2.IncomingHttpHeaders): H2Headers {
  const out: H2Headers = {};
  for (const [k, v] of Object.entries(h)) {
    if (v === undefined || k.startsWith(':') || DROP.has(k)) continue;
    if (k === 'te' && String(v).trim().toLowerCase() !== 'trailers') continue;
    out[k] = v;
  }
  return out;
}

/** An answer the proxy makes itself: for a gRPC caller trailers-only with the mapped grpc-status, else text. */
export function localReply(stream: http2.ServerHttp2Stream, status: number, text: string, grpc: boolean): void {
  if (stream.destroyed || stream.closed) return;
  if (stream.headersSent) { stream.close(NGHTTP2_INTERNAL_ERROR); return; }
  if (grpc) { stream.respond(grpcLocalReply(status, text), { endStream: true }); return; }
  stream.respond({ ':status': status, 'content-type': 'text/plain', 'content-length': Buffer.byteLength(text) });
  stream.end(text);
}

/**
 * What an onward stream did before its response headers: answered (with the HEADERS frame's
 * flags), failed (reset or connection error, `refused` for REFUSED_STREAM), or ran out of time.
 */
export type Outcome =
  | { kind: 'response'; headers: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader; flags: number }
  | { kind: 'error'; error: Error; refused: boolean; timeout: boolean };

export function awaitResponse(out: http2.ClientHttp2Stream, timeoutMs: number | undefined): Promise<Outcome> {
  return new Promise((resolve) => {
    let done = false;
    const finish = (o: Outcome) => {
      if (done) return;
      done = true;
      if (timer) clearTimeout(timer);
      resolve(o);
    };
    const timer = timeoutMs !== undefined ? setTimeout(() => {
      out.close(NGHTTP2_CANCEL);
      finish({ kind: 'error', error: new Error(`no answer within ${Math.round(timeoutMs)} ms`), refused: false, timeout: true });
    }, timeoutMs) : undefined;
    out.once('response', (headers, flags) => finish({ kind: 'response', headers, flags }));
    out.once('error', (error) => finish({ kind: 'error', error, refused: out.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM, timeout: false }));
    out.once('close', () => finish({ kind: 'error', error: new Error(`stream closed before a response (code ${out.rstCode})`), refused: out.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM, timeout: false }));
  });
}

/**
 * Sends the onward stream's response to the caller: headers (with `mods` applied), the body piped,
 * then its trailers. A trailers-only answer (HEADERS with END_STREAM, how gRPC reports an error
 * without a body) stays one. A reset on either side resets the other.
 */
export function relayResponse(out: http2.ClientHttp2Stream, stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader, flags: number, mods: readonly HeaderModifiers[] = []): void {
  const h: Record<string, string | string[] | number> = endToEndHeaders(headers);
  applyHeaderMods(h as H2Headers, mods);
  h[':status'] = headers[':status'] ?? 502;
  if (stream.destroyed || stream.closed) { out.close(NGHTTP2_CANCEL); return; }
  stream.once('close', () => { if (!out.closed) out.close(NGHTTP2_CANCEL); });
  if ((flags & NGHTTP2_FLAG_END_STREAM) !== 0) {
    stream.respond(h, { endStream: true });
    return;
  }
  let trailers: http2.IncomingHttpHeaders | undefined;
  out.once('trailers', (t) => { trailers = t; });
  stream.respond(h, { waitForTrailers: true });
  // Trailers are sent after the last DATA frame; an empty set just ends the stream.
  stream.once('wantTrailers', () => { if (!stream.closed) stream.sendTrailers(endToEndHeaders(trailers ?? {})); });
  out.pipe(stream);
  out.once('close', () => {
    // Reset before its end: the caller must not take a cut-off body for a whole one.
    if (!out.readableEnded && !stream.closed) stream.close(out.rstCode && out.rstCode !== NGHTTP2_CANCEL ? out.rstCode : NGHTTP2_INTERNAL_ERROR);
  });
  out.on('error', () => { /* handled by 'close' */ });
}
