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
// (the `node@24` devDependency the launcher runs), `uvBinding()` (../uvHandles.ts) checks every shape
// used before raw is chosen, and the forwarding tests run against both implementations.

import dns from 'node:dns';
import net from 'node:net';
import util from 'node:util';
import { HandleRelay, UV_EOF, uvBinding, type Handle, type UvBinding } from '../uvHandles.ts';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Req = any; // TCPConnectWrap

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
function splice(caller: net.Socket, up: net.Socket, onClose: () => void): void {
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

/**
 * One caller and, once dialled, its upstream, as libuv handles; after the dial a HandleRelay
 * (../uvHandles.ts) moves the bytes. The second direction to end closes both handles without a
 * shutdown first (close() sends the FIN after the data the kernel holds, and both inputs are at
 * their end, so no reset).
 */
class RawConn implements GwConn {
  onClosed?: (conn: GwConn) => void;
  closed = false;
  readonly h: Handle;
  up: Handle = undefined;
  private readonly b: UvBinding;
  onData?: (chunk: Buffer) => void;
  onEnd?: () => void;
  private onDone?: (rx: number, tx: number) => void;
  private relay?: HandleRelay;
  /** The dial in progress: its handle, when it gives up, what to call. */
  dialUp: Handle = undefined;
  dialDeadline = 0;
  dialTimeoutMs = 0;
  dialWhere = '';
  onConnect?: () => void;
  onFail?: (err: Error) => void;
  /** The listener's open connections (closed by its close()). */
  private readonly open: Set<RawConn>;
  constructor(b: UvBinding, h: Handle, open: Set<RawConn>) {
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
    this.relay = new HandleRelay(this.b, this.h, this.up, { closeOnLastEnd: true, close: () => this.close() });
    this.relay.start([first]);
  }
  /** Closes both handles (a normal end or an error alike: libuv closes the descriptors). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.dialUp) { this.dialUp.close(); this.endDial(); }
    if (this.relay) this.relay.done = true;
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
  const b = uvBinding()!;
  const n = b.state[b.kReadBytesOrError]!;
  if (n > 0) { c.onData?.(Buffer.from(ab, b.state[b.kArrayBufferOffset], n)); return; }
  if (n === 0) return;
  this.readStop();
  if (n === UV_EOF && c.onEnd) { c.onEnd(); return; }
  c.destroy();
}

function rawTransport(): Transport | null {
  const b = uvBinding();
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
