// Reads the server name (SNI) from a TLS ClientHello without terminating TLS: the mesh gateway
// routes on it and then forwards the very same bytes (Envoy's tls_inspector listener filter, which
// Consul's mesh gateways use). Pure: bytes in, a verdict out; no sockets, no Node TLS.
//
// A ClientHello may arrive in pieces: split across TCP segments (a slow or hostile sender), and a
// handshake message may itself be split across several TLS records (RFC 8446 5.1 allows any
// fragmentation of handshake messages). The peeker accumulates records until the whole ClientHello
// is there, and gives up past a size cap so a sender cannot make the gateway buffer without bound.
//
//   TLSPlaintext   type(1)=22 handshake, legacy_version(2)=0x03xx, length(2) <= 2^14, fragment
//   Handshake      msg_type(1)=1 client_hello, length(3), body
//   ClientHello    legacy_version(2) random(32) session_id<0..32> cipher_suites<2..2^16-2>
//                  legacy_compression_methods<1..2^8-1> [extensions<8..2^16-1>]
//   server_name    (extension 0) ServerNameList<1..2^16-1> of { name_type(1)=0 host_name, HostName<1..2^16-1> }

/** Why a connection's first bytes are not a ClientHello the gateway can route. */
export type HelloRefusal = 'not_tls' | 'malformed' | 'no_sni' | 'too_large';

export type PeekResult =
  | { state: 'more' }
  | { state: 'sni'; sni: string }
  | { state: 'refused'; cause: HelloRefusal; detail: string };

/** TLS records carry at most 2^14 bytes of plaintext (RFC 8446 5.1). */
const MAX_RECORD = 16_384;
/**
 * The default cap on buffered bytes. Real ClientHellos are 200-600 bytes, about 1.8 KB with a
 * post-quantum key share; 16 KB leaves room for large extension sets while bounding what a slow or
 * hostile sender makes the gateway hold per connection.
 */
export const DEFAULT_MAX_HELLO_BYTES = 16_384;

/**
 * Real clients send the ClientHello in one record (two or three with huge key shares); a hello cut
 * into more pieces than this is refused, which bounds the work of re-reading the records each time
 * a byte-at-a-time sender adds one.
 */
export const MAX_RECORDS = 64;

const HANDSHAKE = 22;
const CLIENT_HELLO = 1;
const EXT_SERVER_NAME = 0;
const HOST_NAME = 0;

/** A DNS name as it may appear in SNI (RFC 6066: no trailing dot, no IP literals matter here). */
const HOSTNAME = /^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$/;

const refused = (cause: HelloRefusal, detail: string): PeekResult => ({ state: 'refused', cause, detail });

/**
 * Examines `buf`, the bytes a connection has sent so far: the server name once the whole
 * ClientHello is there, `more` while it could still become one, or why it never will.
 */
export function peekClientHello(buf: Uint8Array, maxBytes = DEFAULT_MAX_HELLO_BYTES): PeekResult {
  // Decide "not TLS" from the very first bytes: an HTTP request or a banner is refused at once.
  if (buf.length >= 1 && buf[0] !== HANDSHAKE) return refused('not_tls', `first byte 0x${buf[0]!.toString(16).padStart(2, '0')} is not a TLS handshake record`);
  if (buf.length >= 2 && buf[1] !== 3) return refused('not_tls', `record version major ${buf[1]} is not 3`);
  // The handshake bytes gathered from consecutive records.
  const parts: Uint8Array[] = [];
  let have = 0;
  let off = 0;
  let records = 0;
  let need = -1; // the ClientHello's total length (4-byte header + body) once known
  while (true) {
    if (off >= buf.length) break;
    if (buf.length - off < 5) {
      if (buf[off] !== HANDSHAKE) return refused('malformed', `record type ${buf[off]} before the ClientHello was complete`);
      break;
    }
    const type = buf[off]!;
    const major = buf[off + 1]!;
    const len = (buf[off + 3]! << 8) | buf[off + 4]!;
    if (type !== HANDSHAKE) return refused('malformed', `record type ${type} before the ClientHello was complete`);
    if (++records > MAX_RECORDS) return refused('malformed', `ClientHello split over more than ${MAX_RECORDS} records`);
    if (major !== 3) return refused(off === 0 ? 'not_tls' : 'malformed', `record version major ${major} is not 3`);
    if (len === 0 || len > MAX_RECORD) return refused('malformed', `record length ${len} outside 1..${MAX_RECORD}`);
    const avail = Math.min(len, buf.length - off - 5);
    parts.push(buf.subarray(off + 5, off + 5 + avail));
    have += avail;
    if (need < 0 && have >= 4) {
      const h = concat(parts, 4);
      if (h[0] !== CLIENT_HELLO) return refused('malformed', `handshake message type ${h[0]} is not client_hello`);
      need = 4 + ((h[1]! << 16) | (h[2]! << 8) | h[3]!);
      if (need > maxBytes) return refused('too_large', `ClientHello of ${need} bytes exceeds the ${maxBytes}-byte cap`);
    }
    if (need >= 0 && have >= need) return parseHello(concat(parts, need).subarray(4));
    if (avail < len) break; // the rest of this record has not arrived yet
    off += 5 + len;
  }
  // Headers of many tiny records could still grow the buffer: cap the raw bytes too.
  if (buf.length > 2 * maxBytes) return refused('too_large', `more than ${2 * maxBytes} bytes without a complete ClientHello`);
  return { state: 'more' };
}

function concat(parts: readonly Uint8Array[], n: number): Uint8Array {
  if (parts.length === 1 || parts[0]!.length >= n) return parts[0]!.subarray(0, n);
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    const take = Math.min(p.length, n - at);
    out.set(p.subarray(0, take), at);
    at += take;
    if (at === n) break;
  }
  return out;
}

/** The ClientHello body (after the 4-byte handshake header). */
function parseHello(b: Uint8Array): PeekResult {
  let p = 0;
  const bad = (what: string) => refused('malformed', `ClientHello: ${what}`);
  if (b.length < 2 + 32 + 1) return bad('shorter than its fixed fields');
  if (b[0] !== 3) return bad(`legacy_version major ${b[0]} is not 3`);
  p = 34;
  const sid = b[p]!;
  if (sid > 32) return bad(`session_id of ${sid} bytes (at most 32)`);
  p += 1 + sid;
  if (p + 2 > b.length) return bad('truncated before cipher_suites');
  const cs = (b[p]! << 8) | b[p + 1]!;
  if (cs < 2 || cs % 2 !== 0) return bad(`cipher_suites length ${cs}`);
  p += 2 + cs;
  if (p + 1 > b.length) return bad('truncated before compression_methods');
  const cm = b[p]!;
  if (cm < 1) return bad('no compression_methods');
  p += 1 + cm;
  if (p > b.length) return bad('truncated in compression_methods');
  if (p === b.length) return refused('no_sni', 'ClientHello has no extensions');
  if (p + 2 > b.length) return bad('truncated extensions length');
  const extLen = (b[p]! << 8) | b[p + 1]!;
  p += 2;
  if (p + extLen !== b.length) return bad(`extensions length ${extLen} does not match the ${b.length - p} bytes left`);
  let sni: string | undefined;
  let sawSni = false;
  while (p < b.length) {
    if (p + 4 > b.length) return bad('truncated extension header');
    const type = (b[p]! << 8) | b[p + 1]!;
    const len = (b[p + 2]! << 8) | b[p + 3]!;
    p += 4;
    if (p + len > b.length) return bad(`extension ${type} overruns the ClientHello`);
    if (type === EXT_SERVER_NAME) {
      if (sawSni) return bad('two server_name extensions');
      sawSni = true;
      const r = parseServerName(b.subarray(p, p + len));
      if (typeof r !== 'string' && r !== undefined) return r;
      sni = r;
    }
    p += len;
  }
  if (sni === undefined) return refused('no_sni', 'ClientHello has no server_name');
  return { state: 'sni', sni };
}

/** The host_name of a server_name extension, undefined when it lists none, or a refusal. */
function parseServerName(e: Uint8Array): string | PeekResult | undefined {
  const bad = (what: string) => refused('malformed', `server_name: ${what}`);
  if (e.length === 0) return undefined; // a server's empty echo; a client should not send it
  if (e.length < 2) return bad('truncated list length');
  const listLen = (e[0]! << 8) | e[1]!;
  if (listLen + 2 !== e.length) return bad(`list length ${listLen} does not match ${e.length - 2}`);
  let p = 2;
  let host: string | undefined;
  while (p < e.length) {
    if (p + 3 > e.length) return bad('truncated entry');
    const nameType = e[p]!;
    const len = (e[p + 1]! << 8) | e[p + 2]!;
    p += 3;
    if (p + len > e.length) return bad('entry overruns the list');
    if (nameType === HOST_NAME) {
      if (host !== undefined) return bad('two host_name entries');
      if (len === 0 || len > 253) return bad(`host_name of ${len} bytes`);
      // Checked byte by byte, then made a string in one piece (not a character at a time: ~45
      // intermediate strings per connection), lower-cased only when it has upper case.
      let upper = false;
      for (let i = p; i < p + len; i++) {
        const c = e[i]!;
        if (c < 0x21 || c > 0x7e) return bad('host_name is not printable ASCII');
        if (c >= 0x41 && c <= 0x5a) upper = true;
      }
      let s = String.fromCharCode.apply(null, e.subarray(p, p + len) as unknown as number[]);
      if (upper) s = s.toLowerCase();
      if (!HOSTNAME.test(s)) return bad(`host_name ${JSON.stringify(s)} is not a DNS name`);
      host = s;
    }
    p += len;
  }
  return host;
}

/**
 * Accumulates a connection's first bytes until `peekClientHello` decides. Keeps them as they
 * came, so the gateway forwards exactly what the client sent.
 */
export class ClientHelloPeeker {
  private pushes = 0;
  /** All bytes so far in one buffer (grown by doubling, so a trickling sender costs O(n) copies). */
  private buf: Buffer = Buffer.alloc(0);
  private size = 0;
  private readonly maxBytes: number;
  constructor(maxBytes = DEFAULT_MAX_HELLO_BYTES) {
    this.maxBytes = maxBytes;
  }

  get bytes(): number {
    return this.size;
  }

  /** Every byte received so far, as received (what the gateway forwards first). */
  buffered(): Buffer {
    return this.buf.subarray(0, this.size);
  }

  push(chunk: Buffer): PeekResult {
    this.pushes++;
    if (this.pushes === 1) {
      this.buf = chunk;
    } else {
      if (this.pushes === 2 || this.size + chunk.length > this.buf.length) {
        const grown = Buffer.allocUnsafe(Math.max(1024, 2 * (this.size + chunk.length)));
        this.buf.copy(grown, 0, 0, this.size);
        this.buf = grown;
      }
      chunk.copy(this.buf, this.size);
    }
    this.size += chunk.length;
    return peekClientHello(this.buf.subarray(0, this.size), this.maxBytes);
  }
}
