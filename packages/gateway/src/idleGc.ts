// A full garbage collection once HTTP traffic has stopped for a while. The L7 paths allocate per
// request (parsers, messages, streams); after a burst V8 keeps the garbage and the room it grew to
// until allocation resumes (measured in test/gateway/l7Routing.test.ts after 2,000 requests: heap
// used 13.6 MB, 6.8 MB after this collection). One collection a few seconds after the last
// request gives the heap back; nothing runs while traffic flows or while the proxy has been idle
// since its last collection. What stays above the TCP proxy's ~57 MB is native memory (OpenSSL and
// malloc), which closing idle pooled connections did not return either (measured: no change).

import v8 from 'node:v8';
import vm from 'node:vm';

let gc: (() => void) | undefined | null = null;
function getGc(): (() => void) | undefined {
  if (gc !== null) return gc;
  try {
    v8.setFlagsFromString('--expose-gc');
    gc = vm.runInNewContext('gc') as () => void;
  } catch {
    gc = undefined;
  }
  return gc;
}

export class IdleGc {
  private busySince = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly idleMs: number;
  constructor(idleMs = 5000) {
    this.idleMs = idleMs;
  }

  /** Called per request: (re)arms the collection for `idleMs` after the last one. */
  touch(): void {
    this.busySince = Date.now();
    if (this.timer) return;
    this.timer = setTimeout(() => this.fire(), this.idleMs).unref();
  }

  private fire(): void {
    this.timer = undefined;
    const quiet = Date.now() - this.busySince;
    if (quiet < this.idleMs) { this.timer = setTimeout(() => this.fire(), this.idleMs - quiet).unref(); return; }
    getGc()?.();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
