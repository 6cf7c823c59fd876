// Message handling per role, table-driven: what each role does with each message of its current
// term, what it does with messages from unknown senders, and that no input makes step() throw.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { RaftCore } from '../../src/core/raft.ts';
import type { Message } from '../../src/core/types.ts';
import type { CoreStats } from '../../src/core/raft.ts';
import { drain, entriesWithTerms, makeLeader, newCore, sent, tickUntilNot } from './helpers.ts';

type RoleName = 'follower' | 'preCandidate' | 'candidate' | 'leader';

/** A core in `role` at term 2 (log [1], voters a b c), with its Ready drained. */
function inRole(role: RoleName): RaftCore {
  if (role === 'leader') return makeLeader('a', { terms: [1], term: 1 });
  const core = newCore('a', { terms: [1], term: 2, preVote: role === 'preCandidate' });
  if (role === 'follower') {
    drain(core);
    return core;
  }
  tickUntilNot(core, 'follower');
  assert.equal(core.role, role);
  drain(core);
  return core;
}

interface Row {
  name: string;
  role: RoleName;
  /** Built against the core's current term. */
  msg: (term: number) => Message;
  role2: RoleName;
  sends: string[];
  stat?: keyof CoreStats;
}

const rows: Row[] = [
  { name: 'follower: append from the leader is acknowledged', role: 'follower', msg: (t) => ({ type: 'app', from: 'b', to: 'a', term: t, index: 1, logTerm: 1, entries: [], commit: 0 }), role2: 'follower', sends: ['appResp'] },
  { name: 'follower: heartbeat is answered', role: 'follower', msg: (t) => ({ type: 'heartbeat', from: 'b', to: 'a', term: t, commit: 0 }), role2: 'follower', sends: ['heartbeatResp'] },
  { name: 'follower: a stray appResp is ignored', role: 'follower', msg: (t) => ({ type: 'appResp', from: 'b', to: 'a', term: t, index: 1 }), role2: 'follower', sends: [], stat: 'ignoredUnexpected' },
  { name: 'follower: a stray voteResp is ignored', role: 'follower', msg: (t) => ({ type: 'voteResp', from: 'b', to: 'a', term: t }), role2: 'follower', sends: [], stat: 'ignoredUnexpected' },
  { name: 'follower: timeoutNow from a node that is not its leader is ignored', role: 'follower', msg: (t) => ({ type: 'timeoutNow', from: 'c', to: 'a', term: t }), role2: 'follower', sends: [], stat: 'ignoredUnknownSender' },
  { name: 'follower: a snapshot from the leader is installed', role: 'follower', msg: (t) => ({ type: 'snap', from: 'b', to: 'a', term: t, snapshot: { meta: { index: 5, term: 2, conf: { voters: ['a', 'b', 'c'], learners: [] } }, data: new Uint8Array() } }), role2: 'follower', sends: ['appResp'] },
  { name: 'pre-candidate: a heartbeat of its term makes it follow', role: 'preCandidate', msg: (t) => ({ type: 'heartbeat', from: 'b', to: 'a', term: t, commit: 0 }), role2: 'follower', sends: ['heartbeatResp'] },
  { name: 'pre-candidate: a voteResp is the wrong kind of answer', role: 'preCandidate', msg: (t) => ({ type: 'voteResp', from: 'b', to: 'a', term: t }), role2: 'preCandidate', sends: [], stat: 'ignoredUnexpected' },
  { name: 'candidate: an append of its term makes it follow', role: 'candidate', msg: (t) => ({ type: 'app', from: 'b', to: 'a', term: t, index: 1, logTerm: 1, entries: [], commit: 0 }), role2: 'follower', sends: ['appResp'] },
  { name: 'candidate: a vote from a non-member does not count', role: 'candidate', msg: (t) => ({ type: 'voteResp', from: 'z', to: 'a', term: t }), role2: 'candidate', sends: [], stat: 'ignoredUnknownSender' },
  { name: 'candidate: a vote request of its term is refused (it voted for itself)', role: 'candidate', msg: (t) => ({ type: 'vote', from: 'b', to: 'a', term: t, index: 9, logTerm: 9 }), role2: 'candidate', sends: ['voteResp'] },
  { name: 'leader: appResp from a non-member is ignored', role: 'leader', msg: (t) => ({ type: 'appResp', from: 'z', to: 'a', term: t, index: 1 }), role2: 'leader', sends: [], stat: 'ignoredUnknownSender' },
  { name: 'leader: heartbeatResp from a non-member is ignored', role: 'leader', msg: (t) => ({ type: 'heartbeatResp', from: 'z', to: 'a', term: t }), role2: 'leader', sends: [], stat: 'ignoredUnknownSender' },
  { name: 'leader: an append from another leader of its term is an invariant violation', role: 'leader', msg: (t) => ({ type: 'app', from: 'b', to: 'a', term: t, index: 1, logTerm: 1, entries: [], commit: 0 }), role2: 'leader', sends: [], stat: 'invariantViolations' },
  { name: 'leader: a late voteResp is ignored', role: 'leader', msg: (t) => ({ type: 'voteResp', from: 'c', to: 'a', term: t }), role2: 'leader', sends: [], stat: 'ignoredUnexpected' },
  { name: 'any: a message for another node is ignored', role: 'follower', msg: (t) => ({ type: 'heartbeat', from: 'b', to: 'x', term: t, commit: 0 }), role2: 'follower', sends: [], stat: 'ignoredMisaddressed' },
  { name: 'any: a message claiming to be from ourselves is ignored', role: 'leader', msg: (t) => ({ type: 'appResp', from: 'a', to: 'a', term: t, index: 1 }), role2: 'leader', sends: [], stat: 'ignoredMisaddressed' },
];

describe('message handling per role', () => {
  for (const row of rows) {
    test(row.name, () => {
      const core = inRole(row.role);
      const before = row.stat ? core.stats[row.stat] : 0;
      core.step(row.msg(core.term));
      assert.equal(core.role, row.role2);
      assert.deepEqual(sent(core).map((m) => m.type), row.sends);
      if (row.stat) assert.equal(core.stats[row.stat], before + 1, `${row.stat} counted`);
    });
  }
});

describe('senders outside the configuration', () => {
  test('a brand-new node with an empty configuration accepts appends from a leader it never heard of', () => {
    const core = newCore('d', { voters: [] });
    drain(core);
    for (let i = 0; i < 100; i++) core.tick();
    assert.equal(core.role, 'follower', 'a node with empty conf never campaigns');
    assert.deepEqual(sent(core), []);
    core.step({ type: 'app', from: 'a', to: 'd', term: 3, index: 0, logTerm: 0, entries: entriesWithTerms([1, 2, 3]), commit: 3 });
    assert.equal(core.leader, 'a');
    assert.equal(core.status().commit, 3);
    assert.deepEqual(sent(core).map((m) => [m.type, m.index]), [['appResp', 3]]);
  });

  test('a vote request from a candidate outside our configuration is answered on its merits', () => {
    // Its configuration may be ahead of ours (it has appended a conf entry adding itself that we
    // have not), so refusing could stall elections; safety rests on one vote per term.
    const core = newCore('b', { terms: [1], term: 1 });
    drain(core);
    core.step({ type: 'vote', from: 'd', to: 'b', term: 2, index: 2, logTerm: 1 });
    assert.deepEqual(sent(core).map((m) => [m.type, m.reject]), [['voteResp', false]]);
  });
});

describe('step never throws', () => {
  const junk: Array<[string, unknown]> = [
    ['null', null],
    ['empty object', {}],
    ['unknown type', { type: 'bogus', from: 'b', to: 'a', term: 2 }],
    ['missing from', { type: 'heartbeat', to: 'a', term: 2 }],
    ['negative term', { type: 'heartbeat', from: 'b', to: 'a', term: -1 }],
    ['zero term', { type: 'heartbeat', from: 'b', to: 'a', term: 0 }],
    ['fractional index', { type: 'app', from: 'b', to: 'a', term: 2, index: 1.5, logTerm: 1 }],
    ['string commit', { type: 'heartbeat', from: 'b', to: 'a', term: 2, commit: '5' }],
    ['entries not an array', { type: 'app', from: 'b', to: 'a', term: 2, index: 1, logTerm: 1, entries: 'x' }],
    ['entries with a gap', { type: 'app', from: 'b', to: 'a', term: 2, index: 1, logTerm: 1, entries: [...entriesWithTerms([2], 2), ...entriesWithTerms([2], 4)] }],
    ['entry term above message term', { type: 'app', from: 'b', to: 'a', term: 2, index: 1, logTerm: 1, entries: entriesWithTerms([3], 2) }],
    ['entry data not bytes', { type: 'app', from: 'b', to: 'a', term: 2, index: 1, logTerm: 1, entries: [{ index: 2, term: 2, kind: 'normal', data: 'x' }] }],
    ['snap without meta', { type: 'snap', from: 'b', to: 'a', term: 2, snapshot: {} }],
    ['snap without its data (sim finding F2)', { type: 'snap', from: 'b', to: 'a', term: 2, snapshot: { meta: { index: 3, term: 1, conf: { voters: ['a'], learners: [] } } } }],
    ['snap with bad conf', { type: 'snap', from: 'b', to: 'a', term: 2, snapshot: { meta: { index: 3, term: 1, conf: { voters: 'a' } } } }],
    ['reject not boolean', { type: 'appResp', from: 'b', to: 'a', term: 2, reject: 'yes' }],
  ];
  for (const role of ['follower', 'leader'] as const) {
    for (const [name, m] of junk) {
      test(`${role}: ${name} is dropped and counted`, () => {
        const core = inRole(role);
        const before = JSON.stringify(core.status());
        core.step(m as Message);
        assert.equal(core.stats.ignoredMalformed, 1);
        assert.equal(JSON.stringify(core.status()), before);
        assert.deepEqual(sent(core), []);
      });
    }
  }

  test('an appResp acknowledging entries the leader never had is dropped', () => {
    const leader = makeLeader('a', { terms: [1] });
    leader.step({ type: 'appResp', from: 'b', to: 'a', term: leader.term, index: 99 });
    assert.equal(leader.stats.ignoredMalformed, 1);
    assert.equal(leader.status().progress!.find((p) => p.id === 'b')!.match, 0);
  });

  test('random messages (fast-check) never make step() throw, whatever the role', () => {
    const id = fc.constantFrom('a', 'b', 'c', 'z', '');
    const num = fc.oneof(fc.integer({ min: -2, max: 12 }), fc.constant(undefined), fc.double());
    const entry = fc.record({ index: num, term: num, kind: fc.constantFrom('normal', 'conf', 'x'), data: fc.oneof(fc.uint8Array({ maxLength: 4 }), fc.constant('s')) });
    const message = fc.record({
      type: fc.constantFrom('preVote', 'preVoteResp', 'vote', 'voteResp', 'app', 'appResp', 'heartbeat', 'heartbeatResp', 'snap', 'timeoutNow', 'zzz'),
      from: id, to: fc.constantFrom('a', 'a', 'a', 'b'), term: num, index: num, logTerm: num, commit: num,
      reject: fc.oneof(fc.boolean(), fc.constant(undefined)), hintIndex: num, hintTerm: num,
      entries: fc.oneof(fc.constant(undefined), fc.array(entry, { maxLength: 3 })),
      transfer: fc.oneof(fc.boolean(), fc.constant(undefined)),
      context: fc.oneof(fc.constant(undefined), fc.string({ maxLength: 3 })),
      snapshot: fc.oneof(fc.constant(undefined), fc.record({ meta: fc.record({ index: num, term: num, conf: fc.constant({ voters: ['a', 'b', 'c'], learners: [] }) }) })),
    }, { requiredKeys: ['type', 'from', 'to', 'term'] });
    fc.assert(fc.property(fc.constantFrom<RoleName>('follower', 'preCandidate', 'candidate', 'leader'), fc.array(message, { maxLength: 30 }), (role, msgs) => {
      const core = inRole(role);
      for (const m of msgs) {
        core.step(m as Message);
        core.tick();
        if (core.role === 'leader') core.propose(new Uint8Array(1));
        drain(core);
      }
      const s = core.status();
      assert.ok(s.commit <= s.lastIndex);
      assert.ok(s.applied <= s.commit);
    }), { numRuns: 300, seed: 4242 });
  });
});
