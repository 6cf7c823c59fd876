// The checker is the oracle for the whole simulator, so it is tested against hand-made histories
// (both verdicts) and against a brute-force enumeration of every legal order on random histories.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { checkLinearizability, type Operation } from '../../src/sim/linearizability.ts';
import { kvModel, type KvInput, type KvOutput } from '../../src/sim/kv.ts';
import { HistoryRecorder } from '../../src/sim/history.ts';

type Op = Operation<KvInput, KvOutput>;
const put = (client: number, key: string, value: string, call: number, ret: number): Op =>
  ({ client, input: { kind: 'put', key, value }, output: ret === Infinity ? undefined : { kind: 'put' }, call, ret });
const get = (client: number, key: string, value: string | null, call: number, ret: number): Op =>
  ({ client, input: { kind: 'get', key }, output: { kind: 'get', value }, call, ret });
const cas = (client: number, key: string, expected: string | null, value: string, ok: boolean | undefined, call: number, ret: number): Op =>
  ({ client, input: { kind: 'cas', key, expected, value }, output: ok === undefined ? undefined : { kind: 'cas', ok }, call, ret });

const check = (h: Op[]) => checkLinearizability(kvModel, h);

describe('linearizability checker: hand-made histories', () => {
  const cases: Array<{ name: string; history: Op[]; ok: boolean }> = [
    { name: 'empty history', history: [], ok: true },
    { name: 'sequential put then get of it', history: [put(0, 'x', '1', 1, 2), get(1, 'x', '1', 3, 4)], ok: true },
    { name: 'stale read: get returns the overwritten value after the overwrite returned',
      history: [put(0, 'x', '1', 1, 2), put(0, 'x', '2', 3, 4), get(1, 'x', '1', 5, 6)], ok: false },
    { name: 'lost write: a completed put is not visible to a later read',
      history: [put(0, 'x', '1', 1, 2), get(1, 'x', null, 3, 4)], ok: false },
    { name: 'read concurrent with a put may see either value',
      history: [put(0, 'x', '1', 1, 10), get(1, 'x', null, 2, 3), get(2, 'x', '1', 4, 5)], ok: true },
    { name: 'reads concurrent with a put must not go back in time',
      history: [put(0, 'x', '1', 1, 10), get(1, 'x', '1', 2, 3), get(2, 'x', null, 4, 5)], ok: false },
    { name: 'timed-out put may take effect late',
      history: [put(0, 'x', '1', 1, Infinity), get(1, 'x', null, 2, 3), get(1, 'x', '1', 50, 51)], ok: true },
    { name: 'timed-out put may never take effect',
      history: [put(0, 'x', '1', 1, Infinity), get(1, 'x', null, 50, 51)], ok: true },
    { name: 'timed-out put cannot be undone once seen',
      history: [put(0, 'x', '1', 1, Infinity), get(1, 'x', '1', 2, 3), get(1, 'x', null, 4, 5)], ok: false },
    { name: 'two sequential cas from the same expected value cannot both succeed',
      history: [put(0, 'x', 'a', 1, 2), cas(1, 'x', 'a', 'b', true, 3, 4), cas(2, 'x', 'a', 'c', true, 5, 6)], ok: false },
    { name: 'two concurrent cas from the same expected value cannot both succeed',
      history: [put(0, 'x', 'a', 1, 2), cas(1, 'x', 'a', 'b', true, 3, 6), cas(2, 'x', 'a', 'c', true, 4, 5)], ok: false },
    { name: 'concurrent cas: one wins, the other fails, a read sees the winner',
      history: [put(0, 'x', 'a', 1, 2), cas(1, 'x', 'a', 'b', false, 3, 6), cas(2, 'x', 'a', 'c', true, 4, 5), get(0, 'x', 'c', 7, 8)], ok: true },
    { name: 'failed cas must have seen a different value',
      history: [put(0, 'x', 'a', 1, 2), cas(1, 'x', 'a', 'b', false, 3, 4)], ok: false },
    { name: 'timed-out cas explains a later value',
      history: [cas(1, 'x', null, 'b', undefined, 1, Infinity), get(0, 'x', 'b', 5, 6)], ok: true },
    { name: 'keys are independent: a stale read on y is caught among good ops on x',
      history: [put(0, 'x', '1', 1, 2), get(1, 'x', '1', 3, 4), put(0, 'y', '1', 5, 6), put(0, 'y', '2', 7, 8), get(1, 'y', '1', 9, 10)], ok: false },
    { name: 'touching intervals are concurrent (call and return at one instant)',
      history: [put(0, 'x', '1', 1, 3), get(1, 'x', null, 3, 4)], ok: true },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const r = check(c.history);
      assert.equal(r.ok, c.ok, r.ok === false ? r.explanation : `expected ${c.ok}`);
    });
  }

  test('a rejection names the key and explains the longest legal order', () => {
    const r = check([put(0, 'k', '1', 1, 2), put(0, 'k', '2', 3, 4), get(1, 'k', '1', 5, 6)]);
    assert.equal(r.ok, false);
    if (r.ok !== false) return;
    assert.equal(r.partition, 'k');
    assert.equal(r.longestPrefix.length, 2);
    assert.match(r.explanation, /get\(k\) → "1"/);
  });

  test('a spent search budget answers unknown, never ok', () => {
    // Many concurrent puts and a final read nobody wrote: refuting it needs a real search.
    const h: Op[] = [];
    for (let i = 0; i < 12; i++) h.push(put(i, 'x', String(i), 1 + i, 100 + i));
    h.push(get(0, 'x', 'nobody', 200, 201));
    assert.equal(checkLinearizability(kvModel, h, { maxSearchSteps: 50 }).ok, 'unknown');
    assert.equal(checkLinearizability(kvModel, h).ok, false);
  });

  test('rejects malformed histories', () => {
    assert.throws(() => check([{ ...put(0, 'x', '1', 1, 2), output: undefined }]), /unknown outcomes must return at Infinity/);
    assert.throws(() => check([put(0, 'x', '1', 5, 2)]), /before its call/);
  });
});

/** Every order consistent with real time, simulated: exponential, fine for ≤ 6 operations. */
function bruteForce(history: Op[]): boolean {
  const n = history.length;
  const used = new Array<boolean>(n).fill(false);
  const rec = (depth: number, state: string | null): boolean => {
    if (depth === n) return true;
    for (let i = 0; i < n; i++) {
      if (used[i]) continue;
      // i may go next only if no unused op returned before i was called.
      if (history.some((o, j) => !used[j] && j !== i && o.ret < history[i]!.call)) continue;
      const r = kvModel.step(state, history[i]!.input, history[i]!.output);
      if (!r.ok) continue;
      used[i] = true;
      if (rec(depth + 1, r.state)) return true;
      used[i] = false;
    }
    return false;
  };
  return rec(0, null);
}

describe('linearizability checker: agrees with brute force', () => {
  test('random small single-key histories', () => {
    const value = fc.constantFrom('a', 'b', 'c');
    const maybeValue = fc.constantFrom<string | null>(null, 'a', 'b');
    const opArb = fc.record({
      kind: fc.constantFrom('put', 'get', 'cas'),
      value, expected: maybeValue, read: maybeValue, casOk: fc.boolean(),
      call: fc.integer({ min: 0, max: 20 }), len: fc.integer({ min: 0, max: 8 }), unknown: fc.boolean(),
    });
    fc.assert(fc.property(fc.array(opArb, { minLength: 1, maxLength: 6 }), (raw) => {
      const history: Op[] = raw.map((r, i) => {
        const ret = r.unknown && r.kind !== 'get' ? Infinity : r.call + r.len;
        if (r.kind === 'put') return put(i, 'x', r.value, r.call, ret);
        if (r.kind === 'get') return get(i, 'x', r.read, r.call, ret);
        return cas(i, 'x', r.expected, r.value, ret === Infinity ? undefined : r.casOk, r.call, ret);
      });
      assert.equal(check(history).ok, bruteForce(history));
    }), { numRuns: 3000, seed: 42 });
  });
});

describe('history recorder', () => {
  test('records call/return order, drops failures, keeps indeterminate writes at +∞', () => {
    const h = new HistoryRecorder<KvInput, KvOutput>();
    const a = h.invoke(0, { kind: 'put', key: 'x', value: '1' });
    const b = h.invoke(1, { kind: 'get', key: 'x' });
    const c = h.invoke(2, { kind: 'put', key: 'x', value: '2' });
    const d = h.invoke(3, { kind: 'get', key: 'x' });
    h.ok(a, { kind: 'put' });
    h.fail(c);
    h.indeterminate(d, false);
    const e = h.invoke(0, { kind: 'put', key: 'x', value: '3' });
    h.indeterminate(e, true);
    const ops = h.operations();
    assert.equal(ops.length, 3); // a, e, and b (still pending → indeterminate)
    const [opA, opE, opB] = ops;
    assert.equal(opA!.call, 1);
    assert.equal(opA!.ret, 5);
    assert.equal(opE!.ret, Infinity);
    assert.equal(opB!.output, undefined);
    assert.equal(h.operations((i) => i.kind === 'get').length, 2);
    assert.throws(() => h.ok(a, { kind: 'put' }), /not pending/);
    assert.deepEqual(h.counts, { invoked: 5, ok: 1, failed: 1, indeterminate: 2 });
  });
});
