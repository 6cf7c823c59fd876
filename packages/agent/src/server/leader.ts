// Leader routines (Consul's agent/consul/leader.go): when this server becomes leader it makes sure
// the catalog shows itself (node, the `consul` service, serfHealth passing), re-arms session TTL
// timers, and periodically reaps KV tombstones older than the tombstone TTL.
import type { Command, CommandResult, StateStore } from '../state/index.ts';
import { SERF_CHECK_ID } from '../state/index.ts';
import type { RuntimeConfig } from '../config/runtime.ts';
import type { Logger } from '../logger.ts';
import type { SessionTimers } from './sessionTimers.ts';

const TOMBSTONE_TTL_MS = 15 * 60_000;
const TOMBSTONE_SAMPLE_MS = 60_000;

export interface LeaderRoutinesOptions {
  config: RuntimeConfig;
  nodeId: string;
  store: StateStore;
  apply: (cmd: Command) => Promise<CommandResult>;
  sessions: SessionTimers;
  logger: Logger;
}

export class LeaderRoutines {
  private readonly o: LeaderRoutinesOptions;
  private readonly logger: Logger;
  private leading = false;
  private reapTimer: NodeJS.Timeout | undefined;
  /** (time, raft index) samples, so "older than 15 minutes" can be turned into an index. */
  private samples: Array<{ at: number; index: number }> = [];

  constructor(o: LeaderRoutinesOptions) {
    this.o = o;
    this.logger = o.logger.child({ component: 'agent.leader' });
  }

  async setLeader(isLeader: boolean): Promise<void> {
    this.leading = isLeader;
    this.o.sessions.setLeader(isLeader);
    clearInterval(this.reapTimer);
    this.samples = [];
    if (!isLeader) return;
    this.reapTimer = setInterval(() => void this.reapTombstones(), TOMBSTONE_SAMPLE_MS);
    this.reapTimer.unref();
    await this.registerSelf();
  }

  stop(): void {
    this.leading = false;
    clearInterval(this.reapTimer);
    this.o.sessions.stop();
  }

  /** The catalog entry Consul's leader keeps for every server (reconcileMember for a server). */
  async registerSelf(): Promise<void> {
    const c = this.o.config;
    const health = this.o.store.nodeChecks(c.nodeName).value.find((h) => h.CheckID === SERF_CHECK_ID);
    const svc = this.o.store.nodeServices(c.nodeName).value?.Services.find((x) => x.ID === 'consul');
    const node = this.o.store.node(c.nodeName).value;
    if (health?.Status === 'passing' && svc && svc.Port === c.ports.server && node?.Address === c.advertiseAddrLan) return;
    for (let attempt = 0; this.leading; attempt++) {
      try {
        const r = await this.o.apply({
          type: 'catalogRegister', Node: c.nodeName, ID: this.o.nodeId, Address: c.advertiseAddrLan, Datacenter: c.datacenter,
          TaggedAddresses: c.taggedAddresses, NodeMeta: c.nodeMeta,
          Service: { ID: 'consul', Service: 'consul', Port: c.ports.server, Tags: [], Meta: { raft_version: '3', version: c.version } },
          Check: { Node: c.nodeName, CheckID: SERF_CHECK_ID, Name: 'Serf Health Status', Status: 'passing', Output: 'Agent alive and reachable' },
        });
        if (!r.ok) this.logger.error({ error: r.error }, 'could not register this server in the catalog');
        return;
      } catch (err) {
        if (attempt >= 20) { this.logger.warn({ err }, 'could not register this server in the catalog; giving up until the next leadership change'); return; }
        await new Promise((res) => setTimeout(res, 100 * (attempt + 1)));
      }
    }
  }

  private async reapTombstones(): Promise<void> {
    if (!this.leading) return;
    const now = Date.now();
    this.samples.push({ at: now, index: this.o.store.lastIndex() });
    let upTo = 0;
    while (this.samples.length > 0 && now - this.samples[0]!.at >= TOMBSTONE_TTL_MS) upTo = this.samples.shift()!.index;
    if (upTo === 0) return;
    try {
      await this.o.apply({ type: 'kvTombstoneReap', UpToIndex: upTo });
    } catch (err) {
      this.logger.debug({ err }, 'tombstone reap skipped');
    }
  }
}
