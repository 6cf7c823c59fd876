// Autopilot (Consul's agent/consul/autopilot, hashicorp/raft-autopilot), run by the leader:
//   - a server of this datacenter that discovery reports alive and that is not in the Raft
//     configuration joins it as a learner (a non-voter: it cannot hurt quorum while it catches up);
//   - a learner that has been healthy for server_stabilization_time becomes a voter;
//   - a member that left gracefully is removed;
//   - with cleanup_dead_servers, a member that has not answered for server_stabilization_time is
//     removed, but only if the remaining voters keep a healthy majority and at least min_quorum
//     voters remain.
// At most one membership change per round (Raft allows one uncommitted change at a time).
//
// Health of a server (Consul's ServerHealth): it answers Status; its term is the leader's; it heard
// from the leader recently; its log trails the leader's by at most max_trailing_logs entries.
// "Recently": followers hear from an idle leader once per heartbeat interval (hashicorp/raft's
// heartbeat is HeartbeatTimeout/10, 500 ms at raft_multiplier 5), so last_contact_threshold (200 ms)
// is measured beyond that interval rather than from the last message: healthy when
// last contact <= heartbeat interval + last_contact_threshold.
import type { Logger } from '../logger.ts';
import type { ConfChange, NodeStatus } from '@trellis/raft';
import type { DiscoveredServer, ServerDiscovery, ServerStatus } from './discovery.ts';
import type { StatusResponseMsg } from '../rpc/proto.ts';

export interface AutopilotConfig {
  cleanupDeadServers: boolean;
  lastContactThresholdMs: number;
  maxTrailingLogs: number;
  minQuorum: number;
  serverStabilizationTimeMs: number;
}

/** What the leader knows of one member (or candidate) this round. */
export interface MemberObservation {
  id: string;
  name: string;
  address: string;
  version: string;
  /** In the Raft configuration: voter or learner; undefined when not a member. */
  voter: boolean | undefined;
  isLeader: boolean;
  /** The discovery source's view ('alive' when unknown to it). */
  serfStatus: ServerStatus;
  /** Answered Status this round. */
  answered: boolean;
  /** Last successful answer (ms epoch); the leadership start when never. */
  lastSeenAt: number;
  /** The member said it is leaving. */
  leaving: boolean;
  hasState: boolean;
  term: number;
  lastContactMs: number;
  /** Leader's match index for it (its own last index for the leader). */
  matchIndex: number;
}

export interface ServerHealth {
  id: string;
  name: string;
  address: string;
  serfStatus: ServerStatus;
  version: string;
  leader: boolean;
  voter: boolean;
  lastContactMs: number;
  lastTerm: number;
  lastIndex: number;
  healthy: boolean;
  /** When it last became healthy (ms epoch); undefined while unhealthy. */
  stableSince: number | undefined;
}

export type AutopilotAction =
  | { kind: 'addLearner'; id: string; address: string; reason: string }
  | { kind: 'promote'; id: string; reason: string }
  | { kind: 'remove'; id: string; reason: string };

export interface HealthContext {
  now: number;
  leaderTerm: number;
  leaderLastIndex: number;
  heartbeatMs: number;
  config: AutopilotConfig;
}

/** Health of every member this round, carrying stableSince over from the previous round. */
export function assessHealth(members: MemberObservation[], prev: ReadonlyMap<string, ServerHealth>, ctx: HealthContext): Map<string, ServerHealth> {
  const out = new Map<string, ServerHealth>();
  for (const m of members) {
    if (m.voter === undefined) continue;
    const healthy = m.isLeader || (
      m.answered && m.serfStatus === 'alive' && !m.leaving &&
      m.term === ctx.leaderTerm &&
      m.lastContactMs >= 0 && m.lastContactMs <= ctx.heartbeatMs + ctx.config.lastContactThresholdMs &&
      ctx.leaderLastIndex - m.matchIndex <= ctx.config.maxTrailingLogs
    );
    const before = prev.get(m.id);
    out.set(m.id, {
      id: m.id, name: m.name, address: m.address, serfStatus: m.serfStatus, version: m.version,
      leader: m.isLeader, voter: m.voter, lastContactMs: m.isLeader ? 0 : m.lastContactMs, lastTerm: m.term, lastIndex: m.matchIndex,
      healthy,
      stableSince: healthy ? (before?.healthy && before.stableSince !== undefined ? before.stableSince : ctx.now) : undefined,
    });
  }
  return out;
}

/** Consul's FailureTolerance: how many voters can fail with the cluster still having a healthy quorum. */
export function failureTolerance(health: Iterable<ServerHealth>): number {
  let voters = 0;
  let healthyVoters = 0;
  for (const h of health) {
    if (!h.voter) continue;
    voters++;
    if (h.healthy) healthyVoters++;
  }
  return Math.max(0, healthyVoters - (Math.floor(voters / 2) + 1));
}

export interface PlanInput {
  members: MemberObservation[];
  /** Servers of this datacenter from discovery (candidates to add). */
  candidates: Array<DiscoveredServer & { answered: boolean; hasState: boolean; term: number }>;
  health: ReadonlyMap<string, ServerHealth>;
  ctx: HealthContext;
}

/** The one membership change to make this round, if any. */
export function planAutopilot({ members, candidates, health, ctx }: PlanInput): AutopilotAction | undefined {
  const cfg = ctx.config;
  const inConfig = new Set(members.filter((m) => m.voter !== undefined).map((m) => m.id));

  // 1. Members that left gracefully go first: they will not come back.
  for (const m of members) {
    if (m.voter === undefined || m.isLeader) continue;
    const gone = m.serfStatus === 'left' || (m.leaving && !m.answered);
    if (!gone) continue;
    if (m.voter && cfg.minQuorum > 0 && voterCount(members) - 1 < cfg.minQuorum) continue;
    return { kind: 'remove', id: m.id, reason: 'the server left the cluster' };
  }

  // 2. Dead servers, never at the cost of a healthy majority or min_quorum.
  if (cfg.cleanupDeadServers) {
    for (const m of members) {
      if (m.voter === undefined || m.isLeader) continue;
      const silentMs = ctx.now - m.lastSeenAt;
      const dead = (m.serfStatus === 'failed' || !m.answered) && silentMs >= cfg.serverStabilizationTimeMs;
      if (!dead) continue;
      if (m.voter) {
        const voters = voterCount(members) - 1;
        let healthyVoters = 0;
        for (const h of health.values()) if (h.voter && h.healthy && h.id !== m.id) healthyVoters++;
        if (healthyVoters < Math.floor(voters / 2) + 1) continue;
        if (cfg.minQuorum > 0 && voters < cfg.minQuorum) continue;
      }
      return { kind: 'remove', id: m.id, reason: `the server has not answered for ${Math.round(silentMs / 1000)} s` };
    }
  }

  // 3. Learners that have been healthy long enough become voters.
  for (const m of members) {
    if (m.voter !== false) continue;
    const h = health.get(m.id);
    if (h?.healthy && h.stableSince !== undefined && ctx.now - h.stableSince >= cfg.serverStabilizationTimeMs) {
      return { kind: 'promote', id: m.id, reason: `healthy for ${Math.round((ctx.now - h.stableSince) / 1000)} s` };
    }
  }

  // 4. New servers join as learners. One with Raft state from a later term belongs to another
  //    cluster (or history we do not share): adding it would depose this leader, so it is left out.
  for (const c of candidates) {
    if (inConfig.has(c.id) || c.status !== 'alive' || !c.answered) continue;
    if (c.hasState && c.term > ctx.leaderTerm) continue;
    return { kind: 'addLearner', id: c.id, address: c.raftAddr, reason: 'a new server of this datacenter' };
  }
  return undefined;
}

function voterCount(members: MemberObservation[]): number {
  return members.filter((m) => m.voter === true).length;
}

export interface AutopilotOptions {
  selfId: string;
  selfName: string;
  selfVersion: string;
  datacenter: string;
  config: AutopilotConfig;
  heartbeatMs: number;
  discovery: ServerDiscovery;
  raft: {
    status(): NodeStatus;
    isLeader(): boolean;
    proposeConfChange(cc: ConfChange, opts?: { signal?: AbortSignal }): Promise<void>;
  };
  status(address: string, timeoutMs: number): Promise<StatusResponseMsg>;
  logger: Logger;
  intervalMs?: number;
  now?: () => number;
}

export interface AutopilotHealth {
  healthy: boolean;
  failureTolerance: number;
  servers: ServerHealth[];
}

export class Autopilot {
  readonly #o: AutopilotOptions;
  readonly #log: Logger;
  readonly #now: () => number;
  #timer: NodeJS.Timeout | undefined;
  #round: Promise<void> | undefined;
  #health = new Map<string, ServerHealth>();
  #lastSeen = new Map<string, number>();
  #leaderSince = 0;
  #running = false;
  /** Aborts a membership change still waiting to commit when autopilot stops. */
  #abort = new AbortController();

  constructor(o: AutopilotOptions) {
    this.#o = o;
    this.#log = o.logger.child({ component: 'agent.server.autopilot' });
    this.#now = o.now ?? Date.now;
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    const tick = () => {
      if (!this.#running) return;
      this.#round = this.runRound().catch((err: unknown) => this.#log.error({ err }, 'autopilot round failed')).finally(() => {
        if (this.#running) this.#timer = setTimeout(tick, this.#o.intervalMs ?? 1000);
      });
    };
    this.#timer = setTimeout(tick, this.#o.intervalMs ?? 1000);
  }

  async stop(): Promise<void> {
    this.#running = false;
    clearTimeout(this.#timer);
    this.#abort.abort();
    await this.#round;
  }

  /** The latest assessment (leader only; empty elsewhere). */
  health(): AutopilotHealth {
    const servers = [...this.#health.values()];
    return { healthy: servers.length > 0 && servers.every((s) => s.healthy), failureTolerance: failureTolerance(servers), servers };
  }

  async runRound(): Promise<void> {
    const { raft } = this.#o;
    if (!raft.isLeader()) {
      this.#health.clear();
      this.#lastSeen.clear();
      this.#leaderSince = 0;
      return;
    }
    const now = this.#now();
    if (this.#leaderSince === 0) this.#leaderSince = now;
    const st = raft.status();
    const disc = new Map(this.#o.discovery.servers().filter((s) => s.dc === this.#o.datacenter).map((s) => [s.id, s]));
    const answers = new Map<string, StatusResponseMsg>();
    const ask = async (id: string, address: string) => {
      try {
        const r = await this.#o.status(address, 1000);
        if (r.server?.id === id) answers.set(id, r);
      } catch {
        // Not answering is what the health check measures.
      }
    };
    const targets = new Map<string, string>();
    for (const p of st.peers) if (p.id !== this.#o.selfId && p.address) targets.set(p.id, p.address);
    for (const s of disc.values()) if (!targets.has(s.id) && s.status === 'alive') targets.set(s.id, s.raftAddr);
    await Promise.all([...targets].map(([id, addr]) => ask(id, addr)));
    if (!raft.isLeader()) return;

    const members: MemberObservation[] = st.peers.map((p) => {
      const a = answers.get(p.id);
      const d = disc.get(p.id);
      const self = p.id === this.#o.selfId;
      if (a) this.#lastSeen.set(p.id, now);
      return {
        id: p.id, name: self ? this.#o.selfName : a?.server?.name ?? d?.name ?? '', address: p.address,
        version: self ? this.#o.selfVersion : a?.server?.version ?? d?.version ?? '',
        voter: p.voter, isLeader: self, serfStatus: self ? 'alive' : d?.status ?? 'alive', answered: self || a !== undefined,
        lastSeenAt: self ? now : this.#lastSeen.get(p.id) ?? this.#leaderSince, leaving: a?.leaving ?? false,
        hasState: a?.hasState ?? true, term: self ? st.term : a?.term ?? 0, lastContactMs: self ? 0 : a?.lastContactMs ?? -1,
        matchIndex: self ? st.lastIndex : p.matchIndex,
      };
    });
    const ctx: HealthContext = {
      now, leaderTerm: st.term, leaderLastIndex: st.lastIndex, heartbeatMs: this.#o.heartbeatMs, config: this.#o.config,
    };
    const health = assessHealth(members, this.#health, ctx);
    for (const [id, h] of health) {
      const before = this.#health.get(id);
      if (before && before.healthy !== h.healthy) this.#log.info({ id, name: h.name, healthy: h.healthy }, h.healthy ? 'server is healthy' : 'server is unhealthy');
    }
    this.#health = health;

    const candidates = [...disc.values()].map((s) => {
      const a = answers.get(s.id);
      return { ...s, answered: a !== undefined, hasState: a?.hasState ?? false, term: a?.term ?? 0 };
    });
    const action = planAutopilot({ members, candidates, health, ctx });
    if (!action) return;
    const cc: ConfChange = action.kind === 'addLearner'
      ? { type: 'addLearner', node: action.id, address: action.address }
      : { type: action.kind === 'promote' ? 'promote' : 'remove', node: action.id };
    const name = members.find((m) => m.id === action.id)?.name ?? disc.get(action.id)?.name ?? '';
    try {
      await raft.proposeConfChange(cc, { signal: this.#abort.signal });
      const what = action.kind === 'addLearner' ? 'added server as a non-voter' : action.kind === 'promote' ? 'promoted server to voter' : 'removed server';
      this.#log.info({ id: action.id, name, reason: action.reason }, what);
    } catch (err) {
      // In progress / leader not ready / lost leadership: the next round tries again.
      this.#log.debug({ err, id: action.id, kind: action.kind }, 'autopilot change not made this round');
    }
  }
}
