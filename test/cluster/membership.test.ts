// Membership of a running cluster:
//   - two servers started later join as non-voters and are promoted after server_stabilization_time;
//   - one leaves gracefully (PUT /v1/agent/leave): the configuration shrinks;
//   - one is killed: with cleanup_dead_servers off it stays, and `remove-peer` of it (through a
//     follower) removes it; remove-peer of an unknown address is a clear error;
//   - transfer-leader moves leadership to the server named; list-peers shows the configuration.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { runTrellis } from '../support/index.ts';
import { Cluster, waitFor, type ServerProc } from './cluster.ts';

interface RaftServerRow { ID: string; Node: string; Address: string; Leader: boolean; Voter: boolean }
type RaftConf = { Servers: RaftServerRow[]; Index: number };

const CONFIG = {
  performance: { raft_multiplier: 1 },
  autopilot: { server_stabilization_time: '3s', cleanup_dead_servers: false },
  // Small Raft snapshots, so servers that join later catch up from a snapshot, not the log.
  raft_snapshot_threshold: 64,
  raft_trailing_logs: 16,
};

describe('membership changes of a running cluster', () => {
  let c: Cluster;
  let s4: ServerProc;
  let s5: ServerProc;
  let failed = true;
  const conf = (s: ServerProc) => s.getJson<RaftConf>('/v1/operator/raft/configuration');
  const row = async (s: ServerProc, name: string) => (await conf(s)).Servers.find((x) => x.Node === name);

  before(async () => {
    c = await Cluster.create(3, { config: CONFIG });
    await c.formed();
  });
  after(async () => {
    if (failed) c.dumpLogs(50);
    await c?.dispose();
  });

  test('servers that join later are non-voters first, catch up from a snapshot, voters after stabilization', { timeout: 60_000 }, async () => {
    const first = await c.waitLeader();
    await Promise.all(Array.from({ length: 8 }, async (_, w) => {
      for (let i = 0; i < 20; i++) assert.equal((await first.request('PUT', `/v1/kv/history/${w}-${i}`, { body: 'x' })).status, 200);
    }));
    s4 = await c.add({ name: 's4', config: CONFIG });
    s5 = await c.add({ name: 's5', config: CONFIG });
    s4.start();
    s5.start();
    const leader = await c.waitLeader(20_000, c.servers.slice(0, 3));
    const sawLearner = new Set<string>();
    await waitFor('s4 and s5 voters', async () => {
      const rows = (await conf(leader)).Servers;
      for (const r of rows) if (!r.Voter) sawLearner.add(r.Node);
      const v = rows.filter((r) => (r.Node === 's4' || r.Node === 's5') && r.Voter);
      return v.length === 2;
    }, 40_000, 100);
    assert.deepEqual([...sawLearner].sort(), ['s4', 's5'], 'both were seen as non-voters before promotion');
    await c.waitVoters(c.servers);
    // The new servers serve consistent reads of what was written through the others.
    assert.equal((await leader.request('PUT', '/v1/kv/members', { body: 'five' })).status, 200);
    assert.equal((await s5.request('GET', '/v1/kv/members?raw&consistent')).text, 'five');
    const history = await s4.getJson<string[]>('/v1/kv/history/?keys&consistent');
    assert.equal(history.length, 160);
    assert.match(s4.log(), /raft snapshot received/, 's4 caught up from a Raft snapshot');
  });

  test('a server that leaves gracefully is removed from the configuration', { timeout: 40_000 }, async () => {
    const r = await s5.request('PUT', '/v1/agent/leave');
    assert.equal(r.status, 200, r.text);
    const others = c.servers.filter((s) => s !== s5);
    await c.waitVoters(others, 20_000, others);
    await waitFor('s5 exits after leaving', () => !s5.running, 20_000);
  });

  test('a dead server stays (cleanup off) until remove-peer removes it; unknown peers are a clear error', { timeout: 60_000 }, async () => {
    await s4.kill();
    const live = c.servers.slice(0, 3);
    const leader = await c.waitLeader(20_000, live);
    const follower = live.find((s) => s !== leader)!;
    assert.equal((await row(follower, 's4'))?.Voter, true, 's4 is still a voter while dead');

    const unknown = await follower.request('DELETE', '/v1/operator/raft/peer?address=127.0.0.1:1');
    assert.equal(unknown.status, 500);
    assert.equal(unknown.text, 'address "127.0.0.1:1" was not found in the Raft configuration');
    const none = await follower.request('DELETE', '/v1/operator/raft/peer');
    assert.equal(none.status, 400);

    const cli = await runTrellis(['operator', 'raft', 'remove-peer', '-http-addr', `127.0.0.1:${follower.ports.http}`, '-address', s4.rpcAddr]);
    assert.equal(cli.code, 0, `remove-peer: ${cli.stderr}`);
    assert.equal(cli.stdout, `Removed peer with address "${s4.rpcAddr}"\n`);
    await c.waitVoters(live, 20_000, live);
    assert.equal((await leader.request('PUT', '/v1/kv/after-remove', { body: 'x' })).status, 200);
  });

  test('transfer-leader hands leadership to the named server; list-peers shows the configuration', { timeout: 40_000 }, async () => {
    const live = c.servers.slice(0, 3);
    const leader = await c.waitLeader(20_000, live);
    const target = live.find((s) => s !== leader)!;
    const targetId = (await row(leader, target.name))!.ID;
    const r = await leader.request('POST', `/v1/operator/raft/transfer-leader?id=${targetId}`);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json(), { Success: true });
    const now = await c.waitLeader(20_000, live);
    assert.equal(now.name, target.name);

    const peers = await runTrellis(['operator', 'raft', 'list-peers', '-http-addr', `127.0.0.1:${leader.ports.http}`]);
    assert.equal(peers.code, 0, peers.stderr);
    const lines = peers.stdout.trim().split('\n');
    assert.equal(lines.length, 4, peers.stdout);
    assert.match(lines.find((l) => l.startsWith(target.name))!, /leader\s+true/);
    failed = false;
  });
});
