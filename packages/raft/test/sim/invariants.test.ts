// The safety checker must be able to fail: each property is fed a hand-made history that breaks it
// (and a neighbouring one that does not), so a checker that silently accepts everything is caught.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { SafetyChecker, type LogView } from '../../src/sim/invariants.ts';
import { decodeConfChange, encodeConfChange, type Entry } from '../../src/core/types.ts';

const enc = new TextEncoder();
const e = (index: number, term: number, text = `x${index}`): Entry => ({ index, term, kind: 'normal', data: enc.encode(text) });
const conf = (index: number, node: string): Entry => ({ index, term: 1, kind: 'conf', data: encodeConfChange({ type: 'addVoter', node }) });
const log = (entries: Entry[], snapshot?: { index: number; term: number }): LogView => ({
  compactedTo: entries.length > 0 ? entries[0]!.index - 1 : snapshot?.index ?? 0,
  entries,
  snapshot: snapshot ? { meta: snapshot } : undefined,
});

/** A checker bootstrapped with voters a, b, c at indexes 1..3 (term 1). */
function fresh(): { c: SafetyChecker; boot: Entry[] } {
  const c = new SafetyChecker(decodeConfChange);
  const boot = [conf(1, 'a'), conf(2, 'b'), conf(3, 'c')];
  c.bootstrap(boot);
  return { c, boot };
}
const kinds = (c: SafetyChecker) => c.violations.map((v) => v.kind);

describe('election safety', () => {
  test('two leaders in one term are caught', () => {
    const { c, boot } = fresh();
    c.observeLeader('a', 2, log(boot));
    c.observeLeader('a', 2, log(boot)); // the same leader seen again is fine
    assert.deepEqual(kinds(c), []);
    c.observeLeader('b', 2, log(boot));
    assert.deepEqual(kinds(c), ['electionSafety']);
    assert.match(c.violations[0]!.message, /two leaders in term 2: a and b/);
  });
  test('leaders of different terms are fine', () => {
    const { c, boot } = fresh();
    c.observeLeader('a', 2, log(boot));
    c.observeLeader('b', 3, log(boot));
    assert.ok(c.ok);
  });
});

describe('log matching', () => {
  test('one (index, term) naming two different entries is caught', () => {
    const { c, boot } = fresh();
    c.observePersist('a', [e(4, 2, 'put x')], 1);
    c.observePersist('b', [e(4, 2, 'put x')], 1);
    assert.ok(c.ok);
    c.observePersist('c', [e(4, 2, 'put y')], 1);
    assert.deepEqual(kinds(c), ['logMatching']);
    void boot;
  });
  test('the same entry after a different predecessor term is caught', () => {
    const { c } = fresh();
    c.observePersist('a', [e(4, 2), e(5, 3)], 1);
    c.observePersist('b', [e(5, 3)], 1); // b claims (5,3) follows a term-1 entry: prefixes differ
    assert.deepEqual(kinds(c), ['logMatching']);
  });
  test('terms must not decrease along a log', () => {
    const { c } = fresh();
    c.observePersist('a', [e(4, 3), e(5, 2)], 1);
    assert.deepEqual(kinds(c), ['logMatching']);
  });
});

describe('leader completeness', () => {
  test('a new leader missing an entry committed in an earlier term is caught', () => {
    const { c, boot } = fresh();
    const aLog = log([...boot, e(4, 2)]);
    c.observeLeader('a', 2, aLog);
    c.observeLeaderCommit('a', 2, 4, aLog, []);
    c.observeLeader('b', 3, log([...boot])); // b lacks index 4
    assert.deepEqual(kinds(c), ['leaderCompleteness']);
  });
  test('a leader whose snapshot covers the committed entry is complete', () => {
    const { c, boot } = fresh();
    const aLog = log([...boot, e(4, 2)]);
    c.observeLeader('a', 2, aLog);
    c.observeLeaderCommit('a', 2, 4, aLog, []);
    c.observeLeader('b', 3, log([e(5, 3)], { index: 4, term: 2 }));
    assert.ok(c.ok, c.violations[0]?.message);
  });
  test('a commit in term 2 that a live leader of term 3 lacks is caught', () => {
    const { c, boot } = fresh();
    const aLog = log([...boot, e(4, 2)]);
    c.observeLeaderCommit('a', 2, 4, aLog, [{ id: 'b', term: 3, log: log([...boot]) }]);
    assert.deepEqual(kinds(c), ['leaderCompleteness']);
  });
});

describe('state machine safety', () => {
  test('applying a different entry at a committed index is caught', () => {
    const { c, boot } = fresh();
    const aLog = log([...boot, e(4, 2, 'put x=1')]);
    c.observeLeaderCommit('a', 2, 4, aLog, []);
    c.observeApply('a', e(4, 2, 'put x=1'), 'op1');
    assert.ok(c.ok);
    c.observeApply('b', e(4, 3, 'put x=2'), 'op2');
    assert.deepEqual(kinds(c), ['stateMachineSafety']);
  });
  test('applying an index nobody committed is caught', () => {
    const { c } = fresh();
    c.observeApply('a', e(4, 2), undefined);
    assert.deepEqual(kinds(c), ['stateMachineSafety']);
  });
  test('one client operation applied at two indexes is caught', () => {
    const { c, boot } = fresh();
    const aLog = log([...boot, e(4, 2, 'A'), e(5, 2, 'B')]);
    c.observeLeaderCommit('a', 2, 5, aLog, []);
    c.observeApply('a', e(4, 2, 'A'), 'op1');
    c.observeApply('a', e(5, 2, 'B'), 'op1');
    assert.deepEqual(kinds(c), ['duplicateApply']);
  });
  test('a snapshot whose term disagrees with the committed entry is caught', () => {
    const { c, boot } = fresh();
    c.observeLeaderCommit('a', 2, 4, log([...boot, e(4, 2)]), []);
    c.observeSnapshot('b', { index: 4, term: 2 });
    assert.ok(c.ok);
    c.observeSnapshot('b', { index: 4, term: 3 });
    assert.deepEqual(kinds(c), ['stateMachineSafety']);
  });
});

describe('durability (no committed entry lost across crashes)', () => {
  test('committed on a quorum of durable logs: fine', () => {
    const { c, boot } = fresh();
    const full = log([...boot, e(4, 2)]);
    c.observeLeaderCommit('a', 2, 4, full, []);
    c.checkDurability((id) => (id === 'c' ? log(boot) : full));
    assert.ok(c.ok, c.violations[0]?.message);
  });
  test('committed but durable on only one of three: a lagging voter could win, caught', () => {
    const { c, boot } = fresh();
    const full = log([...boot, e(4, 2)]);
    c.observeLeaderCommit('a', 2, 4, full, []);
    c.checkDurability((id) => (id === 'a' ? full : log(boot)));
    assert.deepEqual(kinds(c), ['durability']);
    assert.match(c.violations[0]!.message, /committed index 4/);
  });
  test('a voter lacking the entry but with a longer log of a stale term cannot win: fine', () => {
    const { c, boot } = fresh();
    const full = log([...boot, e(4, 2)]);
    c.observeLeaderCommit('a', 2, 4, full, []);
    // c holds index 4 of term 1 (never committed) and 5 of term 1: less up-to-date than a and b.
    c.checkDurability((id) => (id === 'c' ? log([...boot, e(4, 1, 'stale'), e(5, 1, 'stale')]) : full));
    assert.ok(c.ok, c.violations[0]?.message);
  });
});
