// Leader routines (Consul's agent/consul/leader.go): when this server becomes leader it makes sure
// the catalog shows itself (node, the `consul` service, serfHealth passing), re-arms session TTL
// timers, and periodically reaps KV tombstones older than the tombstone TTL. It also reconciles the
// LAN gossip pool's members into the catalog (Consul's reconcileMember / reconcileReaped): an alive
// member is registered with a passing serfHealth (servers also with the `consul` service), a failed
// one turns serfHealth critical (its services leave DNS and ?passing), one that left is
// deregistered, and a node with a serfHealth check that is no longer a member at all (reaped) is
// deregistered once it has been missing for a grace period (a leader that just started may not
// have heard of every member yet).
import type { Command, CommandResult, StateStore } from '../state/index.ts';
import { SERF_CHECK_ID } from '../state/index.ts';
import type { RuntimeConfig } from '../config/runtime.ts';
import type { Logger } from '../logger.ts';
import type { SessionTimers } from './sessionTimers.ts';

const TOMBSTONE_TTL_MS = 15 * 60_000;
const TOMBSTONE_SAMPLE_MS = 60_000;
const RECONCILE_INTERVAL_MS = 5_000;
/** How often the leader drops CA roots whose leaves have all expired (Consul's caRootPruneInterval). */
const CA_PRUNE_INTERVAL_MS = 3_600_000;
/** A catalog node with serfHealth that gossip has not listed for this long is deregistered. */
const REAP_MISSING_AFTER_MS = 60_000;

/** A gossip member as the leader reconciles it into the catalog. */
export interface ReconciledMember {
  id: string;
  name: string;
  /** Its address (the catalog node's Address). */
  address: string;
  /** Server RPC port: set for servers (they get the `consul` service), absent for client agents. */
  serverPort?: number;
  status: 'alive' | 'failed' | 'left';
}

export interface LeaderRoutinesOptions {
  config: RuntimeConfig;
  nodeId: string;
  store: StateStore;
  apply: (cmd: Command) => Promise<CommandResult>;
  sessions: SessionTimers;
  logger: Logger;
  /** The other members of this datacenter's LAN pool; none when absent. */
  members?: () => ReconciledMember[];
  /** Clock for the reap grace period (tests). */
  now?: () => number;
  /** The built-in CA: created by the first leader, old roots pruned (server/connectCA.ts). */
  ca?: { initialize(): Promise<void>; pruneRoots(): Promise<number> };
}

export class LeaderRoutines {
  private readonly o: LeaderRoutinesOptions;
  private readonly logger: Logger;
  private leading = false;
  private reapTimer: NodeJS.Timeout | undefined;
  private reconcileTimer: NodeJS.Timeout | undefined;
  private caPruneTimer: NodeJS.Timeout | undefined;
  private reconciling = false;
  /** A change arrived during a pass: run another when it ends. */
  private again = false;
  /** (time, raft index) samples, so "older than 15 minutes" can be turned into an index. */
  private samples: Array<{ at: number; index: number }> = [];
  /** Catalog nodes with serfHealth that gossip does not list: since when. */
  private missingSince = new Map<string, number>();

  constructor(o: LeaderRoutinesOptions) {
    this.o = o;
    this.logger = o.logger.child({ component: 'agent.leader' });
  }

  private now(): number {
    return this.o.now?.() ?? Date.now();
  }

  async setLeader(isLeader: boolean): Promise<void> {
    this.leading = isLeader;
    this.o.sessions.setLeader(isLeader);
    clearInterval(this.reapTimer);
    clearInterval(this.reconcileTimer);
    clearInterval(this.caPruneTimer);
    this.samples = [];
    this.missingSince.clear();
    if (!isLeader) return;
    this.reapTimer = setInterval(() => void this.reapTombstones(), TOMBSTONE_SAMPLE_MS);
    this.reapTimer.unref();
    this.reconcileTimer = setInterval(() => void this.reconcileMembers(), RECONCILE_INTERVAL_MS);
    this.reconcileTimer.unref();
    this.caPruneTimer = setInterval(() => {
      void this.o.ca?.pruneRoots().catch((err: Error) => this.logger.warn({ err: err.message }, 'failed to prune old CA roots'));
    }, CA_PRUNE_INTERVAL_MS);
    this.caPruneTimer.unref();
    await this.registerSelf();
    void this.initializeCA();
    await this.reconcileMembers();
  }

  /** Makes the CA if none exists; retried while this server leads (a write can fail mid-election). */
  private async initializeCA(): Promise<void> {
    for (let attempt = 0; this.leading && this.o.ca && attempt < 10; attempt++) {
      try {
        await this.o.ca.initialize();
        return;
      } catch (err) {
        this.logger.warn({ err: (err as Error).message }, 'failed to initialize the Connect CA; retrying');
        await new Promise((r) => setTimeout(r, 1_000 * (attempt + 1)).unref());
      }
    }
  }

  stop(): void {
    this.leading = false;
    clearInterval(this.reapTimer);
    clearInterval(this.reconcileTimer);
    clearInterval(this.caPruneTimer);
    this.o.sessions.stop();
  }

  /** One reconciliation pass over the gossip members (also run when membership changes). */
  async reconcileMembers(): Promise<void> {
    if (!this.leading || !this.o.members) return;
    if (this.reconciling) {
      this.again = true;
      return;
    }
    this.reconciling = true;
    try {
      do {
        this.again = false;
        const members = this.o.members();
        const cmds: Array<{ name: string; cmd: Command }> = [];
        for (const m of members) {
          const cmd = this.reconcileCommand(m);
          if (cmd) cmds.push({ name: m.name, cmd });
        }
        for (const name of this.reapedNodes(members)) cmds.push({ name, cmd: { type: 'catalogDeregister', Node: name } });
        for (const { name, cmd } of cmds) {
          if (!this.leading) return;
          try {
            const r = await this.o.apply(cmd);
            if (!r.ok) this.logger.warn({ node: name, error: r.error }, 'could not reconcile member into the catalog');
            else this.logger.info({ node: name, change: cmd.type === 'catalogRegister' ? (cmd.Check?.Status ?? '') : 'deregistered' }, 'reconciled member into the catalog');
          } catch (err) {
            this.logger.debug({ err, node: name }, 'member reconciliation skipped');
            return;
          }
        }
      } while (this.again && this.leading);
    } finally {
      this.reconciling = false;
    }
  }

  /** Catalog nodes with serfHealth that gossip has not listed for REAP_MISSING_AFTER_MS (Consul reconcileReaped). */
  private reapedNodes(members: ReconciledMember[]): string[] {
    const known = new Set(members.map((m) => m.name));
    known.add(this.o.config.nodeName);
    const now = this.now();
    const out: string[] = [];
    const seen = new Set<string>();
    for (const h of this.o.store.checksInState('any').value) {
      if (h.CheckID !== SERF_CHECK_ID || known.has(h.Node)) continue;
      seen.add(h.Node);
      const since = this.missingSince.get(h.Node);
      if (since === undefined) this.missingSince.set(h.Node, now);
      else if (now - since >= REAP_MISSING_AFTER_MS) out.push(h.Node);
    }
    for (const n of this.missingSince.keys()) if (!seen.has(n)) this.missingSince.delete(n);
    return out;
  }

  /** The catalog write that makes the catalog match member `m`, or undefined when it already does. */
  private reconcileCommand(m: ReconciledMember): Command | undefined {
    const c = this.o.config;
    if (!m.name || m.name === c.nodeName) return undefined;
    const node = this.o.store.node(m.name).value;
    // A different node under the same name is not ours to touch (Consul refuses such renames too).
    if (node && node.ID && m.id && node.ID !== m.id) return undefined;
    const health = this.o.store.nodeChecks(m.name).value.find((h) => h.CheckID === SERF_CHECK_ID);
    if (m.status === 'left') {
      return node ? { type: 'catalogDeregister', Node: m.name } : undefined;
    }
    const server = m.serverPort !== undefined;
    const svc = server ? this.o.store.nodeServices(m.name).value?.Services.find((x) => x.ID === 'consul') : undefined;
    const status = m.status === 'alive' ? 'passing' : 'critical';
    const svcOk = !server || m.status !== 'alive' || (svc !== undefined && svc.Port === m.serverPort);
    if (node && health?.Status === status && svcOk && (m.status !== 'alive' || node.Address === m.address)) return undefined;
    if (!node && m.status !== 'alive') return undefined;
    return {
      type: 'catalogRegister', Node: m.name, ID: m.id, Address: m.address, Datacenter: c.datacenter,
      // The member's own agent keeps its node's tagged addresses and metadata current.
      SkipNodeUpdate: node !== null && node.Address === m.address,
      ...(server && m.status === 'alive' ? { Service: { ID: 'consul', Service: 'consul', Port: m.serverPort!, Tags: [], Meta: { raft_version: '3' } } } : {}),
      Check: {
        Node: m.name, CheckID: SERF_CHECK_ID, Name: 'Serf Health Status', Status: status,
        Output: m.status === 'alive' ? 'Agent alive and reachable' : 'Agent not live or unreachable',
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
