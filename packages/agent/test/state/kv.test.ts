import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { inspect } from 'node:util';
import { Harness, SESSION_A, SESSION_B, bytes, text } from './helpers.ts';
import type { Command } from '../../src/state/types.ts';

describe('KV set / get', () => {
  test('set stamps Create/ModifyIndex from the Raft index; update keeps CreateIndex', () => {
    const h = new Harness();
    h.ok({ type: 'kvSet', Key: 'foo', Value: bytes('bar'), Flags: 42 });
    let r = h.store.kvGet('foo');
    assert.equal(r.index, 1);
    assert.deepEqual({ ...r.value!, Value: text(r.value!.Value) }, { LockIndex: 0, Key: 'foo', Flags: 42n, Value: 'bar', CreateIndex: 1, ModifyIndex: 1 });
    h.ok({ type: 'kvSet', Key: 'other', Value: bytes('x') });
    h.ok({ type: 'kvSet', Key: 'foo', Value: bytes('baz') });
    r = h.store.kvGet('foo');
    assert.equal(r.value!.CreateIndex, 1);
    assert.equal(r.value!.ModifyIndex, 3);
    assert.equal(r.value!.Flags, 0n, 'flags come from the request, as in Consul');
    assert.equal(r.index, 3, 'a single key answers its ModifyIndex');
  });

  test('a missing key answers the KV table index (≥ 1) and null', () => {
    const h = new Harness();
    assert.deepEqual(h.store.kvGet('nope'), { index: 1, value: null });
    h.ok({ type: 'kvSet', Key: 'a', Value: bytes('1') });
    h.ok({ type: 'kvSet', Key: 'b', Value: bytes('1') });
    assert.deepEqual(h.store.kvGet('nope'), { index: 2, value: null });
  });

  test('a set that changes nothing does not move any index', () => {
    const h = new Harness();
    h.ok({ type: 'kvSet', Key: 'k', Value: bytes('v'), Flags: 1 });
    h.ok({ type: 'kvSet', Key: 'k', Value: bytes('v'), Flags: 1 });
    assert.equal(h.store.kvGet('k').value!.ModifyIndex, 1);
    assert.equal(h.store.tableIndex('kvs'), 1);
  });

  test('stored rows are frozen and readers keep what they read', () => {
    const h = new Harness();
    h.ok({ type: 'kvSet', Key: 'k', Value: bytes('one') });
    const before = h.store.kvGet('k').value!;
    assert.ok(Object.isFrozen(before));
    h.ok({ type: 'kvSet', Key: 'k', Value: bytes('two') });
    assert.equal(text(before.Value), 'one');
    assert.equal(text(h.store.kvGet('k').value!.Value), 'two');
  });

  const refused: { name: string; cmd: Command; code: string; message: RegExp }[] = [
    { name: 'empty key', cmd: { type: 'kvSet', Key: '', Value: bytes('x') }, code: 'ERR_INVALID_KEY', message: /^Missing key name$/ },
    { name: 'non-string key', cmd: { type: 'kvSet', Key: 7 as never, Value: bytes('x') }, code: 'ERR_INVALID_REQUEST', message: /Key must be a string/ },
    { name: 'negative flags', cmd: { type: 'kvSet', Key: 'k', Value: bytes('x'), Flags: -1 }, code: 'ERR_INVALID_REQUEST', message: /Flags must be a non-negative integer/ },
    { name: 'value not bytes', cmd: { type: 'kvSet', Key: 'k', Value: 'str' as never }, code: 'ERR_INVALID_REQUEST', message: /Value must be bytes/ },
    { name: 'lock without session', cmd: { type: 'kvLock', Key: 'k', Value: bytes(''), Session: '' }, code: 'ERR_INVALID_SESSION', message: /^missing session$/ },
  ];
  for (const c of refused) {
    test(`refuses ${c.name} and changes nothing`, () => {
      const h = new Harness();
      const err = h.fail(c.cmd);
      assert.equal(err.code, c.code);
      assert.match(err.message, c.message);
      assert.equal(h.store.kvList('').value.length, 0);
      assert.equal(h.store.tableIndex('kvs'), 1);
    });
  }
});

describe('KV cas', () => {
  const cases: { name: string; setup: boolean; index: (modify: number) => number; expect: boolean }[] = [
    { name: 'cas=0 on a missing key creates it', setup: false, index: () => 0, expect: true },
    { name: 'cas=0 on an existing key fails', setup: true, index: () => 0, expect: false },
    { name: 'cas=ModifyIndex succeeds', setup: true, index: (m) => m, expect: true },
    { name: 'cas=stale index fails', setup: true, index: (m) => m + 100, expect: false },
    { name: 'cas=N on a missing key fails', setup: false, index: () => 5, expect: false },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const h = new Harness();
      if (c.setup) h.ok({ type: 'kvSet', Key: 'k', Value: bytes('old') });
      const modify = h.store.kvGet('k').value?.ModifyIndex ?? 0;
      assert.equal(h.ok({ type: 'kvCas', Key: 'k', Value: bytes('new'), Index: c.index(modify) }), c.expect);
      const expected = c.expect ? 'new' : c.setup ? 'old' : null;
      assert.equal(text(h.store.kvGet('k').value?.Value), expected);
    });
  }
});

describe('KV delete', () => {
  test('delete-cas: true when the key is already gone, false on a stale index', () => {
    const h = new Harness();
    assert.equal(h.ok({ type: 'kvDeleteCas', Key: 'gone', Index: 9 }), true);
    h.ok({ type: 'kvSet', Key: 'k', Value: bytes('v') });
    assert.equal(h.ok({ type: 'kvDeleteCas', Key: 'k', Index: 1 }), false);
    assert.ok(h.store.kvGet('k').value);
    assert.equal(h.ok({ type: 'kvDeleteCas', Key: 'k', Index: 2 }), true);
    assert.equal(h.store.kvGet('k').value, null);
  });

  test('deleting a missing key moves no index', () => {
    const h = new Harness();
    h.ok({ type: 'kvSet', Key: 'k', Value: bytes('v') });
    h.ok({ type: 'kvDelete', Key: 'nope' });
    assert.equal(h.store.tableIndex('kvs', 'tombstones'), 1);
  });

  test('tombstones keep a prefix list index from sliding back, until reaped (Consul TestStateStore_KVSList)', () => {
    const h = new Harness();
    h.ok({ type: 'kvSet', Key: 'foo', Value: bytes('') }); // 1
    h.ok({ type: 'kvSet', Key: 'foo/bar', Value: bytes('') }); // 2
    h.ok({ type: 'kvSet', Key: 'foo/bar/zip', Value: bytes('') }); // 3
    h.ok({ type: 'kvSet', Key: 'foo/bar/zip/zorp', Value: bytes('') }); // 4
    h.ok({ type: 'kvSet', Key: 'foo/bar/baz', Value: bytes('') }); // 5
    assert.equal(h.store.kvList('').index, 5);
    assert.equal(h.store.kvList('foo/bar/zip').index, 4);
    assert.deepEqual(h.store.kvList('foo/bar/zip').value.map((e) => e.Key), ['foo/bar/zip', 'foo/bar/zip/zorp']);
    h.ok({ type: 'kvDelete', Key: 'foo/bar/baz' }); // 6
    h.ok({ type: 'kvSet', Key: 'some/other/key', Value: bytes('') }); // 7
    assert.equal(h.store.kvList('foo/bar/baz').index, 6, 'the tombstone answers');
    h.ok({ type: 'kvTombstoneReap', UpToIndex: 6 }); // 8
    assert.equal(h.store.kvList('foo/bar/baz').index, 7, 'no entries and no tombstones: the table index');
    assert.equal(h.store.kvList('foo/bar').index, 4, 'after reaping, the sub index slides back (as in Consul)');
  });

  test('delete-tree removes exactly the prefix and leaves one tombstone for it', () => {
    const h = new Harness();
    for (const k of ['a', 'a/1', 'a/2', 'ab', 'b']) h.ok({ type: 'kvSet', Key: k, Value: bytes(k) });
    h.ok({ type: 'kvDeleteTree', Prefix: 'a/' }); // 6
    assert.deepEqual(h.store.kvList('').value.map((e) => e.Key), ['a', 'ab', 'b']);
    assert.equal(h.store.kvList('a/').index, 6);
    h.ok({ type: 'kvDeleteTree', Prefix: '' });
    assert.deepEqual(h.store.kvList('').value, []);
  });
});

describe('KV keys with separator', () => {
  test("folds at the first separator after the prefix (Consul's KVSListKeys table)", () => {
    const h = new Harness();
    for (const k of ['foo', 'foo/bar', 'foo/bar/baz', 'foo/bar/zip', 'foo/bar/zip/zam', 'foo/bar/zip/zorp', 'some/other/prefix']) {
      h.ok({ type: 'kvSet', Key: k, Value: bytes('') });
    }
    assert.deepEqual(h.store.kvKeys('', ''), { index: 7, value: ['foo', 'foo/bar', 'foo/bar/baz', 'foo/bar/zip', 'foo/bar/zip/zam', 'foo/bar/zip/zorp', 'some/other/prefix'] });
    assert.deepEqual(h.store.kvKeys('foo/bar/', '/'), { index: 6, value: ['foo/bar/baz', 'foo/bar/zip', 'foo/bar/zip/'] });
    assert.deepEqual(h.store.kvKeys('', '/').value, ['foo', 'foo/', 'some/']);
    assert.deepEqual(h.store.kvKeys('foo', '').value.length, 6);
  });
});

describe('KV against a Map model (property)', () => {
  // Keys from a tiny alphabet so operations collide, prefixes overlap and separators fold.
  const keyArb = fc.stringMatching(/^[ab/]{1,4}$/);
  const opArb = fc.oneof(
    fc.record({ op: fc.constant('set' as const), key: keyArb, value: fc.constantFrom('x', 'y', ''), flags: fc.constantFrom(0n, 1n, 2n ** 53n + 1n, 2n ** 64n - 1n) }),
    fc.record({ op: fc.constant('cas' as const), key: keyArb, value: fc.constantFrom('x', 'z'), pick: fc.constantFrom('zero', 'current', 'stale') }),
    fc.record({ op: fc.constant('delete' as const), key: keyArb }),
    fc.record({ op: fc.constant('deleteCas' as const), key: keyArb, pick: fc.constantFrom('current', 'stale') }),
    fc.record({ op: fc.constant('deleteTree' as const), key: fc.stringMatching(/^[ab/]{0,2}$/) }),
  );

  interface ModelEntry { value: string; flags: bigint; create: number; modify: number }

  test('values, indexes, list and keys agree with the model after every step', () => {
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 1, maxLength: 40 }), (ops) => {
        const h = new Harness();
        const model = new Map<string, ModelEntry>();
        const tombstones = new Map<string, number>();
        let tableIndex = 0;
        ops.forEach((o, i) => {
          const idx = i + 1;
          const cur = model.get(o.key);
          let expected: boolean | true = true;
          let cmd: Command;
          const write = (value: string, flags: bigint) => {
            if (cur && cur.value === value && cur.flags === flags) return; // no-op write
            model.set(o.key, { value, flags, create: cur ? cur.create : idx, modify: idx });
            tableIndex = idx;
          };
          const del = (key: string) => {
            model.delete(key);
            tombstones.set(key, idx);
            tableIndex = idx;
          };
          switch (o.op) {
            case 'set':
              cmd = { type: 'kvSet', Key: o.key, Value: bytes(o.value), Flags: o.flags };
              write(o.value, o.flags);
              break;
            case 'cas': {
              const casIndex = o.pick === 'zero' ? 0 : o.pick === 'current' ? (cur?.modify ?? 0) : (cur?.modify ?? 0) + 1000;
              cmd = { type: 'kvCas', Key: o.key, Value: bytes(o.value), Index: casIndex };
              expected = casIndex === 0 ? !cur : cur !== undefined && cur.modify === casIndex;
              if (expected) write(o.value, 0n);
              break;
            }
            case 'delete':
              cmd = { type: 'kvDelete', Key: o.key };
              if (cur) del(o.key);
              break;
            case 'deleteCas': {
              const casIndex = o.pick === 'current' ? (cur?.modify ?? 0) : (cur?.modify ?? 0) + 1000;
              cmd = { type: 'kvDeleteCas', Key: o.key, Index: casIndex };
              expected = !cur || cur.modify === casIndex;
              if (cur && expected) del(o.key);
              break;
            }
            case 'deleteTree': {
              cmd = { type: 'kvDeleteTree', Prefix: o.key };
              const doomed = [...model.keys()].filter((k) => k.startsWith(o.key));
              if (doomed.length > 0) {
                for (const k of doomed) model.delete(k);
                tombstones.set(o.key, idx);
                tableIndex = idx;
              }
              break;
            }
          }
          const r = h.apply(cmd);
          assert.ok(r.ok);
          assert.equal(r.value, expected, `step ${idx} ${inspect(o)}`);
        });

        const sorted = [...model.keys()].sort();
        const listed = h.store.kvList('').value;
        assert.deepEqual(listed.map((e) => [e.Key, text(e.Value), e.Flags, e.CreateIndex, e.ModifyIndex]),
          sorted.map((k) => { const m = model.get(k)!; return [k, m.value, m.flags, m.create, m.modify]; }));
        for (const prefix of ['', 'a', 'a/', 'b', 'b/', '/', 'ab']) {
          const under = sorted.filter((k) => k.startsWith(prefix));
          let expectIndex = 0;
          if (prefix === '') expectIndex = tableIndex;
          else {
            for (const k of under) expectIndex = Math.max(expectIndex, model.get(k)!.modify);
            for (const [k, t] of tombstones) if (k.startsWith(prefix)) expectIndex = Math.max(expectIndex, t);
            if (expectIndex === 0) expectIndex = tableIndex;
          }
          expectIndex = Math.max(1, expectIndex);
          const list = h.store.kvList(prefix);
          assert.deepEqual(list.value.map((e) => e.Key), under);
          assert.equal(list.index, expectIndex, `list index of ${JSON.stringify(prefix)}`);
          const folded: string[] = [];
          for (const k of under) {
            const at = k.indexOf('/', prefix.length);
            const f = at === -1 ? k : k.slice(0, at + 1);
            if (folded[folded.length - 1] !== f) folded.push(f);
          }
          assert.deepEqual(h.store.kvKeys(prefix, '/'), { index: expectIndex, value: folded });
        }
        for (const k of ['a', 'b', 'a/b', '/', 'ab/']) {
          const got = h.store.kvGet(k);
          const m = model.get(k);
          assert.equal(text(got.value?.Value), m ? m.value : null);
          assert.equal(got.index, m ? m.modify : Math.max(1, tableIndex));
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('KV locks', () => {
  test('acquire sets the session and LockIndex; re-acquire by the holder keeps LockIndex', () => {
    const h = new Harness();
    h.node('n1');
    h.session(SESSION_A, 'n1');
    assert.equal(h.ok({ type: 'kvLock', Key: 'lock', Value: bytes('a'), Session: SESSION_A }), true);
    assert.deepEqual([h.store.kvGet('lock').value!.LockIndex, h.store.kvGet('lock').value!.Session], [1, SESSION_A]);
    assert.equal(h.ok({ type: 'kvLock', Key: 'lock', Value: bytes('a2'), Session: SESSION_A }), true);
    assert.equal(h.store.kvGet('lock').value!.LockIndex, 1);
    assert.equal(text(h.store.kvGet('lock').value!.Value), 'a2');
  });

  test('a plain set keeps the holder (Consul: it may change the value, not the lock)', () => {
    const h = new Harness();
    h.node('n1');
    h.session(SESSION_A, 'n1');
    h.ok({ type: 'kvLock', Key: 'lock', Value: bytes('a'), Session: SESSION_A });
    h.ok({ type: 'kvSet', Key: 'lock', Value: bytes('stolen') });
    assert.equal(h.store.kvGet('lock').value!.Session, SESSION_A);
  });

  test('acquire with an unknown session is refused with Consul\'s text and changes nothing', () => {
    const h = new Harness();
    const err = h.fail({ type: 'kvLock', Key: 'lock', Value: bytes('x'), Session: 'no-such-session' });
    assert.deepEqual(err, { code: 'ERR_INVALID_SESSION', message: 'invalid session "no-such-session"' });
    assert.equal(h.store.kvGet('lock').value, null);
  });

  test('release only by the holder; the released key keeps its LockIndex', () => {
    const h = new Harness();
    h.node('n1');
    h.session(SESSION_A, 'n1');
    h.session(SESSION_B, 'n1');
    h.ok({ type: 'kvLock', Key: 'lock', Value: bytes('a'), Session: SESSION_A });
    assert.equal(h.ok({ type: 'kvUnlock', Key: 'lock', Value: bytes('b'), Session: SESSION_B }), false);
    assert.equal(h.ok({ type: 'kvUnlock', Key: 'missing', Value: bytes(''), Session: SESSION_A }), false);
    assert.equal(h.ok({ type: 'kvUnlock', Key: 'lock', Value: bytes('done'), Session: SESSION_A }), true);
    const e = h.store.kvGet('lock').value!;
    assert.equal(e.Session, undefined);
    assert.equal(e.LockIndex, 1);
    assert.equal(text(e.Value), 'done');
    assert.equal(h.ok({ type: 'kvLock', Key: 'lock', Value: bytes('b'), Session: SESSION_B }), true);
    assert.equal(h.store.kvGet('lock').value!.LockIndex, 2, 'a new holder bumps LockIndex');
  });
});
