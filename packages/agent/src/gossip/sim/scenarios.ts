// Measurements on the simulator, shared by the tests and `bench/gossip.ts`: how long a join, a
// failure and a leave take to reach 99.9% of the members, and how many false failure declarations
// a lossy pool with stalled members makes with Lifeguard on and off.
import { LAN_DEFAULTS } from '../core/config.ts';
import { GossipSim, memberName, type FalsePositive, type SimOptions, type Watch } from './cluster.ts';

export interface Propagation {
  /** Simulated seconds from the change until 99.9% of the live members saw it; undefined if it never did. */
  seconds: number | undefined;
  /** The same in gossip intervals (the unit of the epidemic model). */
  gossipRounds: number | undefined;
  /** The same in probe intervals (SWIM protocol periods). */
  probePeriods: number | undefined;
  /** Members that saw it, of how many that could. */
  reached: number;
  of: number;
}

export const REACH_FRACTION = 0.999;

function intervals(o: SimOptions): { gossipMs: number; probeMs: number } {
  return {
    gossipMs: o.swim?.gossipIntervalMs ?? LAN_DEFAULTS.gossipIntervalMs,
    probeMs: o.swim?.probeIntervalMs ?? LAN_DEFAULTS.probeIntervalMs,
  };
}

function measure(sim: GossipSim, o: SimOptions, w: Watch, type: 'member-join' | 'member-failed' | 'member-leave', maxMs: number): Propagation {
  const eligible = (): number => sim.live().filter((m) => m.name !== w.subject).length;
  const seen = (): number => w.seen.get(type)?.size ?? 0;
  const took = sim.runUntilTrue(() => seen() >= Math.ceil(REACH_FRACTION * eligible()), maxMs, 10);
  const { gossipMs, probeMs } = intervals(o);
  return {
    seconds: took === undefined ? undefined : took / 1000,
    gossipRounds: took === undefined ? undefined : took / gossipMs,
    probePeriods: took === undefined ? undefined : took / probeMs,
    reached: seen(),
    of: eligible(),
  };
}

/** A new member joins through one seed: until 99.9% of the pool lists it alive. */
export function measureJoin(o: SimOptions, maxMs = 60_000, warmupMs = 2000): Propagation {
  const sim = new GossipSim(o);
  sim.runFor(warmupMs);
  sim.addMember('joiner');
  const w = sim.watch('joiner');
  sim.join('joiner', memberName(0));
  return measure(sim, o, w, 'member-join', maxMs);
}

/** A member crashes: until 99.9% of the others list it failed (detection + dissemination). */
export function measureFailure(o: SimOptions, maxMs = 180_000, warmupMs = 2000): Propagation {
  const sim = new GossipSim(o);
  sim.runFor(warmupMs);
  const w = sim.watch(memberName(Math.floor(o.members / 2)));
  sim.crash(w.subject);
  return measure(sim, o, w, 'member-failed', maxMs);
}

/** A member leaves gracefully: until 99.9% of the others list it left. */
export function measureLeave(o: SimOptions, maxMs = 60_000, warmupMs = 2000): Propagation {
  const sim = new GossipSim(o);
  sim.runFor(warmupMs);
  const w = sim.watch(memberName(Math.floor(o.members / 3)));
  sim.leave(w.subject);
  return measure(sim, o, w, 'member-leave', maxMs);
}

export interface Lifecycle {
  join: Propagation;
  leave: Propagation;
  failure: Propagation;
}

/**
 * A join, then a graceful leave, then a crash, one after the other on one simulated pool (one
 * pool of 5,000 members holds 25 million member records: build it once).
 */
export function measureLifecycle(o: SimOptions, warmupMs = 2000): Lifecycle {
  const sim = new GossipSim(o);
  sim.runFor(warmupMs);
  sim.addMember('joiner');
  const wj = sim.watch('joiner');
  sim.join('joiner', memberName(0));
  const join = measure(sim, o, wj, 'member-join', 60_000);
  sim.runFor(1000);
  const wl = sim.watch(memberName(Math.floor(o.members / 3)));
  sim.leave(wl.subject);
  const leave = measure(sim, o, wl, 'member-leave', 60_000);
  sim.runFor(1000);
  const wf = sim.watch(memberName(Math.floor(o.members / 2)));
  sim.crash(wf.subject);
  const failure = measure(sim, o, wf, 'member-failed', 180_000);
  return { join, leave, failure };
}

export interface FalsePositiveReport {
  /** member-failed events, at any member, about a member that had not crashed. */
  total: number;
  /** ... of which the victim was healthy (not stalled). */
  healthyVictims: number;
  /** ... of which the victim was itself stalled (slow, but not crashed). */
  stalledVictims: number;
  /** ... declared by stalled members (their own view) and by healthy members. */
  byStalledObservers: number;
  byHealthyObservers: number;
  /** Distinct members declared failed at least once by anyone. */
  distinctVictims: number;
  /** Suspicions raised and refutations made across the pool. */
  suspicions: number;
  refutations: number;
  list: FalsePositive[];
}

/** Runs a pool with no crash at all for `durationMs`: every failure declaration is a false one. */
export function falsePositives(o: SimOptions, durationMs: number): FalsePositiveReport {
  const sim = new GossipSim(o);
  sim.runFor(durationMs);
  const list = sim.falsePositives;
  let suspicions = 0;
  let refutations = 0;
  for (const m of sim.members) {
    suspicions += m.core.stats.suspicionsRaised;
    refutations += m.core.stats.refutations;
  }
  return {
    total: list.length,
    healthyVictims: list.filter((f) => !f.victimStalled).length,
    stalledVictims: list.filter((f) => f.victimStalled).length,
    byStalledObservers: list.filter((f) => f.observerStalled).length,
    byHealthyObservers: list.filter((f) => !f.observerStalled).length,
    distinctVictims: new Set(list.map((f) => f.victim)).size,
    suspicions,
    refutations,
    list,
  };
}

/**
 * The epidemic model of Serf's convergence simulator: infected(t) = N / (1 + (N+1)·e^(−c·N·t)),
 * t in gossip rounds, c = fanout / N · 0.5. Returns when `fraction` of N is reached.
 */
export function epidemicModel(n: number, fanout: number, gossipIntervalMs: number, fraction = REACH_FRACTION): { rounds: number; seconds: number } {
  const c = (fanout / n) * 0.5;
  // N·f = N / (1 + (N+1)e^(−cNt))  ⇒  t = ln((N+1)·f / (1 − f)) / (cN)
  const rounds = Math.log(((n + 1) * fraction) / (1 - fraction)) / (c * n);
  return { rounds, seconds: (rounds * gossipIntervalMs) / 1000 };
}
