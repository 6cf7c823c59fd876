// Small byte arrays share slabs; each is its own bytes, and a big one gets its own buffer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SlabAllocator } from '../../src/state/slab.ts';
import { decodeCommand, encodeCommand } from '../../src/state/codec.ts';

test('small arrays are views into shared slabs, each with its own bytes', () => {
  const slabs = new SlabAllocator(1024, 256);
  const a = slabs.copy(Uint8Array.from([1, 2, 3]));
  const b = slabs.copy(Uint8Array.from([4, 5, 6, 7, 8, 9, 10, 11, 12]));
  assert.equal(a.buffer, b.buffer, 'one slab');
  assert.equal(b.byteOffset % 8, 0, '8-byte aligned');
  assert.ok(b.byteOffset >= a.byteOffset + a.byteLength, 'no overlap');
  b.fill(0);
  assert.deepEqual([...a], [1, 2, 3]);
  assert.equal(a.constructor, Uint8Array, 'a plain Uint8Array, as before');
});

test('a full slab is followed by a new one; arrays above maxSmall and empty ones get their own buffer', () => {
  const slabs = new SlabAllocator(64, 32);
  const first = slabs.alloc(32);
  const second = slabs.alloc(32);
  const third = slabs.alloc(8);
  assert.equal(first.buffer, second.buffer);
  assert.notEqual(third.buffer, first.buffer);
  const big = slabs.alloc(33);
  assert.deepEqual([big.byteOffset, big.buffer.byteLength], [0, 33]);
  assert.equal(slabs.alloc(0).byteLength, 0);
});

test('KV values decoded from a Raft entry are independent copies that survive the entry', () => {
  const value = new TextEncoder().encode('sixty-four bytes or so of value');
  const entry = encodeCommand({ type: 'kvSet', Key: 'k', Value: value, Flags: 0n } as Parameters<typeof encodeCommand>[0]);
  const cmd = decodeCommand(entry) as { Value: Uint8Array; Flags: bigint };
  assert.deepEqual(cmd.Value, value);
  entry.fill(0); // the entry's slab space reused or dropped: the stored value must not change
  assert.deepEqual(cmd.Value, value);
  assert.notEqual(cmd.Value.buffer, entry.buffer);
});
