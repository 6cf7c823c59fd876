// HCL 1, the syntax Consul reads its .hcl config files, service definitions and config entries with
// (github.com/hashicorp/hcl v1: hcl.Decode into a map[string]interface{}). Our own small parser
// because the npm packages that compile HCL 1 from Go (js-hcl-parser, hcl-parser, via GopherJS)
// refuse every integer of 2^31 or more, add ~40 MiB of memory and take ~4 ms for a small file, and
// the hand-written ones (hcl-to-json) misread `kind = "x",` and turn the string "1" into a number.
//
// The result has HCL 1's decode shape, which Consul's decoder then flattens (see schema.ts):
//   - `key = value` gives the value; a key written twice keeps the last value;
//   - every object (a block `key { }` or `key = { }`) not directly inside a list is a LIST of
//     objects: `meta { a = "1" }` gives {meta: [{a: "1"}]}, and a block written twice appends;
//   - labels nest: `service "web" { port = 80 }` gives {service: [{web: [{port: 80}]}]};
//   - objects inside a list `[ { … }, { … } ]` are plain objects.
// Syntax: `#`, `//` and `/* */` comments; strings with Go escapes (interpolations `${…}` are kept
// as written); heredocs `<<EOT` and `<<-EOT` (indented); integers (decimal, 0x hex, 0 octal),
// floats, true/false; lists with an optional trailing comma; items optionally separated by commas.

export class HclSyntaxError extends Error {
  readonly code = 'ERR_HCL_SYNTAX';
  readonly line: number;
  readonly column: number;
  constructor(message: string, line: number, column: number) {
    super(`At ${line}:${column}: ${message}`);
    this.name = 'HclSyntaxError';
    this.line = line;
    this.column = column;
  }
}

type TokenType = 'ident' | 'string' | 'heredoc' | 'number' | 'float' | 'bool' | '=' | ',' | '{' | '}' | '[' | ']' | 'eof';

interface Token {
  type: TokenType;
  /** Decoded value for strings/heredocs/numbers/bools; the raw text otherwise. */
  value: string | number | boolean;
  text: string;
  line: number;
  column: number;
}

export type HclValue = string | number | boolean | HclValue[] | { [key: string]: HclValue };

// --- lexer ----------------------------------------------------------------------------------------

function isLetter(c: string): boolean {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c === '_' || (c >= '\u0080' && /\p{L}/u.test(c));
}

function isDigit(c: string): boolean {
  return c >= '0' && c <= '9';
}

class Lexer {
  private pos = 0;
  private line = 1;
  private col = 1;
  private readonly src: string;
  constructor(src: string) {
    this.src = src;
  }

  private peek(offset = 0): string {
    return this.src[this.pos + offset] ?? '';
  }

  private advance(): string {
    const c = this.src[this.pos++] ?? '';
    if (c === '\n') {
      this.line++;
      this.col = 1;
    } else {
      this.col++;
    }
    return c;
  }

  private error(message: string, line = this.line, column = this.col): HclSyntaxError {
    return new HclSyntaxError(message, line, column);
  }

  private skipSpaceAndComments(): void {
    for (;;) {
      const c = this.peek();
      if (c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === '\uFEFF') {
        this.advance();
      } else if (c === '#' || (c === '/' && this.peek(1) === '/')) {
        while (this.pos < this.src.length && this.peek() !== '\n') this.advance();
      } else if (c === '/' && this.peek(1) === '*') {
        const line = this.line;
        const column = this.col;
        this.advance();
        this.advance();
        while (!(this.peek() === '*' && this.peek(1) === '/')) {
          if (this.pos >= this.src.length) throw this.error('comment not terminated', line, column);
          this.advance();
        }
        this.advance();
        this.advance();
      } else {
        return;
      }
    }
  }

  next(): Token {
    this.skipSpaceAndComments();
    const line = this.line;
    const column = this.col;
    const start = this.pos;
    const tok = (type: TokenType, value: string | number | boolean): Token => ({ type, value, text: this.src.slice(start, this.pos), line, column });
    const c = this.peek();
    if (c === '') return tok('eof', '');
    if (isLetter(c)) {
      while (isLetter(this.peek()) || isDigit(this.peek()) || this.peek() === '-' || this.peek() === '.') this.advance();
      const word = this.src.slice(start, this.pos);
      if (word === 'true' || word === 'false') return tok('bool', word === 'true');
      return tok('ident', word);
    }
    if (isDigit(c) || (c === '-' && (isDigit(this.peek(1)) || this.peek(1) === '.'))) return this.number(line, column);
    if (c === '"') return tok('string', this.string(line, column));
    if (c === '<' && this.peek(1) === '<') return tok('heredoc', this.heredoc(line, column));
    if ('={}[],'.includes(c)) {
      this.advance();
      return tok(c as TokenType, c);
    }
    throw this.error(`illegal char ${JSON.stringify(c)}`);
  }

  private number(line: number, column: number): Token {
    const start = this.pos;
    if (this.peek() === '-') this.advance();
    let float = false;
    if (this.peek() === '0' && (this.peek(1) === 'x' || this.peek(1) === 'X')) {
      this.advance();
      this.advance();
      while (/[0-9a-fA-F]/.test(this.peek())) this.advance();
    } else {
      while (isDigit(this.peek())) this.advance();
      if (this.peek() === '.') {
        float = true;
        this.advance();
        while (isDigit(this.peek())) this.advance();
      }
      if (this.peek() === 'e' || this.peek() === 'E') {
        float = true;
        this.advance();
        if (this.peek() === '+' || this.peek() === '-') this.advance();
        if (!isDigit(this.peek())) throw this.error('exponent has no digits');
        while (isDigit(this.peek())) this.advance();
      }
    }
    const text = this.src.slice(start, this.pos);
    if (isLetter(this.peek())) throw this.error(`invalid number ${JSON.stringify(text + this.peek())}`, line, column);
    let value: number;
    if (float) {
      value = Number(text);
    } else {
      // Go's strconv.ParseInt(text, 0, 64): 0x hex, a leading 0 is octal.
      const neg = text.startsWith('-');
      const digits = neg ? text.slice(1) : text;
      let n: number;
      if (/^0[xX]/.test(digits)) n = parseInt(digits.slice(2), 16);
      else if (digits.length > 1 && digits.startsWith('0')) {
        if (!/^[0-7]+$/.test(digits)) throw this.error(`invalid octal number ${text}`, line, column);
        n = parseInt(digits, 8);
      } else n = parseInt(digits, 10);
      if (Number.isNaN(n)) throw this.error(`invalid number ${text}`, line, column);
      value = neg ? -n : n;
    }
    return { type: float ? 'float' : 'number', value, text, line, column };
  }

  /** A double-quoted string with Go escapes; `${…}` is kept as written (quotes allowed inside). */
  private string(line: number, column: number): string {
    this.advance(); // opening quote
    let out = '';
    let braces = 0;
    for (;;) {
      const c = this.peek();
      if (c === '' || (c === '\n' && braces === 0)) throw this.error('literal not terminated', line, column);
      this.advance();
      if (c === '"' && braces === 0) return out;
      if (c === '$' && this.peek() === '{') {
        braces++;
        out += '$' + this.advance();
        continue;
      }
      if (braces > 0) {
        if (c === '{') braces++;
        else if (c === '}') braces--;
        out += c;
        continue;
      }
      if (c !== '\\') {
        out += c;
        continue;
      }
      const e = this.advance();
      switch (e) {
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case 'a': out += '\x07'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'v': out += '\v'; break;
        case '\\': out += '\\'; break;
        case '"': out += '"'; break;
        case 'u':
        case 'U': {
          const len = e === 'u' ? 4 : 8;
          const hex = this.src.slice(this.pos, this.pos + len);
          if (!new RegExp(`^[0-9a-fA-F]{${len}}$`).test(hex)) throw this.error(`invalid \\${e} escape`);
          for (let i = 0; i < len; i++) this.advance();
          out += String.fromCodePoint(parseInt(hex, 16));
          break;
        }
        default:
          throw this.error(`unknown escape sequence \\${e}`);
      }
    }
  }

  /** `<<EOT` … `EOT`, or `<<-EOT` whose lines lose their common indentation. */
  private heredoc(line: number, column: number): string {
    this.advance();
    this.advance();
    let indented = false;
    if (this.peek() === '-') {
      indented = true;
      this.advance();
    }
    const anchorStart = this.pos;
    while (isLetter(this.peek()) || isDigit(this.peek())) this.advance();
    const anchor = this.src.slice(anchorStart, this.pos);
    if (anchor === '') throw this.error('heredoc expected an anchor such as <<EOT', line, column);
    if (this.peek() === '\r') this.advance();
    if (this.peek() !== '\n') throw this.error('heredoc anchor must be followed by a newline', line, column);
    this.advance();
    const lines: string[] = [];
    for (;;) {
      if (this.pos >= this.src.length) throw this.error(`heredoc not terminated: no line with ${anchor}`, line, column);
      let end = this.src.indexOf('\n', this.pos);
      if (end < 0) end = this.src.length;
      const raw = this.src.slice(this.pos, end).replace(/\r$/, '');
      const closes = indented ? raw.trim() === anchor : raw === anchor;
      if (closes) {
        while (this.pos < end) this.advance();
        break;
      }
      lines.push(raw);
      while (this.pos < end) this.advance();
      if (this.pos < this.src.length) this.advance(); // the newline
    }
    if (indented && lines.length > 0) {
      const indents = lines.filter((l) => l.trim() !== '').map((l) => /^[ \t]*/.exec(l)![0].length);
      const strip = indents.length > 0 ? Math.min(...indents) : 0;
      return lines.map((l) => l.slice(Math.min(strip, /^[ \t]*/.exec(l)![0].length)) + '\n').join('');
    }
    return lines.map((l) => l + '\n').join('');
  }
}

// --- parser (to HCL 1's decode shape) ----------------------------------------------------------------

type Obj = { [key: string]: HclValue };

class Parser {
  private tok: Token;
  private readonly lexer: Lexer;
  constructor(lexer: Lexer) {
    this.lexer = lexer;
    this.tok = lexer.next();
  }

  private advance(): Token {
    const t = this.tok;
    this.tok = this.lexer.next();
    return t;
  }

  /** The current token's type, read through a call so that TypeScript does not narrow it across advance(). */
  private peekType(): TokenType {
    return this.tok.type;
  }

  private error(message: string, t: Token = this.tok): HclSyntaxError {
    return new HclSyntaxError(message, t.line, t.column);
  }

  private describe(t: Token): string {
    return t.type === 'eof' ? 'end of file' : JSON.stringify(t.text);
  }

  /** Items until `}` (inside an object) or end of file (at the top). */
  objectList(inObject: boolean): Obj {
    const out: Obj = {};
    for (;;) {
      if (this.tok.type === 'eof') {
        if (inObject) throw this.error('object expected closing "}", got end of file');
        return out;
      }
      if (inObject && this.tok.type === '}') return out;
      this.objectItem(out);
      if (this.tok.type === ',') this.advance();
    }
  }

  private objectItem(into: Obj): void {
    const keys: Token[] = [];
    while (this.tok.type === 'ident' || this.tok.type === 'string') keys.push(this.advance());
    if (keys.length === 0) throw this.error(`expected a key (a name or a quoted string), got ${this.describe(this.tok)}`);
    const first = keys[0]!;
    const key = String(first.value);
    if (this.tok.type === '=') {
      if (keys.length > 1) throw this.error(`nested object expected: "{" after the labels of ${JSON.stringify(key)}, got "="`);
      this.advance();
      const isObject = this.peekType() === '{';
      const value = this.value(false);
      if (isObject) {
        appendBlocks(into, key, value as Obj[], first);
      } else {
        if (blocksAt(into, key)) throw this.error(`${JSON.stringify(key)} is both a block and a value`, first);
        setKey(into, key, value);
      }
      return;
    }
    if (this.tok.type === '{') {
      this.advance();
      let body: Obj = this.objectList(true);
      this.advance(); // '}'
      // Labels nest from the inside out: a "b" "c" { … } is a { b { c { … } } }.
      for (let i = keys.length - 1; i >= 1; i--) {
        const outer: Obj = {};
        setKey(outer, String(keys[i]!.value), [body]);
        body = outer;
      }
      appendBlocks(into, key, [body], first);
      return;
    }
    throw this.error(`key ${JSON.stringify(key)} expected "=" or "{", got ${this.describe(this.tok)}`);
  }

  /** A value after "=" or in a list; objects become [obj] unless directly inside a list. */
  private value(inList: boolean): HclValue {
    const t = this.tok;
    switch (t.type) {
      case 'string':
      case 'heredoc':
      case 'number':
      case 'float':
      case 'bool':
        this.advance();
        return t.value;
      case '[':
        return this.list();
      case '{': {
        this.advance();
        const body = this.objectList(true);
        this.advance();
        return inList ? body : [body];
      }
      case 'ident':
        throw this.error(`unexpected name ${JSON.stringify(t.text)}: a value is a quoted string, number, true/false, list or object`);
      default:
        throw this.error(`expected a value, got ${this.describe(t)}`);
    }
  }

  private list(): HclValue[] {
    const open = this.advance();
    const out: HclValue[] = [];
    for (;;) {
      if (this.tok.type === ']') {
        this.advance();
        return out;
      }
      if (this.tok.type === 'eof') throw this.error('list not terminated: expected "]"', open);
      out.push(this.value(true));
      if (this.peekType() === ',') {
        this.advance();
      } else if (this.peekType() !== ']') {
        throw this.error(`error parsing list, expected "," or "]", got ${this.describe(this.tok)}`);
      }
    }
  }
}

/** Sets an own property, also for the key "__proto__" (which plain assignment would treat as the prototype). */
function setKey(o: Obj, key: string, value: HclValue): void {
  Object.defineProperty(o, key, { value, writable: true, enumerable: true, configurable: true });
}

/** Keys whose value was written as blocks (objects), tracked so that blocks append and values do not. */
const blockKeys = new WeakMap<Obj, Set<string>>();

function blocksAt(into: Obj, key: string): boolean {
  return blockKeys.get(into)?.has(key) ?? false;
}

function appendBlocks(into: Obj, key: string, blocks: Obj[], at: Token): void {
  if (!Object.hasOwn(into, key)) {
    setKey(into, key, [...blocks]);
    let keys = blockKeys.get(into);
    if (!keys) blockKeys.set(into, (keys = new Set()));
    keys.add(key);
  } else if (blocksAt(into, key)) {
    setKey(into, key, [...(into[key] as Obj[]), ...blocks]);
  } else {
    throw new HclSyntaxError(`${JSON.stringify(key)} is both a value and a block`, at.line, at.column);
  }
}

/** Parses HCL 1 text into its decode shape (see the top of this file). Throws HclSyntaxError. */
export function parseHcl(text: string): { [key: string]: HclValue } {
  return new Parser(new Lexer(text)).objectList(false);
}
