// The nemesis's gossip figures against a fake cluster: agents are a local HTTP server answering
// /v1/agent/members from a script, the network a no-op, so the bookkeeping is tested without
// namespaces or agents.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Rng } from '../../packages/raft/src/sim/rng.ts';
import type { ChaosCluster } from './cluster.ts';
import { Nemesis } from './nemesis.ts';

test('loss: a member already failed when the loss began (an earlier fault\'s) is not a false declaration; one declared during it is', async () => {
  let lossOn = false;
  let lossSince = 0;
  // One HTTP server per agent, answering its member list.
  const servers = ['s1', 's2', 's3'].map((name) => createServer((_req, res) => {
    const members = [
      { Name: 's1', Status: 1 },
      // Failed all along: restarted after a kill, not yet reconnected.
      { Name: 's2', Status: 4 },
      // Declared failed by s1 once the loss has lasted 1.5 s.
      { Name: 's3', Status: name === 's1' && lossOn && performance.now() - lossSince > 1500 ? 4 : 1 },
    ];
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(members));
  }));
  for (const srv of servers) await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const agent = (name: string, i: number): unknown => ({
    name, role: 'server', running: true, paused: false, url: `http://127.0.0.1:${(servers[i]!.address() as AddressInfo).port}`,
  });
  const agents = ['s1', 's2', 's3'].map(agent);
  const cluster = {
    agents, servers: agents, clients: [],
    net: { loss: async (pct: number) => { lossOn = pct > 0; lossSince = performance.now(); }, heal: async () => { lossOn = false; } },
    leader: async () => undefined,
    voters: async () => undefined,
    leaderViews: async (ss: { name: string }[]) => ss.map((x) => [x.name, 's1']),
    aliveCounts: async () => agents.map(() => agents.length),
  } as unknown as ChaosCluster;
  const t0 = performance.now();
  const nemesis = new Nemesis(cluster, {
    faults: ['loss'], durationMs: 4500, rng: new Rng(1), t0, log: () => {}, stopped: () => false,
    faultMs: [3500, 3500], quietMs: [100, 100],
  });
  try {
    await nemesis.run();
    await nemesis.settle();
    const ev = nemesis.events.find((e) => e.fault === 'loss');
    assert.ok(ev, 'a loss window ran');
    assert.deepEqual(ev.falseFailures, ['s3 (seen by s1)']);
    assert.match(ev.detail, /already failed when the loss began .*s2 \(seen by s1\)/);
  } finally {
    for (const srv of servers) srv.close();
  }
});
