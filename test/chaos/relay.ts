// A user-space TCP relay that delays traffic: this kernel has no netem qdisc, so delay and jitter are
// added here. Each listener forwards to one fixed destination; every chunk read from either side is
// written to the other after `delayMs ± jitterMs`, never overtaking an earlier chunk of the same
// direction (TCP stays in order). Members' connections are steered into it by nft dnat
// (Netns.redirect), so the agents are unchanged.
import net from 'node:net';

/**
 * When a chunk that may leave `waitMs` from now is due, given the previous chunk of its direction was
 * due at `lastDue`: never before it (a TCP stream stays in order). Shared with loopback.ts's relay.
 */
export function orderedDue(lastDue: number, waitMs: number): number {
  return Math.max(lastDue, Date.now() + Math.max(0, waitMs));
}

export class DelayRelay {
  delayMs = 0;
  jitterMs = 0;
  readonly server: net.Server;
  readonly #sockets = new Set<net.Socket>();
  readonly #timers = new Set<NodeJS.Timeout>();
  /** Chunks relayed (both directions), for the report. */
  chunks = 0;
  /** Connections accepted, and those whose connection to the destination failed (for diagnostics). */
  accepted = 0;
  upstreamFailures = 0;

  private constructor(server: net.Server) {
    this.server = server;
  }

  /** Listens on host:0 (a kernel-chosen port) and relays every connection to dest. */
  static async start(host: string, dest: { host: string; port: number }, random: () => number = Math.random): Promise<DelayRelay> {
    let relay!: DelayRelay;
    const server = net.createServer((inbound) => relay.#pipe(inbound, dest, random));
    relay = new DelayRelay(server);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host, port: 0 }, () => resolve());
    });
    return relay;
  }

  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }

  #pipe(inbound: net.Socket, dest: { host: string; port: number }, random: () => number): void {
    this.accepted++;
    const outbound = net.connect(dest.port, dest.host);
    outbound.once('error', () => { this.upstreamFailures++; });
    for (const s of [inbound, outbound]) {
      this.#sockets.add(s);
      s.setNoDelay(true);
      s.on('close', () => this.#sockets.delete(s));
      s.on('error', () => { inbound.destroy(); outbound.destroy(); });
    }
    const forward = (from: net.Socket, to: net.Socket) => {
      let lastDue = 0;
      let pending = 0;
      from.on('data', (chunk: Buffer) => {
        const jitter = this.jitterMs > 0 ? (random() * 2 - 1) * this.jitterMs : 0;
        const due = orderedDue(lastDue, this.delayMs + jitter);
        lastDue = due;
        const wait = due - Date.now();
        this.chunks++;
        if (wait <= 0 && pending === 0) {
          to.write(chunk);
          return;
        }
        pending++;
        const t = setTimeout(() => {
          this.#timers.delete(t);
          pending--;
          if (!to.destroyed) to.write(chunk);
        }, Math.max(0, wait));
        this.#timers.add(t);
      });
      from.on('end', () => {
        const t = setTimeout(() => { this.#timers.delete(t); to.end(); }, Math.max(0, lastDue - Date.now()));
        this.#timers.add(t);
      });
    };
    forward(inbound, outbound);
    forward(outbound, inbound);
  }

  async close(): Promise<void> {
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
