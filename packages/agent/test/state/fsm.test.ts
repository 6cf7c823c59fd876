import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { StateStore } from '../../src/state/store.ts';
import { createFsm } from '../../src/state/fsm.ts';
import { decodeCommand, encodeCommand } from '../../src/state/codec.ts';
import { CommandDecodeError } from '../../src/state/errors.ts';
import { SESSION_A, bytes, text } from './helpers.ts';
import type { Command, CommandType } from '../../src/state/types.ts';

const allBytes = new Uint8Array(256).map((_, i) => i);

describe('command codec', () => {
  test('binary values survive, in plain commands and in txn ops; `now` is stamped when absent', () => {
    const cmds: Command[] = [
      { type: 'kvSet', Key: 'k', Value: allBytes, Flags: 3 },
      { type: 'kvLock', Key: 'k', Value: new Uint8Array(0), Session: SESSION_A, now: 5 },
      { type: 'txn', Ops: [{ KV: { Verb: 'set', Key: 'a', Value: allBytes } }, { KV: { Verb: 'get', Key: 'a' } }, { Node: { Verb: 'get', Node: { Node: 'n' } } }] },
      { type: 'catalogRegister', Node: 'n', Address: 'a', Service: { Service: 'web', Proxy: { Config: { $b64: 'not-bytes', nested: [1, 2] } } } },
    ];
    for (const cmd of cmds) {
      const back = decodeCommand(encodeCommand(cmd, 1234));
      assert.deepEqual(back, { ...cmd, now: cmd.now ?? 1234 });
    }
  });

  const bad: { name: string; data: Uint8Array; message: RegExp }[] = [
    { name: 'empty', data: new Uint8Array(0), message: /empty or truncated/ },
    { name: 'another format version', data: new Uint8Array([3, 123, 125]), message: /format version 3 is not supported/ },
    { name: 'not JSON', data: new Uint8Array([1, ...bytes('{nope')]), message: /not valid JSON/ },
    { name: 'no type', data: new Uint8Array([1, ...bytes('{"Key":"x"}')]), message: /has no type/ },
    { name: 'unknown type', data: new Uint8Array([1, ...bytes('{"type":"launchMissiles"}')]), message: /unknown command type "launchMissiles"/ },
    { name: 'value not base64 text', data: new Uint8Array([1, ...bytes('{"type":"kvSet","Key":"k","Value":[1,2]}')]), message: /Value must be base64 text/ },
  ];
  for (const b of bad) {
    test(`decode refuses ${b.name}`, () => {
      assert.throws(() => decodeCommand(b.data), (e: unknown) => e instanceof CommandDecodeError && e.code === 'ERR_BAD_COMMAND' && b.message.test(e.message));
    });
  }
});

describe('FSM', () => {
  test('applies encoded commands at the entry index and returns the store\'s result', () => {
    const store = new StateStore();
    const fsm = createFsm(store);
    assert.deepEqual(fsm.apply({ index: 7, data: encodeCommand({ type: 'kvSet', Key: 'k', Value: allBytes }) }), { ok: true, index: 7, value: true });
    const e = store.kvGet('k').value!;
    assert.deepEqual([e.CreateIndex, e.ModifyIndex], [7, 7]);
    assert.deepEqual(e.Value, allBytes);
    assert.deepEqual(fsm.apply({ index: 8, data: encodeCommand({ type: 'kvCas', Key: 'k', Value: bytes('x'), Index: 1 }) }), { ok: true, index: 8, value: false });
  });

  test('undecodable entries become error results, never throws, and change nothing', () => {
    const store = new StateStore();
    const fsm = createFsm(store);
    fsm.apply({ index: 1, data: encodeCommand({ type: 'kvSet', Key: 'k', Value: bytes('v') }) });
    const before = store.snapshot();
    const r = fsm.apply({ index: 2, data: new Uint8Array([9, 9, 9]) });
    assert.equal(r.ok, false);
    assert.equal(!r.ok && r.error.code, 'ERR_BAD_COMMAND');
    assert.equal(text(store.kvGet('k').value!.Value), 'v');
    assert.equal(Buffer.from(store.snapshot()).toString().replace(/"lastIndex":\d+/, ''), Buffer.from(before).toString().replace(/"lastIndex":\d+/, ''));
  });

  test('snapshot and restore pass through', () => {
    const a = new StateStore();
    const fa = createFsm(a);
    fa.apply({ index: 1, data: encodeCommand({ type: 'kvSet', Key: 'k', Value: bytes('v') }) });
    const b = new StateStore();
    createFsm(b).restore(fa.snapshot());
    assert.equal(text(b.kvGet('k').value!.Value), 'v');
  });

  test('fuzz: arbitrary decoded commands never throw, and a refused one changes nothing', () => {
    const types: CommandType[] = ['catalogRegister', 'catalogDeregister', 'kvSet', 'kvCas', 'kvLock', 'kvUnlock', 'kvDelete', 'kvDeleteCas', 'kvDeleteTree', 'kvTombstoneReap', 'sessionCreate', 'sessionDestroy', 'txn'];
    const field = fc.oneof(fc.anything(), fc.string(), fc.nat(), fc.constant(null), fc.array(fc.anything(), { maxLength: 3 }), fc.uint8Array({ maxLength: 4 }));
    const arb = fc.record({
      type: fc.constantFrom(...types),
      fields: fc.dictionary(fc.constantFrom('Key', 'Value', 'Node', 'Address', 'Service', 'Check', 'Checks', 'Session', 'ID', 'Index', 'Flags', 'Prefix', 'Ops', 'SkipNodeUpdate', 'ServiceID', 'CheckID', 'now', 'UpToIndex'), field),
    });
    fc.assert(
      fc.property(fc.array(arb, { maxLength: 8 }), (cmds) => {
        const store = new StateStore();
        store.apply(1, { type: 'catalogRegister', Node: 'n1', Address: '10.0.0.1', Check: { CheckID: 'serfHealth', Status: 'passing' } });
        store.apply(2, { type: 'sessionCreate', Session: { ID: SESSION_A, Node: 'n1' } });
        cmds.forEach((c, i) => {
          const before = Buffer.from(store.snapshot()).toString().replace(/"lastIndex":\d+/, '');
          const r = store.apply(3 + i, { type: c.type, ...c.fields } as never);
          assert.equal(typeof r.ok, 'boolean');
          if (!r.ok) {
            assert.ok(typeof r.error.code === 'string' && r.error.message.length > 0);
            assert.equal(Buffer.from(store.snapshot()).toString().replace(/"lastIndex":\d+/, ''), before, `refused ${JSON.stringify(c)} changed state`);
          }
        });
      }),
      { numRuns: 300 },
    );
  });

  test('replicas applying the same entries end in byte-identical states', () => {
    const entries: Command[] = [
      { type: 'catalogRegister', Node: 'n1', Address: '10.0.0.1', Check: { CheckID: 'serfHealth', Status: 'passing' } },
      { type: 'sessionCreate', Session: { ID: SESSION_A, Node: 'n1', NodeChecks: ['serfHealth'], LockDelay: 15e9 } },
      { type: 'kvLock', Key: 'l', Value: bytes('x'), Session: SESSION_A },
      { type: 'catalogRegister', Node: 'n1', SkipNodeUpdate: true, Check: { CheckID: 'serfHealth', Status: 'critical' } },
      { type: 'txn', Ops: [{ KV: { Verb: 'set', Key: 'a', Value: bytes('1') } }, { KV: { Verb: 'delete-tree', Key: '' } }] },
    ];
    const encoded = entries.map((c, i) => ({ index: i + 1, data: encodeCommand(c, 1_000 + i) }));
    const [a, b] = [new StateStore(), new StateStore()];
    for (const e of encoded) {
      createFsm(a).apply(e);
      createFsm(b).apply(e);
    }
    assert.deepEqual(a.snapshot(), b.snapshot());
    assert.equal(a.kvLockDelay('l'), 1_003 + 15_000, 'the delay started at the invalidating entry\'s `now`');
  });
});

describe('apply guards', () => {
  test('an index at or below the last applied one is refused (a driver replay must not double-apply)', () => {
    const store = new StateStore();
    assert.equal(store.apply(5, { type: 'kvCas', Key: 'k', Value: bytes('1'), Index: 0 }).ok, true);
    const again = store.apply(5, { type: 'kvCas', Key: 'k', Value: bytes('1'), Index: 0 });
    assert.equal(again.ok, false);
    assert.equal(!again.ok && again.error.code, 'ERR_BAD_COMMAND');
    assert.equal(store.apply(4, { type: 'kvDelete', Key: 'k' }).ok, false);
    assert.ok(store.kvGet('k').value, 'the stale delete did not run');
    assert.equal(store.lastIndex(), 5);
  });
});
