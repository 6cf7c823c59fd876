// Client-facing requests: proposals and their errors, leadership transfer (thesis §3.10), ReadIndex
// (thesis §6.4) in safe and lease modes, and the Ready contract around them.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  InvalidTransferTargetError, LeadershipTransferInProgressError, NotLeaderError, ProposalTooLargeError,
} from '../../src/errors.ts';
import { InvalidConfigError } from '../../src/errors.ts';
import { RaftCore } from '../../src/core/raft.ts';
import type { Message } from '../../src/core/types.ts';
import { drain, enc, makeLeader, newCore, sent } from './helpers.ts';
import { Network } from './network.ts';

describe('proposals', () => {
  test('refused with NotLeaderError on a follower (naming the leader) and on a candidate', () => {
    const f = newCore('b', { terms: [1], term: 1 });
    assert.throws(() => f.propose(enc('x')), (e: unknown) => e instanceof NotLeaderError && e.leader === '' && e.code === 'ERR_NOT_LEADER');
    f.step({ type: 'heartbeat', from: 'a', to: 'b', term: 1, commit: 0 });
    assert.throws(() => f.propose(enc('x')), (e: unknown) => e instanceof NotLeaderError && e.leader === 'a');
    assert.equal(f.status().lastIndex, 1);
  });

  test('refused with ProposalTooLargeError over maxEntryBytes (default 512 KiB)', () => {
    const leader = makeLeader('a', { terms: [1] });
    leader.propose(new Uint8Array(512 * 1024));
    assert.throws(() => leader.propose(new Uint8Array(512 * 1024 + 1)), (e: unknown) => e instanceof ProposalTooLargeError && e.bytes === 512 * 1024 + 1 && e.maxBytes === 512 * 1024);
    const small = makeLeader('a', { terms: [1], maxEntryBytes: 10 });
    assert.throws(() => small.propose(new Uint8Array(11)), ProposalTooLargeError);
    assert.equal(small.status().lastIndex, 2, 'nothing appended');
  });

  test('a single-voter leader commits a proposal once its own copy is durable (thesis §10.2.1)', () => {
    const solo = makeLeader('a', { terms: [1], voters: ['a'] });
    const r = solo.propose(enc('x'));
    assert.equal(solo.status().commit, r.index - 1, 'not committed before the driver persisted it');
    const rd = drain(solo);
    assert.deepEqual(rd.entries.map((e) => e.index), [r.index]);
    assert.equal(rd.committed.some((e) => e.index === r.index), false, 'not handed out to apply before it is durable');
    assert.equal(rd.mustSync, true);
    assert.equal(solo.status().commit, r.index, 'advance() confirmed it durable: a majority of one');
    assert.deepEqual(drain(solo).committed.map((e) => e.index), [r.index]);
  });

  test('a Ready never hands out more than 1024 committed entries, and the rest follow', () => {
    const solo = makeLeader('a', { terms: [1], voters: ['a'] });
    for (let i = 0; i < 3000; i++) solo.propose(enc(`${i}`));
    const sizes: number[] = [];
    while (solo.hasReady()) {
      const rd = drain(solo);
      sizes.push(rd.committed.length);
    }
    // The first Ready carries only the leader's earlier entries (its no-op became durable in
    // makeLeader's drain); the 3000 proposals commit once that Ready is persisted.
    assert.deepEqual(sizes, [2, 1024, 1024, 952], 'nothing commits until the batch is durable');
    assert.equal(solo.status().applied, 3002);
  });

  test('hasReady is false once everything is handed out, and ready() is idempotent in between', () => {
    const leader = makeLeader('a', { terms: [1] });
    assert.equal(leader.hasReady(), false);
    const empty = leader.ready();
    assert.deepEqual([empty.entries, empty.messages, empty.committed, empty.readStates, empty.mustSync], [[], [], [], [], false]);
    leader.propose(enc('x'));
    assert.equal(leader.hasReady(), true);
  });
});

describe('leadership transfer (thesis §3.10)', () => {
  test('to an up-to-date follower: timeoutNow at once; it campaigns with transfer and wins despite leases', () => {
    const net = new Network(['a', 'b', 'c']);
    net.elect('a');
    net.run(3);
    const term = net.core('a').term;
    net.core('a').transferLeader('b');
    assert.throws(() => net.core('a').propose(enc('x')), (e: unknown) => e instanceof LeadershipTransferInProgressError && e.code === 'ERR_TRANSFER_IN_PROGRESS');
    net.settle();
    assert.equal(net.core('b').role, 'leader');
    assert.equal(net.core('b').term, term + 1);
    assert.equal(net.core('a').role, 'follower');
    assert.ok(net.sent.some((m) => m.type === 'vote' && m.from === 'b' && m.transfer === true));
    assert.ok(!net.sent.some((m) => m.type === 'preVote' && m.from === 'b'), 'skips pre-vote');
    // Proposals flow again through the new leader.
    net.core('b').propose(enc('y'));
    net.settle();
    assert.deepEqual(net.appliedData('c'), ['y']);
  });

  test('to a lagging follower: replicate first, then timeoutNow once it has caught up', () => {
    const leader = makeLeader('a', { terms: [1] });
    leader.step({ type: 'appResp', from: 'c', to: 'a', term: 2, index: 2 });
    drain(leader);
    leader.transferLeader('b');
    assert.equal(sent(leader).some((m) => m.type === 'timeoutNow'), false);
    assert.equal(leader.status().leadTransferee, 'b');
    // b's election probe was lost; the heartbeat round re-sends it.
    leader.step({ type: 'heartbeatResp', from: 'b', to: 'a', term: 2 });
    assert.ok(sent(leader).some((m) => m.type === 'app' && m.to === 'b'));
    leader.step({ type: 'appResp', from: 'b', to: 'a', term: 2, index: 2 });
    assert.deepEqual(sent(leader).filter((m) => m.type === 'timeoutNow').map((m) => m.to), ['b']);
  });

  test('a transfer that does not finish within an election timeout is abandoned', () => {
    const leader = makeLeader('a', { terms: [1] });
    leader.transferLeader('b');
    assert.throws(() => leader.propose(enc('x')), LeadershipTransferInProgressError);
    for (let i = 0; i < 10; i++) {
      leader.tick();
      for (const m of sent(leader)) if (m.type === 'heartbeat') leader.step({ type: 'heartbeatResp', from: m.to, to: 'a', term: 2 });
    }
    assert.equal(leader.role, 'leader');
    assert.equal(leader.status().leadTransferee, undefined);
    leader.propose(enc('x'));
  });

  test('refused for learners, strangers and on followers', () => {
    const leader = makeLeader('a', { terms: [1], learners: ['l'] });
    assert.throws(() => leader.transferLeader('l'), (e: unknown) => e instanceof InvalidTransferTargetError && /learner/.test(e.message));
    assert.throws(() => leader.transferLeader('zz'), InvalidTransferTargetError);
    leader.transferLeader('a'); // already the leader: nothing to do
    assert.equal(leader.status().leadTransferee, undefined);
    const f = newCore('b', { terms: [1] });
    assert.throws(() => f.transferLeader('c'), NotLeaderError);
  });
});

describe('ReadIndex (thesis §6.4)', () => {
  /** A 3-node leader whose no-op has committed (b acked). */
  function committedLeader(opts: Parameters<typeof makeLeader>[1] = {}) {
    const leader = makeLeader('a', { terms: [1], ...opts });
    leader.step({ type: 'appResp', from: 'b', to: 'a', term: 2, index: 2 });
    drain(leader);
    assert.equal(leader.status().commit, 2);
    return leader;
  }

  test('safe: confirmed by a quorum of heartbeat responses carrying the context', () => {
    const leader = committedLeader();
    leader.readIndex('r1');
    const hbs = sent(leader);
    assert.deepEqual(hbs.map((m) => [m.type, m.context]), [['heartbeat', 'r1'], ['heartbeat', 'r1']]);
    assert.deepEqual(drain(leader).readStates, []);
    leader.step({ type: 'heartbeatResp', from: 'c', to: 'a', term: 2, context: 'r1' });
    assert.deepEqual(drain(leader).readStates, [{ index: 2, context: 'r1' }]);
    // Duplicated responses do not produce a second answer.
    leader.step({ type: 'heartbeatResp', from: 'b', to: 'a', term: 2, context: 'r1' });
    assert.deepEqual(drain(leader).readStates, []);
  });

  test('safe: a quorum for a later read also releases earlier ones, in order', () => {
    const leader = committedLeader();
    leader.readIndex('r1');
    leader.propose(enc('x'));
    assert.deepEqual(drain(leader).readStates, [], "r1 still needs a quorum"); // also persists x (the leader counts its own copy once durable)
    leader.step({ type: 'appResp', from: 'b', to: 'a', term: 2, index: 3 });
    leader.readIndex('r2');
    drain(leader);
    leader.step({ type: 'heartbeatResp', from: 'c', to: 'a', term: 2, context: 'r2' });
    assert.deepEqual(drain(leader).readStates, [{ index: 2, context: 'r1' }, { index: 3, context: 'r2' }]);
  });

  test('safe: a learner\'s acknowledgement does not confirm leadership', () => {
    const leader = committedLeader({ learners: ['l'] });
    leader.readIndex('r1');
    leader.step({ type: 'heartbeatResp', from: 'l', to: 'a', term: 2, context: 'r1' });
    assert.deepEqual(drain(leader).readStates, []);
  });

  test('a new leader queues reads until an entry of its term commits (step 1)', () => {
    const leader = makeLeader('a', { terms: [1, 1] });
    leader.readIndex('early');
    assert.equal(sent(leader).some((m) => m.context === 'early'), false);
    leader.step({ type: 'appResp', from: 'b', to: 'a', term: 2, index: 3 });
    const rd = drain(leader);
    assert.ok(rd.messages.some((m) => m.type === 'heartbeat' && m.context === 'early'));
    leader.step({ type: 'heartbeatResp', from: 'b', to: 'a', term: 2, context: 'early' });
    assert.deepEqual(drain(leader).readStates, [{ index: 3, context: 'early' }], 'index is the commit after the no-op');
  });

  test('lease: answered at once without a heartbeat round', () => {
    const leader = committedLeader({ readOnly: 'lease' });
    leader.readIndex('r1');
    const rd = drain(leader);
    assert.deepEqual(rd.readStates, [{ index: 2, context: 'r1' }]);
    assert.equal(rd.messages.length, 0);
  });

  test('lease mode requires check-quorum', () => {
    assert.throws(() => newCore('a', { readOnly: 'lease', checkQuorum: false }), InvalidConfigError);
  });

  test('a single-voter cluster answers at once', () => {
    const solo = makeLeader('a', { terms: [1], voters: ['a'] });
    solo.readIndex('r');
    assert.deepEqual(drain(solo).readStates, [{ index: 2, context: 'r' }]);
  });

  test('refused with NotLeaderError on a follower', () => {
    const f = newCore('b', { terms: [1] });
    assert.throws(() => f.readIndex('r'), NotLeaderError);
  });

  test('stepping down drops pending reads (the driver times them out)', () => {
    const leader = committedLeader();
    leader.readIndex('r1');
    leader.step({ type: 'appResp', from: 'b', to: 'a', term: 3 }); // newer term: step down
    assert.equal(leader.role, 'follower');
    leader.step({ type: 'heartbeatResp', from: 'b', to: 'a', term: 3, context: 'r1' });
    assert.deepEqual(drain(leader).readStates, []);
  });

  test('a deposed leader in a minority cannot confirm a read (safe mode linearizability)', () => {
    const net = new Network(['a', 'b', 'c']);
    net.elect('a');
    net.partition(['a'], ['b', 'c']);
    net.core('a').readIndex('stale?');
    net.run(30);
    assert.deepEqual(net.node('a').readStates, []);
    assert.equal(net.leaders().filter((n) => n.id !== 'a').length, 1);
  });
});

describe('config validation', () => {
  const bad: Array<[string, Record<string, unknown>, string]> = [
    ['empty id', { id: '' }, 'id'],
    ['zero electionTicks', { electionTicks: 0 }, 'electionTicks'],
    ['heartbeat not below election', { heartbeatTicks: 10 }, 'heartbeatTicks'],
    ['no random', { random: undefined }, 'random'],
    ['fractional maxInflight', { maxInflight: 1.5 }, 'maxInflight'],
    ['unknown readOnly', { readOnly: 'fast' }, 'readOnly'],
  ];
  for (const [name, patch, field] of bad) {
    test(`InvalidConfigError names the field: ${name}`, () => {
      assert.throws(
        () => new RaftCore({ id: 'a', electionTicks: 10, heartbeatTicks: 1, random: Math.random, ...patch } as never),
        (e: unknown) => e instanceof InvalidConfigError && e.field === field && e.code === 'ERR_INVALID_CONFIG',
      );
    });
  }
});

// Keep the Message import used for readers of this file's helpers.
export type { Message };
