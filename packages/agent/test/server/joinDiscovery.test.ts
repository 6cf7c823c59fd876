// Server discovery over join addresses (server/joinDiscovery.ts) with a fake network and clock:
// seeds, learning servers through other servers, failure by silence, leaving, and retry limits.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { JoinDiscovery } from '../../src/server/joinDiscovery.ts';
import type { StatusResponseMsg } from '../../src/rpc/proto.ts';
import { quietLogger as logger } from './helpers.ts';


interface FakeServer { id: string; name: string; addr: string; dc?: string; expect?: number; up: boolean; leaving?: boolean; knows?: string[] }

function net(servers: FakeServer[]) {
  const byAddr = new Map(servers.map((s) => [s.addr, s]));
  const calls: string[] = [];
  const probe = async (addr: string): Promise<StatusResponseMsg> => {
    calls.push(addr);
    const s = byAddr.get(addr);
    if (!s || !s.up) throw new Error(`connect ${addr} refused`);
    return {
      server: { id: s.id, name: s.name, raftAddress: s.addr, datacenter: s.dc ?? 'dc1', bootstrapExpect: s.expect ?? 3 },
      leaving: s.leaving ?? false,
      knownServers: (s.knows ?? []).map((a) => { const o = byAddr.get(a)!; return { server: { id: o.id, name: o.name, raftAddress: o.addr, datacenter: o.dc ?? 'dc1' }, status: 'alive' }; }),
    };
  };
  return { probe, calls };
}

describe('JoinDiscovery', () => {
  test('one reachable seed is enough: the servers it knows are probed and added', async () => {
    const servers: FakeServer[] = [
      { id: 'self', name: 'self', addr: 's:1', up: true },
      { id: 'a', name: 'a', addr: 'a:1', up: true, knows: ['b:1'] },
      { id: 'b', name: 'b', addr: 'b:1', up: true, knows: ['a:1'], dc: 'dc2' },
    ];
    const { probe } = net(servers);
    const d = new JoinDiscovery({ selfId: 'self', seeds: ['a:1', 's:1'], probe, logger });
    let changes = 0;
    d.on('change', () => changes++);
    await d.runRound(); // a answers and mentions b
    assert.deepEqual(d.servers().map((s) => s.id), ['a']);
    await d.runRound(); // b is probed through the hint
    assert.deepEqual(d.servers().map((s) => `${s.id}/${s.dc}/${s.status}`).sort(), ['a/dc1/alive', 'b/dc2/alive']);
    assert.ok(changes >= 2);
    assert.ok(!d.servers().some((s) => s.id === 'self'), 'its own address among the seeds is not a server');
  });

  test('a server that stops answering is failed after failAfterMs, alive again when it answers', async () => {
    let now = 0;
    const a: FakeServer = { id: 'a', name: 'a', addr: 'a:1', up: true };
    const { probe } = net([a]);
    const d = new JoinDiscovery({ selfId: 'self', seeds: ['a:1'], probe, logger, failAfterMs: 3000, now: () => now });
    await d.runRound();
    a.up = false;
    now = 2000;
    await d.runRound();
    assert.equal(d.servers()[0]!.status, 'alive', 'not yet');
    now = 3500;
    await d.runRound();
    assert.equal(d.servers()[0]!.status, 'failed');
    a.up = true;
    await d.runRound();
    assert.equal(d.servers()[0]!.status, 'alive');
  });

  test('a server that announces it is leaving is left, and stays left once gone', async () => {
    let now = 0;
    const a: FakeServer = { id: 'a', name: 'a', addr: 'a:1', up: true };
    const { probe } = net([a]);
    const d = new JoinDiscovery({ selfId: 'self', seeds: ['a:1'], probe, logger, now: () => now });
    await d.runRound();
    a.leaving = true;
    await d.runRound();
    assert.equal(d.servers()[0]!.status, 'left');
    a.up = false;
    now = 60_000;
    await d.runRound();
    assert.equal(d.servers()[0]!.status, 'left');
  });

  test('a server that introduced itself (observe) is known without being a seed', () => {
    const d = new JoinDiscovery({ selfId: 'self', seeds: [], probe: async () => { throw new Error('unused'); }, logger });
    d.observe({ id: 'c', name: 'c', raftAddr: 'c:1', dc: 'dc1', expect: 3, bootstrap: false, version: '' });
    d.observe({ id: 'self', name: 'self', raftAddr: 's:1', dc: 'dc1', expect: 3, bootstrap: false, version: '' });
    assert.deepEqual(d.servers().map((s) => s.id), ['c']);
  });

  test('seeds that never answer are retried every retry interval, up to retry_max attempts', async () => {
    let now = 0;
    const { probe, calls } = net([]);
    const d = new JoinDiscovery({ selfId: 'self', seeds: ['x:1'], probe, logger, retryIntervalMs: 1000, retryMaxAttempts: 3, now: () => now });
    for (let t = 0; t <= 10_000; t += 250) {
      now = t;
      await d.runRound();
    }
    assert.equal(calls.length, 3);
  });
});
