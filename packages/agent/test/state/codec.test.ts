// The Raft command codec: KV values travel as raw bytes (format 2), so an entry is its value plus a
// little, and Consul's 512 KiB value fits the 512 KiB-and-some entry limit; commands without bytes
// stay format 1, byte for byte; entries earlier builds wrote (base64, format 1) still decode.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { COMMAND_FORMAT_RAW_BYTES, COMMAND_FORMAT_VERSION, decodeCommand, encodeCommand, isCommandData, restampCommand } from '../../src/state/codec.ts';
import { CommandDecodeError } from '../../src/state/errors.ts';
import { createFsm } from '../../src/state/fsm.ts';
import { StateStore } from '../../src/state/store.ts';
import type { Command } from '../../src/state/types.ts';
import { bytes, text } from './helpers.ts';

const KIB = 1024;

/** Every byte value, repeated: a value base64 or UTF-8 handling would mangle. */
function binary(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 151 + 7) & 0xff;
  return out;
}

/** Values as hex, Flags as decimal text: a Flags that fits a double decodes as a number, which the
 *  store turns into the same bigint. */
const comparable = (cmd: Command): unknown => JSON.parse(JSON.stringify(cmd, (k, v: unknown) => {
  if (v instanceof Uint8Array) return `bytes:${Buffer.from(v).toString('hex')}`;
  if (typeof v === 'bigint' || (k === 'Flags' && typeof v === 'number')) return String(v);
  return v;
}));

describe('command codec', () => {
  test('a 512 KiB value makes an entry of 512 KiB plus under 200 bytes (base64 made it 4/3)', () => {
    const value = binary(512 * KIB);
    const data = encodeCommand({ type: 'kvSet', Key: 'big/value', Value: value, Flags: 0n }, 1);
    assert.equal(data[0], COMMAND_FORMAT_RAW_BYTES);
    assert.ok(data.byteLength - value.byteLength < 200, `entry of ${data.byteLength} bytes for a ${value.byteLength}-byte value`);
    const back = decodeCommand(data) as Command & { type: 'kvSet' };
    assert.deepEqual(Buffer.from(back.Value!), Buffer.from(value));
  });

  test('every value-carrying command round-trips, empty values and txn ops with several values included', () => {
    const cmds: Command[] = [
      { type: 'kvSet', Key: 'a', Value: binary(1000), Flags: 3n },
      { type: 'kvSet', Key: 'empty', Value: new Uint8Array(0), Flags: 0n },
      { type: 'kvCas', Key: 'a', Value: bytes('cas'), Flags: 1n, Index: 4 },
      { type: 'kvLock', Key: 'l', Value: bytes('lock'), Flags: 0x2ddccbc058a50c18n, Session: 's' },
      { type: 'kvUnlock', Key: 'l', Value: bytes(''), Flags: 0n, Session: 's' },
      {
        type: 'txn', Ops: [
          { KV: { Verb: 'set', Key: 'x', Value: binary(300), Flags: 2n ** 63n } },
          { KV: { Verb: 'get', Key: 'x' } },
          { KV: { Verb: 'cas', Key: 'y', Value: bytes('second'), Index: 0 } },
          { KV: { Verb: 'set', Key: 'z', Value: new Uint8Array(0) } },
        ],
      },
    ];
    for (const cmd of cmds) {
      const data = encodeCommand(cmd, 9);
      assert.equal(data[0], COMMAND_FORMAT_RAW_BYTES, `${cmd.type} carries bytes`);
      assert.ok(isCommandData(data));
      const back = decodeCommand(data);
      assert.deepEqual(comparable(back), comparable({ ...cmd, now: 9 }));
    }
  });

  test('restampCommand: the leader clock replaces the proposer now, nothing else changes (both formats)', () => {
    const cmds: Command[] = [
      { type: 'kvLock', Key: 'l', Value: binary(700), Flags: 0x2ddccbc058a50c18n, Session: 's' },
      { type: 'sessionDestroy', ID: 'abc' },
      { type: 'txn', Ops: [{ KV: { Verb: 'set', Key: 'x', Value: binary(30), Flags: 2n ** 63n } }, { KV: { Verb: 'get', Key: 'x' } }] },
    ];
    for (const cmd of cmds) {
      const data = encodeCommand(cmd, 1000);
      const restamped = restampCommand(data, 61_000);
      assert.equal(restamped[0], data[0], `${cmd.type}: same format`);
      assert.deepEqual(comparable(decodeCommand(restamped)), comparable({ ...cmd, now: 61_000 }));
      // The original is untouched (it may be a view into a batch off the network).
      assert.equal((decodeCommand(data) as { now?: number }).now, 1000);
    }
    assert.throws(() => restampCommand(new Uint8Array([9, 1, 2]), 1), CommandDecodeError);
    assert.throws(() => restampCommand(Uint8Array.from([COMMAND_FORMAT_VERSION, 0x7b]), 1), CommandDecodeError);
  });

  test('a decoded value is a copy: it does not keep the entry (or a batch around it) alive or change with it', () => {
    const data = encodeCommand({ type: 'kvSet', Key: 'k', Value: bytes('original'), Flags: 0n }, 1);
    const inBatch = new Uint8Array(data.byteLength + 4096);
    inBatch.set(data, 100);
    const view = inBatch.subarray(100, 100 + data.byteLength);
    const cmd = decodeCommand(Buffer.from(view.buffer, view.byteOffset, view.byteLength)) as Command & { type: 'kvSet' };
    // Its bytes live in the stored values' slabs (state/slab.ts), never in the batch's buffer.
    assert.notEqual(cmd.Value!.buffer, inBatch.buffer);
    inBatch.fill(0);
    assert.equal(text(cmd.Value), 'original');
  });

  test('commands without bytes are format 1 JSON, as earlier builds wrote them', () => {
    const cmd: Command = { type: 'kvDelete', Key: 'gone' };
    const data = encodeCommand(cmd, 5);
    assert.equal(data[0], COMMAND_FORMAT_VERSION);
    assert.equal(Buffer.from(data.subarray(1)).toString('utf8'), '{"type":"kvDelete","Key":"gone","now":5}');
    const noValueTxn = encodeCommand({ type: 'txn', Ops: [{ KV: { Verb: 'get', Key: 'a' } }] }, 5);
    assert.equal(noValueTxn[0], COMMAND_FORMAT_VERSION);
  });

  test('a format 1 entry with a base64 value (an earlier build\'s log) still applies', () => {
    const old = new Uint8Array([COMMAND_FORMAT_VERSION, ...Buffer.from('{"type":"kvSet","Key":"k","Value":"aGVsbG8=","Flags":0,"now":1}')]);
    const store = new StateStore();
    assert.deepEqual(createFsm(store).apply({ index: 1, data: old }), { ok: true, index: 1, value: true });
    assert.equal(text(store.kvGet('k').value!.Value), 'hello');
  });

  const frame = (json: string, tail: Uint8Array, claimed?: number): Uint8Array => {
    const j = Buffer.from(json);
    const out = Buffer.alloc(5 + j.length + tail.length);
    out[0] = COMMAND_FORMAT_RAW_BYTES;
    out.writeUInt32BE(claimed ?? j.length, 1);
    j.copy(out, 5);
    out.set(tail, 5 + j.length);
    return out;
  };
  const BROKEN: Array<[string, Uint8Array, RegExp]> = [
    ['JSON length beyond the entry', frame('{"type":"kvSet","Key":"k","Value":[0,1]}', bytes('v'), 500), /truncated/],
    ['a value reference past the tail', frame('{"type":"kvSet","Key":"k","Value":[0,2]}', bytes('v')), /^Value must be an \[offset, length\]/],
    ['a negative offset', frame('{"type":"kvSet","Key":"k","Value":[-1,1]}', bytes('v')), /^Value must be/],
    ['a base64 string in format 2', frame('{"type":"kvSet","Key":"k","Value":"dg=="}', bytes('')), /^Value must be/],
    ['a txn value reference past the tail', frame('{"type":"txn","Ops":[{"KV":{"Verb":"set","Key":"k","Value":[1,1]}}]}', bytes('v')), /^Ops\[0\]\.KV\.Value must be/],
    ['only the header', new Uint8Array([COMMAND_FORMAT_RAW_BYTES, 0, 0]), /truncated/],
    ['an unknown format', new Uint8Array([3, 123, 125]), /format version 3 is not supported/],
  ];
  for (const [name, data, why] of BROKEN) {
    test(`refused at decode, the same on every replica: ${name}`, () => {
      assert.throws(() => decodeCommand(data), (e: unknown) => e instanceof CommandDecodeError && why.test(e.message));
      const store = new StateStore();
      const r = createFsm(store).apply({ index: 1, data });
      assert.equal(!r.ok && r.error.code, 'ERR_BAD_COMMAND');
      assert.equal(store.kvGet('k').value, null);
    });
  }
});
