// Table tests for the core's building blocks: the in-memory log, per-peer progress, quorum
// arithmetic and the ReadIndex queue.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { RaftLog } from '../../src/core/log.ts';
import { Inflights, Progress } from '../../src/core/progress.ts';
import { committedIndex, voteResult } from '../../src/core/quorum.ts';
import { ReadOnlyQueue } from '../../src/core/readOnly.ts';
import { entriesWithTerms } from './helpers.ts';

/** A log with the given terms at indexes offset+1.. */
function logOf(terms: number[], offset = 0, offsetTerm = 0, committed = 0): RaftLog {
  return new RaftLog(offset, offsetTerm, entriesWithTerms(terms, offset + 1), committed);
}

describe('RaftLog', () => {
  const findConflict: Array<[string, number[], number[], number, number]> = [
    // name, log terms, new entry terms, new entries' first index, expected conflict
    ['no entries', [1, 2, 3], [], 1, 0],
    ['all present', [1, 2, 3], [2, 3], 2, 0],
    ['beyond the end', [1, 2, 3], [3, 4], 3, 4],
    ['term differs mid-log', [1, 2, 3], [4, 4], 2, 2],
    ['entirely new', [1, 2, 3], [4], 4, 4],
  ];
  for (const [name, terms, ents, from, want] of findConflict) {
    test(`findConflict: ${name}`, () => {
      assert.equal(logOf(terms).findConflict(entriesWithTerms(ents, from)), want);
    });
  }

  test('append truncates a conflicting suffix and lowers the unstable mark', () => {
    const log = logOf([1, 1, 2, 2]);
    log.markHandedOut(4);
    assert.deepEqual(log.unstableEntries(), []);
    assert.equal(log.append(entriesWithTerms([3], 3)), 3);
    assert.deepEqual(log.unstableEntries().map((e) => [e.index, e.term]), [[3, 3]]);
    assert.equal(log.lastIndex(), 3);
  });

  const upToDate: Array<[string, number, number, boolean]> = [
    ['higher term, shorter', 1, 3, true],
    ['same term, longer', 4, 2, true],
    ['same term, equal', 3, 2, true],
    ['same term, shorter', 2, 2, false],
    ['lower term, longer', 9, 1, false],
  ];
  for (const [name, idx, term, want] of upToDate) {
    test(`isUpToDate (§5.4.1) against [1,2,2]: ${name}`, () => {
      assert.equal(logOf([1, 2, 2]).isUpToDate(idx, term), want);
    });
  }

  test('term lookups around a compaction offset', () => {
    const log = logOf([3, 3, 4], 10, 2);
    assert.deepEqual([log.term(9), log.term(10), log.term(11), log.term(13), log.term(14)], [undefined, 2, 3, 4, undefined]);
    assert.equal(log.slice(10, 12), undefined, 'compacted start');
    log.compact(12);
    assert.deepEqual([log.firstIndex(), log.term(12), log.lastIndex()], [13, 3, 13]);
  });

  const firstOfTerm: Array<[number, number]> = [[2, 2], [4, 2], [5, 5], [7, 5], [1, 1]];
  for (const [i, want] of firstOfTerm) {
    test(`firstIndexOfTerm(${i}) in [1,2,2,2,5,5,5] is ${want}`, () => {
      assert.equal(logOf([1, 2, 2, 2, 5, 5, 5]).firstIndexOfTerm(i), want);
    });
  }

  const atMost: Array<[number, number, number]> = [
    // index, term, expected largest index ≤ index with term ≤ term, in [1,2,2,2,5,5,5]
    [7, 5, 7], [7, 4, 4], [7, 2, 4], [7, 1, 1], [7, 0, 0], [3, 5, 3],
  ];
  for (const [i, t, want] of atMost) {
    test(`lastIndexWithTermAtMost(${i}, ${t}) = ${want}`, () => {
      assert.equal(logOf([1, 2, 2, 2, 5, 5, 5]).lastIndexWithTermAtMost(i, t), want);
    });
  }

  test('slice honours the byte cap but always returns one entry', () => {
    const log = new RaftLog(0, 0, [1, 2, 3].map((i) => ({ index: i, term: 1, kind: 'normal' as const, data: new Uint8Array(100) })), 0);
    assert.equal(log.slice(1, 3, 50)!.length, 1);
    assert.equal(log.slice(1, 3, 250)!.length, 2);
    assert.equal(log.slice(1, 3)!.length, 3);
  });
});

describe('Progress', () => {
  const decr: Array<[string, 'probe' | 'replicate', number, number, number, number, boolean, number]> = [
    // name, state, match, next, rejected, matchHint, accepted, next after
    ['probe: fresh rejection uses the hint', 'probe', 0, 11, 10, 4, true, 5],
    ['probe: hint above rejected is clamped', 'probe', 0, 11, 10, 20, true, 10],
    ['probe: never below match + 1', 'probe', 6, 11, 10, 2, true, 7],
    ['probe: stale rejection', 'probe', 0, 11, 7, 3, false, 11],
    ['replicate: restart after match', 'replicate', 5, 20, 12, 3, true, 6],
    ['replicate: rejection at or below match is stale', 'replicate', 5, 20, 5, 3, false, 20],
  ];
  for (const [name, state, match, next, rejected, hint, ok, nextAfter] of decr) {
    test(`maybeDecrTo ${name}`, () => {
      const p = new Progress('b', next, 8, false);
      p.match = match;
      if (state === 'replicate') {
        p.becomeReplicate();
        p.next = next;
      }
      assert.equal(p.maybeDecrTo(rejected, hint), ok);
      assert.equal(p.next, nextAfter);
    });
  }

  test('inflights: full at capacity, freed cumulatively', () => {
    const inf = new Inflights(3);
    inf.add(5); inf.add(9); inf.add(12);
    assert.equal(inf.full(), true);
    inf.freeLE(9);
    assert.equal(inf.count, 1);
    inf.freeLE(100);
    assert.equal(inf.count, 0);
  });
});

describe('quorum', () => {
  const commits: Array<[string[], Record<string, number>, number]> = [
    [['a'], { a: 5 }, 5],
    [['a', 'b', 'c'], { a: 5, b: 3, c: 1 }, 3],
    [['a', 'b', 'c', 'd'], { a: 5, b: 3, c: 1, d: 0 }, 1],
    [['a', 'b', 'c', 'd', 'e'], { a: 9, b: 9, c: 2, d: 8, e: 1 }, 8],
    [[], {}, 0],
  ];
  for (const [voters, match, want] of commits) {
    test(`committedIndex over ${voters.length} voters = ${want}`, () => {
      assert.equal(committedIndex(voters, (id) => match[id] ?? 0), want);
    });
  }

  const votes: Array<[string[], Array<[string, boolean]>, string]> = [
    [['a', 'b', 'c'], [['a', true]], 'pending'],
    [['a', 'b', 'c'], [['a', true], ['b', true]], 'won'],
    [['a', 'b', 'c'], [['a', true], ['b', false], ['c', false]], 'lost'],
    [['a', 'b', 'c', 'd'], [['a', true], ['b', true]], 'pending'],
    [['a', 'b', 'c', 'd'], [['a', true], ['b', false], ['c', false]], 'lost'],
    [['a', 'b', 'c'], [['a', true], ['x', true]], 'pending'],
  ];
  for (const [voters, vs, want] of votes) {
    test(`voteResult ${JSON.stringify(vs)} of ${voters.join('')} → ${want}`, () => {
      assert.equal(voteResult(voters, new Map(vs)), want);
    });
  }
});

describe('ReadOnlyQueue', () => {
  test('advancing a later context releases the earlier ones in order; unknown contexts do nothing', () => {
    const q = new ReadOnlyQueue();
    q.add(3, 'r1', 'a');
    q.add(4, 'r2', 'a');
    q.add(4, 'r2', 'a'); // duplicate ignored
    assert.equal(q.size, 2);
    assert.equal(q.lastContext(), 'r2');
    assert.equal(q.recvAck('b', 'nope'), undefined);
    assert.deepEqual([...q.recvAck('b', 'r2')!].sort(), ['a', 'b']);
    assert.deepEqual(q.advance('r2'), [{ index: 3, context: 'r1' }, { index: 4, context: 'r2' }]);
    assert.equal(q.size, 0);
  });
});
