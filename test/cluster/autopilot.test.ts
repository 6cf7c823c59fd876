// Autopilot's dead-server cleanup with real processes: three servers with cleanup_dead_servers (and
// min_quorum 2, which removing one of three still satisfies); kill -9 of a follower makes gossip
// mark it failed, and once it has been silent for server_stabilization_time the leader removes it
// from the Raft configuration: `trellis operator raft list-peers` no longer shows it, and the two
// remaining servers keep taking writes. (Cleanup off, a dead server stays: membership.test.ts.)
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { runTrellis } from '../support/index.ts';
import { Cluster, waitFor, type ServerProc } from './cluster.ts';

const CONFIG = {
  performance: { raft_multiplier: 1 },
  autopilot: { cleanup_dead_servers: true, min_quorum: 2, server_stabilization_time: '2s' },
};

interface Member { Name: string; Status: number }

describe('autopilot removes a dead server', () => {
  let c: Cluster;
  let failed = true;

  before(async () => {
    c = await Cluster.create(3, { config: CONFIG });
    await c.formed();
  });
  after(async () => {
    if (failed) c.dumpLogs(50);
    await c?.dispose();
  });

  const listPeers = async (s: ServerProc) => {
    const r = await runTrellis(['operator', 'raft', 'list-peers', '-http-addr', `127.0.0.1:${s.ports.http}`]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.trim().split('\n').slice(1).map((l) => l.split(/\s+/)[0]!).sort();
  };

  test('kill -9 of a follower: failed in gossip, then gone from list-peers; the rest keep quorum', { timeout: 90_000 }, async () => {
    const leader = await c.waitLeader();
    assert.deepEqual(await listPeers(leader), ['s1', 's2', 's3']);
    const victim = c.servers.find((s) => s !== leader)!;
    const live = c.servers.filter((s) => s !== victim);
    await victim.kill();

    await waitFor(`${victim.name} failed (4) in the leader's member list`, async () =>
      (await leader.getJson<Member[]>('/v1/agent/members')).find((m) => m.Name === victim.name)?.Status === 4, 30_000);
    const remaining = live.map((s) => s.name).sort();
    await waitFor(`list-peers without ${victim.name}`, async () =>
      JSON.stringify(await listPeers(leader)) === JSON.stringify(remaining), 30_000, 500);
    // Every remaining server has the new configuration, and it commits writes.
    await c.waitVoters(live, 20_000, live);
    const now = await c.waitLeader(20_000, live);
    const put = await now.request('PUT', '/v1/kv/after-cleanup', { body: 'x' });
    assert.equal(put.status, 200, put.text);
    const follower = live.find((s) => s !== now)!;
    assert.deepEqual(await listPeers(follower), remaining, 'a follower lists the same peers');
    failed = false;
  });
});
