// The Lifeguard building blocks and the broadcast queue, against the formulas they implement.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Awareness, BroadcastQueue, GossipError, LAN_DEFAULTS, LamportClock, Suspicion, UserEventBuffer, WAN_DEFAULTS,
  retransmitLimit, suspicionMinTimeoutMs, suspicionTimeoutMs, swimConfig, pushPullIntervalFor,
} from '../../src/gossip/core/index.ts';
import type { Update } from '../../src/gossip/core/index.ts';

describe('Lifeguard §4.2 dynamic suspicion', () => {
  test('minimum timeout is suspicionMult × max(1, log10 N) × probe interval (memberlist suspicionTimeout)', () => {
    const rows: [number, number][] = [[1, 4000], [5, 4000], [10, 4000], [100, 8000], [1000, 12000], [5000, 14795]];
    for (const [n, want] of rows) assert.equal(suspicionMinTimeoutMs(4, n, 1000), want, `N=${n}`);
  });

  test('timeout falls from max to min as log(c+1)/log(k+1) of the way', () => {
    const min = 12_000;
    const max = 72_000;
    assert.equal(suspicionTimeoutMs(0, 2, min, max), max);
    assert.equal(suspicionTimeoutMs(1, 2, min, max), Math.floor(max - (Math.log(2) / Math.log(3)) * (max - min)));
    assert.equal(suspicionTimeoutMs(2, 2, min, max), min);
    assert.equal(suspicionTimeoutMs(5, 2, min, max), min, 'never below min');
    assert.equal(suspicionTimeoutMs(0, 0, min, max), min, 'k = 0 means no confirmations are expected: min at once');
  });

  test('confirmations count once per member and not from the first accuser', () => {
    const s = new Suspicion('a', 2, 1000, 6000, 100);
    assert.equal(s.deadlineMs(), 6100);
    assert.equal(s.confirm('a'), false, 'our own suspicion gossiped back is no confirmation');
    assert.equal(s.confirm('b'), true);
    assert.equal(s.confirm('b'), false, 'duplicate');
    assert.ok(s.deadlineMs() < 6100 && s.deadlineMs() > 1100);
    assert.equal(s.confirm('c'), true);
    assert.equal(s.deadlineMs(), 1100);
    assert.equal(s.confirm('d'), false, 'already at the minimum: nothing new to gossip');
  });
});

describe('Lifeguard §4.1 local health multiplier', () => {
  test('score is clamped to 0 .. max-1 and scales timeouts by score + 1', () => {
    const a = new Awareness(8);
    assert.equal(a.applyDelta(-3), 0);
    assert.equal(a.scale(500), 500);
    assert.equal(a.applyDelta(3), 3);
    assert.equal(a.scale(500), 2000);
    assert.equal(a.applyDelta(100), 7);
    assert.equal(a.scale(1000), 8000);
  });
});

describe('transmit-limited broadcast queue', () => {
  const alive = (name: string, inc = 1): Update => ({ type: 'alive', node: { name, addr: '', port: 1, peerId: '', tags: {} }, incarnation: inc });

  test('retransmit limit is mult × ceil(log10(N + 1)); under 10 members, enough for every other member (up to 2 × mult)', () => {
    assert.deepEqual([1, 3, 5, 8, 9, 10, 99, 100, 1000, 5000].map((n) => retransmitLimit(4, n)), [4, 4, 4, 7, 8, 8, 8, 12, 16, 16]);
    assert.deepEqual([8, 9].map((n) => retransmitLimit(1, n)), [2, 2]);
  });

  test('a broadcast is sent exactly limit times, then leaves the queue', () => {
    const q = new BroadcastQueue(100);
    q.push(alive('a'), 'a', 20);
    let sent = 0;
    for (let i = 0; i < 20; i++) sent += q.take(2, 1000, 3, 4, i % 2 ? 'b' : 'c').length;
    assert.equal(sent, retransmitLimit(4, 3));
    assert.equal(q.length, 0);
  });

  test('a broadcast is not sent again to a member that had it (or sent it) while others have not', () => {
    const q = new BroadcastQueue(100);
    q.push(alive('x'), 'x', 20, 'm1');
    // 6 members: m1 (the sender) and m2..m5 besides us.
    assert.equal(q.take(2, 1000, 6, 4, 'm1').length, 0, 'not back to its sender');
    assert.equal(q.take(2, 1000, 6, 4, 'm2').length, 1);
    assert.equal(q.take(2, 1000, 6, 4, 'm2').length, 0, 'not twice to m2');
    assert.equal(q.take(2, 1000, 6, 4, 'm3').length, 1);
    assert.equal(q.take(2, 1000, 6, 4, 'm4').length, 1);
    // m5 has not had it, so m2..m4 still wait; once m5 has, repeats are allowed up to the limit.
    assert.equal(q.take(2, 1000, 6, 4, 'm3').length, 0);
    assert.equal(q.take(2, 1000, 6, 4, 'm5').length, 1);
    assert.equal(q.length, 1, 'four transmissions of the five a 6-member pool allows');
    assert.equal(q.take(2, 1000, 6, 4, 'm2').length, 1, 'a repeat, now that everyone has had it');
    assert.equal(q.length, 0);
    q.push(alive('y'), 'y', 20);
    for (const to of ['m1', 'm2', 'm3', 'm4', 'm5']) assert.equal(q.take(2, 1000, 6, 4, to).length, 1, to);
    assert.equal(q.take(2, 1000, 6, 4, 'm1').length, 0, 'gone after the limit even though repeats were allowed');
  });

  test('a newer broadcast about the same member replaces the queued one; user events never do', () => {
    const q = new BroadcastQueue(100);
    q.push(alive('a', 1), 'a', 20);
    q.push(alive('a', 2), 'a', 20);
    q.push({ type: 'userEvent', ltime: 1, name: 'x', payload: new Uint8Array() }, undefined, 10);
    q.push({ type: 'userEvent', ltime: 2, name: 'x', payload: new Uint8Array() }, undefined, 10);
    const got = q.take(2, 1000, 3, 4, 'b');
    assert.equal(got.length, 3);
    assert.deepEqual(got.filter((u) => u.type === 'alive').map((u) => u.type === 'alive' && u.incarnation), [2]);
  });

  test('fewest transmissions first, newest first among equals, within the byte budget', () => {
    const q = new BroadcastQueue(100);
    q.push(alive('old'), 'old', 100);
    q.take(2, 1000, 3, 4, 'b'); // old: 1 transmit
    q.push(alive('mid'), 'mid', 100);
    q.push(alive('new'), 'new', 100);
    const got = q.take(2, 210, 3, 4, 'b').map((u) => u.type === 'alive' && u.node.name);
    assert.deepEqual(got, ['new', 'mid']);
    // Now all three have been sent once: the newest goes first again.
    assert.deepEqual(q.take(2, 110, 3, 4, 'c').map((u) => u.type === 'alive' && u.node.name), ['new']);
  });

  test('depth limit prunes the oldest broadcasts', () => {
    const q = new BroadcastQueue(16);
    for (let i = 0; i < 20; i++) q.push(alive(`m${i}`), `m${i}`, 10);
    assert.equal(q.length, 16);
    assert.equal(q.pruned, 4);
    const names = q.take(2, 10_000, 3, 4, 'b').map((u) => u.type === 'alive' && u.node.name);
    assert.ok(!names.includes('m0') && names.includes('m19'));
  });
});

describe('user event buffer (serf)', () => {
  test('Lamport clock witnesses past values', () => {
    const c = new LamportClock();
    assert.equal(c.increment(), 1);
    c.witness(10);
    assert.equal(c.time(), 11);
    c.witness(3);
    assert.equal(c.time(), 11);
  });

  test('each event is new once; old events and events before the join are refused', () => {
    const b = new UserEventBuffer(4);
    const ev = (ltime: number, name = 'e') => ({ type: 'userEvent' as const, ltime, name, payload: new Uint8Array([ltime]) });
    assert.equal(b.admit(ev(1)), 'new');
    assert.equal(b.admit(ev(1)), 'duplicate');
    assert.equal(b.admit(ev(1, 'other')), 'new', 'same time, different event');
    assert.equal(b.admit(ev(20)), 'new');
    assert.equal(b.admit(ev(2)), 'too-old', 'older than the buffer window');
    b.minLTime = 30;
    assert.equal(b.admit(ev(29)), 'before-join');
  });
});

describe('config', () => {
  test('defaults are Consul LAN and WAN', () => {
    assert.equal(LAN_DEFAULTS.probeIntervalMs, 1000);
    assert.equal(LAN_DEFAULTS.probeTimeoutMs, 500);
    assert.equal(LAN_DEFAULTS.suspicionMult, 4);
    assert.equal(LAN_DEFAULTS.suspicionMaxTimeoutMult, 6);
    assert.equal(LAN_DEFAULTS.indirectChecks, 3);
    assert.equal(LAN_DEFAULTS.gossipIntervalMs, 200);
    assert.equal(LAN_DEFAULTS.gossipNodes, 3);
    assert.equal(LAN_DEFAULTS.pushPullIntervalMs, 30_000);
    assert.equal(LAN_DEFAULTS.retransmitMult, 4);
    assert.equal(LAN_DEFAULTS.awarenessMaxMultiplier, 8);
    assert.equal(LAN_DEFAULTS.reconnectTimeoutMs, 72 * 3600_000);
    assert.equal(WAN_DEFAULTS.probeIntervalMs, 5000);
    assert.equal(WAN_DEFAULTS.suspicionMult, 6);
  });

  const bad: [string, Record<string, unknown>, RegExp][] = [
    ['negative interval', { probeIntervalMs: -1 }, /probeIntervalMs = -1 is invalid: must be an integer ≥ 1/],
    ['fractional', { gossipNodes: 1.5 }, /gossipNodes = 1.5 is invalid/],
    ['string', { retransmitMult: '4' }, /retransmitMult = "4" is invalid/],
    ['timeout above interval', { probeIntervalMs: 100, probeTimeoutMs: 200 }, /probeTimeoutMs \(200\) must not exceed probeIntervalMs \(100\)/],
    ['event limit above serf maximum', { userEventSizeLimitBytes: 10_000 }, /from 1 to 9216/],
    ['lifeguard not boolean', { lifeguard: 1 }, /lifeguard = 1 is invalid/],
  ];
  for (const [name, over, re] of bad) {
    test(`refuses ${name}`, () => {
      assert.throws(() => swimConfig(over as never), (e: unknown) => e instanceof GossipError && e.code === 'ERR_GOSSIP_CONFIG' && re.test(e.message));
    });
  }

  test('push-pull slows down logarithmically above 32 members (memberlist pushPullScale)', () => {
    assert.deepEqual([1, 32, 33, 64, 65, 1000, 5000].map((n) => pushPullIntervalFor(30_000, n) / 30_000), [1, 1, 2, 2, 3, 6, 9]);
  });
});
