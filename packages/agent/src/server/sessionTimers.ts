// Session TTL timers on the leader (Consul's agent/consul/session_ttl.go): renewing is not a Raft
// write; only an expiry becomes a sessionDestroy command. A timer fires at 2×TTL (Consul's grace).
//
// The timers follow what the state store applied (StateStore.onSessionChange), not the requests
// that asked for it: a session created with a TTL gets its timer, and one destroyed by any path
// (session/destroy, a txn, a critical check or a deregistered node invalidating it, its own expiry)
// loses it, whichever server the request came through. A new leader, and a leader whose store was
// replaced by a restore, rebuilds every timer from the session table, so a TTL never outlives a
// failover by more than its grace.
import type { StateStore, Command, CommandResult, SessionChange } from '../state/index.ts';
import type { Logger } from '../logger.ts';
import { parseGoDuration } from '../state/index.ts';
import { NoLeaderError } from './raftServer.ts';

export class SessionTimers {
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private leader = false;
  private readonly store: StateStore;
  private readonly apply: (cmd: Command) => Promise<CommandResult>;
  private readonly logger: Logger;
  private readonly unsubscribe: () => void;

  constructor(store: StateStore, apply: (cmd: Command) => Promise<CommandResult>, logger: Logger) {
    this.store = store;
    this.apply = apply;
    this.logger = logger.child({ component: 'agent.server.session' });
    this.unsubscribe = store.onSessionChange((c) => this.applied(c));
  }

  /** Called on every leadership change. */
  setLeader(isLeader: boolean): void {
    this.leader = isLeader;
    this.rebuild();
  }

  renew(id: string): void {
    if (!this.leader) throw new NoLeaderError();
    const s = this.store.sessionGet(id).value;
    if (s?.TTL) this.arm(id, ttlMs(s.TTL));
  }

  /** Whether a timer runs for this session (tests, debugging). */
  has(id: string): boolean {
    return this.timers.has(id);
  }

  /** For good: the timers stop following the store. */
  stop(): void {
    this.leader = false;
    this.clearAll();
    this.unsubscribe();
  }

  private applied(c: SessionChange): void {
    switch (c.type) {
      case 'created':
        if (this.leader && c.session.TTL) this.arm(c.session.ID, ttlMs(c.session.TTL));
        return;
      case 'destroyed':
        this.clear(c.id);
        return;
      case 'reset':
        this.rebuild();
        return;
    }
  }

  private rebuild(): void {
    this.clearAll();
    if (!this.leader) return;
    for (const s of this.store.sessionList().value) {
      if (s.TTL) this.arm(s.ID, ttlMs(s.TTL));
    }
  }

  private arm(id: string, ttl: number): void {
    this.clear(id);
    const t = setTimeout(() => void this.expire(id), ttl * 2);
    t.unref();
    this.timers.set(id, t);
  }

  private clear(id: string): void {
    const t = this.timers.get(id);
    if (t) clearTimeout(t);
    this.timers.delete(id);
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
