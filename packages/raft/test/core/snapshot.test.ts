// Snapshots (thesis §5.1–§5.3, InstallSnapshot): compaction after snapshotTaken, the leader sending
// a snapshot to a follower that needs compacted entries, the follower installing it (or
// fast-forwarding when it already holds the snapshot's last entry), and restarts from a snapshot.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { RaftCore } from '../../src/core/raft.ts';
import { InvalidSnapshotError } from '../../src/errors.ts';
import type { SnapshotMeta } from '../../src/core/types.ts';
import { drain, enc, entriesWithTerms, makeLeader, newCore, sent } from './helpers.ts';
import { Network, seededRandom } from './network.ts';

const conf = { voters: ['a', 'b', 'c'], learners: [] };

/** A leader of term 2 whose log is 1..11 (term 1 then the no-op), all applied and committed. */
function leaderWithSnapshot(compactTo: number): RaftCore {
  const leader = makeLeader('a', { terms: Array(10).fill(1), term: 1 });
  leader.step({ type: 'appResp', from: 'c', to: 'a', term: 2, index: 11 });
  const rd = drain(leader);
  assert.equal(rd.committed.length, 11);
  leader.snapshotTaken({ index: 11, term: 2, conf }, compactTo);
  return leader;
}

describe('compaction', () => {
  test('snapshotTaken drops entries up to compactTo and keeps the rest', () => {
    const leader = leaderWithSnapshot(8);
    const s = leader.status();
    assert.equal(s.firstIndex, 9);
    assert.equal(s.lastIndex, 11);
  });

  test('snapshotTaken refuses a snapshot beyond the applied index or a compactTo past it', () => {
    const leader = makeLeader('a', { terms: [1, 1, 1], term: 1 });
    assert.throws(() => leader.snapshotTaken({ index: 3, term: 1, conf }, 3), InvalidSnapshotError);
    leader.step({ type: 'appResp', from: 'b', to: 'a', term: 2, index: 4 });
    drain(leader);
    assert.throws(() => leader.snapshotTaken({ index: 3, term: 1, conf }, 4), /compactTo/);
    assert.throws(() => leader.snapshotTaken({ index: 3, term: 7, conf }, 2), /does not match/);
    leader.snapshotTaken({ index: 3, term: 1, conf }, 2);
    assert.equal(leader.status().firstIndex, 3);
  });
});

describe('the leader sends a snapshot when a follower needs compacted entries', () => {
  test('a follower that probes below the first index gets a snap with the latest snapshot meta', () => {
    const leader = leaderWithSnapshot(11);
    // b (probe) rejects, saying its log ends at 0.
    leader.step({ type: 'appResp', from: 'b', to: 'a', term: 2, index: 10, reject: true, hintIndex: 1, hintTerm: 0 });
    const out = sent(leader);
    assert.deepEqual(out.map((m) => [m.type, m.to, m.snapshot?.meta.index]), [['snap', 'b', 11]]);
    assert.equal(out[0]!.snapshot!.data, undefined, 'the driver attaches the data');
    const p = leader.status().progress!.find((x) => x.id === 'b')!;
    assert.equal(p.state, 'snapshot');
    // Nothing else goes to b while the snapshot is in flight.
    leader.propose(enc('x'));
    leader.tick();
    assert.equal(sent(leader).filter((m) => m.to === 'b' && m.type === 'app').length, 0);
    // b acknowledges the snapshot: back to replicating, starting after it.
    leader.step({ type: 'appResp', from: 'b', to: 'a', term: 2, index: 11 });
    assert.equal(leader.status().progress!.find((x) => x.id === 'b')!.state, 'replicate');
    const apps = sent(leader).filter((m) => m.to === 'b' && m.type === 'app');
    assert.deepEqual(apps.map((m) => [m.index, m.entries!.map((e) => e.index)]), [[11, [12]]]);
  });

  test('an unacknowledged snapshot is retried after a few election timeouts', () => {
    const leader = leaderWithSnapshot(11);
    leader.step({ type: 'appResp', from: 'b', to: 'a', term: 2, index: 10, reject: true, hintIndex: 1, hintTerm: 0 });
    drain(leader); // the snap is lost
    let resent = 0;
    for (let i = 0; i < 60; i++) {
      leader.tick();
      const out = sent(leader);
      resent += out.filter((m) => m.type === 'snap' && m.to === 'b').length;
      for (const m of out) if (m.type === 'heartbeat') leader.step({ type: 'heartbeatResp', from: m.to, to: 'a', term: 2 });
    }
    assert.ok(resent >= 1, 'snapshot re-sent');
  });
});

describe('the follower receives a snapshot', () => {
  const meta: SnapshotMeta = { index: 20, term: 3, conf: { voters: ['a', 'b', 'c', 'd'], learners: [] } };

  test('installs it when it is ahead of its commit: log reset, membership from the snapshot', () => {
    const f = newCore('b', { terms: [1, 1, 2], term: 2, commit: 2, applied: 2 });
    drain(f);
    f.step({ type: 'snap', from: 'a', to: 'b', term: 3, snapshot: { meta, data: enc('state') } });
    const s = f.status();
    assert.deepEqual([s.commit, s.firstIndex, s.lastIndex], [20, 21, 20]);
    assert.deepEqual(s.conf.voters, ['a', 'b', 'c', 'd']);
    const rd = drain(f);
    assert.deepEqual(rd.snapshot, { meta, data: enc('state') });
    assert.equal(rd.mustSync, true);
    assert.deepEqual(rd.committed, [], 'nothing before the snapshot is applied');
    assert.deepEqual(rd.messages.map((m) => [m.type, m.index]), [['appResp', 20]]);
    assert.equal(rd.hardState!.commit, 20);
    assert.equal(f.status().applied, 20);
    assert.equal(f.stats.snapshotsInstalled, 1);
    // The next append continues after the snapshot.
    f.step({ type: 'app', from: 'a', to: 'b', term: 3, index: 20, logTerm: 3, entries: entriesWithTerms([3], 21), commit: 21 });
    const rd2 = drain(f);
    assert.deepEqual(rd2.committed.map((e) => e.index), [21]);
  });

  test('ignores a snapshot at or below its commit index, answering with its commit', () => {
    const f = newCore('b', { terms: Array(25).fill(1), term: 3, commit: 22 });
    drain(f);
    f.step({ type: 'snap', from: 'a', to: 'b', term: 3, snapshot: { meta: { ...meta, index: 20, term: 1 }, data: new Uint8Array() } });
    assert.equal(f.status().firstIndex, 1);
    assert.deepEqual(sent(f).map((m) => [m.type, m.index]), [['appResp', 22]]);
    assert.equal(drain(f).snapshot, undefined);
  });

  test('fast-forwards its commit when it already holds the snapshot\'s last entry', () => {
    const f = newCore('b', { terms: Array(25).fill(1), term: 3, commit: 5 });
    drain(f);
    f.step({ type: 'snap', from: 'a', to: 'b', term: 3, snapshot: { meta: { ...meta, index: 20, term: 1 }, data: new Uint8Array() } });
    const s = f.status();
    assert.deepEqual([s.commit, s.firstIndex, s.lastIndex], [20, 1, 25], 'log kept, commit moved');
    const rd = drain(f);
    assert.equal(rd.snapshot, undefined);
    assert.deepEqual(rd.messages.map((m) => [m.type, m.index]), [['appResp', 20]]);
  });
});

describe('restart from a snapshot', () => {
  test('a node restarts with a snapshot plus trailing entries, and can serve them', () => {
    const core = new RaftCore({
      id: 'a', electionTicks: 10, heartbeatTicks: 1, random: seededRandom(3), preVote: false,
      initial: {
        hardState: { term: 2, vote: '', commit: 12 },
        snapshot: { index: 10, term: 2, conf },
        // Compaction kept entries 8..10 below the snapshot index.
        entries: entriesWithTerms([1, 2, 2, 2, 2], 8),
        applied: 10,
      },
    });
    const s = core.status();
    assert.deepEqual([s.firstIndex, s.lastIndex, s.commit, s.applied], [8, 12, 12, 10]);
    const rd = drain(core);
    assert.deepEqual(rd.committed.map((e) => e.index), [11, 12], 'applies only what the snapshot lacks');
  });

  test('an initial state whose entries disagree with the snapshot is refused', () => {
    assert.throws(() => new RaftCore({
      id: 'a', electionTicks: 10, heartbeatTicks: 1, random: Math.random,
      initial: { hardState: { term: 2, vote: '', commit: 10 }, snapshot: { index: 10, term: 2, conf }, entries: entriesWithTerms([1, 1, 1], 9) },
    }), /snapshot index/);
  });
});

describe('snapshot scenario', () => {
  test('a follower that was down while the log was compacted catches up by snapshot', () => {
    const net = new Network(['a', 'b', 'c']);
    net.elect('a');
    net.isolate('c');
    for (let i = 0; i < 30; i++) net.core('a').propose(enc(`v${i}`));
    net.settle();
    for (const id of ['a', 'b']) {
      const n = net.node(id);
      const s = n.core.status();
      const meta = { index: s.applied, term: n.core.term, conf };
      n.storage.snapshot = { meta, data: enc(`snap@${s.applied}`) };
      n.core.snapshotTaken(meta, s.applied - 2);
    }
    net.heal();
    // The driver attaches snapshot data to 'snap' messages.
    net.filter = (m) => {
      if (m.type === 'snap') m.snapshot = { meta: m.snapshot!.meta, data: net.node(m.from).storage.snapshot!.data };
      return true;
    };
    net.run(5);
    net.core('a').propose(enc('after'));
    net.settle();
    const c = net.node('c');
    assert.equal(net.core('a').stats.snapshotsSent, 1);
    assert.equal(c.core.stats.snapshotsInstalled, 1);
    assert.equal(c.storage.snapshot!.meta.index, net.node('a').storage.snapshot!.meta.index);
    assert.deepEqual(net.appliedData('c').slice(-1), ['after']);
    assert.equal(c.core.status().commit, net.core('a').status().commit);
  });
});
