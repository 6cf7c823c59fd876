// KV Flags over the whole uint64 range in the state store: parsing, the store's rows, the Raft
// command codec and the snapshot, old formats included. The values that matter in practice are the
// lock and semaphore recipes' markers, both above 2^53 where a double would round them.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Harness, SESSION_A, bytes } from './helpers.ts';
import { StateStore } from '../../src/state/store.ts';
import { createFsm } from '../../src/state/fsm.ts';
import { COMMAND_FORMAT_RAW_BYTES, COMMAND_FORMAT_VERSION, decodeCommand, encodeCommand } from '../../src/state/codec.ts';
import { CommandDecodeError, SnapshotFormatError } from '../../src/state/errors.ts';
import { UINT64_MAX, optUint64, parseUint64, uint64Wire } from '../../src/state/uint64.ts';
import type { Command, TxnResponse } from '../../src/state/types.ts';

const LOCK_FLAG = 0x2ddccbc058a50c18n; // 3304740253564472344
const SEMAPHORE_FLAG = 0xe0f69a2baa414de0n; // 16210313421097356768
const TWO_53 = 2n ** 53n;

/** A raw version-1 command entry, as any build writes it. */
const entry = (json: string): Uint8Array => new Uint8Array([COMMAND_FORMAT_VERSION, ...Buffer.from(json)]);
/** The JSON part of an encoded command, in either format (format 2 puts its length first). */
const wireJson = (cmd: Command): string => {
  const d = Buffer.from(encodeCommand(cmd, 1));
  return (d[0] === COMMAND_FORMAT_RAW_BYTES ? d.subarray(5, 5 + d.readUInt32BE(1)) : d.subarray(1)).toString('utf8');
};

describe('parseUint64 (Go strconv.ParseUint(s, 10, 64))', () => {
  const ok: [string, bigint][] = [
    ['0', 0n],
    ['2^53-1', TWO_53 - 1n],
    ['2^53+1', TWO_53 + 1n],
    ['2^63', 2n ** 63n],
    ['2^64-1', UINT64_MAX],
    ['lock marker', LOCK_FLAG],
    ['leading zeros (Go accepts them)', 42n],
  ];
  const texts: Record<string, string> = { 'leading zeros (Go accepts them)': '00042' };
  for (const [name, want] of ok) {
    test(`accepts ${name}`, () => {
      assert.equal(parseUint64(texts[name] ?? want.toString()), want);
    });
  }
  const bad: [string, string][] = [
    ['2^64', '18446744073709551616'],
    ['far above 2^64', '99999999999999999999999'],
    ['negative', '-1'],
    ['negative zero', '-0'],
    ['plus sign', '+1'],
    ['exponent', '1e3'],
    ['fraction', '1.0'],
    ['hex', '0x10'],
    ['empty', ''],
    ['spaces', ' 1'],
    ['underscores', '1_000'],
    ['non-ASCII digits', '١٢'],
  ];
  for (const [name, s] of bad) {
    test(`refuses ${name} (${JSON.stringify(s)})`, () => {
      assert.equal(parseUint64(s), null);
    });
  }
});

describe('optUint64 (what apply and restore accept)', () => {
  test('bigint, safe number and decimal text all give the exact bigint', () => {
    assert.equal(optUint64(UINT64_MAX, 'Flags'), UINT64_MAX);
    assert.equal(optUint64(7, 'Flags'), 7n);
    assert.equal(optUint64(LOCK_FLAG.toString(), 'Flags'), LOCK_FLAG);
    assert.equal(optUint64(undefined, 'Flags'), 0n);
    assert.equal(optUint64(null, 'Flags'), 0n);
  });

  const refused: [string, unknown, RegExp][] = [
    ['a rounded number above 2^53', Number(LOCK_FLAG), /Flags .*given exactly.*rounded number 3304740253564472300/],
    ['a negative number', -1, /Flags must be a non-negative integer below 2\^64, got -1/],
    ['a fraction', 1.5, /got 1\.5/],
    ['a negative bigint', -1n, /got -1/],
    ['a bigint of 2^64', 2n ** 64n, /got 18446744073709551616/],
    ['non-decimal text', '0x10', /got "0x10"/],
    ['a boolean', true, /got a boolean/],
  ];
  for (const [name, v, message] of refused) {
    test(`refuses ${name}`, () => {
      assert.throws(() => optUint64(v, 'Flags'), (e: Error & { code?: string }) => e.code === 'ERR_INVALID_REQUEST' && message.test(e.message));
    });
  }

  test('uint64Wire: a number while exact, decimal text above 2^53', () => {
    assert.equal(uint64Wire(0n), 0);
    assert.equal(uint64Wire(TWO_53 - 1n), Number.MAX_SAFE_INTEGER);
    assert.equal(uint64Wire(TWO_53), '9007199254740992');
    assert.equal(uint64Wire(UINT64_MAX), '18446744073709551615');
  });
});

describe('KV rows keep all 64 bits', () => {
  test('set / get / list return the exact bigint, at both ends of the range', () => {
    const h = new Harness();
    for (const [k, f] of [['zero', 0n], ['max', UINT64_MAX], ['lock', LOCK_FLAG], ['sem', SEMAPHORE_FLAG]] as const) {
      h.ok({ type: 'kvSet', Key: k, Value: bytes('v'), Flags: f });
      assert.equal(h.store.kvGet(k).value!.Flags, f);
    }
    assert.deepEqual(h.store.kvList('').value.map((e) => [e.Key, e.Flags]), [['lock', LOCK_FLAG], ['max', UINT64_MAX], ['sem', SEMAPHORE_FLAG], ['zero', 0n]]);
  });

  test('2^53 and 2^53+1 (the same double) are different flags: changing one to the other is a write', () => {
    const h = new Harness();
    h.ok({ type: 'kvSet', Key: 'k', Value: bytes('v'), Flags: TWO_53 });
    h.ok({ type: 'kvSet', Key: 'k', Value: bytes('v'), Flags: TWO_53 + 1n });
    const e = h.store.kvGet('k').value!;
    assert.equal(e.Flags, TWO_53 + 1n);
    assert.equal(e.ModifyIndex, 2);
    // And writing the same big value again changes nothing (Consul skips no-op writes).
    h.ok({ type: 'kvSet', Key: 'k', Value: bytes('v'), Flags: TWO_53 + 1n });
    assert.equal(h.store.kvGet('k').value!.ModifyIndex, 2);
  });

  test('lock and unlock carry the lock marker, cas the semaphore marker', () => {
    const h = new Harness();
    h.node('n1');
    h.session(SESSION_A, 'n1');
    assert.equal(h.ok({ type: 'kvLock', Key: 'l/.lock', Value: bytes(''), Flags: LOCK_FLAG, Session: SESSION_A }), true);
    assert.equal(h.store.kvGet('l/.lock').value!.Flags, LOCK_FLAG);
    assert.equal(h.ok({ type: 'kvUnlock', Key: 'l/.lock', Value: bytes(''), Flags: LOCK_FLAG, Session: SESSION_A }), true);
    assert.equal(h.store.kvGet('l/.lock').value!.Flags, LOCK_FLAG);
    assert.equal(h.ok({ type: 'kvCas', Key: 's/.lock', Value: bytes('{}'), Flags: SEMAPHORE_FLAG, Index: 0 }), true);
    assert.equal(h.store.kvGet('s/.lock').value!.Flags, SEMAPHORE_FLAG);
  });

  test('a txn set with big flags; get returns them', () => {
    const h = new Harness();
    const r = h.ok({ type: 'txn', Ops: [{ KV: { Verb: 'set', Key: 't', Value: bytes('1'), Flags: UINT64_MAX } }, { KV: { Verb: 'get', Key: 't' } }] }) as TxnResponse;
    assert.equal(r.Errors, null);
    assert.deepEqual(r.Results!.map((x) => ('KV' in x ? x.KV.Flags : undefined)), [UINT64_MAX, UINT64_MAX]);
  });

  test('a rounded number is refused, and nothing changes', () => {
    const h = new Harness();
    const err = h.fail({ type: 'kvSet', Key: 'k', Value: bytes('v'), Flags: Number(LOCK_FLAG) });
    assert.equal(err.code, 'ERR_INVALID_REQUEST');
    assert.equal(h.store.kvGet('k').value, null);
    const t = h.ok({ type: 'txn', Ops: [{ KV: { Verb: 'set', Key: 'k', Flags: 2 ** 60 } }] }) as TxnResponse;
    assert.equal(t.Results, null);
    assert.match(t.Errors![0]!.What, /KV\.Flags .*given exactly/);
  });
});

describe('command codec', () => {
  test('big flags survive encode/decode exactly, in plain commands and txn ops', () => {
    const cmds: Command[] = [
      { type: 'kvSet', Key: 'k', Value: bytes('v'), Flags: UINT64_MAX },
      { type: 'kvLock', Key: 'k', Value: bytes(''), Flags: LOCK_FLAG, Session: SESSION_A },
      { type: 'kvUnlock', Key: 'k', Value: bytes(''), Flags: LOCK_FLAG, Session: SESSION_A },
      { type: 'kvCas', Key: 'k', Value: bytes(''), Flags: SEMAPHORE_FLAG, Index: 3 },
      { type: 'txn', Ops: [{ KV: { Verb: 'set', Key: 'a', Value: bytes('x'), Flags: 2n ** 63n } }, { KV: { Verb: 'get', Key: 'a' } }] },
    ];
    for (const cmd of cmds) assert.deepEqual(decodeCommand(encodeCommand(cmd, 9)), { ...cmd, now: 9 });
  });

  test('flags that fit a double are written as a JSON number, as before; larger ones as decimal text', () => {
    assert.match(wireJson({ type: 'kvSet', Key: 'k', Value: bytes('v'), Flags: 42n }), /"Flags":42[,}]/);
    assert.match(wireJson({ type: 'kvSet', Key: 'k', Value: bytes('v'), Flags: TWO_53 - 1n }), /"Flags":9007199254740991[,}]/);
    assert.match(wireJson({ type: 'kvSet', Key: 'k', Value: bytes('v'), Flags: LOCK_FLAG }), /"Flags":"3304740253564472344"/);
    assert.match(wireJson({ type: 'txn', Ops: [{ KV: { Verb: 'set', Key: 'k', Flags: UINT64_MAX } }] }), /"Flags":"18446744073709551615"/);
  });

  test('an entry written before 64-bit flags (a JSON number) still applies', () => {
    const store = new StateStore();
    const fsm = createFsm(store);
    const old = entry('{"type":"kvSet","Key":"k","Value":"dg==","Flags":42,"now":1}');
    assert.deepEqual(fsm.apply({ index: 1, data: old }), { ok: true, index: 1, value: true });
    assert.equal(store.kvGet('k').value!.Flags, 42n);
    const oldTxn = entry('{"type":"txn","Ops":[{"KV":{"Verb":"set","Key":"t","Value":"dg==","Flags":7}}],"now":1}');
    assert.equal(fsm.apply({ index: 2, data: oldTxn }).ok, true);
    assert.equal(store.kvGet('t').value!.Flags, 7n);
  });

  test('flags text that is not a uint64 is refused at decode; the FSM answers ERR_BAD_COMMAND', () => {
    for (const [json, where] of [
      ['{"type":"kvSet","Key":"k","Flags":"18446744073709551616"}', /^Flags must be/],
      ['{"type":"kvSet","Key":"k","Flags":"-1"}', /^Flags must be/],
      ['{"type":"txn","Ops":[{"KV":{"Verb":"set","Key":"k","Flags":"1e3"}}]}', /^Ops\[0\]\.KV\.Flags must be/],
    ] as const) {
      assert.throws(() => decodeCommand(entry(json)), (e: unknown) => e instanceof CommandDecodeError && where.test(e.message));
      const store = new StateStore();
      const r = createFsm(store).apply({ index: 1, data: entry(json) });
      assert.equal(!r.ok && r.error.code, 'ERR_BAD_COMMAND');
      assert.equal(store.kvGet('k').value, null);
    }
  });
});

describe('snapshot', () => {
  function bigState(): Harness {
    const h = new Harness();
    h.node('n1');
    h.session(SESSION_A, 'n1');
    h.ok({ type: 'kvSet', Key: 'max', Value: bytes('m'), Flags: UINT64_MAX });
    h.ok({ type: 'kvSet', Key: 'small', Value: bytes('s'), Flags: 7 });
    h.ok({ type: 'kvLock', Key: 'locks/x/.lock', Value: bytes(''), Flags: LOCK_FLAG, Session: SESSION_A });
    h.ok({ type: 'kvCas', Key: 'sem/.lock', Value: bytes('{}'), Flags: SEMAPHORE_FLAG, Index: 0 });
    return h;
  }

  test('round trip keeps every flag exactly, and the bytes are deterministic', () => {
    const h = bigState();
    const snap = h.store.snapshot();
    const restored = new StateStore();
    restored.restore(snap);
    assert.deepEqual(restored.kvList('').value, h.store.kvList('').value);
    assert.equal(restored.kvGet('locks/x/.lock').value!.Flags, LOCK_FLAG);
    assert.equal(restored.kvGet('max').value!.Flags, UINT64_MAX);
    assert.deepEqual(restored.snapshot(), snap);
  });

  test('small flags are JSON numbers in the snapshot (what older builds wrote and read), big ones text', () => {
    const text = Buffer.from(bigState().store.snapshot()).toString('utf8');
    assert.match(text, /"Key":"small","Flags":7,/);
    assert.match(text, /"Key":"max","Flags":"18446744073709551615",/);
    assert.match(text, /"Key":"locks\/x\/\.lock","Flags":"3304740253564472344",/);
  });

  test('a snapshot with numeric flags (the earlier format) restores', () => {
    const h = new Harness();
    h.ok({ type: 'kvSet', Key: 'k', Value: bytes('v'), Flags: 7 });
    // Rewrite as an older build would have: every Flags a number.
    const text = Buffer.from(h.store.snapshot()).toString('utf8');
    assert.match(text, /"Flags":7,/);
    const restored = new StateStore();
    restored.restore(Buffer.from(text));
    assert.equal(restored.kvGet('k').value!.Flags, 7n);
  });

  test('a snapshot whose flags were rounded (an unsafe number) or are not a uint64 is refused, store unchanged', () => {
    const text = Buffer.from(bigState().store.snapshot()).toString('utf8');
    const target = new StateStore();
    target.apply(1, { type: 'kvSet', Key: 'keep', Value: bytes('me') });
    for (const bad of [
      text.replace('"Flags":"3304740253564472344"', '"Flags":3304740253564472344'),
      text.replace('"Flags":"18446744073709551615"', '"Flags":"18446744073709551616"'),
      text.replace('"Flags":7,', '"Flags":-7,'),
    ]) {
      assert.notEqual(bad, text);
      assert.throws(() => target.restore(Buffer.from(bad)), (e: unknown) => e instanceof SnapshotFormatError && /kvs\[\d\]: kvs\[\d\]\.Flags/.test(e.message));
      assert.deepEqual(target.kvList('').value.map((e) => e.Key), ['keep']);
    }
  });
});
