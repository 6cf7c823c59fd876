// The snapshot file of GET/PUT /v1/snapshot: what save writes, restore verifies before anything runs.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeSnapshotFile, encodeSnapshotFile } from '../../src/server/snapshotFile.ts';

const state = Buffer.from('TRELLIS-STATE\n{"version":1}');
const file = () => encodeSnapshotFile(state, { index: 42, datacenter: 'dc1', node: 'n1', now: new Date('2024-01-02T03:04:05Z') });

describe('snapshot file', () => {
  test('round trip keeps the state bytes and the metadata', () => {
    const { meta, state: out } = decodeSnapshotFile(file());
    assert.deepEqual(Buffer.from(out), state);
    assert.equal(meta.index, 42);
    assert.equal(meta.datacenter, 'dc1');
    assert.equal(meta.createdAt, '2024-01-02T03:04:05.000Z');
  });

  const bad: Array<[string, (f: Buffer) => Buffer, RegExp]> = [
    ['not a snapshot at all', () => Buffer.from('{"Key":"x"}'), /not a Trellis snapshot file/],
    ['empty', () => Buffer.alloc(0), /not a Trellis snapshot file/],
    ['truncated', (f) => f.subarray(0, f.length - 3), /truncated or padded/],
    ['padded', (f) => Buffer.concat([f, Buffer.from('xx')]), /truncated or padded/],
    ['one byte flipped in the state', (f) => { const g = Buffer.from(f); g[g.length - 2] ^= 1; return g; }, /checksum mismatch/],
    ['header cut', (f) => f.subarray(0, 20), /header is missing or damaged/],
    ['header not JSON', () => Buffer.from('TRELLIS-SNAPSHOT\n{oops\nxx'), /not valid JSON/],
    ['another version', (f) => Buffer.from(f.toString('latin1').replace('"version":1', '"version":9'), 'latin1'), /version 9 is not supported/],
  ];
  for (const [name, mangle, msg] of bad) {
    test(`refused: ${name}`, () => {
      assert.throws(() => decodeSnapshotFile(mangle(file())), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'ERR_SNAPSHOT_INVALID');
        assert.match(err.message, msg);
        return true;
      });
    });
  }
});
