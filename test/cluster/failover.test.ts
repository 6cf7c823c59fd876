// kill -9 of the leader during a write load, at Consul's default Raft timing (raft_multiplier 5):
//   - the two survivors elect a new leader within 5 s;
//   - every write that was acknowledged (200 "true") is present on every server afterwards,
//     including the killed one once it is back;
//   - ?stale reads keep answering on the survivors during the election;
//   - no term ever had two leaders (from every server's log).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster, leadersByTerm, sleep, waitFor, type ServerProc } from './cluster.ts';

describe('leader failure under write load (default timing)', () => {
  let c: Cluster;
  let failed = true;

  before(async () => {
    c = await Cluster.create(3);
    for (const s of c.servers) s.start();
    await c.waitLeader(40_000);
    await c.waitVoters(c.servers);
  });
  after(async () => {
    if (failed) c.dumpLogs(60);
    await c?.dispose();
  });

  test('a new leader within 5 s; no acknowledged write lost; stale reads answer during the election', { timeout: 90_000 }, async () => {
    const oldLeader = await c.waitLeader();
    const survivors = c.servers.filter((s) => s !== oldLeader);
    const acked = new Map<string, string>();
    let stop = false;
    let seq = 0;
    const outcomes = { ok: 0, failed: 0 };

    // Four writers, each sending to every server in turn (the leader's share fails once it is dead).
    const writer = async (w: number) => {
      for (let i = 0; !stop; i++) {
        const s = c.servers[(w + i) % c.servers.length]!;
        if (!s.running) continue;
        const key = `load/w${w}-${seq++}`;
        const value = `${key}@${Date.now()}`;
        try {
          const r = await s.request('PUT', `/v1/kv/${key}`, { body: value, timeoutMs: 15_000 });
          if (r.status === 200 && r.text === 'true') { acked.set(key, value); outcomes.ok++; } else outcomes.failed++;
        } catch {
          outcomes.failed++; // connection refused / reset: not acknowledged
        }
      }
    };
    // Stale readers on the survivors, counting answers while there is no leader.
    const stale = { answered: 0, errors: 0, duringElection: 0 };
    let electing = false;
    const reader = async (s: ServerProc) => {
      while (!stop) {
        try {
          const r = await s.request('GET', '/v1/kv/load/?recurse&stale&keys', { timeoutMs: 5_000 });
          // 404: no key under the prefix has reached this server yet, which is still an answer.
          if (r.status === 200 || r.status === 404) { stale.answered++; if (electing) stale.duringElection++; } else stale.errors++;
        } catch {
          stale.errors++;
        }
        await sleep(20);
      }
    };

    const load = [0, 1, 2, 3].map(writer);
    const readers = survivors.map(reader);
    await sleep(1500);
    assert.ok(outcomes.ok > 0, 'writes are acknowledged before the failure');

    const killedAt = Date.now();
    await oldLeader.kill();
    electing = true;
    const newLeader = await waitFor('a new leader among the survivors', async () => {
      const names = await Promise.all(survivors.map(async (s) => (await s.request('GET', '/v1/status/leader', { timeoutMs: 1000 })).json<string>()));
      return names[0] && names[0] !== oldLeader.rpcAddr && names.every((n) => n === names[0]) ? names[0] : undefined;
    }, 15_000, 25);
    const electedMs = Date.now() - killedAt;
    electing = false;
    assert.ok(electedMs < 5000, `new leader ${newLeader} after ${electedMs} ms (must be < 5000)`);

    await sleep(1500); // load continues against the new leader
    stop = true;
    await Promise.all([...load, ...readers]);
    assert.ok(stale.duringElection > 0, `stale reads answered during the election (${JSON.stringify(stale)})`);
    assert.equal(stale.errors, 0, `stale reads never fail (${JSON.stringify(stale)})`);

    // The killed server comes back with its data dir and catches up.
    oldLeader.start();
    await c.waitLeader(30_000, c.servers);

    // Every acknowledged write is on every server. ?consistent on each server waits until that
    // server has applied everything committed, so a missing key is truly missing there.
    for (const s of c.servers) {
      const r = await waitFor(`${s.name} answers a consistent read`, async () => {
        const x = await s.request('GET', '/v1/kv/load/?recurse&consistent', { timeoutMs: 10_000 });
        return x.status === 200 ? x : undefined;
      }, 30_000);
      const have = new Map(r.json<Array<{ Key: string; Value: string }>>().map((e) => [e.Key, Buffer.from(e.Value, 'base64').toString()]));
      const missing = [...acked].filter(([k, v]) => have.get(k) !== v).map(([k]) => k);
      assert.deepEqual(missing, [], `${s.name} lacks ${missing.length} of ${acked.size} acknowledged writes`);
    }

    for (const [term, leaders] of leadersByTerm(c.servers)) {
      assert.equal(leaders.size, 1, `term ${term} had leaders ${[...leaders].join(', ')}`);
    }
    process.stderr.write(`failover: new leader after ${electedMs} ms; ${outcomes.ok} writes acknowledged, ${outcomes.failed} failed; stale reads ${JSON.stringify(stale)}\n`);
    failed = false;
  });
});
