// One chaos run: namespaces and agents up, workloads and the fault schedule for the duration, a
// recovery period under load, then the checkers and the report. Used by the CLI (cli.ts, `npm run
// chaos`) and the CI test (chaos.test.ts). Bad options were refused by parseArgs before this runs;
// runChaos itself refuses namespace names in use before it starts anything, and removes every
// namespace, rule and process it made on any exit (errors, SIGINT, SIGTERM).
import fs from 'node:fs';
import path from 'node:path';
import { checkLinearizability, type Operation } from '../../packages/raft/src/sim/linearizability.ts';
import { kvModel, type KvInput, type KvOutput } from '../../packages/raft/src/sim/kv.ts';
import { Rng } from '../../packages/raft/src/sim/rng.ts';
import { closeIdleSockets } from '../support/http.ts';
import { ensureNetnsTools, netnsUnavailable, type Netns } from '../support/netns.ts';
import { ChaosCluster } from './cluster.ts';
import { Nemesis } from './nemesis.ts';
import { chooseNet, type ChaosOptions } from './options.ts';
import { LoopbackNet } from './loopback.ts';
import { HostFaults, prepareHostFaults } from './hostFaults.ts';
import { lastFailureAfterHeal, latencySvg, majorityThroughput, markdown, phaseFigures, type ChaosReport } from './report.ts';
import { CounterWorkload, LockWorkload, RegisterWorkload, checkCounter, lockViolations, type OpSample, type Target, type WorkloadContext } from './workloads.ts';

/** Search steps allowed per key (each key is checked on its own, so one hard key cannot starve the rest). */
export const KEY_BUDGET = 5_000_000;

type RegisterOp = Operation<KvInput, KvOutput>;

/** Checks each key's history on its own; the first violation (with its explanation) wins. */
export function checkRegister(history: RegisterOp[]): { ok: boolean | 'unknown'; searched: number; keys: number; unknownKeys: string[]; partition?: string; explanation?: string } {
  const byKey = new Map<string, RegisterOp[]>();
  for (const op of history) {
    const list = byKey.get(op.input.key) ?? [];
    list.push(op);
    byKey.set(op.input.key, list);
  }
  let searched = 0;
  const unknownKeys: string[] = [];
  for (const key of [...byKey.keys()].sort()) {
    const ops = byKey.get(key)!;
    const pruned = pruneUnobserved(ops);
    let r = checkLinearizability(kvModel, pruned, { maxSearchSteps: KEY_BUDGET });
    searched += r.searched;
    // Without a cas that answered false the pruned writes cannot matter, so the pruned verdict is the
    // whole history's. With one, only a pruned "yes" carries over: otherwise search the whole history.
    if (r.ok !== true && pruned.length < ops.length && hasFailedCas(ops)) {
      r = checkLinearizability(kvModel, ops, { maxSearchSteps: KEY_BUDGET });
      searched += r.searched;
    }
    if (r.ok === false) return { ok: false, searched, keys: byKey.size, unknownKeys, partition: r.partition, explanation: r.explanation };
    if (r.ok === 'unknown') unknownKeys.push(key);
  }
  return { ok: unknownKeys.length > 0 ? 'unknown' : true, searched, keys: byKey.size, unknownKeys };
}

function hasFailedCas(ops: RegisterOp[]): boolean {
  return ops.some((op) => op.input.kind === 'cas' && op.output?.kind === 'cas' && !op.output.ok);
}

/**
 * Drops the indeterminate writes (put, cas) of one key whose value no operation observed (no read
 * returned it, no cas expected it), except one for each cas that answered false. Leaving out an
 * operation whose client never learned its outcome is always allowed (it may never have happened),
 * so if the pruned history is linearizable, so is the whole. An unobserved write can change a
 * verdict only by making a cas fail, so one is kept per failed cas (distinct, called before that cas
 * returned, the latest such); and each write dropped halves the orders the search must try (a chaos
 * run with 300 unanswered writes spent the whole search budget on one key without this).
 */
export function pruneUnobserved(ops: RegisterOp[]): RegisterOp[] {
  const observed = new Set<string>();
  for (const op of ops) {
    if (op.output?.kind === 'get' && op.output.value !== null) observed.add(op.output.value);
    if (op.input.kind === 'cas' && op.input.expected !== null) observed.add(op.input.expected);
  }
  const unobserved = ops.filter((op) => op.output === undefined && op.input.kind !== 'get' && !observed.has(op.input.value));
  const keep = new Set<RegisterOp>();
  const failedCas = ops.filter((op) => op.output?.kind === 'cas' && !op.output.ok).sort((x, y) => x.ret - y.ret);
  for (const cas of failedCas) {
    let best: RegisterOp | undefined;
    for (const w of unobserved) if (!keep.has(w) && w.call < cas.ret && (!best || w.call > best.call)) best = w;
    if (best) keep.add(best);
  }
  const drop = new Set(unobserved.filter((w) => !keep.has(w)));
  return ops.filter((op) => !drop.has(op));
}

export interface RunResult {
  report: ChaosReport;
  dir: string;
}

export async function runChaos(o: ChaosOptions, log: (line: string) => void = (l) => process.stdout.write(`${l}\n`)): Promise<RunResult> {
  let unavailable = '';
  if (o.net !== 'loopback') {
    unavailable = netnsUnavailable();
    if (unavailable === 'iproute2 (ip) is not installed' || unavailable === 'nftables (nft) is not installed') {
      try { ensureNetnsTools(); } catch (err) { if (o.net === 'netns') throw err; }
      unavailable = netnsUnavailable();
    }
  }
  // disk-stall / clock-step: their libraries are installed and built (or the run refused) first.
  const hostTools = prepareHostFaults(o.faults);
  const lines: string[] = [];
  const say = (l: string) => { lines.push(l); log(l); };
  let net = chooseNet(o.net, unavailable);
  if (net.message) say(`chaos: ${net.message}`);
  // Names are checked (and refused if in use) before anything is made.
  let plan: Netns | LoopbackNet = net.mode === 'netns' ? ChaosCluster.plan(o.servers, o.clients, o.prefix) : ChaosCluster.planLoopback(o.servers, o.clients, o.seed);
  const outDir = o.outDir || path.join('chaos-report', `${new Date().toISOString().replace(/[:.]/g, '-')}-seed${o.seed}`);
  const where = (p: Netns | LoopbackNet): string => (p.members.length > 0 && 'advertise' in p.members[0]!
    ? `on loopback ${p.subnet}.0/24 behind a fault-injecting relay (--net loopback)`
    : `in namespaces ${p.prefix}-* (${p.subnet}.0/24)`);
  say(`chaos: seed ${o.seed}; ${o.servers} servers + ${o.clients} clients ${where(plan)}; faults ${o.faults.join(', ')}; ${o.durationMs / 1000} s${o.plant ? `; PLANTED BUG ${o.plant}` : ''}`);

  const startedAt = new Date().toISOString();
  let cluster: ChaosCluster;
  try {
    cluster = await ChaosCluster.create(plan, o.servers, o.clients, o.plant, o.minQuorum);
  } catch (err) {
    // A root that cannot make namespaces after all (a container without CAP_SYS_ADMIN): auto falls back.
    if (o.net !== 'auto' || net.mode !== 'netns') throw err;
    net = chooseNet('auto', `building them failed: ${(err as Error).message.split('\n')[0]}`);
    say(`chaos: ${net.message}`);
    plan = ChaosCluster.planLoopback(o.servers, o.clients, o.seed);
    cluster = await ChaosCluster.create(plan, o.servers, o.clients, o.plant, o.minQuorum);
  }
  cluster.hostFaults = new HostFaults(hostTools);
  let failed = true;
  try {
    cluster.startAll();
    const leader = await cluster.waitFormed(90_000);
    say(`chaos: cluster formed, leader ${leader.name}`);

    const rng = new Rng(o.seed);
    const t0 = performance.now();
    let stop = false;
    const samples: OpSample[] = [];
    const targets: Target[] = cluster.agents.map((a) => ({ name: a.name, url: a.url }));
    const ctx: WorkloadContext = { targets: () => targets, rng: rng.fork('workloads'), opTimeoutMs: o.opTimeoutMs, t0, stopped: () => stop, samples };
    const register = new RegisterWorkload(ctx);
    const lock = new LockWorkload(ctx);
    const counter = new CounterWorkload(ctx);
    const workers = [
      ...Array.from({ length: o.registerWorkers }, (_, i) => register.worker(i)),
      ...Array.from({ length: o.lockWorkers }, (_, i) => lock.worker(i)),
      ...Array.from({ length: o.counterWorkers }, (_, i) => counter.worker(i)),
    ];
    const nemesis = new Nemesis(cluster, {
      faults: o.faults, durationMs: o.durationMs, rng: rng.fork('nemesis'), t0, log: say, stopped: () => stop,
      ...(o.smoke ? { faultMs: [4000, 6000] as [number, number], quietMs: [2500, 4000] as [number, number] } : {}),
    });
    try {
      await nemesis.run();
      const left = o.durationMs - (performance.now() - t0);
      if (left > 0) await new Promise((r) => setTimeout(r, left));
      say(`+${((performance.now() - t0) / 1000).toFixed(1)}s recovery: ${o.recoveryMs / 1000} s under load, no faults`);
      await new Promise((r) => setTimeout(r, o.recoveryMs));
      // Recovery measurements of the last heal finish under load too (each gives up after 30 s).
      await nemesis.settle();
    } finally {
      stop = true;
      await nemesis.heal();
      await Promise.all(workers);
      await nemesis.close();
    }
    const elapsedMs = Math.round(performance.now() - t0);
    if (cluster.net instanceof LoopbackNet) {
      const r = cluster.net.stats;
      say(`chaos: relay: ${r.tcpAccepted} TCP connections (${r.tcpRefused} refused, ${r.tcpCut} cut, ${r.tcpStalled} stalled, ${r.tcpHeld} held by partitions), ` +
        `${r.tcpChunks} chunks (${r.tcpRetransmitted} late as if lost); ${r.udpForwarded} datagrams forwarded, ${r.udpBlocked} dropped by partitions, ${r.udpLost} by loss; ` +
        `${r.unknownSource} from unknown sources`);
    }

    // ---- checkers ----
    const history = register.history.operations((input) => input.kind === 'get');
    const lin = checkRegister(history);
    const keys = lin.keys;
    const holds = lock.holds;
    const overlaps = lockViolations(holds).map(([a, b]) =>
      `w${a.worker} (session ${a.session.slice(0, 8)} via ${a.agent}) held ${(a.from / 1000).toFixed(3)}–${(a.to / 1000).toFixed(3)} s; ` +
      `w${b.worker} (session ${b.session.slice(0, 8)} via ${b.agent}) acquired at ${(b.from / 1000).toFixed(3)} s`);
    const final = await counter.finalValue();
    const cv = checkCounter(final, counter.ackedValues, counter.counts.indeterminate);
    const byTerm = cluster.leadersByTerm();
    const multi = [...byTerm].filter(([, l]) => l.size > 1);
    const lastFail = lastFailureAfterHeal(samples, nemesis.events);
    const majority = majorityThroughput(samples, nemesis.events, elapsedMs);
    const detection = nemesis.events.flatMap((e) => (e.detectedMs === undefined ? [] : [e.detectedMs])).sort((a, b) => a - b);
    const rc = register.history.counts;

    const problems: string[] = [];
    if (lin.ok === false) problems.push(`KV register not linearizable (key ${lin.partition})`);
    if (lin.unknownKeys.length > 0) problems.push(`linearizability not proven for ${lin.unknownKeys.length} of ${keys} keys (search budget of ${KEY_BUDGET} steps spent): ${lin.unknownKeys.slice(0, 5).join(', ')}`);
    if (overlaps.length > 0) problems.push(`${overlaps.length} lock overlaps`);
    if (!cv.ok) problems.push(`counter: ${cv.explanation}`);
    if (multi.length > 0) problems.push(`terms with two leaders: ${multi.map(([t]) => t).join(', ')}`);
    const bypassed = nemesis.events.flatMap((e) => (e.clock?.lockDelay ?? []).filter((l) => / bypassed/.test(l)).map((l) => `${e.targets[0]} ${e.clock!.offsetS} s: ${l}`));
    if (bypassed.length > 0) problems.push(`lock-delay bypassed under a clock step: ${bypassed.join('; ')}`);
    const report: ChaosReport = {
      options: { ...o, net: net.mode, ...(cluster.net instanceof LoopbackNet ? { relay: cluster.net.stats } : {}) },
      startedAt,
      elapsedMs,
      verdict: {
        ok: problems.length === 0,
        summary: problems.length === 0
          ? `No violations: linearizable, no lost acknowledged increment, no two lock holders, one leader per term (${nemesis.events.length} faults).`
          : `VIOLATIONS: ${problems.join('; ')}.`,
      },
      register: {
        attempted: rc.invoked, ok: rc.ok, failed: rc.failed, indeterminate: rc.indeterminate,
        linearizable: lin.ok, searched: lin.searched, keys, unknownKeys: lin.unknownKeys,
        ...(lin.ok === false ? { counterexample: lin.explanation } : {}),
      },
      lock: { ...lock.counts, holds: holds.length, violations: overlaps },
      counter: { ...counter.counts, final, ok: cv.ok, explanation: cv.explanation },
      phases: phaseFigures(samples, nemesis.events),
      faults: nemesis.events.map((e, i) => ({ ...e, lastFailureAfterHealMs: lastFail[i], majorityThroughputRatio: majority[i] })),
      elections: {
        terms: byTerm.size,
        oneLeaderPerTerm: multi.length === 0,
        detail: `${byTerm.size} terms with a leader elected (from the servers' logs)${multi.length > 0 ? `; two leaders in term ${multi.map(([t, l]) => `${t}: ${[...l].join(', ')}`).join('; ')}` : ''}`,
      },
      gossip: {
        detectionMs: detection,
        medianDetectionMs: detection.length === 0 ? null : detection[Math.floor((detection.length - 1) / 2)]!,
        falseFailures: nemesis.events.flatMap((e) => e.falseFailures ?? []),
      },
      log: lines,
    };
    fs.mkdirSync(outDir, { recursive: true });
    // The register history too, so it can be checked again offline (ret null = never answered).
    fs.writeFileSync(path.join(outDir, 'report.json'), `${JSON.stringify({ ...report, samples, history }, null, 1)}\n`);
    fs.writeFileSync(path.join(outDir, 'report.md'), markdown(report));
    fs.writeFileSync(path.join(outDir, 'latency.svg'), latencySvg(samples, nemesis.events, elapsedMs, o.opTimeoutMs));
    say(`chaos: ${report.verdict.ok ? 'PASS' : 'FAIL'}: ${report.verdict.summary}`);
    say(`chaos: report in ${outDir}/report.md (JSON: report.json, plot: latency.svg)`);
    failed = false;
    return { report, dir: outDir };
  } finally {
    if (failed) {
      process.stderr.write(`chaos: the run failed; agents' logs kept in ${cluster.root}\n`);
      for (const a of cluster.agents) process.stderr.write(`\n==== ${a.name} ====\n${a.logTail(15)}\n`);
    }
    await cluster.dispose({ keep: failed || process.env.TRELLIS_E2E_KEEP === '1' });
    closeIdleSockets();
  }
}
