// ServerDiscovery fed by join addresses over the servers' own Status RPC, for a Server that runs
// without a gossip pool (in-process tests, tools); agents find servers in gossip (gossipDiscovery.ts).
//
//   - Seeds (-join / -retry-join, host[:port] of other servers' server ports) are asked at start and
//     then every retry interval until they answer (-retry-max attempts, 0 = forever).
//   - Every server that answered, introduced itself by calling us (observe), or was listed by another
//     server is probed every probeIntervalMs. Each answer also lists the servers the other one knows,
//     so one reachable seed is enough to find the whole datacenter.
//   - A known server that has not answered for failAfterMs is 'failed'; it is 'alive' again as soon
//     as it answers. A server that announces it is leaving, or that others report as 'left' while we
//     cannot reach it, is 'left'.
import { EventEmitter } from 'node:events';
import type { Logger } from '../logger.ts';
import type { StatusResponseMsg, ServerIdentityMsg } from '../rpc/proto.ts';
import type { DiscoveredServer, ServerDiscovery, ServerStatus } from './discovery.ts';

export interface JoinDiscoveryOptions {
  /** This server's ID (its own address may be among the seeds; it is never listed). */
  selfId: string;
  seeds: string[];
  /** Asks one address for its Status (the implementation introduces us as the caller). */
  probe(address: string, timeoutMs: number): Promise<StatusResponseMsg>;
  logger: Logger;
  probeIntervalMs?: number;
  failAfterMs?: number;
  /** Between attempts on a seed that has not answered yet. */
  retryIntervalMs?: number;
  /** Attempts per seed before giving up on it; 0 = forever. */
  retryMaxAttempts?: number;
  now?: () => number;
}

interface Known {
  server: DiscoveredServer;
  lastOk: number;
  /** Others said it left (kept until we hear from it ourselves). */
  reportedLeft: boolean;
  /** It told us itself that it is leaving. */
  leaving: boolean;
}

interface Seed {
  address: string;
  attempts: number;
  nextAt: number;
  /** Answered at least once (then it is probed as a known server, by id). */
  joined: boolean;
  gaveUp: boolean;
}

export function identityToServer(id: ServerIdentityMsg, status: ServerStatus): DiscoveredServer | undefined {
  if (!id.id || !id.raftAddress) return undefined;
  return {
    id: id.id, name: id.name ?? '', raftAddr: id.raftAddress, dc: id.datacenter ?? '', expect: id.bootstrapExpect ?? 0,
    bootstrap: id.bootstrap ?? false, version: id.version ?? '', status,
  };
}

export class JoinDiscovery implements ServerDiscovery {
  readonly #o: Required<Omit<JoinDiscoveryOptions, 'now'>> & { now: () => number };
  readonly #log: Logger;
  readonly #events = new EventEmitter();
  readonly #known = new Map<string, Known>();
  readonly #seeds = new Map<string, Seed>();
  /** Addresses other servers told us about, to probe once (they become known when they answer). */
  readonly #hinted = new Set<string>();
  #timer: NodeJS.Timeout | undefined;
  #running = false;
  #round: Promise<void> | undefined;

  constructor(o: JoinDiscoveryOptions) {
    this.#o = {
      probeIntervalMs: 1000, failAfterMs: 3000, retryIntervalMs: 30_000, retryMaxAttempts: 0, now: Date.now, ...o,
    };
    this.#log = o.logger.child({ component: 'agent.server.discovery' });
    this.addSeeds(o.seeds);
  }

  servers(): DiscoveredServer[] {
    return [...this.#known.values()].map((k) => ({ ...k.server }));
  }

  on(event: 'change', fn: () => void): void {
    this.#events.on(event, fn);
  }

  off(event: 'change', fn: () => void): void {
    this.#events.off(event, fn);
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    const tick = () => {
      if (!this.#running) return;
      this.#round = this.runRound().finally(() => {
        if (this.#running) this.#timer = setTimeout(tick, this.#o.probeIntervalMs);
      });
    };
    tick();
  }

  async stop(): Promise<void> {
    this.#running = false;
    clearTimeout(this.#timer);
    await this.#round?.catch(() => { /* a round's failures are logged by the round */ });
  }

  addSeeds(addresses: string[]): void {
    for (const address of addresses) {
      if (this.#seeds.has(address)) continue;
      this.#seeds.set(address, { address, attempts: 0, nextAt: 0, joined: false, gaveUp: false });
    }
  }

  observe(server: Omit<DiscoveredServer, 'status'>): void {
    if (server.id === this.#o.selfId) return;
    this.#record({ ...server, status: 'alive' }, false);
  }

  /** One probing round (exposed for tests). */
  async runRound(): Promise<void> {
    const now = this.#o.now();
    const timeout = Math.max(200, Math.min(this.#o.probeIntervalMs, 2000));
    const jobs: Array<Promise<void>> = [];
    const probedAddrs = new Set<string>();
    for (const k of this.#known.values()) {
      probedAddrs.add(k.server.raftAddr);
      jobs.push(this.#probeKnown(k, timeout));
    }
    for (const seed of this.#seeds.values()) {
      if (seed.joined || seed.gaveUp || now < seed.nextAt || probedAddrs.has(seed.address)) continue;
      probedAddrs.add(seed.address);
      jobs.push(this.#probeSeed(seed, timeout));
    }
    for (const addr of this.#hinted) {
      this.#hinted.delete(addr);
      if (probedAddrs.has(addr)) continue;
      probedAddrs.add(addr);
      jobs.push(this.#o.probe(addr, timeout).then((res) => this.#onAnswer(res), () => { /* only a hint: it becomes known when it answers */ }));
    }
    await Promise.all(jobs);
    this.#checkFailures();
  }

  async #probeSeed(seed: Seed, timeout: number): Promise<void> {
    seed.attempts++;
    try {
      const res = await this.#o.probe(seed.address, timeout);
      seed.joined = true;
      if (res.server?.id === this.#o.selfId) return; // our own address among the seeds
      this.#log.info({ address: seed.address, server: res.server?.name, attempts: seed.attempts }, 'joined server');
      this.#onAnswer(res);
    } catch (err) {
      const max = this.#o.retryMaxAttempts;
      if (max > 0 && seed.attempts >= max) {
        seed.gaveUp = true;
        this.#log.error({ address: seed.address, attempts: seed.attempts, err: (err as Error).message }, 'could not join server: giving up (retry_max reached)');
        return;
      }
      seed.nextAt = this.#o.now() + this.#o.retryIntervalMs;
      const fields = { address: seed.address, attempt: seed.attempts, retryInMs: this.#o.retryIntervalMs, err: (err as Error).message };
      if (seed.attempts === 1) this.#log.warn(fields, 'join failed; will retry');
      else this.#log.debug(fields, 'join failed; will retry');
    }
  }

  async #probeKnown(k: Known, timeout: number): Promise<void> {
    try {
      const res = await this.#o.probe(k.server.raftAddr, timeout);
      if (res.server?.id !== k.server.id) {
        // Someone else answers at that address now (a restarted server with a new ID, or a reused
        // port). The old one is not there: let it fail; learn the new one.
        if (res.server?.id !== this.#o.selfId) this.#onAnswer(res);
        return;
      }
      this.#onAnswer(res);
    } catch {
      // Failure detection happens in #checkFailures by time since the last answer.
    }
  }

  #onAnswer(res: StatusResponseMsg): void {
    const id = res.server;
    if (!id?.id || id.id === this.#o.selfId) return;
    const status: ServerStatus = res.leaving ? 'left' : 'alive';
    const server = identityToServer(id, status);
    if (!server) return;
    this.#record(server, res.leaving ?? false);
    for (const ks of res.knownServers ?? []) {
      const other = ks.server ? identityToServer(ks.server, 'alive') : undefined;
      if (!other || other.id === this.#o.selfId) continue;
      const known = this.#known.get(other.id);
      if (ks.status === 'left' && known && known.server.status !== 'alive') {
        known.reportedLeft = true;
        this.#setStatus(known, 'left');
      }
      if (!known || known.server.raftAddr !== other.raftAddr) this.#hinted.add(other.raftAddr);
    }
  }

  #record(server: DiscoveredServer, leaving: boolean): void {
    const now = this.#o.now();
    const k = this.#known.get(server.id);
    if (k === undefined) {
      this.#known.set(server.id, { server, lastOk: now, reportedLeft: false, leaving });
      this.#log.info({ id: server.id, name: server.name, address: server.raftAddr, dc: server.dc, expect: server.expect }, 'discovered server');
      this.#emit();
      return;
    }
    k.lastOk = now;
    k.leaving = leaving;
    k.reportedLeft = false;
    const changed = k.server.raftAddr !== server.raftAddr || k.server.name !== server.name || k.server.dc !== server.dc ||
      k.server.expect !== server.expect || k.server.bootstrap !== server.bootstrap || k.server.status !== server.status;
    if (changed) {
      if (k.server.raftAddr !== server.raftAddr) this.#log.info({ id: server.id, from: k.server.raftAddr, to: server.raftAddr }, 'server address changed');
      if (k.server.status !== server.status) this.#log.info({ id: server.id, name: server.name, status: server.status }, `server is ${server.status}`);
      k.server = server;
      this.#emit();
    }
  }

  #checkFailures(): void {
    const now = this.#o.now();
    for (const k of this.#known.values()) {
      if (k.server.status === 'alive' && now - k.lastOk > this.#o.failAfterMs) {
        this.#setStatus(k, k.leaving || k.reportedLeft ? 'left' : 'failed');
      }
    }
  }

  #setStatus(k: Known, status: ServerStatus): void {
    if (k.server.status === status) return;
    k.server = { ...k.server, status };
    this.#log.info({ id: k.server.id, name: k.server.name, address: k.server.raftAddr, status }, `server is ${status}`);
    this.#emit();
  }

  #emit(): void {
    // Listeners must not break discovery; each is isolated.
    for (const fn of this.#events.listeners('change') as Array<() => void>) {
      try {
        fn();
      } catch (err) {
        this.#log.error({ err }, 'discovery change listener threw');
      }
    }
  }
}
