// Misconfigurations that must not produce a second cluster or pull a foreign server in:
//   - a server of another datacenter that joins a running cluster never becomes a member, and does
//     not bootstrap a cluster of its own with servers it cannot count;
//   - servers whose -bootstrap-expect values differ log the conflict clearly and none bootstraps.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster, FAST_RAFT, sleep, waitFor } from './cluster.ts';

describe('bad input', () => {
  const clusters: Cluster[] = [];
  let failed = false;
  after(async () => {
    for (const c of clusters) {
      if (failed) c.dumpLogs(40);
      await c.dispose();
    }
  });

  test('a server of another datacenter does not join this Raft group', { timeout: 60_000 }, async () => {
    try {
      const c = await Cluster.create(3, { config: FAST_RAFT });
      clusters.push(c);
      await c.formed();
      const foreign = await c.add({ name: 'other-dc', datacenter: 'dc2', expect: 3, config: FAST_RAFT });
      foreign.start();
      // It reaches the dc1 servers' LAN pool, which refuses a member of another datacenter ...
      await waitFor('dc1 servers refuse the dc2 server', () => c.servers.slice(0, 3).some((s) => /push-pull from other-dc refused: member other-dc is in datacenter \\?"dc2\\?", this LAN pool is \\?"dc1\\?"/.test(s.log())), 20_000);
      // ... autopilot has had several rounds to add it, and does not.
      await sleep(4000);
      const dc1 = c.servers.slice(0, 3);
      await c.waitVoters(dc1, 5000, dc1);
      const conf = await dc1[0]!.getJson<{ Servers: Array<{ Node: string }> }>('/v1/operator/raft/configuration');
      assert.ok(!conf.Servers.some((x) => x.Node === 'other-dc'), 'the dc2 server is not in the configuration');
      const lead = await foreign.request('GET', '/v1/status/leader');
      assert.equal(lead.json(), '', 'the dc2 server has no leader');
      assert.match(foreign.log(), /waiting for 3 servers with -bootstrap-expect 3 in datacenter dc2; 1 known/);
    } catch (err) {
      failed = true;
      throw err;
    }
  });

  test('a -bootstrap-expect mismatch is logged clearly and nothing bootstraps', { timeout: 60_000 }, async () => {
    try {
      const c = await Cluster.create(3, { config: FAST_RAFT });
      clusters.push(c);
      c.servers[2]!.spec.expect = 2;
      for (const s of c.servers) s.start();
      await waitFor('the conflict is logged by every server', () => c.servers.every((s) => /conflicting -bootstrap-expect values/.test(s.log())), 30_000);
      // Proves a negative: several election timeouts pass and no server bootstraps or elects.
      await sleep(3000);
      for (const s of c.servers) {
        assert.equal((await s.request('GET', '/v1/status/leader')).json(), '', `${s.name} has no leader`);
        assert.doesNotMatch(s.log(), /bootstrapping a new cluster/);
      }
      assert.match(c.servers[0]!.log(), /this server expects 3, s3 expects 2; all servers must expect the same number/);
      // A write waits rpc_hold_timeout for a leader that never comes, then fails with Consul's text.
      const w = await c.servers[0]!.request('PUT', '/v1/kv/x', { body: 'y', timeoutMs: 20_000 });
      assert.equal(w.status, 500);
      assert.equal(w.text, 'No cluster leader');
      assert.ok(w.elapsedMs >= 6500, `the write waited rpc_hold_timeout (7 s) first, not ${Math.round(w.elapsedMs)} ms`);
    } catch (err) {
      failed = true;
      throw err;
    }
  });
});
