// Parser for Consul's filter expressions (hashicorp/go-bexpr's grammar).
//
// bexpr's grammar is a PEG, and its quirks are part of the language users write: keywords are lower
// case and need whitespace around them (`a == 1 and b == 2`, never `a==1and b==2`), `==` and `!=`
// need none, a bare identifier is a value (`Checks.Status == passing`), and a number must be
// followed by whitespace, `)` or the end. So this is a hand-written PEG over characters, one
// function per grammar rule, rather than a tokenizer: a tokenizer would accept a different language.
//
// Two deliberate departures, both accepting more than bexpr and never less: `\"` inside a
// double-quoted string is an escaped quote (bexpr's grammar ends the string there and then fails),
// and and/or chains are parsed by iteration instead of right recursion (same language and meaning,
// no re-parsing on backtrack).
//
// Errors follow PEG practice: remember the furthest position any rule failed at and what it
// expected there; if the whole parse fails, that is where the mistake is.

import type { Expression, MatchExpression, MatchOperator, MatchValue, Selector } from './ast.ts';
import { FilterError } from './errors.ts';

/** Nesting of `not` and parentheses allowed; deeper input is refused, not a stack overflow. */
export const MAX_NESTING_DEPTH = 100;

export function parseExpression(src: string): Expression {
  if (typeof src !== 'string') throw new FilterError(String(src), 'filter expression must be a string');
  if (src.trim() === '') throw new FilterError(src, 'filter expression is empty', 0);
  return new Parser(src).parseInput();
}

// Expectations that are descriptions rather than literal text (literals are stored quoted).
const LABELS = new Set(['an expression', 'a selector', 'a value', 'whitespace', 'end of input']);

class Parser {
  private readonly src: string;
  private pos = 0;
  private depth = 0;
  private failPos = -1;
  private expected = new Set<string>();

  constructor(src: string) {
    this.src = src;
  }

  parseInput(): Expression {
    this.optWs();
    const expr = this.parseOr();
    if (expr !== null) {
      this.optWs();
      if (this.pos === this.src.length) return expr;
      this.expect('end of input');
    }
    throw this.syntaxError();
  }

  // ---- expressions -------------------------------------------------------------------------

  private parseOr(): Expression | null {
    let left = this.parseAnd();
    if (left === null) return null;
    for (;;) {
      const save = this.pos;
      if (this.keywordBetweenWs('or', ['an expression'])) {
        const right = this.parseAnd();
        if (right !== null) {
          left = { kind: 'or', left, right };
          continue;
        }
      }
      this.pos = save;
      return left;
    }
  }

  private parseAnd(): Expression | null {
    let left = this.parseNot();
    if (left === null) return null;
    for (;;) {
      const save = this.pos;
      if (this.keywordBetweenWs('and', ['an expression'])) {
        const right = this.parseNot();
        if (right !== null) {
          left = { kind: 'and', left, right };
          continue;
        }
      }
      this.pos = save;
      return left;
    }
  }

  private parseNot(): Expression | null {
    if (++this.depth > MAX_NESTING_DEPTH) {
      throw new FilterError(this.src, `expression is nested more than ${MAX_NESTING_DEPTH} levels deep`, this.pos);
    }
    try {
      return this.labeled('an expression', () => {
        const save = this.pos;
        // "not" _ NotExpression; if that fails, "not" may still be a selector (`not == 1`).
        if (this.literal('not') && this.wsOrExpectAtEnd(['an expression'])) {
          const operand = this.parseNot();
          if (operand !== null) return { kind: 'not', operand } satisfies Expression;
        }
        this.pos = save;
        return this.parseParenthesized();
      });
    } finally {
      this.depth--;
    }
  }

  private parseParenthesized(): Expression | null {
    const save = this.pos;
    if (this.literal('(')) {
      this.optWs();
      const inner = this.parseOr();
      if (inner !== null) {
        this.optWs();
        if (this.literal(')')) return inner;
      }
    }
    this.pos = save;
    return this.parseMatch();
  }

  // MatchSelectorOpValue / MatchSelectorOp / MatchValueOpSelector, in bexpr's order.
  private parseMatch(): MatchExpression | null {
    const start = this.pos;
    const selector = this.parseSelector();
    if (selector !== null) {
      const afterSelector = this.pos;
      const op = this.parseSelectorValueOperator();
      if (op !== null) {
        const value = this.parseValue();
        if (value !== null) return { kind: 'match', selector, operator: op, value };
      }
      this.pos = afterSelector;
      const emptiness = this.parseEmptinessOperator();
      if (emptiness !== null) return { kind: 'match', selector, operator: emptiness, value: undefined };
    }
    this.pos = start;
    const value = this.parseValue();
    if (value !== null) {
      const op = this.parseInOperator();
      if (op !== null) {
        const sel = this.parseSelector();
        if (sel !== null) return { kind: 'match', selector: sel, operator: op, value };
      }
    }
    this.pos = start;
    return null;
  }

  // ---- operators ---------------------------------------------------------------------------

  private parseSelectorValueOperator(): MatchOperator | null {
    const save = this.pos;
    this.optWs();
    if (this.literal('==')) {
      this.optWs();
      return '==';
    }
    if (this.literal('!=')) {
      this.optWs();
      return '!=';
    }
    this.pos = save;
    if (this.keywordBetweenWs('contains', ['a value'])) return 'in';
    this.pos = save;
    if (this.keywordBetweenWs('matches', ['a value'])) return 'matches';
    this.pos = save;
    if (this.wsThenKeyword('not') && this.ws()) {
      const afterNot = this.pos;
      if (this.literal('contains') && this.wsOrExpectAtEnd(['a value'])) return 'not in';
      this.pos = afterNot;
      if (this.literal('matches') && this.wsOrExpectAtEnd(['a value'])) return 'not matches';
    }
    this.pos = save;
    return null;
  }

  private parseEmptinessOperator(): MatchOperator | null {
    const save = this.pos;
    if (this.keywordBetweenWs('is', ['"empty"', '"not"'])) {
      const afterIs = this.pos;
      if (this.literal('empty')) return 'is empty';
      this.pos = afterIs;
      if (this.literal('not') && this.wsOrExpectAtEnd(['"empty"']) && this.literal('empty')) return 'is not empty';
    }
    this.pos = save;
    return null;
  }

  private parseInOperator(): MatchOperator | null {
    const save = this.pos;
    if (this.keywordBetweenWs('in', ['a selector'])) return 'in';
    this.pos = save;
    if (this.keywordBetweenWs('not', ['"in"']) && this.literal('in') && this.wsOrExpectAtEnd(['a selector'])) {
      return 'not in';
    }
    this.pos = save;
    return null;
  }

  // ---- selectors and values ----------------------------------------------------------------

  private parseSelector(): Selector | null {
    return this.labeled('a selector', () => {
      const offset = this.pos;
      const first = this.identifier();
      if (first === null) return null;
      const path = [first];
      for (;;) {
        const save = this.pos;
        // Not this.literal('.'): a selector may always end here, so "." is no useful hint.
        if (this.src[this.pos] === '.') {
          this.pos++;
          const ident = this.identifier();
          if (ident !== null) {
            path.push(ident);
            continue;
          }
          const digits = this.digits();
          if (digits !== null) {
            path.push(digits);
            continue;
          }
          this.pos = save;
          return { path, offset };
        }
        if (this.src[this.pos] === '[') {
          path.push(this.indexExpression());
          continue;
        }
        return { path, offset };
      }
    });
  }

  // `[` _? StringLiteral _? `]`, with bexpr's two named errors.
  private indexExpression(): string {
    const open = this.pos;
    this.pos++; // '['
    this.optWs();
    const key = this.stringLiteral();
    if (key === null) throw new FilterError(this.src, 'Invalid index: expected a quoted string inside [ ]', this.pos);
    this.optWs();
    if (this.src[this.pos] === ']') {
      this.pos++;
      return key;
    }
    throw new FilterError(this.src, `Unclosed index expression: expected "]" to close "[" at offset ${open}`, this.pos);
  }

  private parseValue(): MatchValue | null {
    return this.labeled('a value', () => {
      const offset = this.pos;
      const sel = this.parseSelector();
      if (sel !== null) return { raw: sel.path.join('.'), offset };
      const num = this.numberLiteral();
      if (num !== null) return { raw: num, offset };
      const str = this.stringLiteral();
      if (str !== null) return { raw: str, offset };
      return null;
    });
  }

  private identifier(): string | null {
    const start = this.pos;
    if (!isLetter(this.src.charCodeAt(start))) return null;
    let end = start + 1;
    while (end < this.src.length && isIdentChar(this.src.charCodeAt(end))) end++;
    this.pos = end;
    return this.src.slice(start, end);
  }

  private digits(): string | null {
    const start = this.pos;
    let end = start;
    while (end < this.src.length && isDigit(this.src.charCodeAt(end))) end++;
    if (end === start) return null;
    this.pos = end;
    return this.src.slice(start, end);
  }

  // "-"? ("0" / [1-9][0-9]*) ("." [0-9]+)? followed by whitespace, ")" or the end.
  private numberLiteral(): string | null {
    const start = this.pos;
    let p = start;
    if (this.src[p] === '-') p++;
    const c = this.src.charCodeAt(p);
    if (c === 48 /* 0 */) {
      p++;
    } else if (c >= 49 && c <= 57) {
      while (isDigit(this.src.charCodeAt(p))) p++;
    } else {
      return null;
    }
    if (this.src[p] === '.' && isDigit(this.src.charCodeAt(p + 1))) {
      p++;
      while (isDigit(this.src.charCodeAt(p))) p++;
    }
    if (p < this.src.length && !isWs(this.src.charCodeAt(p)) && this.src[p] !== ')') {
      throw new FilterError(this.src, `Invalid number literal: "${this.src.slice(start, p + 1)}"`, start);
    }
    this.pos = p;
    return this.src.slice(start, p);
  }

  // Backquoted strings are raw; double-quoted ones take Go's escapes (strconv.Unquote).
  private stringLiteral(): string | null {
    const start = this.pos;
    const quote = this.src[start];
    if (quote === '`') {
      const end = this.src.indexOf('`', start + 1);
      if (end < 0) throw new FilterError(this.src, 'Unterminated string literal', start);
      this.pos = end + 1;
      return this.src.slice(start + 1, end);
    }
    if (quote !== '"') return null;
    let out = '';
    let p = start + 1;
    for (;;) {
      if (p >= this.src.length) throw new FilterError(this.src, 'Unterminated string literal', start);
      const ch = this.src[p];
      if (ch === '"') break;
      if (ch !== '\\') {
        out += ch;
        p++;
        continue;
      }
      const [decoded, next] = decodeEscape(this.src, p);
      out += decoded;
      p = next;
    }
    this.pos = p + 1;
    return out;
  }

  // ---- whitespace and keywords -------------------------------------------------------------

  private ws(): boolean {
    const start = this.pos;
    while (this.pos < this.src.length && isWs(this.src.charCodeAt(this.pos))) this.pos++;
    return this.pos > start;
  }

  private optWs(): void {
    this.ws();
  }

  /** `_ "word" _`: whitespace, the keyword, whitespace (what follows at the end is `after`). */
  private keywordBetweenWs(word: string, after: readonly string[]): boolean {
    return this.wsThenKeyword(word) && this.wsOrExpectAtEnd(after);
  }

  /** `_ "word"`. At the end of input, the keyword is what was expected there. */
  private wsThenKeyword(word: string): boolean {
    if (!this.ws()) {
      if (this.pos >= this.src.length) this.expect(`"${word}"`);
      else this.expect('whitespace');
      return false;
    }
    return this.literal(word);
  }

  /** Required whitespace after a keyword; at the end of input, report what should have followed. */
  private wsOrExpectAtEnd(after: readonly string[]): boolean {
    if (this.ws()) return true;
    if (this.pos >= this.src.length) for (const a of after) this.expect(a);
    else this.expect('whitespace');
    return false;
  }

  private literal(text: string): boolean {
    if (this.src.startsWith(text, this.pos)) {
      this.pos += text.length;
      return true;
    }
    this.expect(`"${text}"`);
    return false;
  }

  // ---- failure tracking --------------------------------------------------------------------

  private expect(what: string): void {
    if (this.pos > this.failPos) {
      this.failPos = this.pos;
      this.expected = new Set([what]);
    } else if (this.pos === this.failPos) {
      this.expected.add(what);
    }
  }

  /** A rule that fails where it started is reported by its name, not by its alternatives. */
  private labeled<T>(name: string, rule: () => T | null): T | null {
    const start = this.pos;
    const before = this.failPos === start ? [...this.expected] : [];
    const result = rule();
    if (result === null) {
      this.pos = start;
      if (this.failPos === start) this.expected = new Set([...before, name]);
      else if (this.failPos < start) this.expect(name);
    }
    return result;
  }

  private syntaxError(): FilterError {
    const at = Math.max(this.failPos, 0);
    const expected = [...this.expected].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
    const list = expected.length <= 1 ? (expected[0] ?? 'an expression') : `${expected.slice(0, -1).join(', ')} or ${expected[expected.length - 1]}`;
    return new FilterError(this.src, `expected ${list}, found ${describeAt(this.src, at)}`, at);
  }
}

// Descriptions before quoted literals, so messages read "expected a value or ...".
function rank(e: string): number {
  return LABELS.has(e) ? 0 : 1;
}

function describeAt(src: string, at: number): string {
  if (at >= src.length) return 'end of input';
  const m = /^\S{1,20}/.exec(src.slice(at));
  return JSON.stringify(m ? m[0] : src[at]);
}

function decodeEscape(src: string, p: number): [string, number] {
  const c = src[p + 1];
  const simple: Record<string, string> = { a: '\x07', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v', '\\': '\\', '"': '"' };
  if (c !== undefined && c in simple) return [simple[c]!, p + 2];
  const hex = (len: number): [string, number] => {
    const digits = src.slice(p + 2, p + 2 + len);
    if (digits.length !== len || !/^[0-9a-fA-F]+$/.test(digits)) {
      throw new FilterError(src, `invalid escape sequence in string literal: expected ${len} hex digits after \\${c}`, p);
    }
    const code = parseInt(digits, 16);
    if (code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) {
      throw new FilterError(src, `invalid escape sequence in string literal: \\${c}${digits} is not a Unicode code point`, p);
    }
    return [String.fromCodePoint(code), p + 2 + len];
  };
  if (c === 'x') return hex(2);
  if (c === 'u') return hex(4);
  if (c === 'U') return hex(8);
  if (c !== undefined && c >= '0' && c <= '7') {
    const digits = src.slice(p + 1, p + 4);
    if (!/^[0-7]{3}$/.test(digits) || parseInt(digits, 8) > 255) {
      throw new FilterError(src, 'invalid escape sequence in string literal: octal escapes need three digits up to \\377', p);
    }
    return [String.fromCharCode(parseInt(digits, 8)), p + 4];
  }
  throw new FilterError(src, `invalid escape sequence in string literal: \\${c ?? ''}`, p);
}

function isLetter(c: number): boolean {
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
}
function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}
function isIdentChar(c: number): boolean {
  return isLetter(c) || isDigit(c) || c === 95 /* _ */ || c === 47 /* / */;
}
function isWs(c: number): boolean {
  return c === 32 || c === 9 || c === 13 || c === 10;
}
