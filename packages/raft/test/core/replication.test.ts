// Replication flow control: probe/replicate states, pipelining with an inflight cap, the per-message
// byte cap, batching of proposals, and fast backtracking with conflict hints (Raft §5.3).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { RaftCore } from '../../src/core/raft.ts';
import type { Message } from '../../src/core/types.ts';
import { drain, enc, entriesWithTerms, makeLeader, newCore, sent } from './helpers.ts';
import { Network } from './network.ts';

function progressOf(leader: RaftCore, id: string) {
  const p = leader.status().progress!.find((x) => x.id === id);
  if (!p) throw new Error(`no progress for ${id}`);
  return p;
}

/** A leader whose followers b and c are in replicate state, matched up to the no-op. */
function replicatingLeader(opts: Parameters<typeof makeLeader>[1] = {}): RaftCore {
  const leader = makeLeader('a', { terms: [1], ...opts });
  leader.step({ type: 'appResp', from: 'b', to: 'a', term: leader.term, index: 2 });
  leader.step({ type: 'appResp', from: 'c', to: 'a', term: leader.term, index: 2 });
  drain(leader);
  assert.equal(progressOf(leader, 'b').state, 'replicate');
  return leader;
}

describe('probe and replicate states', () => {
  test('a new leader probes: one append per follower until it hears back', () => {
    const leader = makeLeader('a', { terms: [1] });
    assert.equal(progressOf(leader, 'b').state, 'probe');
    leader.propose(enc('x'));
    leader.propose(enc('y'));
    assert.deepEqual(sent(leader).filter((m) => m.type === 'app'), [], 'probe is paused until the first answer');
    leader.step({ type: 'appResp', from: 'b', to: 'a', term: leader.term, index: 2 });
    assert.equal(progressOf(leader, 'b').state, 'replicate');
    const apps = sent(leader).filter((m) => m.type === 'app' && m.to === 'b');
    assert.deepEqual(apps.map((m) => [m.index, m.entries!.map((e) => e.index)]), [[2, [3, 4]]]);
  });

  test('a rejection in replicate state drops the follower back to probe', () => {
    const leader = replicatingLeader();
    leader.propose(enc('x'));
    drain(leader); // app(prev 2, [3]) is lost
    leader.propose(enc('y'));
    drain(leader); // app(prev 3, [4]) arrives, and b rejects it
    leader.step({ type: 'appResp', from: 'b', to: 'a', term: leader.term, index: 3, reject: true, hintIndex: 3, hintTerm: 0 });
    const p = progressOf(leader, 'b');
    assert.equal(p.state, 'probe');
    const apps = sent(leader).filter((m) => m.to === 'b');
    assert.deepEqual(apps.map((m) => [m.type, m.index, m.entries!.map((e) => e.index)]), [['app', 2, [3, 4]]], 'resends from match + 1');
    // A rejection at or below match is stale in replicate state and changes nothing.
    leader.step({ type: 'appResp', from: 'c', to: 'a', term: leader.term, index: 2, reject: true, hintIndex: 2, hintTerm: 0 });
    assert.equal(progressOf(leader, 'c').state, 'replicate');
  });

  test('a lost probe is retried on the next heartbeat response', () => {
    const leader = makeLeader('a', { terms: [1] });
    leader.propose(enc('x'));
    drain(leader); // messages lost
    leader.step({ type: 'heartbeatResp', from: 'b', to: 'a', term: leader.term });
    const apps = sent(leader).filter((m) => m.type === 'app');
    // The probe restarts after the last known match (index 1), carrying the no-op and the proposal.
    assert.deepEqual(apps.map((m) => [m.to, m.index, m.entries!.length]), [['b', 1, 2]]);
  });

  test('a stale rejection (for an append we already moved past) is ignored', () => {
    const leader = makeLeader('a', { terms: [1, 1, 1] });
    // The election probe went out at prev=3 (next=4). A rejection for prev=1 is stale.
    leader.step({ type: 'appResp', from: 'b', to: 'a', term: leader.term, index: 1, reject: true, hintIndex: 1, hintTerm: 0 });
    assert.equal(progressOf(leader, 'b').next, 4);
    assert.deepEqual(sent(leader), []);
  });
});

describe('pipelining and flow control', () => {
  test('proposals between two ready() calls go out as one append per follower (batching)', () => {
    const leader = replicatingLeader();
    for (let i = 0; i < 50; i++) leader.propose(enc(`p${i}`));
    const apps = sent(leader).filter((m) => m.type === 'app');
    assert.deepEqual(apps.map((m) => [m.to, m.entries!.length]).sort(), [['b', 50], ['c', 50]]);
  });

  test('at most maxInflight appends are outstanding per follower in replicate state', () => {
    const leader = replicatingLeader({ maxInflight: 3 });
    const counts: number[] = [];
    for (let i = 0; i < 6; i++) {
      leader.propose(enc(`p${i}`));
      counts.push(sent(leader).filter((m) => m.type === 'app' && m.to === 'b').length);
    }
    assert.deepEqual(counts, [1, 1, 1, 0, 0, 0], 'the fourth waits for an acknowledgement');
    // Acknowledging the first append opens the window: the next append carries everything pending.
    leader.step({ type: 'appResp', from: 'b', to: 'a', term: leader.term, index: 3 });
    const apps = sent(leader).filter((m) => m.type === 'app' && m.to === 'b');
    assert.deepEqual(apps.map((m) => m.entries!.map((e) => e.index)), [[6, 7, 8]]);
  });

  test('a heartbeat response lets one append through a full window (recovery from lost appends)', () => {
    const leader = replicatingLeader({ maxInflight: 1 });
    leader.propose(enc('x'));
    assert.equal(sent(leader).filter((m) => m.to === 'b').length, 1);
    leader.propose(enc('y'));
    assert.equal(sent(leader).filter((m) => m.to === 'b').length, 0);
    leader.step({ type: 'heartbeatResp', from: 'b', to: 'a', term: leader.term });
    const apps = sent(leader).filter((m) => m.type === 'app' && m.to === 'b');
    assert.deepEqual(apps.map((m) => m.entries!.map((e) => e.index)), [[4]]);
  });

  test('appends are capped at maxMsgBytes, but always carry at least one entry', () => {
    const leader = replicatingLeader({ maxMsgBytes: 1000, maxEntryBytes: 4000 });
    for (let i = 0; i < 10; i++) leader.propose(new Uint8Array(300));
    leader.propose(new Uint8Array(3000));
    const apps = sent(leader).filter((m) => m.type === 'app' && m.to === 'b');
    const sizes = apps.map((m) => m.entries!.length);
    assert.deepEqual(sizes, [3, 3, 3, 1, 1]);
    for (const m of apps) {
      const bytes = m.entries!.reduce((n, e) => n + e.data.byteLength, 0);
      assert.ok(m.entries!.length === 1 || bytes <= 1000, `append of ${bytes} bytes`);
    }
  });

  test('3 nodes replicate 2000 proposals with a small window and all apply them in order', () => {
    const net = new Network(['a', 'b', 'c'], { maxInflight: 4, maxMsgBytes: 64 });
    net.elect('a');
    for (let i = 0; i < 2000; i++) {
      net.core('a').propose(enc(`v${i}`));
      if (i % 100 === 0) net.settle();
    }
    net.settle();
    const want = Array.from({ length: 2000 }, (_, i) => `v${i}`);
    for (const id of ['a', 'b', 'c']) assert.deepEqual(net.appliedData(id), want);
  });
});

describe('fast backtracking (Raft §5.3 conflict hints)', () => {
  test('a follower whose log is too short hints its last index + 1', () => {
    const core = newCore('b', { terms: [1, 1], term: 2 });
    drain(core);
    core.step({ type: 'app', from: 'a', to: 'b', term: 3, index: 9, logTerm: 3, entries: [], commit: 0 });
    const [r] = sent(core);
    assert.deepEqual([r!.reject, r!.index, r!.hintIndex, r!.hintTerm], [true, 9, 3, 0]);
  });

  test('a follower with a conflicting term hints that term and the first index it holds of it', () => {
    const core = newCore('b', { terms: [1, 1, 2, 2, 2, 2], term: 2 });
    drain(core);
    core.step({ type: 'app', from: 'a', to: 'b', term: 3, index: 5, logTerm: 3, entries: [], commit: 0 });
    const [r] = sent(core);
    assert.deepEqual([r!.reject, r!.index, r!.hintIndex, r!.hintTerm], [true, 5, 3, 2]);
  });

  /**
   * A follower that was leader in terms 2..(1+k), each term adding `perTerm` entries nobody else
   * has, rejoins a leader whose log diverges right after index 10. Naive backtracking needs one
   * round trip per entry; with hints it needs about one per divergent term.
   */
  function roundTrips(k: number, perTerm: number, leaderTerms: number[]): { rejects: number; entries: number } {
    const common = Array(10).fill(1);
    const followerTerms = [...common];
    for (let t = 2; t < 2 + k; t++) for (let i = 0; i < perTerm; i++) followerTerms.push(t);
    const leader = makeLeader('a', { terms: [...common, ...leaderTerms], term: 2 + k });
    const follower = newCore('b', { terms: followerTerms, term: 1 + k });
    drain(follower);
    leader.tick(); // heartbeat restarts the probe
    let queue: Message[] = sent(leader).filter((m) => m.to === 'b');
    let rejects = 0;
    let entries = 0;
    for (let i = 0; i < 10_000 && queue.length > 0; i++) {
      const next: Message[] = [];
      for (const m of queue) {
        if (m.to === 'b') {
          if (m.type === 'app') entries += m.entries!.length;
          follower.step(m);
        } else if (m.to === 'a') {
          if (m.type === 'appResp' && m.reject) rejects++;
          leader.step(m);
        }
      }
      next.push(...sent(leader).filter((m) => m.to === 'b'), ...sent(follower));
      queue = next;
    }
    const fs = follower.status();
    assert.equal(fs.lastIndex, leader.status().lastIndex, 'follower caught up');
    return { rejects, entries };
  }

  test('the leader skips a whole term per round trip (follower holds terms the leader never saw)', () => {
    // Leader's log: 10 common entries then 400 entries of term 5 (it was elected in term 6 after the
    // follower led terms 2..4 in a minority partition). Naive backtracking: ~400 round trips.
    const { rejects } = roundTrips(3, 100, Array(400).fill(5));
    assert.ok(rejects >= 1 && rejects <= 4, `${rejects} rejections for 3 divergent terms of 100 entries`);
  });

  test('the leader jumps to its last entry of the follower\'s conflicting term when it has that term', () => {
    // Both saw term 2 but the leader holds only the first 3 entries of it, then term 5.
    const { rejects } = roundTrips(1, 200, [2, 2, 2, 5, 5]);
    assert.ok(rejects <= 2, `${rejects} rejections`);
  });
});
