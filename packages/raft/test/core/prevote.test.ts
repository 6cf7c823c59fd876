// Pre-vote (thesis §9.6), check-quorum (thesis §6.2) and the leader-lease rule for vote requests
// (thesis §4.2.3): the three mechanisms that keep a partitioned or removed server from disrupting a
// healthy cluster.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { drain, makeLeader, newCore, sent, tickUntilNot } from './helpers.ts';
import { Network } from './network.ts';

describe('pre-vote (thesis §9.6)', () => {
  test('a pre-candidate asks for votes in term+1 without changing its term or vote', () => {
    const core = newCore('a', { terms: [1, 1], term: 1 });
    drain(core);
    tickUntilNot(core, 'follower');
    assert.equal(core.role, 'preCandidate');
    assert.equal(core.term, 1);
    const rd = drain(core);
    assert.equal(rd.hardState, undefined, 'nothing durable changes for a pre-vote');
    assert.deepEqual(rd.messages.map((m) => [m.type, m.to, m.term, m.index, m.logTerm]).sort(), [
      ['preVote', 'b', 2, 2, 1], ['preVote', 'c', 2, 2, 1],
    ]);
  });

  test('a majority of pre-votes starts the real election', () => {
    const core = newCore('a', { terms: [1], term: 1 });
    tickUntilNot(core, 'follower');
    drain(core);
    core.step({ type: 'preVoteResp', from: 'b', to: 'a', term: 2, reject: false });
    assert.equal(core.role, 'candidate');
    assert.equal(core.term, 2);
    const rd = drain(core);
    assert.deepEqual(rd.hardState, { term: 2, vote: 'a', commit: 0 });
    assert.deepEqual(rd.messages.map((m) => [m.type, m.term]), [['vote', 2], ['vote', 2]]);
  });

  test('pre-vote rejected by a majority: back to follower in the same term', () => {
    const core = newCore('a', { terms: [1], term: 1 });
    tickUntilNot(core, 'follower');
    core.step({ type: 'preVoteResp', from: 'b', to: 'a', term: 1, reject: true });
    core.step({ type: 'preVoteResp', from: 'c', to: 'a', term: 1, reject: true });
    assert.equal(core.role, 'follower');
    assert.equal(core.term, 1);
  });

  test('granting a pre-vote changes neither term nor vote, even after voting in this term', () => {
    const core = newCore('b', { terms: [1], term: 3, vote: 'c' });
    drain(core);
    core.step({ type: 'preVote', from: 'a', to: 'b', term: 4, index: 1, logTerm: 1 });
    const rd = drain(core);
    assert.deepEqual(rd.messages.map((m) => [m.type, m.term, m.reject]), [['preVoteResp', 4, false]]);
    assert.equal(rd.hardState, undefined);
    assert.equal(core.term, 3);
    assert.equal(core.status().vote, 'c');
  });

  test('a pre-vote from a less up-to-date candidate is refused (§5.4.1 applies)', () => {
    const core = newCore('b', { terms: [1, 2], term: 2 });
    drain(core);
    core.step({ type: 'preVote', from: 'a', to: 'b', term: 3, index: 5, logTerm: 1 });
    assert.deepEqual(sent(core).map((m) => [m.type, m.reject, m.term]), [['preVoteResp', true, 2]]);
  });

  test('a pre-vote from an older term is refused with our term so the sender can catch up', () => {
    const core = newCore('b', { terms: [1], term: 5 });
    drain(core);
    core.step({ type: 'preVote', from: 'a', to: 'b', term: 3, index: 1, logTerm: 1 });
    assert.deepEqual(sent(core).map((m) => [m.type, m.reject, m.term]), [['preVoteResp', true, 5]]);
  });

  test('a partitioned node does not inflate its term and does not disrupt the leader when it returns', () => {
    const net = new Network(['a', 'b', 'c']);
    net.elect('a');
    const term = net.core('a').term;
    net.isolate('c');
    net.run(200);
    assert.equal(net.core('c').term, term, 'isolated pre-candidate keeps its term');
    assert.ok(net.core('c').stats.preVotesStarted > 5);
    assert.equal(net.core('c').stats.electionsStarted, 0);
    net.heal();
    net.run(30);
    assert.equal(net.core('a').role, 'leader');
    assert.equal(net.core('a').term, term);
    assert.equal(net.core('c').leader, 'a');
  });

  test('without pre-vote the same partition makes the returning node depose the leader', () => {
    // The contrast that motivates §9.6 (check-quorum off so the lease does not mask it).
    const net = new Network(['a', 'b', 'c'], { preVote: false, checkQuorum: false });
    net.elect('a');
    const term = net.core('a').term;
    net.isolate('c');
    net.run(200);
    assert.ok(net.core('c').term > term + 5);
    net.heal();
    net.run(50);
    assert.ok(net.core('a').term > term, 'the old term was abandoned');
    assert.equal(net.leaders().length, 1);
  });
});

describe('check-quorum (thesis §6.2)', () => {
  test('a leader that hears from no quorum for an election timeout steps down', () => {
    const leader = makeLeader('a', { terms: [1] });
    let ticks = 0;
    while (leader.role === 'leader' && ticks < 100) {
      leader.tick();
      drain(leader);
      ticks++;
    }
    assert.equal(leader.role, 'follower');
    assert.ok(ticks <= 10, `stepped down after ${ticks} ticks`);
    assert.equal(leader.leader, '');
    assert.equal(leader.term, 2, 'stepping down does not change the term');
  });

  test('a leader that hears from one follower of two keeps leading', () => {
    const leader = makeLeader('a', { terms: [1] });
    for (let i = 0; i < 50; i++) {
      leader.tick();
      for (const m of sent(leader)) {
        if (m.type === 'heartbeat' && m.to === 'b') leader.step({ type: 'heartbeatResp', from: 'b', to: 'a', term: m.term });
      }
    }
    assert.equal(leader.role, 'leader');
  });

  test('with check-quorum off, a lonely leader keeps leading', () => {
    const leader = makeLeader('a', { terms: [1], checkQuorum: false });
    for (let i = 0; i < 50; i++) leader.tick();
    assert.equal(leader.role, 'leader');
  });

  test('a leader cut off in a minority steps down; the majority elects a new one', () => {
    const net = new Network(['a', 'b', 'c', 'd', 'e']);
    net.elect('a');
    net.partition(['a', 'b'], ['c', 'd', 'e']);
    net.run(60);
    // a stepped down (and, hearing from no leader, keeps pre-campaigning in vain).
    assert.notEqual(net.core('a').role, 'leader');
    assert.equal(net.core('a').leader, '');
    const leaders = net.leaders();
    assert.equal(leaders.length, 1);
    assert.ok(['c', 'd', 'e'].includes(leaders[0]!.id));
  });
});

describe('leader lease for vote requests (thesis §4.2.3)', () => {
  test('a follower that heard from its leader within the election timeout ignores vote requests', () => {
    const core = newCore('b', { terms: [1], term: 2 });
    core.step({ type: 'heartbeat', from: 'a', to: 'b', term: 2, commit: 0 });
    drain(core);
    core.step({ type: 'vote', from: 'c', to: 'b', term: 3, index: 9, logTerm: 2 });
    core.step({ type: 'preVote', from: 'c', to: 'b', term: 3, index: 9, logTerm: 2 });
    assert.deepEqual(sent(core), []);
    assert.equal(core.term, 2);
    assert.equal(core.stats.ignoredInLease, 2);
  });

  test('a vote request marked transfer is answered despite the lease (thesis §3.10)', () => {
    const core = newCore('b', { terms: [1], term: 2 });
    core.step({ type: 'heartbeat', from: 'a', to: 'b', term: 2, commit: 0 });
    drain(core);
    core.step({ type: 'vote', from: 'c', to: 'b', term: 3, index: 9, logTerm: 2, transfer: true });
    assert.deepEqual(sent(core).map((m) => [m.type, m.reject]), [['voteResp', false]]);
    assert.equal(core.term, 3);
  });

  test('once the lease has lapsed, vote requests are answered', () => {
    const core = newCore('b', { terms: [1], term: 2, electionTicks: 10 });
    core.step({ type: 'heartbeat', from: 'a', to: 'b', term: 2, commit: 0 });
    for (let i = 0; i < 10; i++) core.tick(); // b may itself pre-campaign now; that ends the lease too
    drain(core);
    core.step({ type: 'vote', from: 'c', to: 'b', term: 3, index: 9, logTerm: 2 });
    assert.deepEqual(sent(core).map((m) => [m.type, m.reject]), [['voteResp', false]]);
  });

  test('the leader itself ignores higher-term vote requests while it holds its lease', () => {
    const leader = makeLeader('a', { terms: [1] });
    leader.step({ type: 'vote', from: 'c', to: 'a', term: 9, index: 50, logTerm: 8 });
    assert.equal(leader.role, 'leader');
    assert.equal(leader.stats.ignoredInLease, 1);
  });

  test('without check-quorum there is no lease', () => {
    const core = newCore('b', { terms: [1], term: 2, checkQuorum: false });
    core.step({ type: 'heartbeat', from: 'a', to: 'b', term: 2, commit: 0 });
    drain(core);
    core.step({ type: 'vote', from: 'c', to: 'b', term: 3, index: 9, logTerm: 2 });
    assert.deepEqual(sent(core).map((m) => [m.type, m.reject]), [['voteResp', false]]);
  });
});
