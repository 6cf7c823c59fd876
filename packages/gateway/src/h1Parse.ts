// HTTP/1.1 message heads and chunked framing, parsed from bytes (RFC 9112), for the L7 fast path
// (h1Server.ts, h1Client.ts). Pure: no sockets here, so every edge case is a table test.
//
// Why not node:http: its per-request objects (IncomingMessage, ServerResponse, ClientRequest, their
// streams and listeners) are JavaScript that the proxy runs interpreted (lite mode, bin/trellis):
// ~1.2 ms of CPU per request through the two L7 sidecars against ~0.1 ms for L4 (bench:proxy).
//
// What the fast path takes: HTTP/1.1 requests in origin form ("/path"), framed by Content-Length or
// `Transfer-Encoding: chunked`. What it hands to node:http instead (`fallback`): HTTP/1.0, Upgrade
// (WebSocket, h2c), Expect, other transfer codings, absolute-form and `*` targets. What it refuses
// as node:http's parser does: malformed lines (400), Content-Length with Transfer-Encoding or
// differing Content-Lengths (400, request smuggling), heads over 16 KiB (431).

/** Node's default --max-http-header-size: the whole head, request line included. */
export const MAX_HEAD_BYTES = 16 * 1024;

export class HttpParseError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

export interface RequestHead {
  method: string;
  /** The request target as sent (origin form: path and query). */
  target: string;
  /** Lower-case names; repeated headers joined with ", " (set-cookie: an array), as node:http gives them. */
  headers: Record<string, string | string[]>;
  /** Body framing: bytes of a Content-Length body, 'chunked', or 0 for none. */
  body: number | 'chunked';
  /** HTTP/1.1 without `Connection: close`. */
  keepAlive: boolean;
  /** Set when node:http should serve this connection instead (what the fast path does not do). */
  fallback?: string;
}

export interface ResponseHead {
  status: number;
  reason: string;
  headers: Record<string, string | string[]>;
  /** Content-Length, 'chunked', or 'close' (the body ends when the connection does); 1xx/204/304/HEAD: 0. */
  body: number | 'chunked' | 'close';
  /** Whether the connection may carry another request after this response. */
  keepAlive: boolean;
}

const CRLF2 = Buffer.from('\r\n\r\n');
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** A header line: token name, colon with no space before it, value with optional whitespace around. */
const HEADER_LINE = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*(.*?)[ \t]*$/;
/** Control characters other than HTAB are not allowed in a field value (RFC 9110 §5.5). */
const BAD_VALUE = /[\x00-\x08\x0a-\x1f\x7f]/;
const BAD_TARGET = /[\x00-\x20\x7f]/;
const REQUEST_LINE = /^([^ ]+) ([^ ]+) HTTP\/(\d)\.(\d)$/;
const STATUS_LINE = /^HTTP\/1\.([01]) (\d{3})(?: (.*))?$/;

/**
 * Where the head that starts at `from` ends (the index after its blank line), -1 while incomplete.
 * Throws 400 for a head using bare LF line ends (node:http's strict parser refuses them too).
 */
export function headEnd(buf: Buffer, from: number): number {
  const i = buf.indexOf(CRLF2, from);
  if (i >= 0) return i + 4;
  const lf = buf.indexOf('\n\n', from);
  if (lf >= 0) throw new HttpParseError(400, 'bad request: line ends must be CRLF');
  return -1;
}

/** Empty lines before a request line are ignored (RFC 9112 §2.2); returns the index of the first other byte. */
export function skipEmptyLines(buf: Buffer, from: number): number {
  let i = from;
  while (i + 1 < buf.length && buf[i] === 13 && buf[i + 1] === 10) i += 2;
  return i;
}

/**
 * A whole header section that is well formed: token names, a colon right after, values without
 * control characters other than HTAB. One regex run over the section instead of several per line:
 * the proxy runs interpreted (lite mode), where each regex call has a fixed cost.
 */
const FIELDS_OK = /^(?:[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[\t\x20-\x7e\x80-\xff]*\r\n)*\r\n$/;

/** Why a header line is not well formed (the slow path, for the error message). */
function badLine(lines: string[], what: string): HttpParseError {
  for (let i = 1; i < lines.length - 2; i++) {
    const line = lines[i]!;
    const m = HEADER_LINE.exec(line);
    if (!m) {
      if (line.charCodeAt(0) === 32 || line.charCodeAt(0) === 9) return new HttpParseError(400, `bad ${what}: obsolete line folding in the header section`);
      return new HttpParseError(400, `bad ${what}: malformed header line ${JSON.stringify(line.slice(0, 60))}`);
    }
    if (BAD_VALUE.test(m[2]!)) return new HttpParseError(400, `bad ${what}: control character in header ${m[1]}`);
  }
  return new HttpParseError(400, `bad ${what}: malformed header section`);
}

/** The header lines of a head (`text` from its start line on) into node:http's header object. */
function parseFields(text: string, what: string): { headers: Record<string, string | string[]>; lengths: string[]; te: string | undefined; connection: string; lines: string[] } {
  const headers: Record<string, string | string[]> = {};
  const lengths: string[] = [];
  let te: string | undefined;
  let connection = '';
  const lines = text.split('\r\n');
  const first = lines[0]!.length + 2;
  if (!FIELDS_OK.test(first === text.length - 2 ? '\r\n' : text.slice(first))) throw badLine(lines, what);
  // The last two elements are the empty strings around the final CRLF pair.
  for (let i = 1; i < lines.length - 2; i++) {
    const line = lines[i]!;
    const colon = line.indexOf(':');
    const value = trimOws(line.slice(colon + 1));
    const name = line.slice(0, colon).toLowerCase();
    if (name === 'content-length') lengths.push(value);
    else if (name === 'transfer-encoding') te = te === undefined ? value : `${te}, ${value}`;
    else if (name === 'connection') connection = connection === '' ? value.toLowerCase() : `${connection}, ${value.toLowerCase()}`;
    const cur = headers[name];
    if (cur === undefined) headers[name] = name === 'set-cookie' ? [value] : value;
    else if (Array.isArray(cur)) cur.push(value);
    else headers[name] = `${cur}, ${value}`;
  }
  return { headers, lengths, te, connection, lines };
}

/** A field value without the optional whitespace around it (SP and HTAB only, RFC 9110 §5.5). */
function trimOws(v: string): string {
  let a = 0;
  let b = v.length;
  while (a < b && (v.charCodeAt(a) === 32 || v.charCodeAt(a) === 9)) a++;
  while (b > a && (v.charCodeAt(b - 1) === 32 || v.charCodeAt(b - 1) === 9)) b--;
  return a === 0 && b === v.length ? v : v.slice(a, b);
}

/** One Content-Length from its (possibly repeated) values; 400 when they differ or are not digits. */
function contentLength(lengths: string[], what: string): number {
  let n = -1;
  for (const l of lengths) {
    for (const part of l.split(',')) {
      const v = part.trim();
      if (!/^\d{1,15}$/.test(v)) throw new HttpParseError(400, `bad ${what}: invalid Content-Length ${JSON.stringify(l)}`);
      const x = Number(v);
      if (n >= 0 && x !== n) throw new HttpParseError(400, `bad ${what}: differing Content-Length values`);
      n = x;
    }
  }
  return n;
}

function hasToken(list: string, token: string): boolean {
  if (list === '') return false;
  for (const t of list.split(',')) if (t.trim() === token) return true;
  return false;
}

/** The request head in buf[start, end) (end from headEnd). */
export function parseRequestHead(buf: Buffer, start: number, end: number): RequestHead {
  const text = buf.toString('latin1', start, end);
  const rl = REQUEST_LINE.exec(text.slice(0, text.indexOf('\r\n')));
  if (!rl) throw new HttpParseError(400, `bad request: malformed request line ${JSON.stringify(text.slice(0, Math.min(80, text.indexOf('\r\n'))))}`);
  const method = rl[1]!;
  const target = rl[2]!;
  if (!TOKEN.test(method)) throw new HttpParseError(400, `bad request: invalid method ${JSON.stringify(method.slice(0, 40))}`);
  if (BAD_TARGET.test(target)) throw new HttpParseError(400, 'bad request: invalid character in the request target');
  const { headers, lengths, te, connection } = parseFields(text, 'request');
  const head: RequestHead = { method, target, headers, body: 0, keepAlive: !hasToken(connection, 'close') };
  if (rl[3] !== '1') head.fallback = `HTTP/${rl[3]}.${rl[4]}`;
  else if (rl[4] !== '1') head.fallback = `HTTP/1.${rl[4]}`;
  if (te !== undefined && lengths.length > 0) throw new HttpParseError(400, 'bad request: both Content-Length and Transfer-Encoding');
  if (te !== undefined) {
    if (te.trim().toLowerCase() === 'chunked') head.body = 'chunked';
    else head.fallback ??= `Transfer-Encoding ${te}`;
  } else if (lengths.length > 0) head.body = contentLength(lengths, 'request');
  if (headers.upgrade !== undefined || hasToken(connection, 'upgrade')) head.fallback ??= 'Upgrade';
  if (headers.expect !== undefined) head.fallback ??= 'Expect';
  if (target.charCodeAt(0) !== 47 /* / */) head.fallback ??= 'request target not in origin form';
  return head;
}

/** The response head in buf[start, end), to a request with `method`. */
export function parseResponseHead(buf: Buffer, start: number, end: number, method: string): ResponseHead {
  const text = buf.toString('latin1', start, end);
  const line = text.slice(0, text.indexOf('\r\n'));
  const sl = STATUS_LINE.exec(line);
  if (!sl) throw new HttpParseError(502, `bad response: malformed status line ${JSON.stringify(line.slice(0, 80))}`);
  const status = Number(sl[2]);
  const { headers, lengths, te, connection } = parseFields(text, 'response');
  const http11 = sl[1] === '1';
  const keepAlive = http11 ? !hasToken(connection, 'close') : hasToken(connection, 'keep-alive');
  const head: ResponseHead = { status, reason: sl[3] ?? '', headers, body: 0, keepAlive };
  if (status < 200 || status === 204 || status === 304 || method === 'HEAD') return head;
  if (te !== undefined) {
    if (lengths.length > 0) throw new HttpParseError(502, 'bad response: both Content-Length and Transfer-Encoding');
    if (te.trim().toLowerCase() === 'chunked') head.body = 'chunked';
    else { head.body = 'close'; head.keepAlive = false; }
  } else if (lengths.length > 0) head.body = contentLength(lengths, 'response');
  else { head.body = 'close'; head.keepAlive = false; }
  return head;
}

// Chunked framing, byte by byte: one scanner follows a body across any number of reads.
const S_SIZE = 0, S_SIZE_WS = 1, S_EXT = 2, S_SIZE_LF = 3, S_DATA = 4, S_DATA_CR = 5, S_DATA_LF = 6, S_TRAILER = 7, S_TRAILER_LINE = 8, S_TRAILER_LF = 9, S_END_LF = 10, S_DONE = 11;

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

/**
 * Follows a chunked body (RFC 9112 §7.1) across reads: where it ends, and optionally its data
 * (decoded, for a request body the proxy holds) without copying. Trailer fields are skipped.
 */
export class ChunkedScanner {
  private state = S_SIZE;
  private size = 0;
  private digits = 0;
  private left = 0;
  private lineBytes = 0;
  /** Decoded data so far (when collecting). */
  readonly parts: Buffer[] = [];
  decoded = 0;
  private readonly collect: boolean;
  private readonly maxLine: number;
  constructor(collect: boolean, maxLine = MAX_HEAD_BYTES) {
    this.collect = collect;
    this.maxLine = maxLine;
  }

  get done(): boolean { return this.state === S_DONE; }

  /** Reads buf[from, to); returns the index just after the body's end, or -1 when it needs more. */
  feed(buf: Buffer, from: number, to: number = buf.length): number {
    let i = from;
    while (i < to) {
      const st = this.state;
      if (st === S_DATA) {
        const n = Math.min(this.left, to - i);
        if (this.collect) { this.parts.push(buf.subarray(i, i + n)); this.decoded += n; }
        this.left -= n;
        i += n;
        if (this.left === 0) this.state = S_DATA_CR;
        continue;
      }
      const c = buf[i++]!;
      switch (st) {
        case S_SIZE: {
          const h = hexValue(c);
          if (h >= 0) {
            if (++this.digits > 12) throw new HttpParseError(400, 'chunked body: chunk size too large');
            this.size = this.size * 16 + h;
          } else if (this.digits === 0) throw new HttpParseError(400, 'chunked body: missing chunk size');
          else if (c === 13) this.state = S_SIZE_LF;
          else if (c === 59 /* ; */) this.state = S_EXT;
          else if (c === 32 || c === 9) this.state = S_SIZE_WS;
          else throw new HttpParseError(400, 'chunked body: invalid chunk size');
          break;
        }
        case S_SIZE_WS:
          if (c === 59) this.state = S_EXT;
          else if (c === 13) this.state = S_SIZE_LF;
          else if (c !== 32 && c !== 9) throw new HttpParseError(400, 'chunked body: invalid chunk size');
          break;
        case S_EXT:
          if (c === 13) this.state = S_SIZE_LF;
          else if (c === 10 || ++this.lineBytes > this.maxLine) throw new HttpParseError(400, 'chunked body: bad chunk extension');
          break;
        case S_SIZE_LF:
          if (c !== 10) throw new HttpParseError(400, 'chunked body: chunk size line must end with CRLF');
          this.lineBytes = 0;
          this.digits = 0;
          if (this.size === 0) this.state = S_TRAILER;
          else { this.left = this.size; this.size = 0; this.state = S_DATA; }
          break;
        case S_DATA_CR:
          if (c !== 13) throw new HttpParseError(400, 'chunked body: chunk data must end with CRLF');
          this.state = S_DATA_LF;
          break;
        case S_DATA_LF:
          if (c !== 10) throw new HttpParseError(400, 'chunked body: chunk data must end with CRLF');
          this.state = S_SIZE;
          break;
        case S_TRAILER:
          if (c === 13) this.state = S_END_LF;
          else { this.state = S_TRAILER_LINE; this.lineBytes = 1; }
          break;
        case S_TRAILER_LINE:
          if (c === 13) this.state = S_TRAILER_LF;
          else if (c === 10 || ++this.lineBytes > this.maxLine) throw new HttpParseError(400, 'chunked body: bad trailer');
          break;
        case S_TRAILER_LF:
          if (c !== 10) throw new HttpParseError(400, 'chunked body: trailer line must end with CRLF');
          this.state = S_TRAILER;
          break;
        case S_END_LF:
          if (c !== 10) throw new HttpParseError(400, 'chunked body: must end with CRLF');
          this.state = S_DONE;
          return i;
        default:
          return i - 1;
      }
    }
    return -1;
  }
}
