// How the mesh gateway holds its connections: accept, read the caller's first bytes (the
// ClientHello), dial the chosen instance or gateway, then relay raw bytes both ways with half-close
// and backpressure. Two implementations of one interface:
//
//   raw  libuv's TCP handles driven from JavaScript (Node's own `tcp_wrap`/`stream_wrap` bindings,
//        the layer under net.Socket): each read arrives in one callback and is written to the other
//        side at once, with no net.Socket, no Readable/Writable streams, no events. The default.
//   net  net.Socket and net.Server: the public API. Used where the bindings are not what this file
//        expects, and when asked for (TRELLIS_GATEWAY_TRANSPORT=net, or the `transport` option).
//
// Why raw: the gateway's cost is CPU per proxied connection, and issue 15's bound is 1.2x haproxy's.
// A net.Socket relay that does nothing but connect and pipe already spends 1.35-1.5x haproxy's CPU
// per connection on our machines (stream state, listeners, nextTicks, a call into JavaScript per
// event), while the same relay on the handles spends 1.04-1.10x (docs/BENCHMARKS.md, "Mesh gateway
// CPU per connection"). The bindings come from `process.binding`, deprecated (DEP0111, a warning
// only under --pending-deprecation) and internal: their shapes are Node's to change. Node is pinned
// (the `node@24` devDependency the launcher runs), `rawBinding()` checks every shape it uses before
// choosing raw, and the forwarding tests run against both implementations.

import dns from 'node:dns';
import net from 'node:net';
import util from 'node:util';

/** A caller's connection, from accept to close. */
export interface GwConn {
  /** The caller's host:port (for logs; asked of the kernel when called). */
  remote(): string;
  /** Closed (by either side, an error or destroy()). */
  readonly closed: boolean;
  /** Called once, when the connection closes for any reason. */
  onClosed?: (conn: GwConn) => void;
  /** The caller's bytes go to `onData` and its end to `onEnd` until stopPeek(). */
  peek(onData: (chunk: Buffer) => void, onEnd: () => void): void;
  /** Stops reading the caller (what it sends meanwhile waits in the kernel). */
  stopPeek(): void;
  /** Dials host:port; then exactly one of onConnect and onFail, unless the caller closes first. */
  dial(host: string, port: number, timeoutMs: number, onConnect: () => void, onFail: (err: Error) => void): void;
  /**
   * After onConnect: sends `first` (the bytes read while peeking) to the upstream and relays both
   * ways until both are done; then onDone with the bytes read from and written to the caller.
   */
  splice(first: Buffer, onDone: (rx: number, tx: number) => void): void;
  destroy(): void;
}

export interface GwListener {
  address(): net.AddressInfo;
  /** Stops accepting and closes every connection it accepted that is still open. */
  close(): Promise<void>;
}

export interface Transport {
  readonly name: 'raw' | 'net';
  listen(host: string, port: number, backlog: number, onConn: (c: GwConn) => void): Promise<GwListener>;
}

/** The transport to use: `want` (or TRELLIS_GATEWAY_TRANSPORT) if given, else raw where it works, else net. */
export function chooseTransport(want?: 'raw' | 'net'): Transport {
  const w = want ?? (process.env.TRELLIS_GATEWAY_TRANSPORT || undefined);
  if (w !== undefined && w !== 'raw' && w !== 'net') throw new Error(`TRELLIS_GATEWAY_TRANSPORT is ${JSON.stringify(w)}: want raw or net (or unset)`);
  if (w === 'net') return netTransport;
  const raw = rawTransport();
  if (raw) return raw;
  if (w === 'raw') throw new Error('the raw transport is not available on this Node (its tcp_wrap/stream_wrap bindings are not what the gateway expects); use TRELLIS_GATEWAY_TRANSPORT=net');
  return netTransport;
}

function sysError(syscall: string, errno: number, where: string): NodeJS.ErrnoException {
  const code = util.getSystemErrorName(errno);
  const err: NodeJS.ErrnoException = new Error(`${syscall} ${code}: ${util.getSystemErrorMessage(errno)} ${where}`);
  err.code = code;
  err.errno = errno;
  err.syscall = syscall;
  return err;
}

// --- net: net.Socket and net.Server --------------------------------------------------------------

/**
 * Upstream reads land here (net.Socket's `onread` option): libuv reads into this one buffer and
 * relayToCaller copies each read out before any other socket reads, instead of Node allocating a
 * 64 KB backing store per read and running it through the Readable stream.
 */
const READ_BUFFER = Buffer.allocUnsafe(64 * 1024);

class NetConn implements GwConn {
  onClosed?: (conn: GwConn) => void;
  private up?: net.Socket;
  private onData?: (chunk: Buffer) => void;
  private onEnd?: () => void;
  private readonly s: net.Socket;
  constructor(s: net.Socket) {
    this.s = s;
    s.on('error', () => s.destroy());
    s.once('close', () => this.onClosed?.(this));
  }
  remote(): string { return `${this.s.remoteAddress}:${this.s.remotePort}`; }
  get closed(): boolean { return this.s.destroyed; }
  peek(onData: (chunk: Buffer) => void, onEnd: () => void): void {
    this.onData = onData;
    this.onEnd = onEnd;
    this.s.on('data', onData);
    this.s.once('end', onEnd);
  }
  stopPeek(): void {
    if (this.onData) this.s.off('data', this.onData);
    if (this.onEnd) this.s.off('end', this.onEnd);
    this.s.pause();
  }
  dial(host: string, port: number, timeoutMs: number, onConnect: () => void, onFail: (err: Error) => void): void {
    const caller = this.s;
    const up: net.Socket = net.connect({
      host, port, allowHalfOpen: true, noDelay: true,
      onread: { buffer: READ_BUFFER, callback: (n: number, buf: Buffer) => relayToCaller(caller, up, n, buf) },
    });
    const timer = setTimeout(() => up.destroy(Object.assign(new Error(`no connection within ${timeoutMs} ms`), { code: 'ETIMEDOUT' })), timeoutMs);
    const onError = (err: Error) => { clearTimeout(timer); onFail(err); };
    up.once('error', onError);
    up.once('connect', () => {
      clearTimeout(timer);
      up.off('error', onError);
      // The caller left while we dialled: nothing to forward.
      if (caller.destroyed) { up.destroy(); return; }
      this.up = up;
      onConnect();
    });
  }
  splice(first: Buffer, onDone: (rx: number, tx: number) => void): void {
    const up = this.up!;
    up.write(first);
    splice(this.s, up, () => onDone(this.s.bytesRead, this.s.bytesWritten));
  }
  destroy(): void { this.s.destroy(); }
}

/**
 * An upstream read (n bytes in `buf`) forwarded to the caller. The copy is needed because a write
 * the kernel does not take at once keeps its buffer until it completes, and READ_BUFFER is refilled
 * by the next read of any upstream. A full caller stops reads from the upstream (false = readStop)
 * until it drains (backpressure).
 */
function relayToCaller(caller: net.Socket, up: net.Socket, n: number, buf: Buffer): boolean {
  if (caller.destroyed) return false;
  if (caller.write(Buffer.from(buf.subarray(0, n)))) return true;
  caller.once('drain', () => { if (!up.destroyed) up.resume(); });
  return false;
}

/**
 * Relays the caller and the chosen upstream both ways; the upstream's reads already go to the caller
 * (relayToCaller, set when it was dialled), this adds the caller's reads, the ends and the closes.
 * Each direction ends on its own (half-close: a caller that shuts its write side still gets the
 * answer); a destination whose buffer is full pauses its source until it drains (backpressure); an
 * error or a reset destroys both. The direction that ends last closes its destination instead of
 * shutting it down first when nothing is left to write there: close() sends the FIN after the data
 * the kernel holds (no unread input, so no reset), and saves a shutdown and Node's end/finish steps.
 */
export function splice(caller: net.Socket, up: net.Socket, onClose: () => void): void {
  let closed = 0;
  const fail = () => { caller.destroy(); up.destroy(); };
  caller.on('error', fail);
  up.on('error', fail);
  const resumeCaller = () => { if (!caller.destroyed) caller.resume(); };
  caller.on('data', (chunk: Buffer) => {
    if (!up.write(chunk)) { caller.pause(); up.once('drain', resumeCaller); }
  });
  const endTo = (dst: net.Socket) => {
    if (dst.destroyed) return;
    if (dst.readableEnded && dst.writableLength === 0) dst.destroy();
    else dst.end();
  };
  caller.once('end', () => endTo(up));
  up.once('end', () => endTo(caller));
  // A side that closed after its input ended closed normally: the other side finishes writing what
  // it holds and closes by itself. One that closed before its input ended (a reset) takes the other
  // down with it.
  const closedOne = (x: net.Socket, other: net.Socket) => () => {
    if (!x.readableEnded) other.destroy();
    if (++closed === 2) onClose();
  };
  caller.once('close', closedOne(caller, up));
  up.once('close', closedOne(up, caller));
  // The caller was paused while its route was found; its end, if it came meanwhile, is emitted now.
  if (caller.readableEnded) endTo(up);
  else caller.resume();
}

export const netTransport: Transport = {
  name: 'net',
  listen: (host, port, backlog, onConn) => new Promise<GwListener>((resolve, reject) => {
    const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: false, noDelay: true }, (s) => onConn(new NetConn(s)));
    const sockets = new Set<net.Socket>();
    server.on('connection', (s) => { sockets.add(s); s.once('close', () => sockets.delete(s)); });
    server.once('error', reject);
    server.listen({ host, port, backlog }, () => {
      server.off('error', reject);
      resolve({
        address: () => server.address() as net.AddressInfo,
        // close() waits for open connections: stop accepting, end the open ones, then wait.
        close: () => {
          const closed = new Promise<void>((r) => server.close(() => r()));
          for (const s of sockets) s.destroy();
          return closed;
        },
      });
    });
  }),
};

// --- raw: libuv handles ----------------------------------------------------------------------------

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Handle = any; // Node's internal TCPWrap objects (no types)
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Req = any; // WriteWrap, ShutdownWrap, TCPConnectWrap

interface Binding {
  TCP: new (type: number) => Handle;
  TCPConnectWrap: new () => Req;
  WriteWrap: new () => Req;
  ShutdownWrap: new () => Req;
  SERVER: number;
  SOCKET: number;
  state: Int32Array;
  kReadBytesOrError: number;
  kArrayBufferOffset: number;
  kLastWriteWasAsync: number;
}

let binding: Binding | null | undefined;

/** Node's tcp_wrap and stream_wrap bindings, if every part the raw transport uses is there. */
export function rawBinding(): Binding | null {
  if (binding !== undefined) return binding;
  binding = null;
  try {
    const pb = (process as unknown as { binding?: (name: string) => Record<string, unknown> }).binding;
    if (typeof pb !== 'function') return null;
    const t = pb.call(process, 'tcp_wrap') as Record<string, Handle>;
    const s = pb.call(process, 'stream_wrap') as Record<string, Handle>;
    const constants = t.constants as Record<string, number> | undefined;
    const ok = typeof t.TCP === 'function' && typeof t.TCPConnectWrap === 'function' && typeof s.WriteWrap === 'function' &&
      typeof s.ShutdownWrap === 'function' && s.streamBaseState instanceof Int32Array && constants &&
      typeof constants.SERVER === 'number' && typeof constants.SOCKET === 'number' &&
      [s.kReadBytesOrError, s.kArrayBufferOffset, s.kLastWriteWasAsync].every((k) => typeof k === 'number');
    if (!ok) return null;
    const proto = t.TCP.prototype as Record<string, unknown>;
    for (const m of ['bind', 'bind6', 'listen', 'connect', 'connect6', 'getsockname', 'getpeername', 'setNoDelay', 'readStart', 'readStop', 'writeBuffer', 'shutdown', 'close']) {
      if (typeof proto[m] !== 'function') return null;
    }
    binding = {
      TCP: t.TCP, TCPConnectWrap: t.TCPConnectWrap, WriteWrap: s.WriteWrap, ShutdownWrap: s.ShutdownWrap,
      SERVER: constants!.SERVER!, SOCKET: constants!.SOCKET!, state: s.streamBaseState,
      kReadBytesOrError: s.kReadBytesOrError, kArrayBufferOffset: s.kArrayBufferOffset, kLastWriteWasAsync: s.kLastWriteWasAsync,
    };
  } catch {
    binding = null;
  }
  return binding;
}

const UV_EOF = -4095;

/**
 * One caller and, once dialled, its upstream, as libuv handles. The relay: each read is written to
 * the other side in the same callback (the read's own buffer, which Node allocates per read); a
 * write libuv could not finish at once stops reads from its source until it completes, so at most
 * one write per direction is in flight (backpressure). A source's end, once what it sent is written,
 * shuts the destination's write side (half-close); the second direction to end closes both (close()
 * sends the FIN after the data the kernel holds, and both inputs are at their end, so no reset). A
 * read or write error closes both.
 */
class RawConn implements GwConn {
  onClosed?: (conn: GwConn) => void;
  closed = false;
  readonly h: Handle;
  up: Handle = undefined;
  private readonly b: Binding;
  onData?: (chunk: Buffer) => void;
  onEnd?: () => void;
  private onDone?: (rx: number, tx: number) => void;
  /** Per direction (0: caller -> upstream, 1: upstream -> caller): source at its end; a write pending; destination shut. */
  ended0 = false; ended1 = false;
  pending0 = false; pending1 = false;
  /** The dial in progress: its handle, when it gives up, what to call. */
  dialUp: Handle = undefined;
  dialDeadline = 0;
  dialTimeoutMs = 0;
  dialWhere = '';
  onConnect?: () => void;
  onFail?: (err: Error) => void;
  /** The listener's open connections (closed by its close()). */
  private readonly open: Set<RawConn>;
  constructor(b: Binding, h: Handle, open: Set<RawConn>) {
    this.b = b;
    this.h = h;
    this.open = open;
    open.add(this);
    h.conn = this;
  }
  remote(): string {
    const out: { address?: string; port?: number } = {};
    if (this.closed || this.h.getpeername(out) !== 0) return 'unknown';
    return out.address?.includes(':') ? `[${out.address}]:${out.port}` : `${out.address}:${out.port}`;
  }
  peek(onData: (chunk: Buffer) => void, onEnd: () => void): void {
    this.onData = onData;
    this.onEnd = onEnd;
    this.h.onread = peekRead;
    this.h.readStart();
  }
  stopPeek(): void {
    if (!this.closed) this.h.readStop();
  }
  dial(host: string, port: number, timeoutMs: number, onConnect: () => void, onFail: (err: Error) => void): void {
    this.onConnect = onConnect;
    this.onFail = onFail;
    this.dialTimeoutMs = timeoutMs;
    const family = ipFamily(host);
    if (family === 0) {
      dns.lookup(host, (err, address, fam) => {
        if (this.closed) return;
        if (err) { onFail(err); return; }
        this.connectTo(address, fam === 6, port);
      });
      return;
    }
    this.connectTo(host, family === 6, port);
  }
  private connectTo(ip: string, v6: boolean, port: number): void {
    const b = this.b;
    const up = new b.TCP(b.SOCKET);
    const req = new b.TCPConnectWrap();
    req.oncomplete = afterConnect;
    req.conn = this;
    req.up = up;
    this.dialUp = up;
    this.dialWhere = v6 ? `[${ip}]:${port}` : `${ip}:${port}`;
    const err = v6 ? up.connect6(req, ip, port) : up.connect(req, ip, port);
    if (err !== 0) {
      this.dialUp = undefined;
      up.close();
      // Asynchronously, as a failed connect would report: the caller's retry loop is not re-entered.
      setImmediate(() => { if (!this.closed) this.onFail!(sysError('connect', err, this.dialWhere)); });
      return;
    }
    this.dialDeadline = Date.now() + this.dialTimeoutMs;
    dialing.add(this);
    if (!dialSweep) dialSweep = setInterval(sweepDials, DIAL_SWEEP_MS).unref();
  }
  /** The dial ended (connected, failed, timed out, or the caller closed): forget it. */
  endDial(): void {
    this.dialUp = undefined;
    dialing.delete(this);
  }
  splice(first: Buffer, onDone: (rx: number, tx: number) => void): void {
    this.onDone = onDone;
    this.onData = undefined;
    this.onEnd = undefined;
    this.h.onread = callerRead;
    this.up.onread = upRead;
    this.write(0, first);
    if (this.closed) return;
    this.up.readStart();
    if (!this.pending0) this.h.readStart();
  }
  /** Writes `buf` to direction `dir`'s destination; false if the connection closed. */
  write(dir: 0 | 1, buf: Uint8Array): void {
    const b = this.b;
    const dst = dir === 0 ? this.up : this.h;
    const req = new b.WriteWrap();
    req.handle = dst;
    req.oncomplete = afterWrite;
    req.async = false;
    req.conn = this;
    req.dir = dir;
    req.buffer = buf; // kept until the write completes
    const err = dst.writeBuffer(req, buf);
    if (err !== 0) { this.destroy(); return; }
    if (b.state[b.kLastWriteWasAsync] !== 0) {
      // The kernel took part of it: stop the source until libuv finishes (afterWrite).
      if (dir === 0) { this.pending0 = true; this.h.readStop(); } else { this.pending1 = true; this.up.readStop(); }
    }
  }
  /** Direction `dir`'s source is at its end and all it sent is written. */
  finish(dir: 0 | 1): void {
    const otherDone = dir === 0 ? this.ended1 && !this.pending1 : this.ended0 && !this.pending0;
    if (otherDone) { this.close(); return; }
    const req = new this.b.ShutdownWrap();
    req.handle = dir === 0 ? this.up : this.h;
    req.oncomplete = afterShutdown;
    req.conn = this;
    if (req.handle.shutdown(req) !== 0) this.destroy();
  }
  /** Closes both handles (a normal end or an error alike: libuv closes the descriptors). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.dialUp) { this.dialUp.close(); this.endDial(); }
    const rx = this.h.bytesRead as number;
    const tx = this.h.bytesWritten as number;
    this.h.close();
    if (this.up) this.up.close();
    this.open.delete(this);
    const done = this.onDone;
    this.onDone = undefined;
    if (done) done(rx, tx);
    this.onClosed?.(this);
  }
  destroy(): void { this.close(); }
}

/** Dials in progress, checked against their deadlines every DIAL_SWEEP_MS (not a timer per dial). */
const dialing = new Set<RawConn>();
const DIAL_SWEEP_MS = 250;
let dialSweep: NodeJS.Timeout | undefined;
function sweepDials(): void {
  const now = Date.now();
  for (const c of dialing) {
    if (c.dialDeadline > now) continue;
    const up = c.dialUp;
    c.endDial();
    up.close(); // its connect completes with ECANCELED, which afterConnect ignores
    c.onFail!(Object.assign(new Error(`no connection within ${c.dialTimeoutMs} ms (${c.dialWhere})`), { code: 'ETIMEDOUT' }));
  }
  if (dialing.size === 0 && dialSweep) { clearInterval(dialSweep); dialSweep = undefined; }
}

function afterConnect(this: Req, status: number): void {
  const c: RawConn = this.conn;
  const up: Handle = this.up;
  // Timed out or the caller closed meanwhile: the handle is closed already.
  if (c.dialUp !== up) return;
  c.endDial();
  if (status < 0) { up.close(); c.onFail!(sysError('connect', status, c.dialWhere)); return; }
  up.setNoDelay(true);
  up.conn = c;
  c.up = up;
  c.onConnect!();
}

/** net.isIP, remembered per host (instance addresses repeat; the check is two regular expressions). */
const families = new Map<string, number>();
function ipFamily(host: string): number {
  let f = families.get(host);
  if (f === undefined) {
    f = net.isIP(host);
    if (families.size >= 4096) families.clear();
    families.set(host, f);
  }
  return f;
}

function peekRead(this: Handle, ab: ArrayBuffer): void {
  const c: RawConn = this.conn;
  const b = rawBinding()!;
  const n = b.state[b.kReadBytesOrError]!;
  if (n > 0) { c.onData?.(Buffer.from(ab, b.state[b.kArrayBufferOffset], n)); return; }
  if (n === 0) return;
  this.readStop();
  if (n === UV_EOF && c.onEnd) { c.onEnd(); return; }
  c.destroy();
}

function relayRead(c: RawConn, dir: 0 | 1, ab: ArrayBuffer, b: Binding): void {
  const n = b.state[b.kReadBytesOrError]!;
  if (n > 0) { c.write(dir, new Uint8Array(ab, b.state[b.kArrayBufferOffset], n)); return; }
  if (n === 0) return;
  if (n !== UV_EOF) { c.destroy(); return; } // a reset or another error: both go
  (dir === 0 ? c.h : c.up).readStop();
  if (dir === 0) { c.ended0 = true; if (!c.pending0) c.finish(0); } else { c.ended1 = true; if (!c.pending1) c.finish(1); }
}

function callerRead(this: Handle, ab: ArrayBuffer): void { relayRead(this.conn, 0, ab, binding!); }
function upRead(this: Handle, ab: ArrayBuffer): void { relayRead(this.conn, 1, ab, binding!); }

function afterWrite(this: Req, status: number): void {
  const c: RawConn = this.conn;
  const dir: 0 | 1 = this.dir;
  if (dir === 0) c.pending0 = false; else c.pending1 = false;
  if (c.closed) return;
  if (status < 0) { c.destroy(); return; }
  const ended = dir === 0 ? c.ended0 : c.ended1;
  if (ended) { c.finish(dir); return; }
  (dir === 0 ? c.h : c.up).readStart();
}

function afterShutdown(this: Req, status: number): void {
  const c: RawConn = this.conn;
  if (!c.closed && status < 0) c.destroy();
}

function rawTransport(): Transport | null {
  const b = rawBinding();
  if (!b) return null;
  return {
    name: 'raw',
    async listen(host, port, backlog, onConn) {
      const server = new b.TCP(b.SERVER);
      const v6 = net.isIP(host) === 6;
      const where = `${v6 ? `[${host}]` : host}:${port}`;
      let err: number = v6 ? server.bind6(host, port, 0) : server.bind(host, port);
      if (err === 0) err = server.listen(backlog);
      if (err !== 0) { server.close(); throw sysError('listen', err, where); }
      const open = new Set<RawConn>();
      server.onconnection = (status: number, client: Handle) => {
        if (status !== 0 || !client) return;
        client.setNoDelay(true);
        onConn(new RawConn(b, client, open));
      };
      const address = (): net.AddressInfo => {
        const out = {} as net.AddressInfo;
        server.getsockname(out);
        return out;
      };
      const addr = address();
      return {
        address: () => addr,
        close: async () => {
          server.close();
          for (const c of [...open]) c.destroy();
        },
      };
    },
  };
}
