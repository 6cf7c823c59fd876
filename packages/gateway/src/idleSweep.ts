// Closes idle connections with one coarse timer instead of a socket timeout each. A socket timeout
// (socket.setTimeout) re-arms a timer on every read and write: interpreted JavaScript per chunk in
// the proxy's lite mode (~5% of the L7 fast path's CPU profile). Here a connection only sets a flag
// when used; a sweep every `everyMs` closes what was not used since the sweep before, so an idle
// connection goes after between one and two periods.

export class IdleSweep<T> {
  private readonly items = new Set<T>();
  private timer: NodeJS.Timeout | undefined;
  private readonly everyMs: number;
  /** Called per item each sweep: returns true when the item was idle for a whole period (it is then dropped). */
  private readonly check: (item: T) => boolean;
  constructor(everyMs: number, check: (item: T) => boolean) {
    this.everyMs = everyMs;
    this.check = check;
  }

  add(item: T): void {
    this.items.add(item);
    this.timer ??= setInterval(() => this.sweep(), this.everyMs).unref();
  }

  delete(item: T): void {
    this.items.delete(item);
    if (this.items.size === 0 && this.timer) { clearInterval(this.timer); this.timer = undefined; }
  }

  private sweep(): void {
    for (const item of [...this.items]) if (this.check(item)) this.delete(item);
  }
}
