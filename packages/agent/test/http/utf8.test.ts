// Invalid UTF-8 in JSON bodies: found at its byte, and named by the field it sits in.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { firstInvalidUtf8, invalidUtf8Error, jsonFieldAt } from '../../src/http/utf8.ts';

const body = (...parts: Array<string | number[]>): Buffer => Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : Buffer.from(p))));

describe('firstInvalidUtf8', () => {
  const CASES: Array<[string, Buffer, number]> = [
    ['valid ASCII', body('{"a":"b"}'), -1],
    ['valid multi-byte (é, €, 😀)', body('{"a":"é€😀"}'), -1],
    ['a stray continuation byte', body('{"a":"x', [0x80], '"}'), 7],
    ['a lead byte followed by ASCII', body('{"a":"', [0xc3, 0x28], '"}'), 6],
    ['a truncated 3-byte sequence', body('{"a":"é', [0xe2, 0x82], '"}'), 8],
    ['0xff', body([0xff]), 0],
    ['an overlong encoding of "/"', body('{"a":"', [0xc0, 0xaf], '"}'), 6],
    ['a UTF-16 surrogate encoded as UTF-8', body('{"a":"', [0xed, 0xa0, 0x80], '"}'), 6],
  ];
  for (const [name, b, want] of CASES) test(name, () => assert.equal(firstInvalidUtf8(b), want));
});

describe('jsonFieldAt', () => {
  const CASES: Array<[string, string]> = [
    ['{"Name": "we', 'Name'],
    ['{"Node": "n", "Service": {"Service": "d', 'Service.Service'],
    ['[{"KV": {"Verb": "set"}}, {"Service": {"Service": {"Service": "x', '[1].Service.Service.Service'],
    ['{"Meta": {"k', 'a key of Meta'],
    ['{"Tags": ["a", "b", "c', 'Tags[2]'],
    ['{"Name": "a\\"b", "Notes": "x', 'Notes'],
    ['{"Na', 'a key of the body'],
    ['"abc', 'the body'],
  ];
  for (const [prefix, want] of CASES) test(`${JSON.stringify(prefix)} → ${want}`, () => assert.equal(jsonFieldAt(prefix), want));
});

test('invalidUtf8Error names the field and the 1-based offset', () => {
  assert.equal(invalidUtf8Error(body('{"Name": "ok"}')), null);
  assert.equal(invalidUtf8Error(body('{"Name": "we', [0xff], 'b"}')), 'invalid UTF-8 in Name at offset 13: JSON text must be UTF-8');
});
