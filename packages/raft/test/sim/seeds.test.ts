// The simulator's main event: many seeded cluster runs with partitions, loss, duplication, delay,
// crashes, membership changes, leadership transfers and snapshots, each checked for Raft's safety
// properties after every step, linearizability of the clients' history, and liveness once the
// faults stop.
//
//   SEEDS=2000 npx node --test packages/raft/test/sim/seeds.test.ts   more seeds (default 500)
//   SEED=123   npx node --test packages/raft/test/sim/seeds.test.ts   only seed 123
//   START=5000 …                                                      start elsewhere (default 1)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runSeed, type RunResult } from '../../src/sim/run.ts';

// Shorter runs than the CLI's default, so that 500 seeds of RaftNode clusters take about 30 s of CPU.
const STEPS = 400;
const QUIET = 150;
const one = process.env.SEED !== undefined && process.env.SEED !== '' ? Number(process.env.SEED) : undefined;
const count = one !== undefined ? 1 : Number(process.env.SEEDS ?? 500);
const start = one ?? Number(process.env.START ?? 1);

function describeFailure(r: RunResult): string {
  return [
    `seed ${r.seed} failed:`,
    ...r.violations.slice(0, 3).map((v) => `  [${v.kind}] at step ${v.step}: ${v.message}`),
    '  last trace events:',
    ...r.trace.slice(-25).map((l) => `    ${l}`),
    `  replay: SEED=${r.seed} npm run sim -- --steps ${STEPS} --quiet ${QUIET}`,
  ].join('\n');
}

// Its own timeout: about 30 s of CPU, bounded by the seed count, but it shares two cores with the
// suite's real-process tests, and the runner's default (180 s) was hit on a loaded machine.
test(`${count} seeded cluster runs with faults (seeds ${start}..${start + count - 1}): no violations`, { timeout: 600_000 }, async () => {
  const failures: RunResult[] = [];
  const totals = { leaders: 0, crashes: 0, partitions: 0, confChanges: 0, transfers: 0, snapshotsInstalled: 0, appliedWhileWriting: 0, ops: 0, opsOk: 0, indeterminate: 0, unknown: 0 };
  for (let seed = start; seed < start + count; seed++) {
    const r = await runSeed(seed, { steps: STEPS, quietSteps: QUIET, traceKeep: 60 });
    if (!r.ok) {
      failures.push(r);
      // Print at once: a long run that fails late still names its seed early.
      process.stdout.write(describeFailure(r) + '\n');
    }
    const s = r.stats;
    totals.leaders += s.leadersElected;
    totals.crashes += s.crashes;
    totals.partitions += s.partitions;
    totals.confChanges += s.confChanges;
    totals.transfers += s.transfers;
    totals.snapshotsInstalled += s.snapshotsInstalled;
    // The order RaftNode ships (readyPlan.ts): committed entries applied while the write is in flight.
    totals.appliedWhileWriting += s.appliedWhileWriting;
    totals.ops += s.ops.invoked;
    totals.opsOk += s.ops.ok;
    totals.indeterminate += s.ops.indeterminate;
    if (s.linearizability === 'unknown') totals.unknown++;
  }
  assert.equal(failures.length, 0, `failing seeds: ${failures.map((f) => f.seed).join(', ')}\n${failures.slice(0, 3).map(describeFailure).join('\n\n')}`);
  if (one === undefined && count >= 100) {
    // The faults must actually happen, or a clean result means nothing.
    for (const [k, v] of Object.entries(totals)) {
      if (k === 'unknown' || k === 'indeterminate') continue;
      assert.ok(v >= count / 10, `only ${v} ${k} over ${count} seeds: the fault schedule is not exercising this`);
    }
    assert.ok(totals.unknown <= count / 100, `linearizability undecided for ${totals.unknown} seeds`);
  }
});

test('disks that fill up: a node whose write fails stops (and its process exits), the cluster stays safe and recovers', { skip: one !== undefined }, async () => {
  // RaftNode's failure stop (node.ts failStop) under every checker: a node that cannot persist must
  // not acknowledge, vote or keep leading; restarted once its disk has room, it rejoins.
  let stops = 0;
  for (let seed = 1; seed <= 60; seed++) {
    const r = await runSeed(seed, { steps: STEPS, quietSteps: QUIET, traceKeep: 60, rates: { diskFull: 0.01 } });
    if (!r.ok) assert.fail(`${describeFailure(r)} --rate diskFull=0.01`);
    stops += r.stats.storageStops;
  }
  assert.ok(stops >= 30, `only ${stops} nodes stopped on a failed write in 60 seeds: the fault is not exercised`);
});

test('fault-free runs make steady progress and are linearizable', { skip: one !== undefined }, async () => {
  for (let seed = 1; seed <= 10; seed++) {
    const r = await runSeed(seed, { faults: false, steps: 300, quietSteps: 100 });
    assert.ok(r.ok, `seed ${seed}: ${r.violations.map((v) => v.message).join('\n')}`);
    assert.equal(r.stats.linearizability, 'ok');
    assert.ok(r.stats.ops.ok >= 50, `seed ${seed}: only ${r.stats.ops.ok} operations completed in 400 fault-free steps`);
    assert.equal(r.stats.ops.indeterminate, 0, `seed ${seed}: operations timed out without faults`);
  }
});
