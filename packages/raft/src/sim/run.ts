// One seeded simulation run, end to end: faults, then a quiet phase, then the verdicts (safety was
// checked after every step; liveness and linearizability are judged at the end).
import { SimCluster, randomClusterConfig, type ClusterConfig, type ClusterStats, type FaultRates, type SimBug } from './cluster.ts';
import type { Violation } from './invariants.ts';
import { checkLinearizability } from './linearizability.ts';
import { kvModel } from './kv.ts';

export interface RunOptions {
  /** Steps with faults (default 600). */
  steps?: number;
  /** Fault-free steps at the end, within which the cluster must recover (default 300). */
  quietSteps?: number;
  /** false = no faults at all (default true). */
  faults?: boolean;
  /** A deliberate bug, for proving the checkers work. */
  bug?: SimBug;
  /** Overrides of the per-step fault probabilities (e.g. more crashes for a targeted test). */
  rates?: Partial<FaultRates>;
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
export const DEFAULT_QUIET_STEPS = 300;

export function runSeed(seed: number, opts: RunOptions = {}): RunResult {
  const faultSteps = opts.steps ?? DEFAULT_STEPS;
  const quietSteps = opts.quietSteps ?? DEFAULT_QUIET_STEPS;
  const cfg = randomClusterConfig(seed, { faultSteps, quietSteps, faults: opts.faults ?? true, bug: opts.bug, traceKeep: opts.traceKeep, rates: opts.rates });
  const cluster = new SimCluster(cfg);
  const ok = () => cluster.violations.length === 0;

  for (let i = 0; i < faultSteps && ok(); i++) cluster.step('faults');
  if (ok()) {
    cluster.heal();
    // Clients stop invoking for the last part of the quiet phase, so that what they started can finish.
    const drainFrom = Math.floor(quietSteps * 0.6);
    for (let i = 0; i < quietSteps && ok(); i++) cluster.step(i < drainFrom ? 'quiet' : 'drain');
  }
  if (ok()) cluster.checkLiveness();

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
