// The grammar is bexpr's (grammar/grammar.peg): each row is an expression and the tree it must
// produce, printed as an s-expression: (op selector value).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseExpression, FilterError, type Expression } from '../../src/filter/index.ts';
import { MAX_NESTING_DEPTH } from '../../src/filter/parser.ts';

function show(e: Expression): string {
  switch (e.kind) {
    case 'and':
    case 'or':
      return `(${e.kind} ${show(e.left)} ${show(e.right)})`;
    case 'not':
      return `(not ${show(e.operand)})`;
    case 'match': {
      const sel = e.selector.path.map((p) => (/^([A-Za-z][A-Za-z0-9_/]*|[0-9]+)$/.test(p) ? p : `[${JSON.stringify(p)}]`)).join('.');
      return e.value === undefined ? `(${e.operator} ${sel})` : `(${e.operator} ${sel} ${JSON.stringify(e.value.raw)})`;
    }
  }
}

const accepted: Array<[name: string, expr: string, tree: string]> = [
  ['equality with a quoted value', 'Service.Name == "web"', '(== Service.Name "web")'],
  ['no spaces around ==', 'Service.Name=="web"', '(== Service.Name "web")'],
  ['inequality', 'Node != `n1`', '(!= Node "n1")'],
  ['backquoted strings are raw', 'Output == `a\\nb`', '(== Output "a\\\\nb")'],
  ['Go escapes in double quotes', 'Output == "a\\tb\\u00e9\\x41\\101"', '(== Output "a\\tbéAA")'],
  ['escaped double quote', 'Output == "say \\"hi\\""', '(== Output "say \\"hi\\"")'],
  ['bare identifier is a value', 'Checks.Status == passing', '(== Checks.Status "passing")'],
  ['bare dotted identifier is a value', 'Service.Meta.version == v1.2', '(== Service.Meta.version "v1.2")'],
  ['integer value', 'Service.Port == 8080', '(== Service.Port "8080")'],
  ['negative float value', 'Weight == -1.5', '(== Weight "-1.5")'],
  ['boolean as identifier', 'Connect.Native == true', '(== Connect.Native "true")'],
  ['map index with a quoted key', 'ServiceMeta["a.b"] == x', '(== ServiceMeta.["a.b"] "x")'],
  ['index with spaces inside brackets', 'Meta[ "env" ] == prod', '(== Meta.env "prod")'],
  ['numeric path segment', 'Checks.0.Status == passing', '(== Checks.0.Status "passing")'],
  ['slash in identifier', 'Meta.k8s/ns == default', '(== Meta.k8s/ns "default")'],
  ['value in selector', '"primary" in Service.Tags', '(in Service.Tags "primary")'],
  ['value not in selector', 'v1 not in Service.Tags', '(not in Service.Tags "v1")'],
  ['contains is in reversed', 'Service.Tags contains "primary"', '(in Service.Tags "primary")'],
  ['not contains', 'Service.Tags not contains primary', '(not in Service.Tags "primary")'],
  ['is empty', 'Service.Tags is empty', '(is empty Service.Tags)'],
  ['is not empty', 'Service.Meta is not empty', '(is not empty Service.Meta)'],
  ['matches', 'Node matches "^web-[0-9]+$"', '(matches Node "^web-[0-9]+$")'],
  ['not matches', 'Node not matches `^db`', '(not matches Node "^db")'],
  ['and binds tighter than or', 'a == 1 or b == 2 and c == 3', '(or (== a "1") (and (== b "2") (== c "3")))'],
  ['not binds tighter than and', 'not a == 1 and b == 2', '(and (not (== a "1")) (== b "2"))'],
  ['parentheses override precedence', '(a == 1 or b == 2) and c == 3', '(and (or (== a "1") (== b "2")) (== c "3"))'],
  ['not of a group', 'not (a == 1 or b == 2)', '(not (or (== a "1") (== b "2")))'],
  ['double not is kept', 'not not a == 1', '(not (not (== a "1")))'],
  ['chains are left to right', 'a == 1 and b == 2 and c == 3', '(and (and (== a "1") (== b "2")) (== c "3"))'],
  ['whitespace of all kinds', '\t a == 1\n\tor\r\nb == 2 ', '(or (== a "1") (== b "2"))'],
  ['number before a closing paren', '(a == 1)', '(== a "1")'],
  ['keyword-like field names', 'notes == x and order == y', '(and (== notes "x") (== order "y"))'],
  ['"not" as a selector when it cannot be an operator', 'not == 1', '(== not "1")'],
  ['identifier starting with a keyword', 'index contains isx', '(in index "isx")'],
];

const rejected: Array<[name: string, expr: string, message: RegExp, offset: number]> = [
  ['empty', '', /filter expression is empty/, 0],
  ['only whitespace', '   ', /filter expression is empty/, 0],
  ['selector alone', 'Service.Name', /expected "!=", "==", .*found end of input/, 12],
  ['missing value', 'Service.Name ==', /expected a value, found end of input/, 15],
  ['dangling and', 'a == 1 and', /expected an expression, found end of input/, 10],
  ['dangling or with space', 'a == 1 or ', /expected an expression, found end of input/, 10],
  ['unclosed parenthesis', '(a == 1', /expected "\)", "and" or "or", found end of input/, 7],
  ['stray closing parenthesis', 'a == 1)', /expected end of input.*found "\)"/, 6],
  ['two values', 'a == 1 b', /expected end of input, "and" or "or", found "b"/, 7],
  ['keyword needs whitespace before it', 'a == "x"and b == 1', /expected end of input or whitespace, found "and"/, 8],
  ['upper-case keyword', 'a == 1 AND b == 2', /found "AND"/, 7],
  ['single =', 'a = 1', /found "="/, 2],
  ['is without empty', 'Tags is', /expected "empty" or "not", found end of input/, 7],
  ['in without selector', '"x" in', /expected a selector, found end of input/, 6],
  ['in with a number for selector', '"x" in 5', /found "5"/, 7],
  ['unterminated double quote', 'a == "abc', /Unterminated string literal/, 5],
  ['unterminated backquote', 'a == `abc', /Unterminated string literal/, 5],
  ['invalid escape', 'a == "\\q"', /invalid escape sequence/, 6],
  ['short unicode escape', 'a == "\\u12"', /4 hex digits/, 6],
  ['surrogate escape', 'a == "\\ud800"', /not a Unicode code point/, 6],
  ['leading zero', 'a == 01', /Invalid number literal/, 5],
  ['number glued to letters', 'a == 1abc', /Invalid number literal/, 5],
  ['trailing dot on number', 'a == 1.', /Invalid number literal/, 5],
  ['index without string', 'Meta[1] == x', /Invalid index/, 5],
  ['unclosed index', 'Meta["x" == y', /Unclosed index expression/, 9],
  ['selector starting with digit', '1abc == x', /Invalid number literal/, 0],
  ['only an operator', '==', /expected an expression, found "=="/, 0],
  ['empty parentheses', '()', /expected an expression, found "\)"/, 1],
  ['not alone', 'not', /found end of input/, 3],
];

describe('filter parser: accepted expressions', () => {
  for (const [name, expr, tree] of accepted) {
    test(name, () => assert.equal(show(parseExpression(expr)), tree));
  }
});

describe('filter parser: rejected expressions', () => {
  for (const [name, expr, message, offset] of rejected) {
    test(name, () => {
      assert.throws(
        () => parseExpression(expr),
        (err: unknown) => {
          assert.ok(err instanceof FilterError, `threw ${String(err)}`);
          assert.equal(err.code, 'ERR_INVALID_FILTER');
          assert.match(err.message, /^Failed to create boolean expression evaluator: /);
          assert.match(err.reason, message);
          assert.equal(err.position?.offset, offset, err.message);
          return true;
        },
      );
    });
  }
});

describe('filter parser: positions and limits', () => {
  test('line and column count from 1 across newlines', () => {
    const err = (() => {
      try {
        parseExpression('a == 1 and\n  b ==');
      } catch (e) {
        return e as FilterError;
      }
      throw new Error('expected a FilterError');
    })();
    assert.deepEqual(err.position, { line: 2, column: 7, offset: 17 });
    assert.match(err.message, /: 2:7 \(17\): expected a value/);
  });

  test('nesting deeper than the limit is a FilterError, not a stack overflow', () => {
    const deep = '('.repeat(MAX_NESTING_DEPTH + 5) + 'a == 1' + ')'.repeat(MAX_NESTING_DEPTH + 5);
    assert.throws(() => parseExpression(deep), (e: unknown) => e instanceof FilterError && /nested more than/.test(e.reason));
    const nots = 'not '.repeat(10_000) + 'a == 1';
    assert.throws(() => parseExpression(nots), FilterError);
  });

  test('nesting within the limit parses', () => {
    const ok = '('.repeat(MAX_NESTING_DEPTH - 2) + 'a == 1' + ')'.repeat(MAX_NESTING_DEPTH - 2);
    assert.equal(show(parseExpression(ok)), '(== a "1")');
  });

  test('long flat chains parse in linear time', () => {
    const expr = Array.from({ length: 5000 }, (_, i) => `f${i} == ${i}`).join(' or ');
    const t0 = performance.now();
    parseExpression(expr);
    assert.ok(performance.now() - t0 < 2000);
  });
});
