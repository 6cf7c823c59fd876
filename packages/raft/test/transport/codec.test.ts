// The hand-written codec against the contract it claims to implement: proto/raft.proto as compiled by
// @grpc/proto-loader (protobufjs). Frames go both ways between the two, for generated messages.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import * as protoLoader from '@grpc/proto-loader';
import {
  MalformedFrameError, decodeBatch, decodeSnapshotChunk, encodeBatch, encodeBatches, encodeSnapshotChunk, messageSize, unencodable,
} from '../../src/transport/codec.ts';
import type { Entry, Message, MessageType } from '../../src/core/types.ts';

const PROTO = fileURLToPath(new URL('../../proto/raft.proto', import.meta.url));
const def = protoLoader.loadSync(PROTO, { keepCase: false, longs: Number, enums: String, defaults: false, oneofs: false });
const streamMethod = (def['trellis.raft.v1.Raft'] as protoLoader.ServiceDefinition).Stream!;
const snapMethod = (def['trellis.raft.v1.Raft'] as protoLoader.ServiceDefinition).InstallSnapshot!;

const TYPE_NAME: Record<MessageType, string> = {
  preVote: 'MESSAGE_TYPE_PRE_VOTE', preVoteResp: 'MESSAGE_TYPE_PRE_VOTE_RESP', vote: 'MESSAGE_TYPE_VOTE',
  voteResp: 'MESSAGE_TYPE_VOTE_RESP', app: 'MESSAGE_TYPE_APP', appResp: 'MESSAGE_TYPE_APP_RESP',
  heartbeat: 'MESSAGE_TYPE_HEARTBEAT', heartbeatResp: 'MESSAGE_TYPE_HEARTBEAT_RESP', snap: 'MESSAGE_TYPE_SNAP',
  timeoutNow: 'MESSAGE_TYPE_TIMEOUT_NOW',
};

/** How protobufjs represents `m` (proto3 defaults omitted, as proto-loader decodes with defaults:false). */
function toProto(m: Message): Record<string, unknown> {
  const o: Record<string, unknown> = { type: TYPE_NAME[m.type] };
  if (m.from) o.from = m.from;
  if (m.to) o.to = m.to;
  if (m.term) o.term = m.term;
  for (const k of ['logTerm', 'index', 'commit', 'reject', 'hintIndex', 'hintTerm', 'context', 'transfer'] as const) {
    if (m[k] !== undefined) o[k] = m[k];
  }
  if (m.entries?.length) {
    o.entries = m.entries.map((e) => {
      const pe: Record<string, unknown> = { kind: e.kind === 'conf' ? 'ENTRY_KIND_CONF' : 'ENTRY_KIND_NORMAL' };
      if (e.term) pe.term = e.term;
      if (e.index) pe.index = e.index;
      if (e.data.length) pe.data = Buffer.from(e.data);
      return pe;
    });
  }
  if (m.snapshot) {
    const meta = m.snapshot.meta;
    const pm: Record<string, unknown> = {};
    if (meta.index) pm.index = meta.index;
    if (meta.term) pm.term = meta.term;
    const conf: Record<string, unknown> = {};
    if (meta.conf.voters.length) conf.voters = meta.conf.voters;
    if (meta.conf.learners.length) conf.learners = meta.conf.learners;
    pm.conf = conf;
    if (meta.addresses) pm.addresses = Object.keys(meta.addresses).length ? { entries: meta.addresses } : {};
    o.snapshot = pm;
  }
  return o;
}

/** What a receiver gets: byte arrays as plain Uint8Array, and 'app' always with an entries list. */
function expectedAfterWire(m: Message): Message {
  const c = structuredClone(m);
  if (c.type === 'app' && c.entries === undefined) c.entries = [];
  if (c.type !== 'app' && c.entries?.length === 0) delete c.entries;
  delete c.snapshot?.data;
  return c;
}

// Arbitraries ---------------------------------------------------------------------------------

const id = fc.string({ minLength: 1, maxLength: 12, unit: 'grapheme' });
const u = fc.maxSafeNat();
const entry: fc.Arbitrary<Entry> = fc.record({
  term: u, index: u, kind: fc.constantFrom('normal' as const, 'conf' as const),
  data: fc.uint8Array({ maxLength: 300 }),
});
const TYPES = Object.keys(TYPE_NAME) as MessageType[];
const REQUIRED: Partial<Record<MessageType, string[]>> = {
  preVote: ['index', 'logTerm'], vote: ['index', 'logTerm'], app: ['index', 'logTerm', 'commit'],
  appResp: ['index'], heartbeat: ['commit'], snap: ['snapshot'],
};
const meta = fc.record({
  index: u, term: u,
  conf: fc.record({ voters: fc.array(id, { maxLength: 5 }), learners: fc.array(id, { maxLength: 3 }) }),
  addresses: fc.option(fc.dictionary(id, fc.string({ maxLength: 30 }), { maxKeys: 4 }), { nil: undefined }),
}, { requiredKeys: ['index', 'term', 'conf'] });
const message: fc.Arbitrary<Message> = fc.record({
  type: fc.constantFrom(...TYPES),
  from: id, to: id, term: u,
  logTerm: fc.option(u, { nil: undefined }), index: fc.option(u, { nil: undefined }),
  entries: fc.option(fc.array(entry, { maxLength: 4 }), { nil: undefined }),
  commit: fc.option(u, { nil: undefined }), reject: fc.option(fc.boolean(), { nil: undefined }),
  hintIndex: fc.option(u, { nil: undefined }), hintTerm: fc.option(u, { nil: undefined }),
  snapshot: fc.option(meta.map((m) => ({ meta: m })), { nil: undefined }),
  context: fc.option(fc.string({ maxLength: 20 }), { nil: undefined }), transfer: fc.option(fc.boolean(), { nil: undefined }),
}).map((m) => {
  // Drop undefined keys (so deepEqual compares like the decoder builds) and fill each type's required fields.
  const out = Object.fromEntries(Object.entries(m).filter(([, v]) => v !== undefined)) as unknown as Message;
  for (const k of REQUIRED[out.type] ?? []) {
    if ((out as unknown as Record<string, unknown>)[k] === undefined) {
      (out as unknown as Record<string, unknown>)[k] = k === 'snapshot' ? { meta: { index: 1, term: 1, conf: { voters: ['a'], learners: [] } } } : 7;
    }
  }
  if (out.snapshot?.meta.addresses === undefined) delete out.snapshot?.meta.addresses;
  return out;
});

// Tests ----------------------------------------------------------------------------------------

describe('codec vs raft.proto (proto-loader)', () => {
  test('frames we encode decode with proto-loader to the same fields', () => {
    fc.assert(fc.property(fc.array(message, { minLength: 1, maxLength: 5 }), (msgs) => {
      const decoded = streamMethod.requestDeserialize(encodeBatch(msgs)) as { messages: unknown[] };
      assert.deepEqual(decoded.messages.map((x) => JSON.parse(JSON.stringify(x))), msgs.map((m) => JSON.parse(JSON.stringify(toProto(m)))));
    }), { numRuns: 300 });
  });

  test('frames proto-loader encodes decode with our codec to the original messages', () => {
    fc.assert(fc.property(fc.array(message, { minLength: 1, maxLength: 5 }), (msgs) => {
      const frame = streamMethod.requestSerialize({ messages: msgs.map(toProto) });
      const out = decodeBatch(frame);
      assert.deepEqual(out.invalid, []);
      assert.deepEqual(out.messages, msgs.map(expectedAfterWire));
    }), { numRuns: 300 });
  });

  test('our own round trip preserves every field, including optional zeros and falses', () => {
    fc.assert(fc.property(fc.array(message, { maxLength: 5 }), (msgs) => {
      const out = decodeBatch(encodeBatch(msgs));
      assert.deepEqual(out.messages, msgs.map(expectedAfterWire));
      assert.equal(encodeBatch(msgs).byteLength, msgs.reduce((n, m) => n + 1 + varintLen(messageSize(m)) + messageSize(m), 0));
    }), { numRuns: 300 });
    const zeros: Message = { type: 'appResp', from: 'b', to: 'a', term: 0, index: 0, reject: false, hintIndex: 0, hintTerm: 0, context: '' };
    assert.deepEqual(decodeBatch(encodeBatch([zeros])).messages, [zeros]);
  });

  test('snapshot chunks cross-check with proto-loader', () => {
    const msg: Message = { type: 'snap', from: 'a', to: 'b', term: 4, snapshot: { meta: { index: 90, term: 3, conf: { voters: ['a', 'b'], learners: ['c'] }, addresses: { a: '10.0.0.1:8300' } } } };
    const data = new Uint8Array([1, 2, 3, 4]);
    const frame = encodeSnapshotChunk({ message: msg, totalBytes: 1000, hasData: true, offset: 0, data });
    const viaProto = snapMethod.requestDeserialize(frame) as Record<string, unknown>;
    assert.equal(viaProto.totalBytes, 1000);
    assert.equal(viaProto.hasData, true);
    assert.deepEqual([...(viaProto.data as Buffer)], [1, 2, 3, 4]);
    const back = decodeSnapshotChunk(snapMethod.requestSerialize(viaProto));
    assert.deepEqual(back.message, msg);
    assert.equal(back.totalBytes, 1000);
    assert.equal(back.offset, 0);
    assert.deepEqual([...back.data], [1, 2, 3, 4]);
    const later = decodeSnapshotChunk(encodeSnapshotChunk({ offset: 262144, data }));
    assert.equal(later.message, undefined);
    assert.equal(later.offset, 262144);
  });

  test('fields from a newer peer are skipped', () => {
    const known = encodeBatch([{ type: 'heartbeat', from: 'a', to: 'b', term: 2, commit: 1 }]);
    // Batch { messages = [that message + field 99 (varint) + field 100 (bytes)] }, plus Batch field 5.
    const inner = known.subarray(2);
    const extra = Buffer.from([0x98, 0x06, 0x2a, 0xa2, 0x06, 0x02, 0xff, 0xff]);
    const msg = Buffer.concat([inner, extra]);
    const frame = Buffer.concat([Buffer.from([0x0a, msg.length]), msg, Buffer.from([0x28, 0x01])]);
    assert.deepEqual(decodeBatch(frame).messages, [{ type: 'heartbeat', from: 'a', to: 'b', term: 2, commit: 1 }]);
  });

  test('encodeBatches keeps order and frame size bounds', () => {
    const msgs: Message[] = Array.from({ length: 100 }, (_, i) => ({
      type: 'app', from: 'a', to: 'b', term: 1, index: i, logTerm: 1, commit: 0,
      entries: [{ term: 1, index: i + 1, kind: 'normal', data: new Uint8Array(100 + i) }],
    }));
    const frames = encodeBatches(msgs, 2000);
    assert.ok(frames.length > 1);
    for (const f of frames) {
      assert.ok(f.bytes.byteLength <= 2000, `frame of ${f.bytes.byteLength} bytes`);
      assert.equal(decodeBatch(f.bytes).messages.length, f.count);
    }
    assert.deepEqual(frames.flatMap((f) => decodeBatch(f.bytes).messages.map((m) => m.index)), msgs.map((m) => m.index));
    // A single message larger than the bound still gets its own frame (the caller decides).
    const big: Message = { ...msgs[0]!, entries: [{ term: 1, index: 1, kind: 'normal', data: new Uint8Array(5000) }] };
    assert.equal(encodeBatches([big], 2000).length, 1);
  });
});

function varintLen(n: number): number {
  let s = 1;
  while (n >= 128) { n = Math.floor(n / 128); s++; }
  return s;
}

describe('codec rejects what Raft cannot use', () => {
  const base: Message = { type: 'heartbeat', from: 'a', to: 'b', term: 1, commit: 0 };
  const frameOf = (m: Record<string, unknown>) => streamMethod.requestSerialize({ messages: [m] });
  const table: { name: string; frame: Buffer; reason: RegExp }[] = [
    { name: 'unknown type number', frame: frameOf({ ...toProto(base), type: 42 }), reason: /unknown message type 42/ },
    { name: 'unspecified type', frame: frameOf({ ...toProto(base), type: 0 }), reason: /unknown message type 0/ },
    { name: 'no from', frame: frameOf({ ...toProto(base), from: '' }), reason: /without from\/to/ },
    { name: 'no to', frame: frameOf({ type: 'MESSAGE_TYPE_HEARTBEAT', from: 'a', term: 1, commit: 0 }), reason: /without from\/to/ },
    { name: 'app without index', frame: frameOf({ type: 'MESSAGE_TYPE_APP', from: 'a', to: 'b', term: 1, logTerm: 1, commit: 0 }), reason: /app message without index/ },
    { name: 'vote without logTerm', frame: frameOf({ type: 'MESSAGE_TYPE_VOTE', from: 'a', to: 'b', term: 1, index: 3 }), reason: /vote message without logTerm/ },
    { name: 'heartbeat without commit', frame: frameOf({ type: 'MESSAGE_TYPE_HEARTBEAT', from: 'a', to: 'b', term: 1 }), reason: /heartbeat message without commit/ },
    { name: 'snap without snapshot', frame: frameOf({ type: 'MESSAGE_TYPE_SNAP', from: 'a', to: 'b', term: 1 }), reason: /snap message without snapshot/ },
    { name: 'snapshot meta without conf', frame: frameOf({ type: 'MESSAGE_TYPE_SNAP', from: 'a', to: 'b', term: 1, snapshot: { index: 3, term: 1 } }), reason: /no conf/ },
    { name: 'entry of unspecified kind', frame: frameOf({ type: 'MESSAGE_TYPE_APP', from: 'a', to: 'b', term: 1, index: 0, logTerm: 0, commit: 0, entries: [{ term: 1, index: 1, kind: 0 }] }), reason: /entry kind 0/ },
    { name: 'term above 2^53', frame: frameOf({ ...toProto(base), term: '18446744073709551615' }), reason: /exceeds 2\^53/ },
  ];
  for (const row of table) {
    test(`invalid message: ${row.name}`, () => {
      const out = decodeBatch(row.frame);
      assert.equal(out.messages.length, 0);
      assert.equal(out.invalid.length, 1);
      assert.match(out.invalid[0]!, row.reason);
    });
  }

  test('an invalid message does not take its batch neighbours with it', () => {
    const good = toProto(base);
    const out = decodeBatch(streamMethod.requestSerialize({ messages: [good, { ...good, type: 77 }, good] }));
    assert.equal(out.messages.length, 2);
    assert.equal(out.invalid.length, 1);
  });

  const good = encodeBatch([{ type: 'app', from: 'a', to: 'b', term: 1, index: 1, logTerm: 1, commit: 1, entries: [{ term: 1, index: 2, kind: 'normal', data: new Uint8Array(10) }] }]);
  const malformed: { name: string; frame: Uint8Array }[] = [
    { name: 'truncated', frame: good.subarray(0, good.length - 3) },
    { name: 'varint longer than 10 bytes', frame: Buffer.from([0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]) },
    { name: 'length past the end', frame: Buffer.from([0x0a, 0x7f, 0x08, 0x01]) },
    { name: 'group wire type', frame: Buffer.from([0x0b]) },
    { name: 'message field with varint wire type', frame: Buffer.from([0x08, 0x01]) },
    { name: 'nested length past its parent', frame: Buffer.from([0x0a, 0x04, 0x3a, 0x10, 0x08, 0x01]) },
  ];
  for (const row of malformed) {
    test(`malformed frame: ${row.name}`, () => {
      assert.throws(() => decodeBatch(row.frame), MalformedFrameError);
    });
  }

  test('random bytes never escape as anything but MalformedFrameError or a decoded batch', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
      try {
        const out = decodeBatch(bytes);
        for (const m of out.messages) assert.equal(unencodable(m), undefined, 'a decoded message is always re-encodable');
      } catch (err) {
        assert.ok(err instanceof MalformedFrameError, `unexpected ${String(err)}`);
      }
      try { decodeSnapshotChunk(bytes); } catch (err) { assert.ok(err instanceof MalformedFrameError, `unexpected ${String(err)}`); }
    }), { numRuns: 2000 });
  });

  test('unencodable catches what would corrupt a frame', () => {
    assert.equal(unencodable(base), undefined);
    assert.match(unencodable({ ...base, term: Number.NaN })!, /term/);
    assert.match(unencodable({ ...base, index: -1 })!, /index/);
    assert.match(unencodable({ ...base, type: 'bogus' as MessageType })!, /unknown message type/);
    assert.match(unencodable({ ...base, entries: [{ term: 1, index: 1, kind: 'x' as 'normal', data: new Uint8Array() }] })!, /kind/);
    assert.match(unencodable({ type: 'app', from: 'a', to: 'b', term: 1, index: 1, commit: 0 })!, /app message without logTerm/);
    assert.match(unencodable({ ...base, to: '' })!, /from\/to/);
  });
});
