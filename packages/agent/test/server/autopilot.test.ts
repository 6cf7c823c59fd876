// Autopilot's pure parts (server/autopilot.ts): health of each member, failure tolerance, and the
// one membership change a round makes.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  assessHealth, failureTolerance, planAutopilot,
  type AutopilotConfig, type HealthContext, type MemberObservation, type ServerHealth,
} from '../../src/server/autopilot.ts';
import type { DiscoveredServer } from '../../src/server/discovery.ts';

const CONFIG: AutopilotConfig = { cleanupDeadServers: true, lastContactThresholdMs: 200, maxTrailingLogs: 250, minQuorum: 0, serverStabilizationTimeMs: 10_000 };
const NOW = 1_000_000;
const ctx = (o: Partial<HealthContext> = {}): HealthContext => ({ now: NOW, leaderTerm: 5, leaderLastIndex: 1000, heartbeatMs: 500, config: CONFIG, ...o });

function member(id: string, o: Partial<MemberObservation> = {}): MemberObservation {
  return {
    id, name: id, address: `${id}:8300`, version: '0.1.0', voter: true, isLeader: false, serfStatus: 'alive', answered: true,
    lastSeenAt: NOW, leaving: false, hasState: true, term: 5, lastContactMs: 100, matchIndex: 1000, ...o,
  };
}
const leader = member('L', { isLeader: true, lastContactMs: 0 });

describe('assessHealth', () => {
  const cases: Array<{ name: string; m: MemberObservation; healthy: boolean }> = [
    { name: 'caught up and in contact', m: member('a'), healthy: true },
    { name: 'contact within heartbeat + threshold (an idle leader heartbeats every 500 ms)', m: member('a', { lastContactMs: 650 }), healthy: true },
    { name: 'contact beyond heartbeat + threshold', m: member('a', { lastContactMs: 701 }), healthy: false },
    { name: 'never heard from a leader', m: member('a', { lastContactMs: -1 }), healthy: false },
    { name: 'trailing by more than max_trailing_logs', m: member('a', { matchIndex: 749 }), healthy: false },
    { name: 'trailing by exactly max_trailing_logs', m: member('a', { matchIndex: 750 }), healthy: true },
    { name: 'another term', m: member('a', { term: 4 }), healthy: false },
    { name: 'did not answer', m: member('a', { answered: false }), healthy: false },
    { name: 'failed in discovery', m: member('a', { serfStatus: 'failed' }), healthy: false },
    { name: 'leaving', m: member('a', { leaving: true }), healthy: false },
    { name: 'the leader itself', m: leader, healthy: true },
  ];
  for (const c of cases) {
    test(c.name, () => {
      assert.equal(assessHealth([c.m], new Map(), ctx()).get(c.m.id)!.healthy, c.healthy);
    });
  }

  test('stableSince carries over while healthy and resets when not', () => {
    const first = assessHealth([member('a')], new Map(), ctx({ now: 10 }));
    assert.equal(first.get('a')!.stableSince, 10);
    const second = assessHealth([member('a')], first, ctx({ now: 20 }));
    assert.equal(second.get('a')!.stableSince, 10);
    const sick = assessHealth([member('a', { answered: false })], second, ctx({ now: 30 }));
    assert.equal(sick.get('a')!.stableSince, undefined);
    assert.equal(assessHealth([member('a')], sick, ctx({ now: 40 })).get('a')!.stableSince, 40);
  });

  test('servers that are not members are not assessed', () => {
    assert.equal(assessHealth([member('x', { voter: undefined })], new Map(), ctx()).size, 0);
  });
});

describe('failureTolerance (Consul: healthy voters minus quorum)', () => {
  const h = (voter: boolean, healthy: boolean) => ({ voter, healthy }) as ServerHealth;
  const cases: Array<[string, ServerHealth[], number]> = [
    ['3 healthy voters', [h(true, true), h(true, true), h(true, true)], 1],
    ['3 voters, one unhealthy', [h(true, true), h(true, true), h(true, false)], 0],
    ['5 healthy voters', Array.from({ length: 5 }, () => h(true, true)), 2],
    ['learners do not count', [h(true, true), h(true, true), h(true, true), h(false, true)], 1],
    ['never negative', [h(true, false), h(true, false), h(true, true)], 0],
  ];
  for (const [name, servers, want] of cases) test(name, () => assert.equal(failureTolerance(servers), want));
});

describe('planAutopilot', () => {
  const disc = (id: string, o: Partial<DiscoveredServer & { answered: boolean; hasState: boolean; term: number }> = {}) => ({
    id, name: id, raftAddr: `${id}:8300`, dc: 'dc1', expect: 0, bootstrap: false, version: '', status: 'alive' as const,
    answered: true, hasState: false, term: 0, ...o,
  });
  const plan = (members: MemberObservation[], candidates: ReturnType<typeof disc>[] = [], c: Partial<HealthContext> = {}, prev = new Map<string, ServerHealth>()) => {
    const context = ctx(c);
    return planAutopilot({ members, candidates, health: assessHealth(members, prev, context), ctx: context });
  };

  test('a healthy cluster needs nothing', () => {
    assert.equal(plan([leader, member('a'), member('b')]), undefined);
  });

  test('a new server of the datacenter joins as a learner', () => {
    assert.deepEqual(plan([leader, member('a')], [disc('n')]), { kind: 'addLearner', id: 'n', address: 'n:8300', reason: 'a new server of this datacenter' });
  });

  test('a new server that did not answer, or holds a later term, is not added', () => {
    assert.equal(plan([leader, member('a')], [disc('n', { answered: false })]), undefined);
    assert.equal(plan([leader, member('a')], [disc('n', { hasState: true, term: 9 })]), undefined);
    assert.equal(plan([leader, member('a')], [disc('n', { hasState: true, term: 3 })])?.kind, 'addLearner');
  });

  test('a learner is promoted only after server_stabilization_time of health', () => {
    const learner = member('n', { voter: false });
    const prev = new Map<string, ServerHealth>([['n', { ...assessHealth([learner], new Map(), ctx()).get('n')!, stableSince: NOW - 9_999 }]]);
    assert.equal(plan([leader, member('a'), learner], [], {}, prev), undefined);
    prev.get('n')!.stableSince = NOW - 10_000;
    assert.deepEqual(plan([leader, member('a'), learner], [], {}, prev)?.kind, 'promote');
    // An unhealthy learner is not promoted however long it has been there.
    assert.equal(plan([leader, member('a'), member('n', { voter: false, matchIndex: 10 })], [], {}, prev), undefined);
  });

  test('a member that left is removed', () => {
    assert.deepEqual(plan([leader, member('a'), member('b', { serfStatus: 'left' })])?.kind, 'remove');
    assert.deepEqual(plan([leader, member('a'), member('b', { leaving: true, answered: false })]), { kind: 'remove', id: 'b', reason: 'the server left the cluster' });
  });

  test('a dead voter is removed after server_stabilization_time when a healthy majority remains', () => {
    const dead = member('c', { answered: false, lastSeenAt: NOW - 10_000 });
    assert.equal(plan([leader, member('b'), dead])?.id, 'c');
    assert.equal(plan([leader, member('b'), member('c', { answered: false, lastSeenAt: NOW - 5000 })]), undefined, 'not before the time');
    assert.equal(plan([leader, member('b'), dead], [], { config: { ...CONFIG, cleanupDeadServers: false } }), undefined, 'not with cleanup off');
  });

  test('dead servers are never removed at the cost of a healthy quorum or min_quorum', () => {
    const dead = (id: string) => member(id, { answered: false, lastSeenAt: NOW - 60_000 });
    // 5 voters, 3 dead: removing one leaves 4 voters with 2 healthy: no healthy majority.
    assert.equal(plan([leader, member('a'), dead('b'), dead('c'), dead('d')]), undefined);
    // 5 voters, 2 dead: removing one leaves 4 voters, 3 healthy: fine.
    assert.equal(plan([leader, member('a'), member('b'), dead('c'), dead('d')])?.kind, 'remove');
    // min_quorum 3 with 3 voters: removing would leave 2.
    assert.equal(plan([leader, member('a'), dead('b')], [], { config: { ...CONFIG, minQuorum: 3 } }), undefined);
    // A dead learner can always go.
    assert.equal(plan([leader, dead('a'), member('l', { voter: false, answered: false, lastSeenAt: NOW - 60_000 })], [], { config: { ...CONFIG, minQuorum: 3 } })?.id, 'l');
  });

  test('the leader never removes itself', () => {
    assert.equal(plan([member('L', { isLeader: true, serfStatus: 'left' }), member('a')]), undefined);
  });
});
