import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decodeMessage, encodeMessage, GossipError, TAGS_MAX_BYTES } from '../../src/gossip/core/index.ts';
import type { Message } from '../../src/gossip/core/index.ts';

const node = { name: 'web-1', addr: '10.0.0.7', port: 8301, peerId: '12D3KooWabc', tags: { dc: 'dc1', role: 'node', vsn: '2' } };
const ep = { name: 'web-1', addr: '10.0.0.7', port: 8301, peerId: '12D3KooWabc' };

const samples: [string, Message][] = [
  ['ping with piggybacked updates', {
    type: 'ping', seq: 7, from: 'a', replyTo: ep, target: 'b',
    updates: [
      { type: 'alive', node, incarnation: 3 },
      { type: 'suspect', node: 'b', incarnation: 2, from: 'a' },
      { type: 'dead', node: 'c', incarnation: 9, from: 'c' },
      { type: 'forceLeave', node: 'd', incarnation: 1, prune: true, from: 'a' },
      { type: 'userEvent', ltime: 12, name: 'deploy', payload: new Uint8Array([1, 2, 3]) },
    ],
  }],
  ['ack', { type: 'ack', seq: 0xffff_ffff, from: 'b', updates: [] }],
  ['nack', { type: 'nack', seq: 1, from: 'relay', updates: [] }],
  ['ping-req', { type: 'pingReq', seq: 5, from: 'a', replyTo: ep, target: { ...ep, name: 'b' }, nack: true, updates: [] }],
  ['gossip', { type: 'gossip', from: 'a', updates: [{ type: 'userEvent', ltime: 2 ** 40, name: 'é', payload: new Uint8Array(0) }] }],
  ['push-pull reply', {
    type: 'pushPull', from: 'a', join: true, reply: true, eventLTime: 44,
    members: [{ node, incarnation: 1, state: 'alive' }, { node: { ...node, name: 'x', tags: {} }, incarnation: 4, state: 'left' }],
    events: [{ type: 'userEvent', ltime: 40, name: 'e', payload: new Uint8Array([0xff]) }],
  }],
];

describe('gossip codec', () => {
  for (const [name, msg] of samples) {
    test(`round trip: ${name}`, () => {
      assert.deepEqual(decodeMessage(encodeMessage(msg)), msg);
    });
  }

  test('property: any ack/nack/gossip of user events round-trips', () => {
    fc.assert(fc.property(
      fc.constantFrom('ack', 'nack') as fc.Arbitrary<'ack' | 'nack'>,
      fc.nat(0xffff_ffff),
      fc.string({ minLength: 1, maxLength: 40 }),
      fc.array(fc.record({ ltime: fc.nat(), name: fc.string({ minLength: 1, maxLength: 20 }), payload: fc.uint8Array({ maxLength: 64 }) }), { maxLength: 5 }),
      (type, seq, from, evs) => {
        const msg: Message = { type, seq, from, updates: evs.map((e) => ({ type: 'userEvent' as const, ...e })) };
        // Lone surrogates cannot be UTF-8 encoded: the encoder replaces them, so skip those inputs.
        fc.pre(!/[\uD800-\uDFFF]/.test(from + evs.map((e) => e.name).join('')));
        assert.deepEqual(decodeMessage(encodeMessage(msg)), msg);
      },
    ));
  });

  const valid = encodeMessage(samples[0]![1]);
  const malformed: [string, Uint8Array, RegExp][] = [
    ['empty input', new Uint8Array(0), /truncated reading version/],
    ['unknown version', Uint8Array.from([9, 1]), /unsupported version 9/],
    ['unknown message type', Uint8Array.from([1, 77]), /unknown message type 77/],
    ['truncated message', valid.subarray(0, valid.length - 3), /truncated/],
    ['trailing bytes', Uint8Array.from([...encodeMessage({ type: 'ack', seq: 1, from: 'a', updates: [] }), 0]), /1 trailing bytes after a ack message/],
    ['non-minimal varint', Uint8Array.from([1, 2, 0x81, 0x00, 1, 0x61, 0]), /not minimally encoded/],
    ['seq beyond uint32', Uint8Array.from([1, 2, 0x80, 0x80, 0x80, 0x80, 0x10, 1, 0x61, 0]), /seq 4294967296 is out of range/],
    ['empty sender', Uint8Array.from([1, 2, 1, 0, 0]), /sender name is empty/],
    ['invalid UTF-8 name', Uint8Array.from([1, 2, 1, 2, 0xc3, 0x28, 0]), /sender name is not valid UTF-8/],
    ['unknown update type', Uint8Array.from([1, 2, 1, 1, 0x61, 1, 42]), /unknown update type 42/],
    ['bad bool', Uint8Array.from([1, 2, 1, 1, 0x61, 1, 4, 1, 0x62, 1, 7, 1, 0x61]), /prune flag must be 0 or 1, got 7/],
    ['unknown push-pull flag bits', Uint8Array.from([1, 6, 1, 0x61, 4]), /unknown bits/],
  ];
  for (const [name, bytes, re] of malformed) {
    test(`refuses ${name}`, () => {
      assert.throws(() => decodeMessage(bytes), (err: unknown) => {
        assert.ok(err instanceof GossipError);
        assert.equal(err.code, 'ERR_MALFORMED_MESSAGE');
        assert.match(err.message, re);
        return true;
      });
    });
  }

  test('refuses tags over the 512-byte limit, naming the member', () => {
    const big = { name: 'n', addr: '', port: 1, peerId: '', tags: { t: 'x'.repeat(TAGS_MAX_BYTES) } };
    const bytes = encodeMessage({ type: 'gossip', from: 'a', updates: [{ type: 'alive', node: big, incarnation: 1 }] });
    assert.throws(() => decodeMessage(bytes), /tags of n exceed 512 bytes|tag t of n length \d+ is out of range/);
  });

  test('refuses unsorted (or duplicated) tag keys, which a canonical encoder never writes', () => {
    const bytes = encodeMessage({ type: 'gossip', from: 'a', updates: [{ type: 'alive', node: { ...node, tags: { a: '1', b: '2' } }, incarnation: 1 }] });
    // The message ends with the tags [1]"a"[1]"1"[1]"b"[1]"2" and the incarnation: swap the two keys
    // in place, leaving a well-framed but unsorted list.
    const n = bytes.length;
    assert.deepEqual([...bytes.subarray(n - 9)], [1, 0x61, 1, 0x31, 1, 0x62, 1, 0x32, 1]);
    const swapped = bytes.slice();
    swapped[n - 8] = 0x62;
    swapped[n - 4] = 0x61;
    assert.throws(() => decodeMessage(swapped), /not sorted and unique/);
  });

  test('fuzz: random bytes never throw anything but a GossipError', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
      try {
        decodeMessage(bytes);
      } catch (err) {
        assert.ok(err instanceof GossipError, String(err));
      }
    }), { numRuns: 3000 });
  });

  test('fuzz: single-byte corruptions of a valid message either decode or are refused with a reason', () => {
    fc.assert(fc.property(fc.nat(valid.length - 1), fc.nat(255), (pos, b) => {
      const bytes = valid.slice();
      bytes[pos] = b;
      try {
        decodeMessage(bytes);
      } catch (err) {
        assert.ok(err instanceof GossipError && err.code === 'ERR_MALFORMED_MESSAGE', String(err));
      }
    }), { numRuns: 3000 });
  });
});
