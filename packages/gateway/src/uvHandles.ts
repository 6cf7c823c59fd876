// Node's stream handles driven from JavaScript: libuv TCP handles (tcp_wrap) and the TLS layer
// over them (TLSWrap), through Node's own `tcp_wrap`/`stream_wrap` bindings, the layer under
// net.Socket. A relay between two such handles moves each read to the other side in one callback,
// with no Readable/Writable streams, events or nextTicks in between: per chunk a few lines of
// JavaScript instead of Node's stream machinery (which the proxy's lite mode interprets, and which
// dominates the mesh gateway's CPU per connection; docs/BENCHMARKS.md).
//
// The bindings come from `process.binding`, deprecated (DEP0111; a warning only under
// --pending-deprecation) and internal: their shapes are Node's to change. Node is pinned (the
// `node@24` devDependency that the launcher runs), and uvBinding() checks every function and
// constant used here before anything relies on them; callers fall back to net.Socket streams when
// it returns null.

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Handle = any; // Node's internal TCPWrap / TLSWrap objects (no types)
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Req = any; // WriteWrap, ShutdownWrap

export interface UvBinding {
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

let binding: UvBinding | null | undefined;

/** Node's tcp_wrap and stream_wrap bindings, if every part used here is there; else null. */
export function uvBinding(): UvBinding | null {
  if (binding !== undefined) return binding;
  binding = null;
  if (process.env.TRELLIS_NO_UV_HANDLES) return null;
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

/** A stream handle the relay can drive: reads through `onread`, writes through writeBuffer. */
export function isStreamHandle(h: Handle): boolean {
  return h != null && typeof h.readStart === 'function' && typeof h.readStop === 'function' &&
    typeof h.writeBuffer === 'function' && typeof h.shutdown === 'function' && 'onread' in h;
}

export const UV_EOF = -4095;

/** Bytes written to a destination and not yet taken by it, past which its source stops reading. */
const HIGH_WATER = 64 * 1024;

export interface RelayOptions {
  /**
   * Close both handles when the second direction ends, without shutting down that direction's
   * destination first (close() sends the FIN after the data the kernel holds). For plain TCP only:
   * a TLS destination must send its close_notify, which takes a shutdown.
   */
  closeOnLastEnd: boolean;
  /** Closes both ends (called once: after both directions ended, or at once on an error). */
  close: (error: boolean) => void;
}

/**
 * Relays two stream handles both ways. Direction 0 reads `a` and writes `z`, direction 1 the
 * reverse. Each read is written to the other side in its callback, from the read's own buffer (Node
 * allocates one per read). Backpressure: once more than HIGH_WATER bytes wait to be written to a
 * destination, its source stops reading until they are written. A source's end, once what it sent
 * is written, shuts down the destination's write side (half-close); when both directions have
 * ended, both handles are closed. A read or write error closes both at once.
 */
export class HandleRelay {
  done = false;
  private readonly b: UvBinding;
  readonly a: Handle;
  readonly z: Handle;
  private readonly opts: RelayOptions;
  /** Per direction: the source is at its end; bytes and writes in flight; reads stopped; finished. */
  ended0 = false; ended1 = false;
  queued0 = 0; queued1 = 0;
  writes0 = 0; writes1 = 0;
  stopped0 = false; stopped1 = false;
  finished0 = false; finished1 = false;
  shutdowns = 0;

  constructor(b: UvBinding, a: Handle, z: Handle, opts: RelayOptions) {
    this.b = b;
    this.a = a;
    this.z = z;
    this.opts = opts;
  }

  /**
   * Starts relaying. `toZ` / `toA`: bytes already read from a / z (to be written first); `aEnded` /
   * `zEnded`: that source's end was already read.
   */
  start(toZ: readonly Uint8Array[] = [], aEnded = false, toA: readonly Uint8Array[] = [], zEnded = false): void {
    this.a.relay = this;
    this.a.relayDir = 0;
    this.z.relay = this;
    this.z.relayDir = 1;
    this.a.onread = relayOnRead;
    this.z.onread = relayOnRead;
    for (const c of toZ) { if (this.done) return; this.write(0, c); }
    for (const c of toA) { if (this.done) return; this.write(1, c); }
    if (this.done) return;
    if (aEnded) this.sourceEnded(0);
    if (zEnded && !this.done) this.sourceEnded(1);
    if (this.done) return;
    if (!this.ended0 && !this.stopped0) this.a.readStart();
    if (!this.ended1 && !this.stopped1) this.z.readStart();
  }

  /** Writes `buf` to direction `dir`'s destination. */
  write(dir: 0 | 1, buf: Uint8Array): void {
    const b = this.b;
    const dst = dir === 0 ? this.z : this.a;
    const req = new b.WriteWrap();
    req.handle = dst;
    req.oncomplete = afterRelayWrite;
    req.async = false;
    req.relay = this;
    req.dir = dir;
    req.bytes = buf.length;
    req.buffer = buf; // kept until the write completes
    const err = dst.writeBuffer(req, buf);
    if (err !== 0) { this.fail(); return; }
    if (b.state[b.kLastWriteWasAsync] === 0) return;
    // Not all taken at once (TLS writes always complete later): counted until afterRelayWrite.
    if (dir === 0) {
      this.writes0++;
      this.queued0 += buf.length;
      if (this.queued0 > HIGH_WATER && !this.stopped0) { this.stopped0 = true; this.a.readStop(); }
    } else {
      this.writes1++;
      this.queued1 += buf.length;
      if (this.queued1 > HIGH_WATER && !this.stopped1) { this.stopped1 = true; this.z.readStop(); }
    }
  }

  /** Direction `dir`'s source read its end. */
  sourceEnded(dir: 0 | 1): void {
    if (dir === 0) { this.ended0 = true; this.a.readStop(); if (this.writes0 === 0) this.finish(0); } else { this.ended1 = true; this.z.readStop(); if (this.writes1 === 0) this.finish(1); }
  }

  /** Direction `dir`'s source ended and all it sent is written: shut its destination, or close both. */
  finish(dir: 0 | 1): void {
    if (dir === 0) { if (this.finished0) return; this.finished0 = true; } else { if (this.finished1) return; this.finished1 = true; }
    const bothFinished = this.finished0 && this.finished1;
    if (bothFinished && this.opts.closeOnLastEnd) { this.end(false); return; }
    const req = new this.b.ShutdownWrap();
    req.handle = dir === 0 ? this.z : this.a;
    req.relay = this;
    // With closeOnLastEnd nothing waits for the shutdown (the last end closes both either way; a
    // shutdown that fails leaves a socket whose reads or writes fail next): no callback into
    // JavaScript for it, one fewer per connection.
    if (!this.opts.closeOnLastEnd) {
      req.oncomplete = afterRelayShutdown;
      this.shutdowns++;
    }
    if (req.handle.shutdown(req) !== 0) this.fail();
  }

  /** Both directions shut down: close. */
  afterShutdown(status: number): void {
    this.shutdowns--;
    if (this.done) return;
    if (status < 0) { this.fail(); return; }
    if (this.finished0 && this.finished1 && this.shutdowns === 0) this.end(false);
  }

  fail(): void { this.end(true); }

  private end(error: boolean): void {
    if (this.done) return;
    this.done = true;
    this.opts.close(error);
  }
}

function relayOnRead(this: Handle, ab: ArrayBuffer): void {
  const r: HandleRelay = this.relay;
  if (r.done) return;
  const b = binding!;
  const n = b.state[b.kReadBytesOrError]!;
  if (n > 0) { r.write(this.relayDir, new Uint8Array(ab, b.state[b.kArrayBufferOffset], n)); return; }
  if (n === 0) return;
  if (n !== UV_EOF) { r.fail(); return; } // a reset or another error: both go
  r.sourceEnded(this.relayDir);
}

function afterRelayWrite(this: Req, status: number): void {
  const r: HandleRelay = this.relay;
  const dir: 0 | 1 = this.dir;
  let left: number;
  if (dir === 0) { r.writes0--; r.queued0 -= this.bytes; left = r.writes0; } else { r.writes1--; r.queued1 -= this.bytes; left = r.writes1; }
  if (r.done) return;
  if (status < 0) { r.fail(); return; }
  if (dir === 0) {
    if (r.stopped0 && r.queued0 <= HIGH_WATER) { r.stopped0 = false; if (!r.ended0) r.a.readStart(); }
    if (r.ended0 && left === 0) r.finish(0);
  } else {
    if (r.stopped1 && r.queued1 <= HIGH_WATER) { r.stopped1 = false; if (!r.ended1) r.z.readStart(); }
    if (r.ended1 && left === 0) r.finish(1);
  }
}

function afterRelayShutdown(this: Req, status: number): void {
  (this.relay as HandleRelay).afterShutdown(status);
}
