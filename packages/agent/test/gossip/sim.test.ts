// The real SWIM core at scale on the seeded simulator. Each test prints its seed when it fails;
// GOSSIP_SIM_SEED=<n> replays one (STYLE §2).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  GossipSim, epidemicModel, falsePositives, measureFailure, measureJoin, measureLeave, memberName,
} from '../../src/gossip/sim/index.ts';

const SEED = process.env.GOSSIP_SIM_SEED ? Number(process.env.GOSSIP_SIM_SEED) : 20261125;

/** Runs `fn` with the seed, and names the seed in any failure so the run can be replayed. */
function seeded(fn: (seed: number) => void): () => void {
  return () => {
    try {
      fn(SEED);
    } catch (err) {
      (err as Error).message += `\n  (replay with GOSSIP_SIM_SEED=${SEED})`;
      throw err;
    }
  };
}

describe('gossip simulator: propagation at Consul LAN defaults, 1,000 members', () => {
  const model = epidemicModel(1000, 3, 200);

  test('a join reaches 99.9% of the pool no slower than the epidemic model predicts', seeded((seed) => {
    const r = measureJoin({ seed, members: 1000 });
    assert.ok(r.seconds !== undefined, `join reached only ${r.reached}/${r.of}`);
    assert.ok(r.seconds <= model.seconds, `join took ${r.seconds} s; the model says ${model.seconds.toFixed(2)} s`);
  }));

  test('a graceful leave reaches 99.9% of the pool no slower than the model', seeded((seed) => {
    const r = measureLeave({ seed, members: 1000 });
    assert.ok(r.seconds !== undefined, `leave reached only ${r.reached}/${r.of}`);
    assert.ok(r.seconds <= model.seconds, `leave took ${r.seconds} s`);
  }));

  test('a crash is detected and reaches 99.9% of the pool within suspicion time plus a few rounds', seeded((seed) => {
    const r = measureFailure({ seed, members: 1000 });
    assert.ok(r.seconds !== undefined, `failure reached only ${r.reached}/${r.of}`);
    // Minimum suspicion at N = 1000 is 4 × log10(1000) × 1 s = 12 s: nothing can be faster than
    // the first failed probe plus that. The upper bound allows the first probe of the victim to
    // come late and the confirmations to trickle in (max timeout is 72 s with none at all).
    assert.ok(r.seconds >= 12, `failure declared after ${r.seconds} s, sooner than the suspicion timeout`);
    assert.ok(r.seconds <= 30, `failure took ${r.seconds} s to reach 99.9%`);
  }));
});

describe('gossip simulator: accuracy', () => {
  test('no false failure under modest loss (5%) with Lifeguard', seeded((seed) => {
    const r = falsePositives({ seed, members: 200, lossRate: 0.05 }, 60_000);
    assert.equal(r.total, 0, `false failures: ${JSON.stringify(r.list.slice(0, 5))}`);
    assert.ok(r.suspicions > 0, 'loss did cause suspicions; they were all refuted');
    assert.ok(r.refutations > 0);
  }));

  test('Lifeguard cuts false failures of healthy members ≥ 10× at 10% loss with 5% stalled members', seeded((seed) => {
    const o = { seed, members: 200, lossRate: 0.1, stalledFraction: 0.05 };
    const off = falsePositives({ ...o, swim: { lifeguard: false } }, 40_000);
    const on = falsePositives({ ...o, swim: { lifeguard: true } }, 40_000);
    assert.ok(off.healthyVictims >= 10, `without Lifeguard only ${off.healthyVictims} false failures of healthy members: the scenario is too mild to compare`);
    assert.ok(on.healthyVictims * 10 <= off.healthyVictims, `healthy victims: off ${off.healthyVictims}, on ${on.healthyVictims}`);
    // Without Lifeguard the stalled members themselves do the damage: they cannot read acks in time
    // and declare healthy members dead in their own view (what a Consul leader would act on).
    assert.ok(off.list.filter((f) => f.observerStalled && !f.victimStalled).length > 0);
    assert.ok(on.distinctVictims < off.distinctVictims);
  }));

  test('a pool of 4 (the chaos cluster) under 30% loss: refutations reach the accusers, so false failures stay rare', seeded((seed) => {
    // 10 runs of 120 s. These seeds gave 25 false declarations before refutations rode on acks and
    // a stale suspicion of us was answered by spreading our alive again, then 5 until any stale
    // suspicion or death was answered with the newer alive straight to its sender, now 1: Lifeguard
    // alone cannot help a member whose one refutation was lost on its way to the accuser.
    let total = 0;
    let suspicions = 0;
    for (let i = 0; i < 10; i++) {
      const r = falsePositives({ seed: seed + i, members: 4, lossRate: 0.3 }, 120_000);
      total += r.total;
      suspicions += r.suspicions;
    }
    assert.ok(suspicions >= 200, `loss caused only ${suspicions} suspicions: the scenario is too mild`);
    assert.ok(total <= 3, `${total} false failure declarations`);
  }));

  test('refutation: a falsely suspected member raises its incarnation and nobody declares it failed', seeded((seed) => {
    const sim = new GossipSim({ seed, members: 100 });
    sim.runFor(1000);
    const victim = sim.byName.get(memberName(5))!;
    sim.injectSuspicion(memberName(1), memberName(5));
    sim.runFor(30_000);
    assert.ok(victim.core.incarnation >= 2, 'the victim refuted');
    assert.equal(sim.falsePositives.length, 0);
    for (const m of sim.live()) assert.equal(m.core.member(memberName(5))?.state, 'alive', `${m.name} sees the victim alive`);
  }));
});

describe('gossip simulator: determinism', () => {
  test('the same seed gives the same result; another seed a different run', seeded((seed) => {
    const a = measureFailure({ seed, members: 200, lossRate: 0.05 });
    const b = measureFailure({ seed, members: 200, lossRate: 0.05 });
    assert.deepEqual(a, b);
    const trace = (s: number): string => {
      const sim = new GossipSim({ seed: s, members: 50, lossRate: 0.1 });
      const log: string[] = [];
      sim.onEvent = (m, ev, at) => log.push(`${at.toFixed(3)} ${m.name} ${ev.type}`);
      sim.crash(memberName(7));
      sim.runFor(20_000);
      return log.join('\n');
    };
    assert.equal(trace(seed), trace(seed));
    assert.notEqual(trace(seed), trace(seed + 1));
  }));
});

describe('gossip simulator: user events in a small pool', () => {
  // The e2e cluster's shape (3 servers, 5 clients). memberlist's 4 random copies per member missed
  // someone for 6.7% of events until the next push-pull (30 s); every event must reach all 8 now,
  // under 5% loss, with push-pull off so that only the broadcasts can deliver it.
  test('200 events, each fired by a random member of 8 at 5% loss: all reach every member within 2 s', seeded((seed) => {
    const sim = new GossipSim({ seed, members: 8, lossRate: 0.05, swim: { pushPullIntervalMs: 0 } });
    sim.runFor(2000);
    const got = new Map<number, Set<string>>();
    sim.onEvent = (m, ev) => {
      if (ev.type !== 'user') return;
      let s = got.get(ev.ltime);
      if (!s) got.set(ev.ltime, (s = new Set()));
      assert.ok(!s.has(m.name), `event ${ev.ltime} delivered twice to ${m.name}`);
      s.add(m.name);
    };
    for (let i = 0; i < 200; i++) {
      const from = sim.members[(i * 5) % 8]!;
      const ltime = from.core.fireUserEvent(`e${i}`, new Uint8Array([i & 0xff]), sim.now);
      sim.runFor(2000);
      assert.equal(got.get(ltime)?.size, 8, `event ${i} (from ${from.name}) reached ${[...(got.get(ltime) ?? [])].join(', ')}`);
    }
  }));
});
