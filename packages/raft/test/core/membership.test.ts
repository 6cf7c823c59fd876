// Single-server membership changes (Raft thesis §4.1–§4.3): each change type, "takes effect when
// appended", reverting when the entry is truncated away, learners, a leader removing itself, and
// the changes the leader must refuse.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfChangeInProgressError, InvalidConfChangeError, LeaderNotReadyError, NotLeaderError } from '../../src/errors.ts';
import { encodeConfChange } from '../../src/core/types.ts';
import type { ConfChange, Entry } from '../../src/core/types.ts';
import type { RaftCore } from '../../src/core/raft.ts';
import { drain, enc, makeLeader, newCore, sent, tickUntilNot } from './helpers.ts';
import { Network } from './network.ts';

/** A leader of term 2 over a, b, c whose no-op (index 2) has committed. */
function readyLeader(voters = ['a', 'b', 'c'], learners: string[] = []): RaftCore {
  const leader = makeLeader('a', { terms: [1], voters, learners });
  for (const v of voters.filter((x) => x !== 'a')) leader.step({ type: 'appResp', from: v, to: 'a', term: 2, index: 2 });
  for (const l of learners) leader.step({ type: 'appResp', from: l, to: 'a', term: 2, index: 2 });
  drain(leader);
  assert.equal(leader.status().commit, 2);
  return leader;
}

function confEntry(index: number, term: number, cc: ConfChange): Entry {
  return { index, term, kind: 'conf', data: encodeConfChange(cc) };
}

describe('membership changes take effect when appended (thesis §4.1)', () => {
  test('addVoter: the leader uses the new configuration at once, before the entry commits', () => {
    const leader = readyLeader();
    const r = leader.proposeConfChange({ type: 'addVoter', node: 'd', address: '10.0.0.4:8300' });
    assert.equal(r.index, 3);
    const s = leader.status();
    assert.equal(s.commit, 2);
    assert.deepEqual(s.conf, { voters: ['a', 'b', 'c', 'd'], learners: [] });
    assert.ok(s.progress!.some((p) => p.id === 'd'));
    // The entry is sent to d too.
    assert.ok(sent(leader).some((m) => m.to === 'd' && m.type === 'app'));
    // With 4 voters, a and b are no longer a majority: b's ack alone does not commit index 3.
    leader.step({ type: 'appResp', from: 'b', to: 'a', term: 2, index: 3 });
    assert.equal(leader.status().commit, 2);
    leader.step({ type: 'appResp', from: 'd', to: 'a', term: 2, index: 3 });
    assert.equal(leader.status().commit, 3);
  });

  test('a follower adopts the configuration as soon as it appends the entry', () => {
    const f = newCore('b', { terms: [1, 2], term: 2 });
    drain(f);
    f.step({ type: 'app', from: 'a', to: 'b', term: 2, index: 2, logTerm: 2, entries: [confEntry(3, 2, { type: 'remove', node: 'c' })], commit: 2 });
    assert.equal(f.status().commit, 2);
    assert.deepEqual(f.status().conf, { voters: ['a', 'b'], learners: [] });
  });

  test('if the conf entry is truncated away, the previous configuration comes back', () => {
    const f = newCore('b', { terms: [1, 2], term: 2 });
    drain(f);
    f.step({ type: 'app', from: 'a', to: 'b', term: 2, index: 2, logTerm: 2, entries: [confEntry(3, 2, { type: 'addVoter', node: 'd' })], commit: 2 });
    assert.deepEqual(f.status().conf.voters, ['a', 'b', 'c', 'd']);
    // A new leader (term 3) never had it and overwrites index 3.
    f.step({ type: 'app', from: 'c', to: 'b', term: 3, index: 2, logTerm: 2, entries: [{ index: 3, term: 3, kind: 'normal', data: new Uint8Array() }], commit: 2 });
    assert.deepEqual(f.status().conf.voters, ['a', 'b', 'c']);
    // A node with the reverted configuration is again promotable and campaigns normally.
    drain(f);
    assert.notEqual(tickUntilNot(f, 'follower'), -1);
  });

  test('the configuration of a restarted node is replayed from its log', () => {
    const f = newCore('b', { terms: [1], term: 1 });
    drain(f);
    const core = new (f.constructor as typeof import('../../src/core/raft.ts').RaftCore)({
      id: 'b', electionTicks: 10, heartbeatTicks: 1, random: () => 0.5,
      initial: {
        hardState: { term: 2, vote: '', commit: 2 },
        entries: [confEntry(1, 1, { type: 'addVoter', node: 'a' }), confEntry(2, 1, { type: 'addVoter', node: 'b' }), confEntry(3, 2, { type: 'addLearner', node: 'c' })],
      },
    });
    assert.deepEqual(core.status().conf, { voters: ['a', 'b'], learners: ['c'] });
  });

  test('remove: the quorum shrinks at once, which can commit a pending entry', () => {
    const leader = readyLeader(['a', 'b', 'c', 'd']);
    leader.propose(enc('x')); // index 3: needs 3 of 4
    drain(leader); // the leader's own copy is durable (thesis §10.2.1: it counts only then)
    leader.step({ type: 'appResp', from: 'b', to: 'a', term: 2, index: 3 });
    assert.equal(leader.status().commit, 2);
    leader.proposeConfChange({ type: 'remove', node: 'd' }); // index 4, appended: 3 voters now
    assert.equal(leader.status().commit, 3, 'a and b are a majority of {a, b, c}');
  });
});

describe('each change type', () => {
  test('remove: the leader stops replicating to the removed node, and the quorum shrinks', () => {
    const leader = readyLeader(['a', 'b', 'c', 'd']);
    leader.proposeConfChange({ type: 'remove', node: 'd' });
    drain(leader);
    assert.equal(leader.status().progress!.some((p) => p.id === 'd'), false);
    // 3 voters now: b alone completes a majority for index 3.
    leader.step({ type: 'appResp', from: 'b', to: 'a', term: 2, index: 3 });
    assert.equal(leader.status().commit, 3);
    leader.tick();
    assert.equal(sent(leader).some((m) => m.to === 'd'), false);
    // Late answers from d are ignored.
    leader.step({ type: 'appResp', from: 'd', to: 'a', term: 2, index: 3 });
    assert.equal(leader.stats.ignoredUnknownSender, 1);
  });

  test('addLearner: a learner receives the log but never counts toward commitment', () => {
    const leader = readyLeader();
    leader.proposeConfChange({ type: 'addLearner', node: 'l' });
    assert.deepEqual(leader.status().conf, { voters: ['a', 'b', 'c'], learners: ['l'] });
    drain(leader);
    leader.step({ type: 'appResp', from: 'l', to: 'a', term: 2, index: 3 });
    assert.equal(leader.status().commit, 2, 'a learner ack is not a majority');
    leader.step({ type: 'appResp', from: 'b', to: 'a', term: 2, index: 3 });
    assert.equal(leader.status().commit, 3);
    const p = leader.status().progress!.find((x) => x.id === 'l')!;
    assert.equal(p.learner, true);
    assert.equal(p.match, 3);
  });

  test('a learner never campaigns, and a candidate does not count its vote', () => {
    const learner = newCore('l', { terms: [1], voters: ['a', 'b', 'c'], learners: ['l'] });
    for (let i = 0; i < 100; i++) learner.tick();
    assert.equal(learner.role, 'follower');
    assert.deepEqual(sent(learner), []);

    const cand = newCore('a', { terms: [1], voters: ['a', 'b', 'c'], learners: ['l'], preVote: false });
    tickUntilNot(cand, 'follower');
    assert.deepEqual(sent(cand).map((m) => m.to).sort(), ['b', 'c'], 'learners are not asked');
    cand.step({ type: 'voteResp', from: 'l', to: 'a', term: cand.term, reject: false });
    assert.equal(cand.role, 'candidate');
    assert.equal(cand.stats.ignoredUnknownSender, 1);
  });

  test('timeoutNow to a learner is ignored', () => {
    const learner = newCore('l', { terms: [1], term: 1, voters: ['a', 'b', 'c'], learners: ['l'] });
    learner.step({ type: 'heartbeat', from: 'a', to: 'l', term: 1, commit: 0 });
    learner.step({ type: 'timeoutNow', from: 'a', to: 'l', term: 1 });
    assert.equal(learner.role, 'follower');
    assert.equal(learner.term, 1);
  });

  test('promote: a learner becomes a voter and counts from then on', () => {
    const leader = readyLeader(['a', 'b', 'c'], ['l']);
    leader.proposeConfChange({ type: 'promote', node: 'l' });
    assert.deepEqual(leader.status().conf, { voters: ['a', 'b', 'c', 'l'], learners: [] });
    assert.equal(leader.status().progress!.find((x) => x.id === 'l')!.learner, false);
    drain(leader);
    leader.step({ type: 'appResp', from: 'l', to: 'a', term: 2, index: 3 });
    leader.step({ type: 'appResp', from: 'b', to: 'a', term: 2, index: 3 });
    assert.equal(leader.status().commit, 3, 'a, b and l are 3 of 4');
  });
});

describe('refused changes', () => {
  const invalid: Array<[string, ConfChange]> = [
    ['adding an existing voter', { type: 'addVoter', node: 'b' }],
    ['adding an existing learner as a voter', { type: 'addVoter', node: 'l' }],
    ['adding an existing learner again', { type: 'addLearner', node: 'l' }],
    ['adding a voter as a learner', { type: 'addLearner', node: 'c' }],
    ['promoting a voter', { type: 'promote', node: 'b' }],
    ['promoting a stranger', { type: 'promote', node: 'zz' }],
    ['removing a stranger', { type: 'remove', node: 'zz' }],
    ['an empty node id', { type: 'addVoter', node: '' }],
    ['an unknown type', { type: 'demote' as ConfChange['type'], node: 'b' }],
  ];
  for (const [name, cc] of invalid) {
    test(`InvalidConfChangeError: ${name}`, () => {
      const leader = readyLeader(['a', 'b', 'c'], ['l']);
      const before = leader.status();
      assert.throws(() => leader.proposeConfChange(cc), (e: unknown) => e instanceof InvalidConfChangeError && (e as InvalidConfChangeError).code === 'ERR_INVALID_CONF_CHANGE');
      assert.deepEqual(leader.status(), before, 'a refused change changes nothing');
    });
  }

  test('InvalidConfChangeError: removing the last voter', () => {
    const leader = makeLeader('a', { terms: [1], voters: ['a'] });
    assert.equal(leader.status().commit, 2);
    assert.throws(() => leader.proposeConfChange({ type: 'remove', node: 'a' }), /last voter/);
  });

  test('ConfChangeInProgressError while an earlier change is uncommitted', () => {
    const leader = readyLeader();
    leader.proposeConfChange({ type: 'addLearner', node: 'l' });
    assert.throws(() => leader.proposeConfChange({ type: 'addLearner', node: 'm' }), ConfChangeInProgressError);
    drain(leader);
    leader.step({ type: 'appResp', from: 'b', to: 'a', term: 2, index: 3 });
    leader.proposeConfChange({ type: 'addLearner', node: 'm' });
    assert.deepEqual(leader.status().conf.learners, ['l', 'm']);
  });

  test('LeaderNotReadyError before the new leader has committed an entry of its term', () => {
    const leader = makeLeader('a', { terms: [1] });
    assert.throws(() => leader.proposeConfChange({ type: 'addLearner', node: 'l' }), (e: unknown) => e instanceof LeaderNotReadyError && e instanceof ConfChangeInProgressError);
  });

  test('NotLeaderError on a follower, naming the leader', () => {
    const f = newCore('b', { terms: [1], term: 1 });
    f.step({ type: 'heartbeat', from: 'a', to: 'b', term: 1, commit: 0 });
    assert.throws(() => f.proposeConfChange({ type: 'addLearner', node: 'l' }), (e: unknown) => e instanceof NotLeaderError && e.leader === 'a');
  });

  test('a conf entry whose data does not decode is a no-op on every replica, and counted', () => {
    const f = newCore('b', { terms: [1], term: 1 });
    f.step({ type: 'app', from: 'a', to: 'b', term: 1, index: 1, logTerm: 1, entries: [{ index: 2, term: 1, kind: 'conf', data: enc('{not json') }], commit: 0 });
    assert.equal(f.status().lastIndex, 2);
    assert.deepEqual(f.status().conf.voters, ['a', 'b', 'c']);
    assert.equal(f.stats.malformedConfEntries, 1);
  });
});

describe('a leader that removes itself (thesis §4.2.2)', () => {
  test('keeps leading without counting itself, steps down when the removal commits, and hands off', () => {
    const leader = readyLeader();
    leader.proposeConfChange({ type: 'remove', node: 'a' });
    assert.equal(leader.role, 'leader');
    assert.deepEqual(leader.status().conf.voters, ['b', 'c']);
    drain(leader);
    // Its own copy no longer counts: b alone is not a majority of {b, c}.
    leader.step({ type: 'appResp', from: 'b', to: 'a', term: 2, index: 3 });
    assert.equal(leader.status().commit, 2);
    assert.equal(leader.role, 'leader');
    leader.step({ type: 'appResp', from: 'c', to: 'a', term: 2, index: 3 });
    assert.equal(leader.status().commit, 3);
    assert.equal(leader.role, 'follower');
    const out = sent(leader);
    // Followers learn the commit, and an up-to-date voter is told to campaign at once.
    assert.ok(out.some((m) => m.type === 'app' && m.commit === 3));
    assert.deepEqual(out.filter((m) => m.type === 'timeoutNow').map((m) => m.to), ['b']);
    for (let i = 0; i < 100; i++) leader.tick();
    assert.equal(leader.role, 'follower', 'a removed node never campaigns');
  });
});

describe('membership scenarios (3 and 5 nodes)', () => {
  test('grow a cluster with a brand-new node (learner, then promote), then remove the leader', () => {
    const net = new Network(['a', 'b', 'c']);
    net.elect('a');
    for (let i = 0; i < 20; i++) net.core('a').propose(enc(`before${i}`));
    net.settle();
    net.add('d'); // empty: no conf, no log
    net.core('a').proposeConfChange({ type: 'addLearner', node: 'd' });
    net.settle();
    assert.deepEqual(net.appliedData('d').slice(0, 20), Array.from({ length: 20 }, (_, i) => `before${i}`));
    net.core('a').proposeConfChange({ type: 'promote', node: 'd' });
    net.settle();
    assert.deepEqual(net.core('d').status().conf.voters, ['a', 'b', 'c', 'd']);
    net.core('a').proposeConfChange({ type: 'remove', node: 'a' });
    net.settle();
    net.run(30);
    const leaders = net.leaders();
    assert.equal(leaders.length, 1);
    assert.notEqual(leaders[0]!.id, 'a');
    leaders[0]!.core.propose(enc('after'));
    net.settle();
    for (const id of ['b', 'c', 'd']) {
      assert.deepEqual(net.appliedData(id), [...Array.from({ length: 20 }, (_, i) => `before${i}`), 'after']);
      assert.deepEqual(net.core(id).status().conf, { voters: ['b', 'c', 'd'], learners: [] });
    }
  });

  test('a partitioned removed node cannot disrupt the cluster (pre-vote + lease)', () => {
    const net = new Network(['a', 'b', 'c', 'd', 'e']);
    net.elect('a');
    net.isolate('e');
    net.core('a').proposeConfChange({ type: 'remove', node: 'e' });
    net.settle();
    const term = net.core('a').term;
    net.heal();
    net.run(100); // e never learns it was removed and keeps trying
    assert.equal(net.core('a').role, 'leader');
    assert.equal(net.core('a').term, term);
    assert.ok(net.core('e').stats.preVotesStarted > 0);
  });
});
