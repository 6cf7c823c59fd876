import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { MemoryNetwork, type MemoryTransport } from '../../src/transport/memory.ts';
import type { Message, NodeId } from '../../src/core/types.ts';
import { mulberry32 } from '../../../../test/support/random.ts';

interface Node { t: MemoryTransport; inbox: Message[]; unreachable: NodeId[] }

async function cluster(net: MemoryNetwork, ids: NodeId[]): Promise<Record<NodeId, Node>> {
  const nodes: Record<NodeId, Node> = {};
  const addresses: Record<NodeId, string> = {};
  for (const id of ids) {
    const t = net.transport(id);
    addresses[id] = t.localAddress();
    nodes[id] = { t, inbox: [], unreachable: [] };
  }
  for (const id of ids) {
    const n = nodes[id]!;
    n.t.setPeers(addresses);
    await n.t.start((m) => n.inbox.push(m), (p) => n.unreachable.push(p));
  }
  return nodes;
}

const hb = (from: NodeId, to: NodeId, term = 1, context?: string): Message =>
  ({ type: 'heartbeat', from, to, term, commit: 0, ...(context !== undefined ? { context } : {}) });

/** Let zero-latency deliveries (scheduled with setImmediate) run: a setImmediate queued after them
 *  runs after them, whatever phase the event loop was in. */
const settle = async () => { await sleep(5); await new Promise<void>((r) => setImmediate(r)); };

/** Polls `cond` every 5 ms until it holds; fails with `what` after 5 s. */
async function until(what: string, cond: () => boolean): Promise<void> {
  for (let i = 0; i < 1000 && !cond(); i++) await sleep(5);
  assert.ok(cond(), `timed out waiting for ${what}`);
}

describe('MemoryTransport delivery', () => {
  test('delivers every field asynchronously, never inside send()', async () => {
    const net = new MemoryNetwork();
    const { a, b } = await cluster(net, ['a', 'b']);
    const msg: Message = {
      type: 'app', from: 'a', to: 'b', term: 3, logTerm: 2, index: 7, commit: 6,
      entries: [{ term: 3, index: 8, kind: 'normal', data: new Uint8Array([1, 2, 3]) }],
    };
    a!.t.send([msg]);
    assert.equal(b!.inbox.length, 0, 'delivery must not happen synchronously inside send()');
    await settle();
    assert.deepEqual(b!.inbox, [msg]);
    net.close();
  });

  test('receiver gets a copy: the sender mutating its arrays after send() changes nothing', async () => {
    const net = new MemoryNetwork();
    const { a, b } = await cluster(net, ['a', 'b']);
    const data = new Uint8Array([9, 9, 9]);
    const entries = [{ term: 1, index: 1, kind: 'normal' as const, data }];
    const voters = ['a', 'b'];
    a!.t.send([
      { type: 'app', from: 'a', to: 'b', term: 1, index: 0, logTerm: 0, commit: 0, entries },
      { type: 'snap', from: 'a', to: 'b', term: 1, snapshot: { meta: { index: 5, term: 1, conf: { voters, learners: [] } }, data } },
    ]);
    data[0] = 0;
    entries.push({ term: 1, index: 2, kind: 'normal', data });
    voters.push('z');
    await settle();
    assert.deepEqual([...b!.inbox[0]!.entries![0]!.data], [9, 9, 9]);
    assert.equal(b!.inbox[0]!.entries!.length, 1);
    assert.deepEqual(b!.inbox[1]!.snapshot!.meta.conf.voters, ['a', 'b']);
    assert.deepEqual([...b!.inbox[1]!.snapshot!.data!], [9, 9, 9]);
    net.close();
  });

  test('messages to ids missing from setPeers are dropped and counted', async () => {
    const net = new MemoryNetwork();
    const { a, b } = await cluster(net, ['a', 'b']);
    a!.t.setPeers({ a: 'a' }); // b forgotten
    a!.t.send([hb('a', 'b')]);
    await settle();
    assert.equal(b!.inbox.length, 0);
    assert.equal(net.stats().droppedUnknownPeer, 1);
    net.close();
  });

  test('keeps send order on a link even with random latency', async () => {
    const net = new MemoryNetwork({ random: mulberry32(7) });
    net.setDelay(0, 20);
    const { a, b } = await cluster(net, ['a', 'b']);
    for (let i = 0; i < 200; i++) a!.t.send([hb('a', 'b', 1, String(i))]);
    await until('all 200 delivered', () => b!.inbox.length === 200);
    assert.deepEqual(b!.inbox.map((m) => m.context), Array.from({ length: 200 }, (_, i) => String(i)));
    net.close();
  });

  test('latency: nothing arrives before minMs', async () => {
    const net = new MemoryNetwork();
    net.setDelay(40, 50);
    const { a, b } = await cluster(net, ['a', 'b']);
    const sentAt = performance.now();
    a!.t.send([hb('a', 'b')]);
    await until('the delivery', () => b!.inbox.length === 1);
    // Polling only notices an arrival late, never early: an arrival before 40 ms fails here.
    assert.ok(performance.now() - sentAt >= 39, `arrived ${(performance.now() - sentAt).toFixed(1)} ms after the send`);
    net.close();
  });

  test('a stopped node receives nothing; the sender reports it unreachable once per episode', async () => {
    const net = new MemoryNetwork();
    const { a, b } = await cluster(net, ['a', 'b']);
    await b!.t.stop();
    a!.t.send([hb('a', 'b')]);
    a!.t.send([hb('a', 'b')]);
    await settle();
    assert.deepEqual(a!.unreachable, ['b'], 'one report for one failure episode');
    assert.equal(b!.inbox.length, 0);

    // Restart b as a fresh transport with the same id: traffic resumes, and a new failure is reported again.
    const b2 = net.transport('b');
    const inbox2: Message[] = [];
    b2.setPeers({ a: 'a', b: 'b' });
    await b2.start((m) => inbox2.push(m));
    a!.t.send([hb('a', 'b', 2)]);
    await settle();
    assert.equal(inbox2.length, 1);
    await b2.stop();
    a!.t.send([hb('a', 'b', 3)]);
    await settle();
    assert.deepEqual(a!.unreachable, ['b', 'b']);
    net.close();
  });

  test('two running transports cannot hold one address; start() twice is refused', async () => {
    const net = new MemoryNetwork();
    const { a } = await cluster(net, ['a']);
    await assert.rejects(net.transport('a').start(() => {}), { code: 'ERR_ADDRESS_IN_USE' });
    await assert.rejects(a!.t.start(() => {}), { code: 'ERR_TRANSPORT_STARTED' });
    net.close();
  });

  test('a message in flight to a node that stops is not delivered to its handler', async () => {
    const net = new MemoryNetwork();
    net.setDelay(20, 20);
    const { a, b } = await cluster(net, ['a', 'b']);
    a!.t.send([hb('a', 'b')]);
    await b!.t.stop();
    await until('the in-flight message is dropped', () => net.stats().droppedDown === 1);
    assert.equal(b!.inbox.length, 0);
    net.close();
  });

  test('rejects invalid fault settings with ERR_TRANSPORT_CONFIG', () => {
    const net = new MemoryNetwork();
    assert.throws(() => net.setDropRate(1.5), { code: 'ERR_TRANSPORT_CONFIG' });
    assert.throws(() => net.setDropRate(Number.NaN), { code: 'ERR_TRANSPORT_CONFIG' });
    assert.throws(() => net.setDelay(10, 5), { code: 'ERR_TRANSPORT_CONFIG', message: /maxMs=5/ });
    assert.throws(() => net.setDelay(-1, 5), { code: 'ERR_TRANSPORT_CONFIG' });
    assert.throws(() => net.transport(''), { code: 'ERR_TRANSPORT_CONFIG' });
  });
});

describe('MemoryNetwork faults', () => {
  test('partition is symmetric and leaves each side connected; heal restores everything', async () => {
    const net = new MemoryNetwork();
    const n = await cluster(net, ['a', 'b', 'c']);
    net.partition(['a', 'b'], ['c']);
    const all = ['a', 'b', 'c'];
    for (const from of all) n[from]!.t.send(all.filter((to) => to !== from).map((to) => hb(from, to)));
    await settle();
    const got = (id: NodeId) => n[id]!.inbox.map((m) => m.from).sort();
    assert.deepEqual(got('a'), ['b']);
    assert.deepEqual(got('b'), ['a']);
    assert.deepEqual(got('c'), []);
    assert.equal(net.stats().droppedPartition, 4);
    assert.deepEqual(n.a!.unreachable, [], 'a partition is silent, not "peer down"');

    net.heal();
    for (const from of all) n[from]!.t.send(all.filter((to) => to !== from).map((to) => hb(from, to, 2)));
    await settle();
    assert.deepEqual(n.c!.inbox.map((m) => m.from).sort(), ['a', 'b']);
    assert.equal(n.a!.inbox.length, 3);
    net.close();
  });

  test('isolate cuts one node from all others', async () => {
    const net = new MemoryNetwork();
    const n = await cluster(net, ['a', 'b', 'c']);
    net.isolate('b');
    n.a!.t.send([hb('a', 'b'), hb('a', 'c')]);
    n.b!.t.send([hb('b', 'a'), hb('b', 'c')]);
    await settle();
    assert.equal(n.b!.inbox.length, 0);
    assert.deepEqual(n.c!.inbox.map((m) => m.from), ['a']);
    assert.equal(n.a!.inbox.length, 0);
    net.close();
  });

  test('cut is one-way', async () => {
    const net = new MemoryNetwork();
    const { a, b } = await cluster(net, ['a', 'b']);
    net.cut('a', 'b');
    a!.t.send([hb('a', 'b')]);
    b!.t.send([hb('b', 'a')]);
    await settle();
    assert.equal(b!.inbox.length, 0, 'a→b is cut');
    assert.equal(a!.inbox.length, 1, 'b→a still flows');
    net.close();
  });

  test('a partition that starts while a message is in flight loses it', async () => {
    const net = new MemoryNetwork();
    net.setDelay(20, 20);
    const { a, b } = await cluster(net, ['a', 'b']);
    a!.t.send([hb('a', 'b')]);
    net.partition(['a'], ['b']);
    await until('the in-flight message is dropped', () => net.stats().droppedPartition === 1);
    assert.equal(b!.inbox.length, 0);
    net.close();
  });

  test('drop rate loses about that fraction, reproducibly for a seed', async () => {
    const run = async (seed: number, p: number) => {
      const net = new MemoryNetwork({ random: mulberry32(seed) });
      net.setDropRate(p);
      const { a, b } = await cluster(net, ['a', 'b']);
      for (let i = 0; i < 2000; i++) a!.t.send([hb('a', 'b', 1, String(i))]);
      await settle();
      net.close();
      return b!.inbox.map((m) => m.context);
    };
    const r1 = await run(42, 0.3);
    const r2 = await run(42, 0.3);
    assert.deepEqual(r1, r2, 'same seed, same losses');
    // Binomial(2000, 0.7): mean 1400, sd ≈ 20.5; ±6 sd.
    assert.ok(r1.length > 1277 && r1.length < 1523, `delivered ${r1.length} of 2000 at p=0.3`);
    assert.equal((await run(1, 1)).length, 0);
    assert.equal((await run(1, 0)).length, 2000);
  });

  test('a filter drops only what it rejects', async () => {
    const net = new MemoryNetwork();
    const { a, b } = await cluster(net, ['a', 'b']);
    net.setFilter((m) => m.type !== 'appResp');
    b!.t.send([{ type: 'appResp', from: 'b', to: 'a', term: 1, index: 1 }, { type: 'heartbeatResp', from: 'b', to: 'a', term: 1 }]);
    await settle();
    assert.deepEqual(a!.inbox.map((m) => m.type), ['heartbeatResp']);
    assert.equal(net.stats().droppedFilter, 1);
    net.close();
  });
});
