// Rolling restart: every server is stopped (SIGTERM) and started again, one at a time, under a
// write load. No acknowledged write is lost; the share of writes that succeeded is reported (a
// stopping leader hands leadership over first, so few writes fail).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster, FAST_RAFT, assertOneLeaderPerTerm, sleep, waitFor } from './cluster.ts';

describe('rolling restart under load', () => {
  let c: Cluster;
  let failed = true;
  before(async () => {
    c = await Cluster.create(3, { config: FAST_RAFT });
    await c.formed();
  });
  after(async () => {
    if (failed) c.dumpLogs(60);
    await c?.dispose();
  });

  test('no acknowledged write is lost while each server restarts in turn', { timeout: 120_000 }, async () => {
    const acked = new Map<string, string>();
    const stats = { ok: 0, failed: 0, refused: 0 };
    const reasons = new Map<string, number>();
    let stop = false;
    let seq = 0;
    const writer = async (w: number) => {
      for (let i = 0; !stop; i++) {
        const s = c.servers[(w + i) % 3]!;
        if (!s.running) { await sleep(10); continue; }
        const key = `roll/${w}-${seq++}`;
        try {
          const r = await s.request('PUT', `/v1/kv/${key}`, { body: key, timeoutMs: 15_000 });
          if (r.status === 200 && r.text === 'true') { acked.set(key, key); stats.ok++; } else {
            stats.failed++;
            reasons.set(`${r.status} ${r.text.slice(0, 80)}`, (reasons.get(`${r.status} ${r.text.slice(0, 80)}`) ?? 0) + 1);
          }
        } catch (err) {
          // The server being restarted is not listening: a client moves on to another server.
          stats.refused++;
          reasons.set((err as Error).message.slice(0, 60), (reasons.get((err as Error).message.slice(0, 60)) ?? 0) + 1);
        }
      }
    };
    const load = [0, 1, 2].map(writer);
    await waitFor('writes acknowledged before the first restart', () => stats.ok >= 10, 20_000);
    for (const s of c.servers) {
      await s.stop();
      await sleep(300); // the server stays down a moment (the fault itself, not a wait for anything)
      s.start();
      // Back in the cluster: it names the leader and serves a consistent read.
      await waitFor(`${s.name} rejoined`, async () => (await s.request('GET', '/v1/kv/roll/?keys&consistent', { timeoutMs: 3000 })).status === 200, 30_000);
    }
    const okAfterRestarts = stats.ok;
    await waitFor('writes acknowledged after the last restart', () => stats.ok >= okAfterRestarts + 10, 20_000);
    stop = true;
    await Promise.all(load);
    for (const s of c.servers) {
      const keys = new Set(await s.getJson<string[]>('/v1/kv/roll/?keys&consistent'));
      const missing = [...acked.keys()].filter((k) => !keys.has(k));
      assert.deepEqual(missing, [], `${s.name} lacks acknowledged writes`);
    }
    assertOneLeaderPerTerm(c.servers, 2);
    const availability = stats.ok / (stats.ok + stats.failed);
    process.stderr.write(`rolling restart: ${stats.ok} writes acknowledged, ${stats.failed} refused by a running server, ${stats.refused} sent to a server that was down; availability of running servers ${(availability * 100).toFixed(1)}%; ${JSON.stringify([...reasons])}\n`);
    assert.ok(stats.ok > 0);
    assert.ok(availability >= 0.95, 'running servers keep taking writes while another restarts');
    failed = false;
  });
});
