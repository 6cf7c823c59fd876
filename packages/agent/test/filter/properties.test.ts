// Property tests. Set FC_SEED to replay a failing run; the seed is printed on failure.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { CheckServiceNodeSchema, compileFilter, FilterError, parseFilter } from '../../src/filter/index.ts';

const seed = process.env.FC_SEED ? Number(process.env.FC_SEED) : Date.now() ^ (Math.random() * 2 ** 31);
const params = { seed, numRuns: 2000 };

function onlyFilterErrors(expr: string): void {
  try {
    parseFilter(expr);
  } catch (e) {
    if (!(e instanceof FilterError)) throw new Error(`non-FilterError for ${JSON.stringify(expr)}: ${String(e)}`);
    assert.ok(e.position === undefined || (e.position.offset >= 0 && e.position.offset <= expr.length), e.message);
  }
}

// Pieces of the language glued at random: far likelier than random characters to get deep into the
// parser (nested groups, operators in odd places, half-written strings and indexes).
const tokens = fc.constantFrom(
  'Service', 'Meta', '.', 'Tags', '[', ']', '"x"', '`y`', '"', '`', '\\', '(', ')', '==', '!=', '=', 'and', 'or', 'not',
  'in', 'contains', 'matches', 'is', 'empty', ' ', '  ', '\n', '1', '-2.5', '0', '01', 'true', '"(?i)a"', '"["', '"\\u00e9"', '"\\q"',
);
const soup = fc.array(tokens, { maxLength: 30 }).map((parts) => parts.join(''));

test('parsing random text throws nothing but FilterError', () => {
  fc.assert(fc.property(fc.string({ maxLength: 80 }), onlyFilterErrors), params);
  fc.assert(fc.property(fc.string({ unit: 'grapheme', maxLength: 40 }), onlyFilterErrors), params);
});

test('parsing random token soup throws nothing but FilterError', () => {
  fc.assert(fc.property(soup, onlyFilterErrors), { ...params, numRuns: 5000 });
});

test('compiling token soup against a schema throws nothing but FilterError', () => {
  fc.assert(
    fc.property(soup, (expr) => {
      try {
        compileFilter(expr, CheckServiceNodeSchema);
      } catch (e) {
        if (!(e instanceof FilterError)) throw e;
      }
    }),
    params,
  );
});

// Oracle: a random boolean formula over atoms whose truth on `row` is known, printed with only the
// parentheses precedence needs (not > and > or). The filter must agree with evaluating the formula
// directly, which checks precedence, associativity, `not`, and each atom's semantics together.
const row = {
  Name: 'web',
  Port: 8080,
  Tags: ['a', 'b'],
  Meta: { env: 'prod' },
  Checks: [{ Status: 'passing' }, { Status: 'critical' }],
};
const atoms: Array<[string, boolean]> = [
  ['Name == web', true],
  ['Name != web', false],
  ['Port == 8080', true],
  ['Port == "80"', false],
  ['a in Tags', true],
  ['Tags contains c', false],
  ['Meta.env == prod', true],
  ['Meta.zone == x', false],
  ['Meta.zone is empty', true],
  ['Checks.Status == critical', true],
  ['Checks.Status == warning', false],
  ['Name matches "^w.b$"', true],
  ['Name not matches "e"', false],
];

type Formula = { atom: number } | { not: Formula } | { and: [Formula, Formula] } | { or: [Formula, Formula] };

const formula: fc.Arbitrary<Formula> = fc.letrec<{ f: Formula }>((tie) => ({
  f: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.record({ atom: fc.nat(atoms.length - 1) }),
    fc.record({ not: tie('f') }),
    fc.record({ and: fc.tuple(tie('f'), tie('f')) }),
    fc.record({ or: fc.tuple(tie('f'), tie('f')) }),
  ),
})).f;

function truth(f: Formula): boolean {
  if ('atom' in f) return atoms[f.atom]![1];
  if ('not' in f) return !truth(f.not);
  if ('and' in f) return truth(f.and[0]) && truth(f.and[1]);
  return truth(f.or[0]) || truth(f.or[1]);
}

// Precedence levels: or 1, and 2, not/atom 3. A child is wrapped when it binds more loosely than
// its context requires; the right operand of and/or is wrapped at equal level too, because chains
// associate to the left.
function print(f: Formula, ctx = 0): string {
  const wrap = (s: string, level: number) => (level < ctx ? `(${s})` : s);
  if ('atom' in f) return atoms[f.atom]![0];
  if ('not' in f) return `not ${print(f.not, 3)}`;
  if ('and' in f) return wrap(`${print(f.and[0], 2)} and ${print(f.and[1], 2.5)}`, 2);
  return wrap(`${print(f.or[0], 1)} or ${print(f.or[1], 1.5)}`, 1);
}

test('filters agree with a direct evaluation of the same formula', () => {
  fc.assert(
    fc.property(formula, (f) => {
      const text = print(f);
      assert.equal(parseFilter(text).matches(row), truth(f), text);
    }),
    params,
  );
});

test('matching never throws, whatever the row', () => {
  const exprs = atoms.map(([e]) => parseFilter(e)).concat([parseFilter('Checks.0.Status != x and Meta["a b"] is not empty')]);
  fc.assert(
    fc.property(fc.anything({ maxDepth: 4 }), (value) => {
      for (const f of exprs) assert.equal(typeof f.matches(value), 'boolean');
      for (const f of exprs) assert.equal(typeof f.matches({ Name: value, Tags: value, Meta: value, Checks: value, Port: value }), 'boolean');
    }),
    { ...params, numRuns: 500 },
  );
});
