// The checkers must be able to fail in a whole run, not just on hand-made input: each deliberate
// bug below breaks one property, and the simulator must report exactly that kind of violation
// within a modest number of seeds. (If a core change ever makes one of these pass unnoticed, the
// checker has gone blind, which is worse than a failing run.)
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { runSeed, type RunOptions } from '../../src/sim/run.ts';

async function firstCaught(opts: RunOptions, maxSeeds: number): Promise<{ seed: number; kinds: string[] } | undefined> {
  for (let seed = 1; seed <= maxSeeds; seed++) {
    const r = await runSeed(seed, opts);
    if (!r.ok) return { seed, kinds: r.violations.map((v) => v.kind) };
  }
  return undefined;
}

describe('deliberate bugs are caught', () => {
  test('reads served locally without ReadIndex → linearizability violation', async () => {
    const hit = await firstCaught({ bug: 'localReads', steps: 400, quietSteps: 200 }, 30);
    assert.ok(hit, 'no stale read was caught in 30 seeds');
    assert.deepEqual(hit.kinds, ['linearizability']);
  });

  test('a disk that forgets the vote on a crash → a second vote in one term (election safety)', async () => {
    // Crash-heavy schedule: the bug needs a crash between voting and the end of that term.
    const rates = { crash: 0.05, restart: 0.3, partition: 0.02, isolateLeader: 0.02, heal: 0.05 };
    const hit = await firstCaught({ bug: 'forgetVoteOnCrash', rates, steps: 400, quietSteps: 150 }, 150);
    assert.ok(hit, 'no double vote was caught in 150 seeds');
    assert.equal(hit.kinds[0], 'electionSafety');
  });

  test('a disk that never syncs → committed entries that a crash would lose (durability)', async () => {
    const hit = await firstCaught({ bug: 'ignoreSync', steps: 200, quietSteps: 100 }, 5);
    assert.ok(hit, 'lost durability was not caught');
    assert.equal(hit.kinds[0], 'durability');
  });

  test('a driver that sends acknowledgements before its write is durable → durability', async () => {
    // A reordering of readyPlan.ts's steps: the simulator runs the plan RaftNode ships, so a wrong
    // order in it is a wrong order the seeds see.
    const hit = await firstCaught({ bug: 'sendBeforeSync', steps: 400, quietSteps: 150 }, 30);
    assert.ok(hit, 'acknowledgements sent before the sync were not caught in 30 seeds');
    assert.equal(hit.kinds[0], 'durability');
  });

  test('a network that never heals → no leader or no progress at the end (liveness)', async () => {
    const hit = await firstCaught({ bug: 'neverHeal', steps: 100, quietSteps: 150 }, 10);
    assert.ok(hit, 'a permanently partitioned cluster passed the liveness check');
    assert.deepEqual(hit.kinds, ['liveness']);
  });

  test('the same runs without the bugs are clean', async () => {
    for (let seed = 1; seed <= 5; seed++) {
      const r = await runSeed(seed, { steps: 400, quietSteps: 200 });
      assert.ok(r.ok, `seed ${seed}: ${r.violations.map((v) => `[${v.kind}] ${v.message}`).join('\n')}\nreplay: SEED=${seed} npm run sim -- --steps 400 --quiet 200`);
    }
  });
});
