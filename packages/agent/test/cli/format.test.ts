// The formatters Consul's output is made of: columnize, text/tabwriter, encoding/json.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { columnize, tabwrite, goJsonIndent, goJsonString } from '../../src/cli/format.ts';

describe('columnize', () => {
  test('pads every column but the last to its widest cell, joined by two spaces', () => {
    assert.equal(columnize([['a', 'bb', 'c'], ['dddd', 'e', 'ffff']]), 'a     bb  c\ndddd  e   ffff');
  });
  test('trims cells and counts code points, not UTF-16 units', () => {
    assert.equal(columnize([[' x ', 'y'], ['µ𝄞', 'z']]), 'x   y\nµ𝄞  z');
  });
  test('rows with fewer cells end early', () => {
    assert.equal(columnize([['a', 'b', 'c'], ['long']]), 'a     b  c\nlong');
  });
});

describe('tabwrite (minwidth 0, padding 6)', () => {
  test('cell width is the widest cell plus 6; the last cell is not aligned', () => {
    assert.equal(tabwrite([['Key', 'v'], ['ModifyIndex', '12']]), 'Key              v\nModifyIndex      12');
  });
});

describe('Go JSON', () => {
  const cases: Array<[string, string]> = [
    ['plain', '"plain"'],
    ['<a & b>', '"\\u003ca \\u0026 b\\u003e"'],
    ['tab\tnl\ncr\r', '"tab\\tnl\\ncr\\r"'],
    ['\b\f\u0001', '"\\u0008\\u000c\\u0001"'],
    ['\u2028\u2029', '"\\u2028\\u2029"'],
    ['quote " back \\', '"quote \\" back \\\\"'],
    ['é日本', '"é日本"'],
  ];
  for (const [input, want] of cases) test(`string ${JSON.stringify(input)}`, () => assert.equal(goJsonString(input), want));
  test('MarshalIndent layout with bigint', () => {
    assert.equal(goJsonIndent({ a: [1, { b: 2n ** 63n }], e: [], o: {} }, '\t'), '{\n\t"a": [\n\t\t1,\n\t\t{\n\t\t\t"b": 9223372036854775808\n\t\t}\n\t],\n\t"e": [],\n\t"o": {}\n}');
  });
});
