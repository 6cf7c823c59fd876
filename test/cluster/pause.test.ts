// A leader frozen (SIGSTOP) under a write load, as a long GC pause or a VM stall would freeze it:
//   - the two others elect a new leader and keep acknowledging writes;
//   - thawed (SIGCONT), the old leader learns of the newer term, steps down and follows;
//   - every acknowledged write is on every server afterwards; no term had two leaders.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster, FAST_RAFT, assertOneLeaderPerTerm, waitFor } from './cluster.ts';

describe('a frozen leader', () => {
  let c: Cluster;
  let failed = true;

  before(async () => {
    c = await Cluster.create(3, { config: FAST_RAFT });
    await c.formed();
  });
  after(async () => {
    for (const s of c?.servers ?? []) { try { s.resume(); } catch { /* not running */ } }
    if (failed) c.dumpLogs(60);
    await c?.dispose();
  });

  test('is replaced while frozen and steps down when thawed; no acknowledged write lost', { timeout: 90_000 }, async () => {
    const old = await c.waitLeader();
    const others = c.servers.filter((s) => s !== old);
    const acked = new Map<string, string>();
    let stop = false;
    let seq = 0;
    const writer = async (w: number) => {
      for (let i = 0; !stop; i++) {
        const s = others[(w + i) % others.length]!;
        const key = `pause/w${w}-${seq++}`;
        try {
          const r = await s.request('PUT', `/v1/kv/${key}`, { body: key, timeoutMs: 10_000 });
          if (r.status === 200 && r.text === 'true') acked.set(key, key);
        } catch {
          // not acknowledged
        }
      }
    };
    const load = [0, 1, 2, 3].map(writer);
    let newLeader = '';
    try {
      await waitFor('writes acknowledged before the freeze', () => acked.size >= 10, 20_000, 50);
      old.pause();
      newLeader = await waitFor('a new leader among the others', async () => {
        const names = await Promise.all(others.map(async (s) => (await s.request('GET', '/v1/status/leader', { timeoutMs: 1000 })).json<string>()));
        return names[0] && names[0] !== old.rpcAddr && names.every((n) => n === names[0]) ? names[0] : undefined;
      }, 20_000, 50);
      // Writes in flight to the frozen leader wait out their deadline (their outcome is unknown);
      // new ones go to the new leader.
      const before = acked.size;
      await waitFor('writes acknowledged by the new leader while the old one is frozen', () => acked.size > before + 10 ? true : undefined, 30_000, 100);

      old.resume();
      await waitFor('the thawed server follows the new leader', async () => {
        const r = await old.request('GET', '/v1/status/leader', { timeoutMs: 1000 });
        return r.json<string>() === newLeader ? true : undefined;
      }, 20_000, 100);
      const afterThaw = acked.size;
      await waitFor('writes acknowledged after the thaw', () => acked.size >= afterThaw + 10, 20_000, 50);
    } finally {
      stop = true;
      old.resume();
      await Promise.all(load);
    }

    for (const s of c.servers) {
      const r = await waitFor(`${s.name} answers a consistent read`, async () => {
        const x = await s.request('GET', '/v1/kv/pause/?recurse&consistent', { timeoutMs: 10_000 });
        return x.status === 200 ? x : undefined;
      }, 20_000);
      const have = new Set(r.json<Array<{ Key: string }>>().map((e) => e.Key));
      const missing = [...acked.keys()].filter((k) => !have.has(k));
      assert.deepEqual(missing, [], `${s.name} lacks ${missing.length} of ${acked.size} acknowledged writes`);
    }
    assertOneLeaderPerTerm(c.servers, 2);
    process.stderr.write(`pause: ${acked.size} writes acknowledged; new leader ${newLeader}\n`);
    failed = false;
  });
});
