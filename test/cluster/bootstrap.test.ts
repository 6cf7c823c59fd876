// -bootstrap-expect 3 with the servers started in random orders and at random moments: always
// exactly one cluster of the three, never two leaders in one term, every founder bootstrapping with
// the identical configuration; and a restart of all servers never bootstraps again.
//
// The default run does 3 orders (about 30 s); TRELLIS_CLUSTER_BOOTSTRAP_RUNS=20 runs the long loop.
// TRELLIS_CLUSTER_SEED replays one sequence of orders and delays.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster, FAST_RAFT, assertOneLeaderPerTerm, sleep } from './cluster.ts';
import { mulberry32 as rng } from '../support/random.ts';

const RUNS = Number(process.env.TRELLIS_CLUSTER_BOOTSTRAP_RUNS ?? 3);
const SEED = Number(process.env.TRELLIS_CLUSTER_SEED ?? Date.now() % 100_000);

describe(`bootstrap-expect in random start orders (${RUNS} runs, seed ${SEED})`, () => {
  const random = rng(SEED);
  for (let run = 1; run <= RUNS; run++) {
    test(`run ${run}`, { timeout: 90_000 }, async () => {
      const c = await Cluster.create(3, { config: FAST_RAFT });
      const order = [...c.servers].sort(() => random() - 0.5);
      const delays = order.map(() => Math.floor(random() * 1500));
      let ok = false;
      try {
        for (let i = 0; i < order.length; i++) {
          await sleep(delays[i]!);
          order[i]!.start();
        }
        const leader = await c.waitLeader(40_000);
        await c.waitVoters(c.servers);
        const sets = c.servers.map((s) => /bootstrapping the cluster with the agreed founding set: members=(\{[^}]*\})/.exec(s.log())?.[1]);
        assert.equal(new Set(sets).size, 1, `founders bootstrapped with different sets: ${sets.join(' | ')}`);
        assert.ok(sets[0] !== undefined, 'the founders bootstrapped');
        assert.equal(JSON.parse(sets[0]!) && Object.keys(JSON.parse(sets[0]!)).length, 3);

        if (run === 1) {
          // Twice: all three restart (same data dirs). They rejoin their cluster; nobody bootstraps again.
          await Promise.all(c.servers.map((s) => s.stop()));
          for (const s of [...c.servers].reverse()) s.start();
          await c.waitLeader(40_000);
          await c.waitVoters(c.servers);
          for (const s of c.servers) {
            const boots = s.log().match(/bootstrapping a new cluster/g) ?? [];
            assert.equal(boots.length, 1, `${s.name} bootstrapped ${boots.length} times`);
          }
        }
        const put = await leader.request('PUT', '/v1/kv/run', { body: String(run) });
        assert.equal(put.status, 200);
        assertOneLeaderPerTerm(c.servers, 1);
        ok = true;
      } finally {
        if (!ok) {
          process.stderr.write(`bootstrap run ${run} failed (seed ${SEED}, order ${order.map((s) => s.name).join(',')}, delays ${delays.join(',')})\n`);
          c.dumpLogs(40);
        }
        await c.dispose();
      }
    });
  }
});
