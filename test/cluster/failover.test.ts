// kill -9 of the leader during a write load, at Consul's default Raft timing (raft_multiplier 5),
// with 3 servers and 2 client agents:
//   - the two survivors elect a new leader within 5 s;
//   - every write that was acknowledged (200 "true"), through a server or a client agent, is present
//     on every server afterwards, including the killed one once it is back;
//   - ?stale reads keep answering on the survivors and through the client agents during the
//     election; default reads through the client agents answer after it;
//   - no term ever had two leaders (from every server's log).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { AgentProcess } from '../support/index.ts';
import { Cluster, assertOneLeaderPerTerm, sleep, waitFor } from './cluster.ts';

interface Target { name: string; running: boolean; request: AgentProcess['request'] }

describe('leader failure under write load (default timing)', () => {
  let c: Cluster;
  const clients: AgentProcess[] = [];
  let failed = true;

  before(async () => {
    c = await Cluster.create(3);
    await c.formed(40_000);
    const joins = c.servers.flatMap((s) => ['-retry-join', s.serfAddr]);
    clients.push(...await Promise.all([1, 2].map((i) => AgentProcess.start({ mode: 'client', name: `fc${i}`, args: joins, readyTimeoutMs: 30_000 }))));
  });
  after(async () => {
    if (failed) {
      c.dumpLogs(60);
      for (const a of clients) console.log(`---- ${a.name}\n${a.logTail(40)}`);
    }
    await Promise.all(clients.map((a) => a.dispose({ keepDir: failed })));
    await c?.dispose();
  });

  test('a new leader within 5 s; no acknowledged write lost; stale reads answer during the election', { timeout: 90_000 }, async () => {
    const oldLeader = await c.waitLeader();
    const survivors = c.servers.filter((s) => s !== oldLeader);
    const acked = new Map<string, string>();
    let stop = false;
    let seq = 0;
    const outcomes = { ok: 0, failed: 0 };

    // Four writers, each sending to every server and client agent in turn (the leader's share fails
    // once it is dead).
    const targets: Target[] = [...c.servers, ...clients];
    const writer = async (w: number) => {
      for (let i = 0; !stop; i++) {
        const s = targets[(w + i) % targets.length]!;
        // Yield even when skipping: a loop that never awaits would starve the event loop (and the
        // test runner's timeout) once every target is down, e.g. after a failed assertion.
        if (!s.running) { await sleep(5); continue; }
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
    // Stale readers on the survivors and the client agents, counting answers while there is no leader.
    const stale = { answered: 0, errors: 0, duringElection: 0, viaClientsDuringElection: 0 };
    let electing = false;
    const reader = async (s: Target) => {
      while (!stop) {
        try {
          const r = await s.request('GET', '/v1/kv/load/?recurse&stale&keys', { timeoutMs: 5_000 });
          // 404: no key under the prefix has reached this server yet, which is still an answer.
          if (r.status === 200 || r.status === 404) {
            stale.answered++;
            if (electing) {
              stale.duringElection++;
              if (clients.includes(s as AgentProcess)) stale.viaClientsDuringElection++;
            }
          } else {
            stale.errors++;
          }
        } catch {
          stale.errors++;
        }
        await sleep(20);
      }
    };

    const load = [0, 1, 2, 3].map(writer);
    const readers = [...survivors, ...clients].map(reader);
    let electedMs = NaN;
    try {
      await waitFor('writes acknowledged before the failure', () => outcomes.ok >= 20, 20_000);

      const killedAt = Date.now();
      await oldLeader.kill();
      electing = true;
      const newLeader = await waitFor('a new leader among the survivors', async () => {
        const names = await Promise.all(survivors.map(async (s) => (await s.request('GET', '/v1/status/leader', { timeoutMs: 1000 })).json<string>()));
        return names[0] && names[0] !== oldLeader.rpcAddr && names.every((n) => n === names[0]) ? names[0] : undefined;
      }, 15_000, 25);
      electedMs = Date.now() - killedAt;
      electing = false;
      assert.ok(electedMs < 5000, `new leader ${newLeader} after ${electedMs} ms (must be < 5000)`);

      // Load continues against the new leader: writes are acknowledged again.
      const okAtElection = outcomes.ok;
      await waitFor('writes acknowledged after the election', () => outcomes.ok >= okAtElection + 20, 20_000);
      stop = true;
      await Promise.all([...load, ...readers]);
    } finally {
      stop = true; // a failed wait or assertion above must not leave the load running
    }
    assert.ok(stale.duringElection > 0, `stale reads answered during the election (${JSON.stringify(stale)})`);
    assert.ok(stale.viaClientsDuringElection > 0, `stale reads through client agents answered during the election (${JSON.stringify(stale)})`);
    assert.equal(stale.errors, 0, `stale reads never fail (${JSON.stringify(stale)})`);
    // After the election, default-consistency reads through the client agents answer.
    for (const a of clients) {
      const r = await a.request('GET', '/v1/kv/load/?keys', { timeoutMs: 10_000 });
      assert.equal(r.status, 200, `${a.name}: ${r.text}`);
      assert.ok(r.json<string[]>().length > 0);
    }

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

    assertOneLeaderPerTerm(c.servers, 2);
    process.stderr.write(`failover: new leader after ${electedMs} ms; ${outcomes.ok} writes acknowledged, ${outcomes.failed} failed; stale reads ${JSON.stringify(stale)}\n`);
    failed = false;
  });
});
