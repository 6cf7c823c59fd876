// One seeded simulation run, end to end: faults, then a quiet phase, then the verdicts (safety was
// checked after every step; liveness and linearizability are judged at the end).
import { SimCluster, randomClusterConfig, type ClusterConfig, type ClusterStats, type FaultRates, type SimBug } from './cluster.ts';
import type { Violation } from './invariants.ts';
import { checkLinearizability } from './linearizability.ts';
import { kvModel } from './kv.ts';

export interface RunOptions {
  /** Steps with faults (default 600). */
  steps?: number;
  /** Fault-free steps after the faults, clients still active (default 200). */
  quietSteps?: number;
  /** Then at most this many steps without new client operations, within which the cluster must
   *  converge: one leader, everything committed and applied everywhere (default 400). The run moves
   *  on as soon as it has. */
  drainSteps?: number;
  /** false = no faults at all (default true). */
  faults?: boolean;
  /** A deliberate bug, for proving the checkers work. */
  bug?: SimBug;
  /** Overrides of the per-step fault probabilities (e.g. more crashes for a targeted test). */
  rates?: Partial<FaultRates>;
  /** ReadIndex mode of every core (default 'safe'; 'lease' trusts clocks, see thesis §6.4.1). */
  readOnly?: 'safe' | 'lease';
  /** Pins parts of the seed-drawn cluster config (e.g. { preVote: false }) for targeted runs. */
  config?: Partial<Omit<ClusterConfig, 'seed' | 'rates'>>;
  /** Trace events kept for the report (default 400). */
  traceKeep?: number;
  /** Search budget of the linearizability check (default 2,000,000 moves). */
  linearizabilityBudget?: number;
}

export interface RunResult {
  seed: number;
  ok: boolean;
  violations: Violation[];
  stats: ClusterStats & { linearizability: 'ok' | 'violated' | 'unknown' | 'skipped'; searched: number };
  /** Digest of the whole trace: equal for two runs of one seed. */
  digest: string;
  /** The last trace events, oldest first. */
  trace: string[];
  config: ClusterConfig;
}

export const DEFAULT_STEPS = 600;
export const DEFAULT_QUIET_STEPS = 200;
export const DEFAULT_DRAIN_STEPS = 400;

export async function runSeed(seed: number, opts: RunOptions = {}): Promise<RunResult> {
  const faultSteps = opts.steps ?? DEFAULT_STEPS;
  const quietSteps = opts.quietSteps ?? DEFAULT_QUIET_STEPS;
  const drainSteps = opts.drainSteps ?? DEFAULT_DRAIN_STEPS;
  const drawn = randomClusterConfig(seed, { faultSteps, quietSteps, drainSteps, faults: opts.faults ?? true, bug: opts.bug, traceKeep: opts.traceKeep, rates: opts.rates, readOnly: opts.readOnly });
  const cfg = opts.config ? { ...drawn, ...opts.config } : drawn;
  const cluster = new SimCluster(cfg);
  const ok = () => cluster.violations.length === 0;

  await cluster.init();
  for (let i = 0; i < faultSteps && ok(); i++) await cluster.step('faults');
  if (ok()) {
    await cluster.heal();
    for (let i = 0; i < quietSteps && ok(); i++) await cluster.step('quiet');
  }
  if (ok()) {
    // Clients stop invoking so that what they started can finish; the cluster must converge within
    // the bound (checked every few steps, so a healthy run does not pay for the whole bound).
    let i = 0;
    for (; i < drainSteps && ok(); i++) {
      if (i % 5 === 0 && cluster.livenessProblem() === undefined) break;
      await cluster.step('drain');
    }
    if (ok()) cluster.checkLiveness(`after ${quietSteps} quiet steps and ${i} of at most ${drainSteps} steps without new client operations`);
  }

  let linearizability: RunResult['stats']['linearizability'] = 'skipped';
  let searched = 0;
  if (ok()) {
    // Reads whose answer never came constrain nothing; writes that never answered may have happened.
    const ops = cluster.history.operations((input) => input.kind === 'get');
    const r = checkLinearizability(kvModel, ops, { maxSearchSteps: opts.linearizabilityBudget ?? 2_000_000 });
    searched = r.searched;
    if (r.ok === true) linearizability = 'ok';
    else if (r.ok === 'unknown') linearizability = 'unknown';
    else {
      linearizability = 'violated';
      cluster.checker.fail('linearizability', r.explanation);
    }
  }
  return {
    seed,
    ok: ok(),
    violations: [...cluster.violations],
    stats: { ...cluster.summary(), linearizability, searched },
    digest: cluster.trace.digest(),
    trace: cluster.trace.tail(),
    config: cfg,
  };
}
