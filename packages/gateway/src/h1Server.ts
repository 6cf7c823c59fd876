// The server side of the L7 fast path: one downstream HTTP/1.1 connection (an app's plain TCP on the
// upstream listener, a peer sidecar's mTLS on the public listener), its requests parsed from the
// socket's bytes (h1Parse.ts) and served one at a time, in order: a pipelined request waits in the
// buffer until the answer before it is complete, so answers never interleave. Anything the fast
// path does not do (h1Parse.ts: HTTP/1.0, Upgrade, Expect, ...) is handed, with the bytes not yet
// served, to node:http for the rest of the connection; that happens only between requests.

import type net from 'node:net';
import { IdleSweep } from './idleSweep.ts';
import { ChunkedScanner, headEnd, HttpParseError, MAX_HEAD_BYTES, parseRequestHead, skipEmptyLines, type RequestHead, type ResponseHead } from './h1Parse.ts';

export interface H1Request {
  head: RequestHead;
  /** The whole body (decoded when it came chunked); empty when there is none. */
  body: Buffer;
}

export interface H1ServerOptions {
  /** Serves one request; it answers through `conn` (reply, or writeHead + write + finish, or abort). */
  handle: (req: H1Request, conn: H1ServerConn) => void;
  /** node:http takes the connection; the bytes not yet served have been put back into the socket. */
  fallback: (socket: net.Socket) => void;
  /** The largest body held for a request. */
  maxBody: number;
  /** A Content-Length over maxBody: 'reject' answers 413; 'fallback' lets node:http stream it. */
  large: 'reject' | 'fallback';
}

/** A connection with no request in progress and no bytes for 30–60 s is closed. */
const IDLE_SWEEP_MS = 30_000;
const idleConns = new IdleSweep<H1ServerConn>(IDLE_SWEEP_MS, (c) => c.sweep());
/**
 * Told to clients with each keep-alive answer (as node:http's server does with its own timeout): a
 * client that honours it (Node's http.Agent drops a pooled socket a little before) never sends a
 * request on a connection this side is closing. The sweep closes none idle for less than 30 s.
 */
const KEEP_ALIVE_HINT = `timeout=${IDLE_SWEEP_MS / 1000}`;

/** Reason phrases for the statuses the proxy answers itself. */
const REASONS: Record<number, string> = {
  200: 'OK', 400: 'Bad Request', 403: 'Forbidden', 413: 'Payload Too Large', 431: 'Request Header Fields Too Large',
  500: 'Internal Server Error', 502: 'Bad Gateway', 503: 'Service Unavailable', 504: 'Gateway Timeout',
};

const EMPTY = Buffer.alloc(0);
/** While a request is served, unread bytes past this pause the socket (a pipelining client cannot fill memory). */
const MAX_BUFFERED = 64 * 1024;

/**
 * node:http, loaded on first use: only the fallback (HTTP/1.0, Upgrade, ...) needs it, and loading
 * it costs a proxy process ~3.4 MB of RSS of its 60 MB budget (measured, httpLite.ts).
 */
export function nodeHttp(): typeof import('node:http') {
  return process.getBuiltinModule('node:http');
}

/** Hop-by-hop headers are not forwarded (RFC 9110 §7.6.1). */
export const HOP_HEADERS = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer']);

/**
 * The headers an answer from a peer goes on with: its own without hop-by-hop ones, and framing for
 * this connection (a chunked body passes through as it came; an answer that ends with its
 * connection ends this one too).
 */
export function forwardHeaders(conn: H1ServerConn, head: ResponseHead): Record<string, string | string[]> {
  const rh: Record<string, string | string[]> = {};
  for (const k in head.headers) if (!HOP_HEADERS.has(k)) rh[k] = head.headers[k]!;
  if (head.body === 'chunked') rh['transfer-encoding'] = 'chunked';
  else if (head.body === 'close') conn.keepAlive = false;
  return rh;
}

/** A request head's text: request line and header lines (arrays become repeated lines). */
export function requestHead(method: string, path: string, headers: Record<string, string | string[]>): string {
  let s = `${method} ${path} HTTP/1.1\r\n`;
  for (const k in headers) {
    const v = headers[k]!;
    if (Array.isArray(v)) for (const x of v) s += `${k}: ${x}\r\n`;
    else s += `${k}: ${v}\r\n`;
  }
  return `${s}\r\n`;
}

/**
 * requestHead(method, path, headers) for `headers` = `from` without hop-by-hop fields, then `set`
 * (a [name, value] set in place, else appended), Content-Length set to `contentLength` when given
 * (in place, else appended) and `host` appended when absent: the same text as building that object
 * first, without the object (per request on the L7 fast path).
 */
export function forwardRequestHead(method: string, path: string, from: Record<string, string | string[]>, set: readonly [string, string] | undefined, contentLength: number | undefined, host: string): string {
  let s = `${method} ${path} HTTP/1.1\r\n`;
  let sawSet = false;
  let sawLength = false;
  let sawHost = false;
  for (const k in from) {
    if (HOP_HEADERS.has(k)) continue;
    if (set !== undefined && k === set[0]) { sawSet = true; s += `${k}: ${set[1]}\r\n`; continue; }
    if (k === 'content-length' && contentLength !== undefined) { sawLength = true; s += `content-length: ${contentLength}\r\n`; continue; }
    if (k === 'host') sawHost = true;
    const v = from[k]!;
    if (Array.isArray(v)) for (const x of v) s += `${k}: ${x}\r\n`;
    else s += `${k}: ${v}\r\n`;
  }
  if (set !== undefined && !sawSet) s += `${set[0]}: ${set[1]}\r\n`;
  if (contentLength !== undefined && !sawLength) s += `content-length: ${contentLength}\r\n`;
  if (!sawHost) s += `host: ${host}\r\n`;
  return `${s}\r\n`;
}

/** Head text for a response: status line and header lines (values arrays become repeated lines). */
export function responseHead(status: number, reason: string, headers: Record<string, string | string[] | number>): string {
  let s = `HTTP/1.1 ${status} ${reason}\r\n`;
  for (const k in headers) {
    const v = headers[k]!;
    if (Array.isArray(v)) for (const x of v) s += `${k}: ${x}\r\n`;
    else s += `${k}: ${v}\r\n`;
  }
  return `${s}\r\n`;
}

export class H1ServerConn {
  readonly socket: net.Socket;
  /** Whether the connection stays open after the answer in progress. */
  keepAlive = true;
  /** The answer's head has been written (a failure after it can only abort the connection). */
  headSent = false;
  closed = false;
  /** The answer's head, held until its first body bytes (or its end) so both go in one write: one syscall and one TLS record. */
  private pendingHead: string | undefined;
  private readonly opts: H1ServerOptions;
  private buf: Buffer = EMPTY;
  private busy = false;
  /** The head being read (its body is still arriving). */
  private head: RequestHead | undefined;
  private parts: Buffer[] = [];
  private have = 0;
  private chunked: ChunkedScanner | undefined;
  /** Called once if the connection goes away while an answer is being relayed to it (h1Client.ts). */
  onGone: (() => void) | undefined;
  /** Bytes arrived since the last idle sweep. */
  private used = true;
  private readonly onData = (c: Buffer) => this.data(c);
  private readonly onError = () => this.socket.destroy();
  private readonly onClose = () => {
    this.closed = true;
    idleConns.delete(this);
    const gone = this.onGone;
    this.onGone = undefined;
    gone?.();
  };

  constructor(socket: net.Socket, opts: H1ServerOptions) {
    this.socket = socket;
    this.opts = opts;
    socket.setNoDelay(true);
    socket.on('data', this.onData);
    socket.on('error', this.onError);
    socket.on('close', this.onClose);
    idleConns.add(this);
  }

  /** The idle sweep: true (and the connection closed) when nothing came and nothing was in progress for a whole period. */
  sweep(): boolean {
    if (this.closed) return true;
    if (this.used || this.busy) { this.used = false; return false; }
    this.socket.destroy();
    return true;
  }

  private data(c: Buffer): void {
    this.used = true;
    this.buf = this.buf.length === 0 ? c : Buffer.concat([this.buf, c]);
    if (this.busy) {
      if (this.buf.length > MAX_BUFFERED) this.socket.pause();
      return;
    }
    this.pump();
  }

  /** Parses what the buffer holds until a request is complete (then serves it) or more bytes are needed. */
  private pump(): void {
    try {
      this.parse();
    } catch (err) {
      const e = err instanceof HttpParseError ? err : new HttpParseError(400, (err as Error).message);
      this.keepAlive = false;
      this.busy = true;
      this.reply(e.status, e.message);
    }
  }

  private parse(): void {
    if (this.busy || this.closed) return;
    let head = this.head;
    if (!head) {
      const start = skipEmptyLines(this.buf, 0);
      const end = headEnd(this.buf, start);
      if (end < 0) {
        if (this.buf.length - start > MAX_HEAD_BYTES) throw new HttpParseError(431, `request head larger than ${MAX_HEAD_BYTES} bytes`);
        return;
      }
      if (end - start > MAX_HEAD_BYTES) throw new HttpParseError(431, `request head larger than ${MAX_HEAD_BYTES} bytes`);
      head = parseRequestHead(this.buf, start, end);
      if (head.fallback !== undefined || (this.opts.large === 'fallback' && typeof head.body === 'number' && head.body > this.opts.maxBody)) {
        this.handOver(start);
        return;
      }
      if (typeof head.body === 'number' && head.body > this.opts.maxBody) throw new HttpParseError(413, `request body larger than ${this.opts.maxBody} bytes`);
      this.buf = this.buf.subarray(end);
      this.head = head;
      if (head.body === 'chunked') this.chunked = new ChunkedScanner(true);
    }
    let body: Buffer = EMPTY;
    if (head.body === 'chunked') {
      const sc = this.chunked!;
      const at = sc.feed(this.buf, 0);
      if (sc.decoded > this.opts.maxBody) throw new HttpParseError(413, `request body larger than ${this.opts.maxBody} bytes`);
      if (at < 0) { this.buf = EMPTY; return; }
      this.buf = this.buf.subarray(at);
      body = sc.parts.length === 1 ? sc.parts[0]! : Buffer.concat(sc.parts, sc.decoded);
      this.chunked = undefined;
    } else if (head.body > 0) {
      const need = head.body - this.have;
      if (this.buf.length < need) {
        if (this.buf.length > 0) { this.parts.push(this.buf); this.have += this.buf.length; this.buf = EMPTY; }
        return;
      }
      this.parts.push(this.buf.subarray(0, need));
      this.buf = this.buf.subarray(need);
      body = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, head.body);
      this.parts = [];
      this.have = 0;
    }
    this.head = undefined;
    this.busy = true;
    this.keepAlive = head.keepAlive;
    this.headSent = false;
    this.opts.handle({ head, body }, this);
  }

  /** node:http serves the rest of the connection, starting with the bytes from `from` on. */
  private handOver(from: number): void {
    const s = this.socket;
    s.off('data', this.onData);
    s.off('error', this.onError);
    s.off('close', this.onClose);
    idleConns.delete(this);
    s.pause();
    const rest = this.buf.subarray(from);
    this.buf = EMPTY;
    this.closed = true;
    if (rest.length > 0) s.unshift(rest);
    this.opts.fallback(s);
  }

  /** Writes the answer's head; `headers` must carry its framing (content-length or transfer-encoding). */
  writeHead(status: number, reason: string, headers: Record<string, string | string[] | number>): void {
    if (this.keepAlive) headers['keep-alive'] = KEEP_ALIVE_HINT;
    else headers.connection = 'close';
    this.headSent = true;
    this.pendingHead = responseHead(status, reason || REASONS[status] || '', headers);
  }

  /**
   * writeHead(head.status, head.reason, forwardHeaders(this, head)) without the header object: the
   * peer's answer head as it goes on (hop-by-hop fields dropped, this connection's framing added).
   */
  forwardHead(head: ResponseHead): void {
    if (head.body === 'close') this.keepAlive = false;
    let s = `HTTP/1.1 ${head.status} ${head.reason || REASONS[head.status] || ''}\r\n`;
    const h = head.headers;
    for (const k in h) {
      if (HOP_HEADERS.has(k)) continue;
      const v = h[k]!;
      if (Array.isArray(v)) for (const x of v) s += `${k}: ${x}\r\n`;
      else s += `${k}: ${v}\r\n`;
    }
    if (head.body === 'chunked') s += 'transfer-encoding: chunked\r\n';
    s += this.keepAlive ? `keep-alive: ${KEEP_ALIVE_HINT}\r\n\r\n` : 'connection: close\r\n\r\n';
    this.headSent = true;
    this.pendingHead = s;
  }

  /** Body bytes of the answer; false when the socket's buffer is full (wait for its 'drain'). */
  write(b: Buffer): boolean {
    if (this.closed) return true;
    const head = this.pendingHead;
    if (head === undefined) return this.socket.write(b);
    this.pendingHead = undefined;
    const h = Buffer.from(head, 'latin1');
    return this.socket.write(Buffer.concat([h, b], h.length + b.length));
  }

  /** Sends a held head now (no body bytes are at hand: a streaming answer's client must not wait for them). */
  flushHead(): void {
    if (this.pendingHead === undefined || this.closed) return;
    this.socket.write(this.pendingHead, 'latin1');
    this.pendingHead = undefined;
  }

  /** The answer is complete: the next pipelined request is served, or the connection ends. */
  finish(): void {
    if (this.closed) return;
    this.flushHead();
    if (!this.keepAlive) { this.closed = true; this.socket.end(); return; }
    this.busy = false;
    if (this.socket.isPaused()) this.socket.resume();
    // A microtask, not a call: answers given at once (denials) to many pipelined requests must not nest.
    if (this.buf.length > 0) queueMicrotask(() => this.pump());
  }

  /** A short text answer of the proxy's own (errors, denials). */
  reply(status: number, text: string): void {
    if (this.headSent) { this.abort(); return; }
    const body = Buffer.from(text);
    this.writeHead(status, REASONS[status] ?? '', { 'content-type': 'text/plain', 'content-length': body.length });
    this.write(body);
    this.finish();
  }

  /** The answer cannot be completed (the upstream failed mid-body): the client sees the connection end. */
  abort(): void {
    this.closed = true;
    this.pendingHead = undefined;
    this.socket.destroy();
  }
}
