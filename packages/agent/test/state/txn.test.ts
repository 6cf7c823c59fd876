import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Harness, SESSION_A, SESSION_B, bytes, text } from './helpers.ts';
import { isReadOnlyTxn } from '../../src/state/txn.ts';
import type { TxnOp } from '../../src/state/types.ts';

const kv = (Verb: string, Key: string, extra: Record<string, unknown> = {}): TxnOp => ({ KV: { Verb, Key, ...extra } as never });

describe('txn: atomicity and Consul\'s error shape', () => {
  test('a failing op leaves no trace of the ops before or after it, and every error is reported', () => {
    const h = new Harness();
    h.ok({ type: 'kvSet', Key: 'existing', Value: bytes('v') }); // 1
    const snapshotBefore = h.store.snapshot();
    const r = h.ok({
      type: 'txn',
      Ops: [
        kv('set', 'a', { Value: bytes('1') }),
        kv('delete', 'existing'),
        kv('cas', 'existing', { Value: bytes('x'), Index: 99 }),
        kv('set', 'b', { Value: bytes('2') }),
        kv('get', 'missing'),
      ],
    });
    assert.deepEqual(r, {
      Results: null,
      Errors: [
        { OpIndex: 2, What: 'failed to set key "existing", index is stale' },
        { OpIndex: 4, What: 'key "missing" doesn\'t exist' },
      ],
    });
    assert.deepEqual(h.store.kvList('').value.map((e) => e.Key), ['existing']);
    assert.equal(h.store.tableIndex('kvs', 'tombstones'), 1);
    // Nothing at all changed except the applied index.
    const after = JSON.parse(Buffer.from(h.store.snapshot()).toString('utf8').split('\n')[1]!);
    const before = JSON.parse(Buffer.from(snapshotBefore).toString('utf8').split('\n')[1]!);
    assert.deepEqual({ ...after, lastIndex: 0 }, { ...before, lastIndex: 0 });
  });

  test('ops see the effects of earlier ops in the same txn', () => {
    const h = new Harness();
    const r = h.ok({
      type: 'txn',
      Ops: [kv('set', 'k', { Value: bytes('1'), Flags: 3 }), kv('check-index', 'k', { Index: 1 }), kv('get', 'k')],
    });
    assert.equal(r.Errors, null);
    assert.equal(r.Results!.length, 3);
    const [set, check, get] = r.Results! as { KV: { Value: Uint8Array | null; ModifyIndex: number; Flags: bigint } }[];
    assert.equal(set!.KV.Value, null, 'write verbs return the entry without its value');
    assert.equal(set!.KV.ModifyIndex, 1);
    assert.equal(check!.KV.Value, null);
    assert.equal(text(get!.KV.Value), '1', 'get returns the value');
    assert.equal(get!.KV.Flags, 3n);
  });

  const errorTexts: { name: string; setup?: (h: Harness) => void; op: TxnOp; what: string }[] = [
    { name: 'unknown KV verb', op: kv('frobnicate', 'k'), what: 'unknown KV verb "frobnicate"' },
    { name: 'check-not-exists on an existing key', setup: (h) => h.ok({ type: 'kvSet', Key: 'k', Value: bytes('') }), op: kv('check-not-exists', 'k'), what: 'key "k" exists' },
    { name: 'check-index mismatch', setup: (h) => h.ok({ type: 'kvSet', Key: 'k', Value: bytes('') }), op: kv('check-index', 'k', { Index: 7 }), what: 'failed index check for key "k", current modify index 1 != 7' },
    { name: 'check-index missing', op: kv('check-index', 'k', { Index: 7 }), what: 'failed to check index, key "k" doesn\'t exist' },
    { name: 'check-session mismatch', setup: (h) => h.ok({ type: 'kvSet', Key: 'k', Value: bytes('') }), op: kv('check-session', 'k', { Session: SESSION_A }), what: `failed session check for key "k", current session "" != "${SESSION_A}"` },
    { name: 'delete-cas stale', setup: (h) => h.ok({ type: 'kvSet', Key: 'k', Value: bytes('') }), op: kv('delete-cas', 'k', { Index: 9 }), what: 'failed to delete key "k", index is stale' },
    { name: 'lock with an unknown session', op: kv('lock', 'k', { Session: 'nope' }), what: 'invalid session "nope"' },
    { name: 'unlock not held', op: kv('unlock', 'k', { Session: SESSION_A }), what: 'failed to unlock key "k", lock isn\'t held, or is held by another session' },
    {
      name: 'lock held by another session',
      setup: (h) => { h.node('n1'); h.session(SESSION_A, 'n1'); h.session(SESSION_B, 'n1'); h.ok({ type: 'kvLock', Key: 'k', Value: bytes(''), Session: SESSION_B }); },
      op: kv('lock', 'k', { Session: SESSION_A }), what: 'failed to lock key "k", lock is already held',
    },
    {
      name: 'lock during a lock delay',
      setup: (h) => {
        h.node('n1'); h.session(SESSION_A, 'n1'); h.session(SESSION_B, 'n1', { LockDelay: 5e9 });
        h.ok({ type: 'kvLock', Key: 'k', Value: bytes(''), Session: SESSION_B, now: 100 }); h.ok({ type: 'sessionDestroy', ID: SESSION_B, now: 100 });
      },
      op: kv('lock', 'k', { Session: SESSION_A }), what: 'failed to lock key "k" due to lock delay',
    },
    { name: 'missing node get', op: { Node: { Verb: 'get', Node: { Node: 'n9' } } }, what: 'node "n9" doesn\'t exist' },
    { name: 'service get', op: { Service: { Verb: 'get', Node: 'n1', Service: { ID: 'web', Service: 'web' } } }, what: 'service "web" on node "n1" doesn\'t exist' },
    { name: 'service set on a missing node', op: { Service: { Verb: 'set', Node: 'n9', Service: { Service: 'web' } } }, what: 'Missing node registration' },
    { name: 'check delete-cas missing', op: { Check: { Verb: 'delete-cas', Check: { Node: 'n1', CheckID: 'c', ModifyIndex: 3 } } }, what: 'failed to delete check "c" on node "n1", index is stale' },
    { name: 'node cas stale', setup: (h) => h.node('n1'), op: { Node: { Verb: 'cas', Node: { Node: 'n1', Address: 'x', ModifyIndex: 99 } } }, what: 'failed to set node "n1", index is stale' },
    { name: 'empty op', op: {} as TxnOp, what: 'no operation specified' },
    { name: 'unknown session verb', op: { Session: { Verb: 'renew' as never, Session: { ID: SESSION_A } } }, what: 'failed to delete session: unknown Session verb "renew"' },
  ];
  for (const c of errorTexts) {
    test(`error text: ${c.name}`, () => {
      const h = new Harness();
      c.setup?.(h);
      const before = h.store.snapshot();
      const r = h.ok({ type: 'txn', Ops: [kv('set', 'marker', { Value: bytes('1') }), c.op], now: 200 });
      assert.deepEqual(r, { Results: null, Errors: [{ OpIndex: 1, What: c.what }] });
      assert.equal(h.store.kvGet('marker').value, null);
      assert.equal(Buffer.from(h.store.snapshot()).toString().replace(/"lastIndex":\d+/, ''), Buffer.from(before).toString().replace(/"lastIndex":\d+/, ''));
    });
  }
});

describe('txn: catalog and session ops', () => {
  test('node, service and check ops with results; a session delete releases its locks', () => {
    const h = new Harness();
    h.node('n1');
    h.session(SESSION_A, 'n1');
    h.ok({ type: 'kvLock', Key: 'lock', Value: bytes(''), Session: SESSION_A });
    const r = h.ok({
      type: 'txn',
      Ops: [
        { Node: { Verb: 'set', Node: { Node: 'n2', Address: '10.0.0.2', Datacenter: 'dc1' } } },
        { Service: { Verb: 'set', Node: 'n2', Service: { Service: 'web', Port: 80 } } },
        { Check: { Verb: 'set', Check: { Node: 'n2', CheckID: 'web-ok', ServiceID: 'web', Status: 'passing' } } },
        { Session: { Verb: 'delete', Session: { ID: SESSION_A } } },
        { Node: { Verb: 'get', Node: { Node: 'n1' } } },
      ],
    });
    assert.equal(r.Errors, null);
    assert.deepEqual(r.Results!.map((x) => Object.keys(x)[0]), ['Node', 'Service', 'Check', 'Node']);
    assert.equal((r.Results![2] as { Check: { ServiceName: string } }).Check.ServiceName, 'web');
    assert.equal(h.store.healthServiceNodes('web', { passingOnly: true }).value.length, 1);
    assert.equal(h.store.sessionGet(SESSION_A).value, null);
    assert.equal(h.store.kvGet('lock').value!.Session, undefined);
  });

  test('cas verbs: 0 creates only if absent; the current ModifyIndex updates', () => {
    const h = new Harness();
    h.node('n1'); // 1
    const ok = h.ok({ type: 'txn', Ops: [{ Node: { Verb: 'cas', Node: { Node: 'n1', Address: '10.9.9.9', ModifyIndex: 1 } } }] });
    assert.equal(ok.Errors, null);
    assert.equal(h.store.node('n1').value!.Address, '10.9.9.9');
    const fail = h.ok({ type: 'txn', Ops: [{ Node: { Verb: 'cas', Node: { Node: 'n1', Address: 'x', ModifyIndex: 0 } } }] });
    assert.equal(fail.Errors![0]!.What, 'failed to set node "n1", index is stale');
  });

  test('isReadOnlyTxn and readTxn answer reads without changing anything', () => {
    const h = new Harness();
    h.ok({ type: 'kvSet', Key: 'a/1', Value: bytes('1') });
    h.ok({ type: 'kvSet', Key: 'a/2', Value: bytes('2') });
    const reads: TxnOp[] = [kv('get-tree', 'a/'), kv('check-not-exists', 'b')];
    assert.equal(isReadOnlyTxn(reads), true);
    assert.equal(isReadOnlyTxn([...reads, kv('set', 'x')]), false);
    const r = h.store.readTxn(reads);
    assert.deepEqual(r.Results!.map((x) => text((x as { KV: { Value: Uint8Array } }).KV.Value)), ['1', '2']);
    const w = h.store.readTxn([kv('set', 'x', { Value: bytes('1') })]);
    assert.equal(w.Errors, null);
    assert.equal(h.store.kvGet('x').value, null, 'readTxn rolls every write back');
  });
});
