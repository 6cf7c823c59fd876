// The HCL 1 parser. Expected values in the first table were recorded from hashicorp/hcl v1 itself
// (hcl.Unmarshal into interface{}, as compiled to JavaScript in the js-hcl-parser package) on the
// same input, so they are HCL 1's answers, not ours.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseHcl, HclSyntaxError } from '../../src/config/hcl.ts';

const SAME_AS_HCL1: Array<[string, string, unknown]> = [
  ['a key written twice keeps the last value', 'a = 1\na = 2', { a: 2 }],
  ['a block and an object assignment both append', 'meta { a = "1" }\nmeta = { b = "2" }', { meta: [{ a: '1' }, { b: '2' }] }],
  ['labelled blocks written twice stay apart', 'service "a" { x = 1 }\nservice "a" { y = 2 }', { service: [{ a: [{ x: 1 }] }, { a: [{ y: 2 }] }] }],
  ['objects in a list are plain; below them, lists again', 'l = [{ a = { b = 1 } }, { c = [1, 2] }]', { l: [{ a: [{ b: 1 }] }, { c: [1, 2] }] }],
  ['lists of lists', 'l = [[1, 2], ["a"]]', { l: [[1, 2], ['a']] }],
  ['numbers: octal, float with exponent, negative, hex', 'n = 0755\nm = 010\nf = 1.5e2\nneg = -0.5\nh = 0xFF', { n: 493, m: 8, f: 150, neg: -0.5, h: 255 }],
  ['empty blocks and objects', 'e {}\nf = {}', { e: [{}], f: [{}] }],
  ['empty list', 'l = []', { l: [] }],
  ['quoted keys', '"quoted key" = 1\n"k" { a = 1 }', { 'quoted key': 1, k: [{ a: 1 }] }],
  ['names with dots and dashes', 'a.b-c = 1', { 'a.b-c': 1 }],
  ['escapes, unicode and interpolations kept as written', 's = "a\\tb\\n\\"q\\" \\u00e9 ${foo("x")}"', { s: 'a\tb\n"q" é ${foo("x")}' }],
  ['commas between items in a block, trailing too', 'o { a = 1, b = 2, }', { o: [{ a: 1, b: 2 }] }],
  ['heredoc keeps indentation and the last newline', 'h = <<EOF\n  keep\nEOF\n', { h: '  keep\n' }],
  ['indented heredoc loses the common indentation', 'a = <<-EOT\n    x\n      y\n    EOT\n', { a: 'x\n  y\n' }],
  ['empty heredoc', 'h = <<EOF\nEOF\n', { h: '' }],
  ['comments of all three kinds, anywhere', '# c1\na = 1 // c2\n/* c3\n more */ b = [ # c4\n 1, // c5\n 2 /* c6 */ ]\n', { a: 1, b: [1, 2] }],
  ['labels nest', 'a "b" {}', { a: [{ b: [{}] }] }],
  ['two labels', 'f "x" "y" { g = 1 }', { f: [{ x: [{ y: [{ g: 1 }] }] }] }],
  ['booleans', 'b = true\nc = false', { b: true, c: false }],
  ['repeated nested blocks', 'a { b { c = 1 } b { c = 2 } }\na { d = 3 }', { a: [{ b: [{ c: 1 }, { c: 2 }] }, { d: 3 }] }],
  ['keys are case-sensitive', 'A = 1\na = 2', { A: 1, a: 2 }],
  ['trailing comma in a list', 'd = ["a", "b",]', { d: ['a', 'b'] }],
  // From Consul's service-splitter documentation (HCL tab): note the comma after the attribute.
  ['a trailing comma after a top-level attribute', 'Kind = "service-splitter",\nName = "web"\nSplits = [\n  {\n    Weight        = 90\n    ServiceSubset = "v1"\n  },\n  {\n    Weight        = 10\n    ServiceSubset = "v2"\n  },\n]\n',
    { Kind: 'service-splitter', Name: 'web', Splits: [{ Weight: 90, ServiceSubset: 'v1' }, { Weight: 10, ServiceSubset: 'v2' }] }],
];

describe('parseHcl gives HCL 1 decode shapes', () => {
  for (const [name, src, want] of SAME_AS_HCL1) {
    test(name, () => assert.deepEqual(parseHcl(src), want));
  }
  test('integers beyond 32 bits (where GopherJS builds of HCL 1 fail)', () => {
    assert.deepEqual(parseHcl('b = 3000000000\nc = 12345678901234'), { b: 3_000_000_000, c: 12_345_678_901_234 });
  });
  test('a string stays a string ("1" is not the number 1)', () => {
    assert.deepEqual(parseHcl('meta { version = "1" }'), { meta: [{ version: '1' }] });
  });
  test('an empty file and a file of comments are an empty object', () => {
    assert.deepEqual(parseHcl(''), {});
    assert.deepEqual(parseHcl('# nothing\n// here\n'), {});
  });
  test('CRLF line endings', () => {
    assert.deepEqual(parseHcl('a = 1\r\nb {\r\n  c = "x"\r\n}\r\n'), { a: 1, b: [{ c: 'x' }] });
  });
});

describe('syntax errors name the line and column', () => {
  const cases: Array<[string, string, RegExp]> = [
    ['unterminated list', 'a = "x"\nb = [1,\n', /^At 2:5: list not terminated/],
    ['unterminated block', 'a {\n b = 1\n', /^At 3:1: object expected closing "}"/],
    ['missing value', 'a = ', /^At 1:5: expected a value, got end of file/],
    ['unterminated string', 'a = "abc\nb = 1', /^At 1:5: literal not terminated/],
    ['bare word as a value', 'a = yes', /^At 1:5: unexpected name "yes"/],
    ['labels then =', 'a "b" = 1', /^At 1:7: nested object expected/],
    ['list items without a comma', 'a = [1 2]', /^At 1:8: error parsing list, expected "," or "\]"/],
    ['unterminated comment', 'a = 1 /* x', /^At 1:7: comment not terminated/],
    ['unterminated heredoc', 'a = <<EOT\nx\n', /^At 1:5: heredoc not terminated/],
    ['illegal character', 'a = 1\n@', /^At 2:1: illegal char "@"/],
    ['a value then a block of the same name', 'x = 3\nx { a = 1 }', /^At 2:1: "x" is both a value and a block/],
    ['unknown escape', 'a = "\\q"', /unknown escape sequence \\q/],
  ];
  for (const [name, src, re] of cases) {
    test(name, () => {
      assert.throws(() => parseHcl(src), (err: unknown) => {
        assert.ok(err instanceof HclSyntaxError, `expected HclSyntaxError, got ${err}`);
        assert.match(err.message, re);
        return true;
      });
    });
  }
});

// Property: any document built from HCL's value kinds, printed as HCL in one of its equivalent
// spellings, parses to the decode shape a simple oracle predicts (objects under a key are [obj],
// objects inside a list are plain).
describe('parseHcl against an oracle (fast-check)', () => {
  type V = string | number | boolean | V[] | { [k: string]: V };
  const key = fc.stringMatching(/^[a-z_][a-z0-9_-]{0,8}$/).filter((k) => k !== 'true' && k !== 'false');
  const scalar: fc.Arbitrary<V> = fc.oneof(
    fc.string({ maxLength: 12 }),
    fc.integer({ min: -1e12, max: 1e12 }),
    fc.double({ min: -1e6, max: 1e6, noNaN: true, noDefaultInfinity: true }).filter((x) => !Number.isInteger(x)),
    fc.boolean(),
  );
  const { doc } = fc.letrec<{ doc: { [k: string]: V }; value: V }>((tie) => ({
    doc: fc.dictionary(key, tie('value'), { maxKeys: 4 }) as fc.Arbitrary<{ [k: string]: V }>,
    value: fc.oneof({ depthSize: 'small', withCrossShrink: true },
      scalar,
      fc.array(fc.oneof(scalar, tie('doc')), { maxLength: 3 }) as fc.Arbitrary<V>,
      tie('doc')),
  }));

  const isObj = (v: V): v is { [k: string]: V } => typeof v === 'object' && !Array.isArray(v);
  function printScalar(v: V): string {
    if (typeof v === 'string') return JSON.stringify(v).replace(/\$\{/g, '\\u0024{'); // no interpolation
    if (typeof v === 'number') return Number.isInteger(v) ? String(v) : v.toExponential();
    return String(v);
  }
  function printValue(v: V, style: number): string {
    if (Array.isArray(v)) return `[${v.map((x) => printValue(x, style)).join(', ')}${style % 2 && v.length > 0 ? ',' : ''}]`;
    if (isObj(v)) return `{\n${printBody(v, style)}}`;
    return printScalar(v);
  }
  function printBody(o: { [k: string]: V }, style: number): string {
    return Object.entries(o).map(([k, v]) => {
      const name = style % 3 === 0 ? JSON.stringify(k) : k;
      if (isObj(v) && style % 2 === 0) return `${name} {\n${printBody(v, style)}}\n`; // block
      return `${name} = ${printValue(v, style)}${style % 5 === 0 ? ',' : ''} # c\n`;
    }).join('');
  }
  function expected(v: V, inList: boolean): unknown {
    if (Array.isArray(v)) return v.map((x) => expected(x, true));
    if (isObj(v)) {
      const o = Object.fromEntries(Object.entries(v).map(([k, x]) => [k, expected(x, false)]));
      return inList ? o : [o];
    }
    return v;
  }

  test('printed documents parse back to the predicted shape', () => {
    fc.assert(fc.property(doc, fc.integer({ min: 0, max: 29 }), (d, style) => {
      const want = Object.fromEntries(Object.entries(d).map(([k, x]) => [k, expected(x, false)]));
      assert.deepEqual(parseHcl(printBody(d, style)), want);
    }), { numRuns: 300 });
  });
});

test('a key named __proto__ is an ordinary key, as in JSON.parse', () => {
  const doc = parseHcl('"__proto__" = 1\nx "__proto__" { polluted = true }\n');
  assert.deepEqual(Object.keys(doc), ['__proto__', 'x']);
  assert.equal(Object.getPrototypeOf(doc), Object.prototype);
  assert.equal(({} as Record<string, unknown>)['polluted'], undefined);
  assert.deepEqual(JSON.parse(JSON.stringify(doc)), JSON.parse('{"__proto__": 1, "x": [{"__proto__": [{"polluted": true}]}]}'));
});
