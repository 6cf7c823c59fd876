// Three nodes in three OS processes (gRPC transport, level storage). kill -9 the leader in the middle
// of a write load: a new leader is elected, and every acknowledged write is present on the new
// leader, and on all three after a full restart.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ProcCluster } from '../support/proccluster.ts';

/** Polls `cond` every 50 ms until it holds; fails with `what` after 20 s. */
async function until(what: string, cond: () => boolean): Promise<void> {
  const end = Date.now() + 20_000;
  while (!cond()) {
    assert.ok(Date.now() < end, `timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('kill -9 the leader during writes: no acknowledged write is lost', { timeout: 120_000 }, async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'trellis-raft-proc-'));
  // A low snapshot threshold so snapshots, compaction and restore from snapshot run in this test too.
  const cluster = new ProcCluster(['a', 'b', 'c'], dir, ['--snapshot-threshold', '200', '--tick-ms', '50']);
  try {
    await cluster.boot();
    const acked = new Map<string, string>();
    let stop = false;
    let leader = await cluster.leader();

    // Writers: each key written once with a known value; on failure, look for the new leader.
    const writer = async (w: number) => {
      for (let i = 0; !stop; i++) {
        const k = `w${w}-${i}`, v = `v${i}`;
        const r = await cluster.rpc(leader, { op: 'put', k, v }, 5000);
        if (r.ok) acked.set(k, v);
        else {
          try { leader = await cluster.leader(10_000); } catch { /* retried next round */ }
          i--; // retry the same key (it may or may not have applied: an unacknowledged write)
        }
      }
    };
    const writers = Array.from({ length: 8 }, (_, w) => writer(w));
    await until('load acknowledged before the kill', () => acked.size > 50);
    const old = leader;
    const ackedBeforeKill = acked.size;
    await cluster.kill9(old);
    const t0 = Date.now();
    let newLeader = old;
    while (newLeader === old) newLeader = await cluster.leader(15_000);
    const electionMs = Date.now() - t0;
    const ackedAtElection = acked.size;
    await until('writes acknowledged by the new leader', () => acked.size >= ackedAtElection + 20);
    stop = true;
    await Promise.all(writers);
    assert.ok(ackedBeforeKill > 50, `load ran before the kill (${ackedBeforeKill} acked)`);
    assert.ok(acked.size > ackedBeforeKill, 'writes continued after the new leader was elected');
    console.log(`# acked ${acked.size} writes; new leader ${newLeader} after ${electionMs} ms`);

    const check = async (id: string) => {
      const r = await cluster.rpc(id, { op: 'dump' });
      assert.ok(r.ok, `dump from ${id}: ${r.error}`);
      const m = new Map<string, string>(r.entries);
      for (const [k, v] of acked) assert.equal(m.get(k), v, `acknowledged write ${k} missing on ${id}`);
    };
    await check(newLeader);

    // Restart the killed node; then restart all three and check every node.
    await cluster.restart(old);
    await cluster.stopAll();
    for (const id of cluster.ids) await cluster.restart(id);
    const l = await cluster.leader();
    const r = await cluster.rpc(l, { op: 'put', k: 'after-restart', v: '1' });
    assert.ok(r.ok, `write after full restart: ${r.error}`);
    // Followers apply it shortly after the leader; wait until all three have applied it.
    for (const id of cluster.ids) {
      const end = Date.now() + 10_000;
      for (;;) {
        const d = await cluster.rpc(id, { op: 'dump' });
        if (d.ok && d.applied >= r.index) break;
        assert.ok(Date.now() < end, `${id} did not catch up`);
        await new Promise((res) => setTimeout(res, 50));
      }
      await check(id);
    }
  } finally {
    await cluster.stopAll();
    rmSync(dir, { recursive: true, force: true });
  }
});
