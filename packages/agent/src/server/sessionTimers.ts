// Session TTL timers on the leader (Consul's agent/consul/session_ttl.go): renewing is not a Raft
// write; only an expiry becomes a sessionDestroy command. A timer fires at 2×TTL (Consul's grace).
// A new leader rebuilds every timer from the session table, so a TTL never outlives a failover by
// more than its grace.
import type { StateStore, Command, CommandResult } from '../state/index.ts';
import type { Logger } from '../logger.ts';
import { parseGoDuration } from '../state/index.ts';
import { NoLeaderError } from './raftServer.ts';

export class SessionTimers {
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private leader = false;
  private readonly store: StateStore;
  private readonly apply: (cmd: Command) => Promise<CommandResult>;
  private readonly logger: Logger;

  constructor(store: StateStore, apply: (cmd: Command) => Promise<CommandResult>, logger: Logger) {
    this.store = store;
    this.apply = apply;
    this.logger = logger.child({ component: 'agent.server.session' });
  }

  /** Called on every leadership change. */
  setLeader(isLeader: boolean): void {
    this.leader = isLeader;
    this.clearAll();
    if (!isLeader) return;
    for (const s of this.store.sessionList().value) {
      if (s.TTL) this.arm(s.ID, ttlMs(s.TTL));
    }
  }

  created(id: string, ttlNs: number): void {
    if (this.leader && ttlNs > 0) this.arm(id, ttlNs / 1e6);
  }

  /** A session was created (through any server): arm its timer from the session table. */
  track(id: string): void {
    if (!this.leader) return;
    const s = this.store.sessionGet(id).value;
    if (s?.TTL) this.arm(id, ttlMs(s.TTL));
  }

  renew(id: string): void {
    if (!this.leader) throw new NoLeaderError();
    const s = this.store.sessionGet(id).value;
    if (s?.TTL) this.arm(id, ttlMs(s.TTL));
  }

  destroyed(id: string): void {
    const t = this.timers.get(id);
    if (t) clearTimeout(t);
    this.timers.delete(id);
  }

  stop(): void {
    this.leader = false;
    this.clearAll();
  }

  private arm(id: string, ttl: number): void {
    this.destroyed(id);
    const t = setTimeout(() => void this.expire(id), ttl * 2);
    t.unref();
    this.timers.set(id, t);
  }

  private async expire(id: string): Promise<void> {
    this.timers.delete(id);
    if (!this.leader || !this.store.sessionGet(id).value) return;
    try {
      const r = await this.apply({ type: 'sessionDestroy', ID: id });
      this.logger.info({ session: id, ok: r.ok }, 'session TTL expired: invalidated');
    } catch (err) {
      // Lost leadership or no quorum: the next leader re-arms every timer from the table.
      this.logger.warn({ session: id, err }, 'session TTL expired but invalidation failed');
    }
  }

  private clearAll(): void {
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }
}

function ttlMs(ttl: string): number {
  return (parseGoDuration(ttl) ?? 0) / 1e6;
}
