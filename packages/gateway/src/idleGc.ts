// A full garbage collection once HTTP traffic has stopped for a while. The L7 paths allocate per
// request (parsers, messages, streams); after a burst V8 keeps the garbage and the room it grew to
// until allocation resumes (measured in test/gateway/l7Routing.test.ts after 2,000 requests: heap
// used 13.6 MB, 6.8 MB after this collection). One collection a few seconds after the last
// request gives the heap back; nothing runs while traffic flows or while the proxy has been idle
// since its last collection.
//
// The collection is V8's "last resort" flavour (what V8 runs before an out-of-memory error: full
// GCs that shrink the young generation and unmap the pages the heap no longer uses). A plain
// gc() frees objects but keeps their 256 KB pages pooled and the young generation at the size the
// burst grew it to, so the RSS stays: measured on an HTTP-mode proxy from the bundle after 2,000
// requests: idle RSS 62.5 / 61.9 MB (payments / web side) with gc(), 57.1 / 58.0 MB with this
// (docs/BENCHMARKS.md, "L7 proxy idle RSS").

import type net from 'node:net';
import v8 from 'node:v8';
import vm from 'node:vm';

type Gc = (options?: { type?: 'major' | 'minor'; execution?: 'sync' | 'async'; flavor?: 'regular' | 'last-resort' }) => void;
let gc: Gc | undefined | null = null;
function getGc(): Gc | undefined {
  if (gc !== null) return gc;
  try {
    v8.setFlagsFromString('--expose-gc');
    gc = vm.runInNewContext('gc') as Gc;
  } catch {
    gc = undefined;
  }
  return gc;
}

/** The bytes the open sockets of `sockets` have moved: an L4 listener's traffic, read only when a collection is due. */
export function bytesMoved(sockets: Iterable<net.Socket>): () => number {
  return () => {
    let n = 0;
    for (const s of sockets) n += s.bytesRead + s.bytesWritten;
    return n;
  };
}

export class IdleGc {
  private busySince = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly idleMs: number;
  /** Runs just before the collection (an owner frees what it holds for traffic: idle pooled connections). */
  private readonly beforeGc: (() => void) | undefined;
  /**
   * Traffic that touch() does not see (an L4 listener touches per new connection, not per chunk):
   * a figure that changes while it flows. Checked when a collection is due; a change counts as
   * activity, so kept-alive connections still carrying requests never get a last-resort GC (a
   * pause of several ms) in the middle of their traffic.
   */
  private readonly activity: (() => number) | undefined;
  private lastActivity = 0;
  constructor(idleMs = 5000, beforeGc?: () => void, activity?: () => number) {
    this.idleMs = idleMs;
    this.beforeGc = beforeGc;
    this.activity = activity;
  }

  /** Called per request: (re)arms the collection for `idleMs` after the last one. */
  touch(): void {
    this.busySince = Date.now();
    if (this.timer) return;
    this.timer = setTimeout(() => this.fire(), this.idleMs).unref();
  }

  private fire(): void {
    this.timer = undefined;
    if (this.activity) {
      const a = this.activity();
      if (a !== this.lastActivity) { this.lastActivity = a; this.busySince = Date.now(); }
    }
    const quiet = Date.now() - this.busySince;
    if (quiet < this.idleMs) { this.timer = setTimeout(() => this.fire(), this.idleMs - quiet).unref(); return; }
    const collect = () => getGc()?.({ type: 'major', execution: 'sync', flavor: 'last-resort' });
    if (!this.beforeGc) { collect(); return; }
    // What it closes is released once the handles' close callbacks ran (a loop turn later).
    this.beforeGc();
    setTimeout(collect, 100).unref();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
