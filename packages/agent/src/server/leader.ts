// Leader routines (Consul's agent/consul/leader.go): when this server becomes leader it makes sure
// the catalog shows itself (node, the `consul` service, serfHealth passing), re-arms session TTL
// timers, and periodically reaps KV tombstones older than the tombstone TTL. It also reconciles the
// other servers into the catalog (Consul's reconcileMember for servers): alive ones registered with
// the `consul` service and a passing serfHealth, failed ones critical, those that left deregistered.
// Client agents join that reconciliation when gossip exists.
import type { Command, CommandResult, StateStore } from '../state/index.ts';
import { SERF_CHECK_ID } from '../state/index.ts';
import type { RuntimeConfig } from '../config/runtime.ts';
import type { Logger } from '../logger.ts';
import type { SessionTimers } from './sessionTimers.ts';

const TOMBSTONE_TTL_MS = 15 * 60_000;
const TOMBSTONE_SAMPLE_MS = 60_000;
const RECONCILE_INTERVAL_MS = 5_000;

/** A server as the leader reconciles it into the catalog. */
export interface ReconciledServer {
  id: string;
  name: string;
  /** Host of its server port. */
  address: string;
  port: number;
  status: 'alive' | 'failed' | 'left';
}

export interface LeaderRoutinesOptions {
  config: RuntimeConfig;
  nodeId: string;
  store: StateStore;
  apply: (cmd: Command) => Promise<CommandResult>;
  sessions: SessionTimers;
  logger: Logger;
  /** The other servers of this datacenter (discovery); none when absent. */
  servers?: () => ReconciledServer[];
}

export class LeaderRoutines {
  private readonly o: LeaderRoutinesOptions;
  private readonly logger: Logger;
  private leading = false;
  private reapTimer: NodeJS.Timeout | undefined;
  private reconcileTimer: NodeJS.Timeout | undefined;
  private reconciling = false;
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
    clearInterval(this.reconcileTimer);
    this.samples = [];
    if (!isLeader) return;
    this.reapTimer = setInterval(() => void this.reapTombstones(), TOMBSTONE_SAMPLE_MS);
    this.reapTimer.unref();
    this.reconcileTimer = setInterval(() => void this.reconcileServers(), RECONCILE_INTERVAL_MS);
    this.reconcileTimer.unref();
    await this.registerSelf();
    await this.reconcileServers();
  }

  stop(): void {
    this.leading = false;
    clearInterval(this.reapTimer);
    clearInterval(this.reconcileTimer);
    this.o.sessions.stop();
  }

  /** One reconciliation pass over the other servers (also run when discovery changes). */
  async reconcileServers(): Promise<void> {
    if (!this.leading || this.reconciling || !this.o.servers) return;
    this.reconciling = true;
    try {
      for (const s of this.o.servers()) {
        if (!this.leading) return;
        const cmd = this.reconcileCommand(s);
        if (!cmd) continue;
        try {
          const r = await this.o.apply(cmd);
          if (!r.ok) this.logger.warn({ server: s.name, error: r.error }, 'could not reconcile server into the catalog');
          else this.logger.debug({ server: s.name, status: s.status }, 'reconciled server into the catalog');
        } catch (err) {
          this.logger.debug({ err, server: s.name }, 'server reconciliation skipped');
          return;
        }
      }
    } finally {
      this.reconciling = false;
    }
  }

  /** The catalog write that makes the catalog match `s`, or undefined when it already does. */
  private reconcileCommand(s: ReconciledServer): Command | undefined {
    const c = this.o.config;
    if (!s.name || s.name === c.nodeName) return undefined;
    const node = this.o.store.node(s.name).value;
    // A different node under the same name is not ours to touch (Consul refuses such renames too).
    if (node && node.ID && node.ID !== s.id) return undefined;
    const health = this.o.store.nodeChecks(s.name).value.find((h) => h.CheckID === SERF_CHECK_ID);
    if (s.status === 'left') {
      return node ? { type: 'catalogDeregister', Node: s.name } : undefined;
    }
    const svc = this.o.store.nodeServices(s.name).value?.Services.find((x) => x.ID === 'consul');
    const status = s.status === 'alive' ? 'passing' : 'critical';
    if (node && health?.Status === status && (s.status !== 'alive' || (svc && svc.Port === s.port))) return undefined;
    if (!node && s.status !== 'alive') return undefined;
    return {
      type: 'catalogRegister', Node: s.name, ID: s.id, Address: s.address, Datacenter: c.datacenter,
      // The server's own agent keeps its node's tagged addresses and metadata current.
      SkipNodeUpdate: node !== undefined,
      ...(s.status === 'alive' ? { Service: { ID: 'consul', Service: 'consul', Port: s.port, Tags: [], Meta: { raft_version: '3' } } } : {}),
      Check: {
        Node: s.name, CheckID: SERF_CHECK_ID, Name: 'Serf Health Status', Status: status,
        Output: s.status === 'alive' ? 'Agent alive and reachable' : 'Agent not live or unreachable',
      },
    };
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
