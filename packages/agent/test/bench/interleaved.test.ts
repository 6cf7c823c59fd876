// bench:kv --acl's statistics (packages/agent/bench/interleaved.ts): the slot order of a round, the
// median's order-statistic confidence interval, and the verdict against a target with a control.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ROUND_ORDERS, roundSlots, spread, verdict } from '../../bench/interleaved.ts';

test('a round runs XYZZYX, and six rounds put each server first twice and in every order once', () => {
  assert.deepEqual(roundSlots(0), [0, 1, 2, 2, 1, 0]);
  assert.deepEqual(roundSlots(1), [1, 2, 0, 0, 2, 1]);
  assert.deepEqual(roundSlots(6), roundSlots(0));
  const firsts = [0, 0, 0];
  const orders = new Set<string>();
  for (let r = 0; r < 6; r++) {
    const s = roundSlots(r);
    firsts[s[0]!]!++;
    orders.add(s.slice(0, 3).join(''));
    // Each server twice, and its mean position the middle of the round (2.5): no drift favours one.
    for (const i of [0, 1, 2]) {
      const pos = s.flatMap((x, p) => (x === i ? [p] : []));
      assert.equal(pos.length, 2);
      assert.equal((pos[0]! + pos[1]!) / 2, 2.5);
    }
  }
  assert.deepEqual(firsts, [2, 2, 2]);
  assert.equal(orders.size, ROUND_ORDERS.length);
});

test('the median and its confidence interval come from order statistics', () => {
  const six = spread([1.0, 0.7, 1.2, 0.9, 1.1, 0.95]);
  assert.equal(six.median, (0.95 + 1.0) / 2);
  assert.deepEqual([six.min, six.max, six.ciLow, six.ciHigh], [0.7, 1.2, 0.7, 1.2]);
  assert.equal(six.ciCoverage, 1 - 2 / 64); // the range of 6: 96.9%
  // 12 rounds: x(3) and x(10), coverage 1 - 2 * P(Bin(12, 1/2) <= 2) = 1 - 2 * 79/4096.
  const twelve = spread([12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1]);
  assert.deepEqual([twelve.median, twelve.ciLow, twelve.ciHigh], [6.5, 3, 10]);
  assert.ok(Math.abs(twelve.ciCoverage - (1 - (2 * 79) / 4096)) < 1e-12);
  // Fewer than 6 rounds: the range, with what it covers.
  const three = spread([3, 1, 2]);
  assert.deepEqual([three.median, three.ciLow, three.ciHigh, three.ciCoverage], [2, 1, 3, 0.75]);
  assert.throws(() => spread([]), /no values/);
});

test('the verdict reads the interval against the target and the control\'s noise floor', () => {
  const quietControl = spread([0.99, 1.01, 1.0, 1.02, 0.98, 1.0]);
  assert.equal(verdict(spread([0.97, 0.99, 0.98, 1.0, 0.96, 0.98]), quietControl, 0.9).verdict, 'met');
  assert.equal(verdict(spread([0.8, 0.82, 0.81, 0.79, 0.85, 0.8]), quietControl, 0.9).verdict, 'NOT met');
  // A median above the target but an interval reaching below it: not decided.
  assert.equal(verdict(spread([0.97, 0.99, 0.85, 1.0, 0.96, 0.98]), quietControl, 0.9).verdict, 'undecided');
  // The same tight ACL rounds, but two identical servers differing by 8%: 0.96 - 0.08 < 0.9.
  const noisyControl = spread([1.08, 1.07, 1.09, 1.08, 1.1, 1.06]);
  const v = verdict(spread([0.97, 0.99, 0.98, 1.0, 0.96, 0.98]), noisyControl, 0.9);
  assert.equal(v.verdict, 'undecided');
  assert.ok(Math.abs(v.noise - 0.08) < 1e-9);
  assert.ok(Math.abs(v.margin - 0.08) < 1e-9);
});
