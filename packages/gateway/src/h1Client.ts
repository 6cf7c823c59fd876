// The client side of the L7 fast path: keep-alive connections to one kind of peer (a target's
// sidecars over mTLS, or the local app over TCP), one request at a time on each, the response head
// parsed from the bytes (h1Parse.ts) and its body relayed to the downstream connection
// (h1Server.ts) as it arrives, framing unchanged (Content-Length or chunked bytes pass through; the
// end is found by counting or by scanning the chunk sizes, so the connection can be reused at once).
//
// Each pooled socket keeps one set of listeners for its whole life and points them at the exchange
// in progress: no listeners added and removed per request (interpreted JavaScript in the proxy's
// lite mode).

import type net from 'node:net';
import { ChunkedScanner, headEnd, HttpParseError, MAX_HEAD_BYTES, parseResponseHead, type ResponseHead } from './h1Parse.ts';
import type { H1ServerConn } from './h1Server.ts';
import { IdleSweep } from './idleSweep.ts';

/** Opens a connection to host:port; `ready` is its 'connect' or 'secureConnect' event. */
export type Dial = (host: string, port: number) => { socket: net.Socket; ready: 'connect' | 'secureConnect' };

export interface H1PoolOptions {
  /** A connection not ready within this long fails with "no <what> within <ms> ms" (code ETIMEDOUT). */
  connectMs: number;
  /** What a ready connection is, for that message: 'TLS connection', 'connection'. */
  what: string;
  maxIdlePerPeer?: number;
  /** An idle pooled connection is closed after this long. */
  idleMs?: number;
}

const EMPTY = Buffer.alloc(0);

/** One pooled connection and the exchange it is carrying. */
class UpConn {
  readonly socket: net.Socket;
  readonly key: string;
  ready = false;
  /** Requests it has carried (0: a fresh connection). */
  uses = 0;
  /** Used since the pool's last idle sweep. */
  used = true;
  /** When the peer said it closes the connection if idle (its Keep-Alive: timeout=N), minus a margin; 0: not said. */
  expires = 0;
  ex: Exchange | undefined;
  constructor(socket: net.Socket, key: string) {
    this.socket = socket;
    this.key = key;
  }
}

export type ExchangeResult =
  | { kind: 'ok'; res: UpstreamResponse }
  | { kind: 'error'; error: Error; connect: boolean; timeout: boolean };

/** A response whose head has arrived; relay() sends it on (or discard() drops it and its connection). */
export interface UpstreamResponse {
  head: ResponseHead;
  /** Sends the body to `to` as it arrives (its head must have been written), then finishes `to`. */
  relay(to: H1ServerConn): void;
  /** Not forwarded (a retry): the connection is closed. */
  discard(): void;
}

export class H1Pool {
  private readonly idle = new Map<string, UpConn[]>();
  private readonly dial: Dial;
  private readonly opts: H1PoolOptions;
  private readonly maxIdle: number;
  private readonly idleMs: number;
  private closed = false;
  /** The last Keep-Alive header release() parsed, and its timeout minus the margin (0: none). */
  private kaText: string | undefined;
  private kaMs = 0;
  /** Pooled connections not used for a whole sweep period are closed (idleSweep.ts: no socket timeouts). */
  private readonly sweep: IdleSweep<UpConn>;
  constructor(dial: Dial, opts: H1PoolOptions) {
    this.dial = dial;
    this.opts = opts;
    this.maxIdle = opts.maxIdlePerPeer ?? 64;
    this.idleMs = opts.idleMs ?? 60_000;
    this.sweep = new IdleSweep<UpConn>(this.idleMs / 2, (c) => {
      if (c.socket.destroyed) return true;
      if (c.used || c.ex) { c.used = false; return false; }
      c.socket.destroy();
      return true;
    });
  }

  /**
   * Sends one request (head text, body) to host:port on a pooled connection, else a new one;
   * resolves when the response head has arrived or the attempt failed. A pooled connection that
   * turns out closed by the peer before any answer (the keep-alive race) is replaced by a new one
   * once, for methods that may be repeated (RFC 9110 §9.2.2). `key` names host:port in the pool (a
   * caller that holds it as a string passes it: no string built per request).
   */
  async request(host: string, port: number, method: string, head: string, body: Buffer, timeoutMs: number | undefined, key = `${host}:${port}`): Promise<ExchangeResult> {
    const pooled = this.take(key);
    if (pooled) {
      const r = await this.run(pooled, method, head, body, timeoutMs);
      if (r.kind === 'ok' || r.timeout || !IDEMPOTENT.has(method) || (r.error as { answered?: boolean }).answered) return r;
    }
    return this.run(this.open(host, port, key), method, head, body, timeoutMs);
  }

  private take(key: string): UpConn | undefined {
    const list = this.idle.get(key);
    while (list && list.length > 0) {
      const c = list.pop()!;
      if (c.expires !== 0 && Date.now() >= c.expires) { c.socket.destroy(); continue; }
      if (!c.socket.destroyed) return c;
    }
    return undefined;
  }

  private open(host: string, port: number, key: string): UpConn {
    const { socket, ready } = this.dial(host, port);
    socket.setNoDelay(true);
    const c = new UpConn(socket, key);
    const { connectMs, what } = this.opts;
    const connectTimer = setTimeout(() => socket.destroy(Object.assign(new Error(`no ${what} within ${connectMs} ms`), { code: 'ETIMEDOUT' })), connectMs);
    socket.once(ready, () => { c.ready = true; clearTimeout(connectTimer); });
    socket.once('close', () => clearTimeout(connectTimer));
    socket.on('data', (d: Buffer) => { if (c.ex) c.ex.data(d); else socket.destroy(); });
    socket.on('end', () => { if (c.ex) c.ex.end(); else socket.destroy(); });
    socket.on('error', (err: Error) => { if (c.ex) c.ex.fail(err); });
    socket.on('close', () => { c.ex?.fail(new Error('connection closed')); this.evict(c); this.sweep.delete(c); });
    // An idle pooled connection is closed after idleMs / 2 to idleMs; a busy one is bounded by its request's timeout.
    this.sweep.add(c);
    return c;
  }

  private evict(c: UpConn): void {
    const list = this.idle.get(c.key);
    const i = list ? list.indexOf(c) : -1;
    if (i >= 0) list!.splice(i, 1);
  }

  /**
   * A connection whose exchange completed cleanly goes back to the pool (or is closed). `keepAlive`
   * is the answer's Keep-Alive header: a peer that announces its idle timeout (Node's servers do,
   * 5 s by default) is not sent a request on a connection it may be closing at that moment (a
   * request that cannot be repeated would fail); as Node's http.Agent, 100 ms before.
   */
  release(c: UpConn, reusable: boolean, keepAlive?: string | string[]): void {
    c.ex = undefined;
    if (typeof keepAlive === 'string') {
      // The same peer sends the same value each time: parsed once.
      if (keepAlive !== this.kaText) {
        const i = keepAlive.indexOf('timeout=');
        const secs = i >= 0 ? parseInt(keepAlive.slice(i + 8), 10) : NaN;
        this.kaText = keepAlive;
        this.kaMs = secs > 0 ? secs * 1000 - 100 : 0;
      }
      c.expires = this.kaMs > 0 ? Date.now() + this.kaMs : 0;
    }
    if (!reusable || this.closed || c.socket.destroyed) { c.socket.destroy(); return; }
    let list = this.idle.get(c.key);
    if (!list) { list = []; this.idle.set(c.key, list); }
    if (list.length >= this.maxIdle) { c.socket.destroy(); return; }
    list.push(c);
  }

  private run(c: UpConn, method: string, head: string, body: Buffer, timeoutMs: number | undefined): Promise<ExchangeResult> {
    return new Promise((resolve) => {
      c.uses++;
      c.used = true;
      c.ex = new Exchange(this, c, method, resolve, timeoutMs);
      const s = c.socket;
      if (body.length > 0) {
        s.cork();
        s.write(head, 'latin1');
        s.write(body);
        s.uncork();
      } else s.write(head, 'latin1');
    });
  }

  /**
   * Keeps at most `keep` idle connections per peer (the most recently used), closing the rest: after
   * a burst, when traffic has stopped (idleGc.ts), a pool need not hold a TLS connection per
   * request that was in flight at the peak (each holds OpenSSL and socket buffers).
   */
  trim(keep: number): void {
    for (const list of this.idle.values()) {
      while (list.length > keep) list.shift()!.socket.destroy();
    }
  }

  /** Closes idle connections; busy ones close when their exchange ends. */
  close(): void {
    this.closed = true;
    for (const list of this.idle.values()) for (const c of list) c.socket.destroy();
    // Busy connections go when their exchange ends (release destroys them); their sweep ends with them.
    this.idle.clear();
  }
}

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);

/** One request/response on a connection: the head, then (once relayed) the body. */
class Exchange implements UpstreamResponse {
  head!: ResponseHead;
  private readonly pool: H1Pool;
  private readonly c: UpConn;
  private readonly method: string;
  private resolve: ((r: ExchangeResult) => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  private timedOut = false;
  private buf: Buffer = EMPTY;
  /** Bytes of the body still to come (Content-Length), or the chunk scanner. */
  private left = 0;
  private scanner: ChunkedScanner | undefined;
  private to: H1ServerConn | undefined;
  private done = false;
  /** The peer's connection ended after the head, before relay() was called: 'end' (clean) or 'error'. */
  private ended: 'end' | 'error' | undefined;

  constructor(pool: H1Pool, c: UpConn, method: string, resolve: (r: ExchangeResult) => void, timeoutMs: number | undefined) {
    this.pool = pool;
    this.c = c;
    this.method = method;
    this.resolve = resolve;
    if (timeoutMs !== undefined) {
      this.timer = setTimeout(() => {
        this.timedOut = true;
        c.socket.destroy(new Error(`no answer within ${Math.round(timeoutMs)} ms`));
      }, timeoutMs);
    }
  }

  data(d: Buffer): void {
    if (this.resolve) { this.headData(d); return; }
    if (this.to) this.bodyData(d);
    else this.buf = this.buf.length === 0 ? d : Buffer.concat([this.buf, d]);
  }

  private headData(d: Buffer): void {
    this.buf = this.buf.length === 0 ? d : Buffer.concat([this.buf, d]);
    try {
      for (;;) {
        const end = headEnd(this.buf, 0);
        if (end < 0) {
          if (this.buf.length > MAX_HEAD_BYTES) throw new HttpParseError(502, `response head larger than ${MAX_HEAD_BYTES} bytes`);
          return;
        }
        const head = parseResponseHead(this.buf, 0, end, this.method);
        this.buf = this.buf.subarray(end);
        // 1xx (103 Early Hints and the like) are not forwarded: the final answer follows.
        if (head.status >= 100 && head.status < 200) {
          if (head.status === 101) throw new HttpParseError(502, 'bad response: 101 Switching Protocols to a request without Upgrade');
          continue;
        }
        this.head = head;
        if (head.body === 'chunked') this.scanner = new ChunkedScanner(false);
        else if (typeof head.body === 'number') this.left = head.body;
        if (this.timer) clearTimeout(this.timer);
        const r = this.resolve!;
        this.resolve = undefined;
        r({ kind: 'ok', res: this });
        return;
      }
    } catch (err) {
      this.c.socket.destroy(Object.assign(err as Error, { answered: true }));
    }
  }

  relay(to: H1ServerConn): void {
    this.to = to;
    // The client going away ends the relay (its socket may be paused waiting for that client to read).
    to.onGone = () => this.abort();
    const b = this.buf;
    this.buf = EMPTY;
    if (this.head.body === 0) { this.complete(b.length === 0); return; }
    if (b.length > 0) this.bodyData(b);
    else to.flushHead();
    if (this.done || this.ended === undefined) return;
    // The peer's connection ended between the head and this call.
    if (this.ended === 'end' && this.head.body === 'close') this.complete(false);
    else this.abort();
  }

  private bodyData(d: Buffer): void {
    const to = this.to!;
    const body = this.head.body;
    let end = d.length;
    let last = false;
    if (body === 'chunked') {
      let at: number;
      try {
        at = this.scanner!.feed(d, 0);
      } catch {
        this.abort();
        return;
      }
      if (at >= 0) { end = at; last = true; }
    } else if (body !== 'close') {
      if (d.length >= this.left) { end = this.left; last = true; }
      this.left -= end;
    }
    const ok = to.write(end === d.length ? d : d.subarray(0, end));
    if (last) { this.complete(end === d.length); return; }
    if (!ok && !to.closed) {
      // The client reads slower than the peer sends: wait for it.
      const s = this.c.socket;
      s.pause();
      to.socket.once('drain', () => s.resume());
    }
    if (to.closed) this.abort();
  }

  /** The body's end: the downstream answer is finished, the connection pooled if it can carry more. */
  private complete(clean: boolean): void {
    if (this.done) return;
    this.done = true;
    const to = this.to!;
    to.onGone = undefined;
    this.pool.release(this.c, clean && this.head.keepAlive, this.head.headers['keep-alive']);
    to.finish();
  }

  private abort(): void {
    if (this.done) return;
    this.done = true;
    this.c.ex = undefined;
    this.c.socket.destroy();
    if (this.to) { this.to.onGone = undefined; this.to.abort(); }
  }

  end(): void {
    if (this.resolve) { this.fail(new Error('the peer closed the connection before an answer')); return; }
    if (this.to && this.head.body === 'close') { this.complete(false); return; }
    if (this.to) { this.abort(); return; }
    this.ended ??= 'end';
  }

  fail(err: Error): void {
    if (this.timer) clearTimeout(this.timer);
    if (this.resolve) {
      const r = this.resolve;
      this.resolve = undefined;
      this.c.ex = undefined;
      this.c.socket.destroy();
      r({ kind: 'error', error: err, connect: !this.c.ready, timeout: this.timedOut });
      return;
    }
    if (this.to) { this.abort(); return; }
    // Head arrived, not relayed yet (relay() ends the answer) or discarded (nothing waits).
    this.ended ??= 'error';
  }

  discard(): void {
    this.done = true;
    this.c.ex = undefined;
    this.c.socket.destroy();
  }
}
