// Protobuf encoding of proto/raft.proto's Batch and SnapshotChunk, written by hand for the hot path.
//
// Why not protobufjs through proto-loader: its serializer converts our Message into a second object
// graph (with a Long per uint64 field), encodes that, and decodes back through the same detour; this
// codec writes Messages straight into one pre-sized buffer and reads them straight back, several
// times faster for small appends. The wire format is exactly raft.proto's; test/transport/codec.test.ts
// cross-checks both directions against proto-loader's own codec.
//
// Decoding never trusts the bytes: a structurally broken frame (truncated, bad varint, lengths past
// the end) throws MalformedFrameError; a well-formed message with values Raft cannot use (unknown
// type, missing required field, number above 2^53) is reported as invalid so the caller drops just it.
import type { Entry, EntryKind, Message, MessageType, NodeId, SnapshotMeta } from '../core/types.ts';

/** The frame could not be parsed as the protobuf message it claims to be. */
export class MalformedFrameError extends Error {
  readonly code = 'ERR_MALFORMED_FRAME';
  constructor(what: string) {
    super(`malformed raft frame: ${what}`);
    this.name = 'MalformedFrameError';
  }
}

// Enum numbers from raft.proto. Index = wire number.
const TYPES: readonly (MessageType | undefined)[] = [
  undefined, 'preVote', 'preVoteResp', 'vote', 'voteResp', 'app', 'appResp', 'heartbeat', 'heartbeatResp', 'snap', 'timeoutNow',
];
const TYPE_NUMBER = new Map<MessageType, number>(TYPES.flatMap((t, i) => (t === undefined ? [] : [[t, i] as const])));
const KINDS: readonly (EntryKind | undefined)[] = [undefined, 'normal', 'conf'];

const WT_VARINT = 0;
const WT_I64 = 1;
const WT_LEN = 2;
const WT_I32 = 5;

// ---------------------------------------------------------------------------------------------
// Sizes

function varintSize(n: number): number {
  if (n < 0x80) return 1;
  if (n < 0x4000) return 2;
  if (n < 0x200000) return 3;
  if (n < 0x10000000) return 4;
  let s = 4;
  n = Math.floor(n / 0x10000000);
  while (n > 0) { s++; n = Math.floor(n / 0x80); }
  return s;
}

/** Size of a length-delimited field (1-byte tag: every field number here is below 16). */
function lenField(bodyBytes: number): number {
  return 1 + varintSize(bodyBytes) + bodyBytes;
}

function strField(s: string): number {
  return lenField(Buffer.byteLength(s, 'utf8'));
}

function entrySize(e: Entry): number {
  let n = 2; // kind: always written (1 or 2)
  if (e.term !== 0) n += 1 + varintSize(e.term);
  if (e.index !== 0) n += 1 + varintSize(e.index);
  if (e.data.byteLength > 0) n += lenField(e.data.byteLength);
  return n;
}

function confSize(voters: readonly string[], learners: readonly string[]): number {
  let n = 0;
  for (const v of voters) n += strField(v);
  for (const l of learners) n += strField(l);
  return n;
}

function addressMapSize(addresses: Record<NodeId, string>): number {
  let n = 0;
  for (const [k, v] of Object.entries(addresses)) n += lenField(strField(k) + strField(v));
  return n;
}

function metaSize(meta: SnapshotMeta): number {
  let n = 0;
  if (meta.index !== 0) n += 1 + varintSize(meta.index);
  if (meta.term !== 0) n += 1 + varintSize(meta.term);
  n += lenField(confSize(meta.conf.voters, meta.conf.learners));
  if (meta.addresses !== undefined) n += lenField(addressMapSize(meta.addresses));
  return n;
}

/** Encoded size of one Message (without its own tag and length prefix). Snapshot data is excluded:
 *  it never rides in a Message on the wire. */
export function messageSize(m: Message): number {
  let n = 2; // type
  if (m.from !== '') n += strField(m.from);
  if (m.to !== '') n += strField(m.to);
  if (m.term !== 0) n += 1 + varintSize(m.term);
  if (m.logTerm !== undefined) n += 1 + varintSize(m.logTerm);
  if (m.index !== undefined) n += 1 + varintSize(m.index);
  if (m.entries !== undefined) for (const e of m.entries) n += lenField(entrySize(e));
  if (m.commit !== undefined) n += 1 + varintSize(m.commit);
  if (m.reject !== undefined) n += 2;
  if (m.hintIndex !== undefined) n += 1 + varintSize(m.hintIndex);
  if (m.hintTerm !== undefined) n += 1 + varintSize(m.hintTerm);
  if (m.snapshot !== undefined) n += lenField(metaSize(m.snapshot.meta));
  if (m.context !== undefined) n += strField(m.context);
  if (m.transfer !== undefined) n += 2;
  return n;
}

// ---------------------------------------------------------------------------------------------
// Writing

class Writer {
  readonly buf: Buffer;
  pos = 0;
  constructor(size: number) {
    this.buf = Buffer.allocUnsafe(size);
  }

  tag(field: number, wireType: number): void {
    this.buf[this.pos++] = (field << 3) | wireType;
  }

  varint(n: number): void {
    const b = this.buf;
    // Numbers here are non-negative integers below 2^53: bit operators only work on 32 bits, so the
    // high part uses division.
    while (n >= 0x80000000) {
      b[this.pos++] = (n % 0x80) | 0x80;
      n = Math.floor(n / 0x80);
    }
    while (n >= 0x80) {
      b[this.pos++] = (n & 0x7f) | 0x80;
      n >>>= 7;
    }
    b[this.pos++] = n;
  }

  uintField(field: number, n: number): void {
    this.tag(field, WT_VARINT);
    this.varint(n);
  }

  boolField(field: number, v: boolean): void {
    this.tag(field, WT_VARINT);
    this.buf[this.pos++] = v ? 1 : 0;
  }

  bytesField(field: number, data: Uint8Array): void {
    this.tag(field, WT_LEN);
    this.varint(data.byteLength);
    this.buf.set(data, this.pos);
    this.pos += data.byteLength;
  }

  strField(field: number, s: string): void {
    const len = Buffer.byteLength(s, 'utf8');
    this.tag(field, WT_LEN);
    this.varint(len);
    this.buf.write(s, this.pos, len, 'utf8');
    this.pos += len;
  }

  /** Starts a length-delimited field whose body is `size` bytes; the caller writes the body. */
  lenHeader(field: number, size: number): void {
    this.tag(field, WT_LEN);
    this.varint(size);
  }
}

function writeEntry(w: Writer, e: Entry): void {
  if (e.term !== 0) w.uintField(1, e.term);
  if (e.index !== 0) w.uintField(2, e.index);
  w.uintField(3, e.kind === 'conf' ? 2 : 1);
  if (e.data.byteLength > 0) w.bytesField(4, e.data);
}

function writeMeta(w: Writer, meta: SnapshotMeta): void {
  if (meta.index !== 0) w.uintField(1, meta.index);
  if (meta.term !== 0) w.uintField(2, meta.term);
  w.lenHeader(3, confSize(meta.conf.voters, meta.conf.learners));
  for (const v of meta.conf.voters) w.strField(1, v);
  for (const l of meta.conf.learners) w.strField(2, l);
  if (meta.addresses !== undefined) {
    w.lenHeader(4, addressMapSize(meta.addresses));
    for (const [k, v] of Object.entries(meta.addresses)) {
      w.lenHeader(1, strField(k) + strField(v));
      w.strField(1, k);
      w.strField(2, v);
    }
  }
}

function writeMessage(w: Writer, m: Message): void {
  w.uintField(1, TYPE_NUMBER.get(m.type) ?? 0);
  if (m.from !== '') w.strField(2, m.from);
  if (m.to !== '') w.strField(3, m.to);
  if (m.term !== 0) w.uintField(4, m.term);
  if (m.logTerm !== undefined) w.uintField(5, m.logTerm);
  if (m.index !== undefined) w.uintField(6, m.index);
  if (m.entries !== undefined) {
    for (const e of m.entries) {
      w.lenHeader(7, entrySize(e));
      writeEntry(w, e);
    }
  }
  if (m.commit !== undefined) w.uintField(8, m.commit);
  if (m.reject !== undefined) w.boolField(9, m.reject);
  if (m.hintIndex !== undefined) w.uintField(10, m.hintIndex);
  if (m.hintTerm !== undefined) w.uintField(11, m.hintTerm);
  if (m.snapshot !== undefined) {
    w.lenHeader(12, metaSize(m.snapshot.meta));
    writeMeta(w, m.snapshot.meta);
  }
  if (m.context !== undefined) w.strField(13, m.context);
  if (m.transfer !== undefined) w.boolField(14, m.transfer);
}

/**
 * Checks that `m` can be encoded and that a receiver would accept it (what our own core produces
 * always passes; this catches a caller's bug at the sender, such as a NaN index that would otherwise
 * corrupt the varint stream, or a field the receiver requires). Returns the reason, or undefined.
 */
export function unencodable(m: Message): string | undefined {
  if (m === null || typeof m !== 'object') return 'not a message object';
  if (!TYPE_NUMBER.has(m.type)) return `unknown message type ${JSON.stringify(m.type)}`;
  if (typeof m.from !== 'string' || typeof m.to !== 'string' || m.from === '' || m.to === '') return 'from/to must be non-empty strings';
  for (const k of REQUIRED[m.type] ?? []) {
    if (m[k] === undefined) return `${m.type} message without ${k}`;
  }
  for (const k of ['term', 'logTerm', 'index', 'commit', 'hintIndex', 'hintTerm'] as const) {
    const v = m[k];
    if (v !== undefined && !isUint(v)) return `${k}=${String(v)} is not a non-negative safe integer`;
  }
  if (m.entries !== undefined) {
    if (!Array.isArray(m.entries)) return 'entries must be an array';
    for (const e of m.entries) {
      if (!isUint(e.term) || !isUint(e.index)) return `entry term/index must be non-negative safe integers`;
      if (e.kind !== 'normal' && e.kind !== 'conf') return `entry kind ${JSON.stringify(e.kind)} is unknown`;
      if (!(e.data instanceof Uint8Array)) return `entry ${e.index} data is not a Uint8Array`;
    }
  }
  if (m.snapshot !== undefined) {
    const meta = m.snapshot.meta;
    if (meta === undefined || !isUint(meta.index) || !isUint(meta.term)) return 'snapshot meta index/term must be non-negative safe integers';
    if (meta.conf === undefined || !Array.isArray(meta.conf.voters) || !Array.isArray(meta.conf.learners)) return 'snapshot meta conf must have voters and learners arrays';
  }
  if (m.context !== undefined && typeof m.context !== 'string') return 'context must be a string';
  return undefined;
}

function isUint(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

export interface EncodedFrame {
  bytes: Buffer;
  /** Messages in the frame. */
  count: number;
}

/**
 * Encodes messages as Batch frames of at most `maxFrameBytes` each (a message bigger than that on its
 * own gets a frame of its own; the caller decides whether it may be sent). Order is preserved.
 */
export function encodeBatches(messages: readonly Message[], maxFrameBytes: number): EncodedFrame[] {
  const sizes = messages.map(messageSize);
  const frames: EncodedFrame[] = [];
  let start = 0;
  while (start < messages.length) {
    let total = lenField(sizes[start]!);
    let end = start + 1;
    while (end < messages.length) {
      const next = lenField(sizes[end]!);
      if (total + next > maxFrameBytes) break;
      total += next;
      end++;
    }
    const w = new Writer(total);
    for (let i = start; i < end; i++) {
      w.lenHeader(1, sizes[i]!);
      writeMessage(w, messages[i]!);
    }
    frames.push({ bytes: w.buf, count: end - start });
    start = end;
  }
  return frames;
}

/** One Batch frame holding all of `messages`. */
export function encodeBatch(messages: readonly Message[]): Buffer {
  const sizes = messages.map(messageSize);
  let total = 0;
  for (const s of sizes) total += lenField(s);
  const w = new Writer(total);
  for (let i = 0; i < messages.length; i++) {
    w.lenHeader(1, sizes[i]!);
    writeMessage(w, messages[i]!);
  }
  return w.buf;
}

export interface SnapshotChunk {
  /** First chunk only: the 'snap' message; its snapshot.data is ignored (the data is in chunks). */
  message?: Message;
  totalBytes?: number;
  hasData?: boolean;
  offset: number;
  data: Uint8Array;
}

export function encodeSnapshotChunk(c: SnapshotChunk): Buffer {
  let msgBytes = 0;
  let size = 0;
  if (c.message !== undefined) {
    msgBytes = messageSize(c.message);
    size += lenField(msgBytes);
  }
  if (c.totalBytes !== undefined && c.totalBytes !== 0) size += 1 + varintSize(c.totalBytes);
  if (c.hasData === true) size += 2;
  if (c.offset !== 0) size += 1 + varintSize(c.offset);
  if (c.data.byteLength > 0) size += lenField(c.data.byteLength);
  const w = new Writer(size);
  if (c.message !== undefined) {
    w.lenHeader(1, msgBytes);
    writeMessage(w, c.message);
  }
  if (c.totalBytes !== undefined && c.totalBytes !== 0) w.uintField(2, c.totalBytes);
  if (c.hasData === true) w.boolField(3, true);
  if (c.offset !== 0) w.uintField(4, c.offset);
  if (c.data.byteLength > 0) w.bytesField(5, c.data);
  return w.buf;
}

/** SnapshotReceived { bytes }. */
export function encodeSnapshotReceived(bytes: number): Buffer {
  const w = new Writer(bytes === 0 ? 0 : 1 + varintSize(bytes));
  if (bytes !== 0) w.uintField(1, bytes);
  return w.buf;
}

// ---------------------------------------------------------------------------------------------
// Reading

class Reader {
  readonly buf: Buffer;
  pos: number;
  constructor(buf: Buffer, pos = 0) {
    this.buf = buf;
    this.pos = pos;
  }

  /** A uint64 varint as a number. Values above 2^53 come back imprecise; callers check isUint. */
  varint(end: number): number {
    const b = this.buf;
    let result = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= end) throw new MalformedFrameError('truncated varint');
      const byte = b[this.pos++]!;
      result += (byte & 0x7f) * mul;
      if (byte < 0x80) return result;
      mul *= 0x80;
    }
    throw new MalformedFrameError('varint longer than 10 bytes');
  }

  /** Returns [start, end) of a length-delimited body and moves past it. */
  len(end: number): [number, number] {
    const n = this.varint(end);
    const start = this.pos;
    if (n > end - start) throw new MalformedFrameError(`length ${n} runs past the end of its message`);
    this.pos = start + n;
    return [start, start + n];
  }

  skip(wireType: number, end: number): void {
    switch (wireType) {
      case WT_VARINT: this.varint(end); return;
      case WT_I64: this.advance(8, end); return;
      case WT_LEN: this.len(end); return;
      case WT_I32: this.advance(4, end); return;
      default: throw new MalformedFrameError(`unsupported wire type ${wireType}`);
    }
  }

  advance(n: number, end: number): void {
    if (end - this.pos < n) throw new MalformedFrameError('truncated fixed-width field');
    this.pos += n;
  }

  str(end: number): string {
    const [s, e] = this.len(end);
    return this.buf.toString('utf8', s, e);
  }

  /** A fresh copy: decoded entries outlive the frame and must not pin it (or alias each other). */
  bytesCopy(end: number): Uint8Array {
    const [s, e] = this.len(end);
    const out = new Uint8Array(e - s);
    out.set(this.buf.subarray(s, e));
    return out;
  }
}

/** A field whose value Raft cannot use; the message is dropped but the frame is fine. */
class Invalid {
  readonly reason: string;
  constructor(reason: string) { this.reason = reason; }
}

function expectWire(field: string, got: number, want: number): void {
  if (got !== want) throw new MalformedFrameError(`field ${field} has wire type ${got}, expected ${want}`);
}

function readEntry(r: Reader, end: number): Entry | Invalid {
  let term = 0;
  let index = 0;
  let kind = 0;
  let data: Uint8Array = new Uint8Array(0);
  while (r.pos < end) {
    const tag = r.varint(end);
    const field = Math.floor(tag / 8);
    const wt = tag & 7;
    switch (field) {
      case 1: expectWire('Entry.term', wt, WT_VARINT); term = r.varint(end); break;
      case 2: expectWire('Entry.index', wt, WT_VARINT); index = r.varint(end); break;
      case 3: expectWire('Entry.kind', wt, WT_VARINT); kind = r.varint(end); break;
      case 4: expectWire('Entry.data', wt, WT_LEN); data = r.bytesCopy(end); break;
      default: r.skip(wt, end);
    }
  }
  const k = KINDS[kind];
  if (k === undefined) return new Invalid(`entry kind ${kind} is unknown`);
  if (!isUint(term) || !isUint(index)) return new Invalid('entry term/index exceeds 2^53');
  return { term, index, kind: k, data };
}

function readConf(r: Reader, end: number): { voters: string[]; learners: string[] } {
  const voters: string[] = [];
  const learners: string[] = [];
  while (r.pos < end) {
    const tag = r.varint(end);
    const wt = tag & 7;
    switch (Math.floor(tag / 8)) {
      case 1: expectWire('ConfState.voters', wt, WT_LEN); voters.push(r.str(end)); break;
      case 2: expectWire('ConfState.learners', wt, WT_LEN); learners.push(r.str(end)); break;
      default: r.skip(wt, end);
    }
  }
  return { voters, learners };
}

function readAddressMap(r: Reader, end: number): Record<NodeId, string> {
  // A null-prototype object would be safest against "__proto__" keys, but callers compare and spread
  // these as plain objects; defineProperty gives a plain object that still cannot be prototype-polluted.
  const out: Record<NodeId, string> = {};
  while (r.pos < end) {
    const tag = r.varint(end);
    const wt = tag & 7;
    if (Math.floor(tag / 8) !== 1) { r.skip(wt, end); continue; }
    expectWire('AddressMap.entries', wt, WT_LEN);
    const [s, e] = r.len(end);
    const inner = new Reader(r.buf, s);
    let key = '';
    let value = '';
    while (inner.pos < e) {
      const t = inner.varint(e);
      const w = t & 7;
      switch (Math.floor(t / 8)) {
        case 1: expectWire('AddressMap.key', w, WT_LEN); key = inner.str(e); break;
        case 2: expectWire('AddressMap.value', w, WT_LEN); value = inner.str(e); break;
        default: inner.skip(w, e);
      }
    }
    Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
  }
  return out;
}

/** Reads a length-delimited sub-message with `read`, leaving the reader just past it. */
function nested<T>(r: Reader, end: number, read: (r: Reader, end: number) => T): T {
  const [s, e] = r.len(end);
  r.pos = s;
  const v = read(r, e);
  r.pos = e;
  return v;
}

function readMeta(r: Reader, end: number): SnapshotMeta | Invalid {
  let index = 0;
  let term = 0;
  let conf: { voters: string[]; learners: string[] } | undefined;
  let addresses: Record<NodeId, string> | undefined;
  while (r.pos < end) {
    const tag = r.varint(end);
    const wt = tag & 7;
    switch (Math.floor(tag / 8)) {
      case 1: expectWire('SnapshotMeta.index', wt, WT_VARINT); index = r.varint(end); break;
      case 2: expectWire('SnapshotMeta.term', wt, WT_VARINT); term = r.varint(end); break;
      case 3: expectWire('SnapshotMeta.conf', wt, WT_LEN); conf = nested(r, end, readConf); break;
      case 4: expectWire('SnapshotMeta.addresses', wt, WT_LEN); addresses = nested(r, end, readAddressMap); break;
      default: r.skip(wt, end);
    }
  }
  if (conf === undefined) return new Invalid('snapshot meta has no conf');
  if (!isUint(index) || !isUint(term)) return new Invalid('snapshot meta index/term exceeds 2^53');
  const meta: SnapshotMeta = { index, term, conf };
  if (addresses !== undefined) meta.addresses = addresses;
  return meta;
}

/** Fields each type must carry (types.ts documents their use); anything else is optional. */
const REQUIRED: Partial<Record<MessageType, readonly (keyof Message)[]>> = {
  preVote: ['index', 'logTerm'],
  vote: ['index', 'logTerm'],
  app: ['index', 'logTerm', 'commit'],
  appResp: ['index'],
  heartbeat: ['commit'],
  snap: ['snapshot'],
};

const NUMERIC = ['term', 'logTerm', 'index', 'commit', 'hintIndex', 'hintTerm'] as const;

function readMessage(r: Reader, end: number): Message | Invalid {
  let type = 0;
  let from = '';
  let to = '';
  let term = 0;
  const m: Partial<Message> = {};
  let entries: Entry[] | undefined;
  let invalid: Invalid | undefined;
  while (r.pos < end) {
    const tag = r.varint(end);
    const wt = tag & 7;
    switch (Math.floor(tag / 8)) {
      case 1: expectWire('Message.type', wt, WT_VARINT); type = r.varint(end); break;
      case 2: expectWire('Message.from', wt, WT_LEN); from = r.str(end); break;
      case 3: expectWire('Message.to', wt, WT_LEN); to = r.str(end); break;
      case 4: expectWire('Message.term', wt, WT_VARINT); term = r.varint(end); break;
      case 5: expectWire('Message.log_term', wt, WT_VARINT); m.logTerm = r.varint(end); break;
      case 6: expectWire('Message.index', wt, WT_VARINT); m.index = r.varint(end); break;
      case 7: {
        expectWire('Message.entries', wt, WT_LEN);
        const e = nested(r, end, readEntry);
        if (e instanceof Invalid) invalid ??= e;
        else (entries ??= []).push(e);
        break;
      }
      case 8: expectWire('Message.commit', wt, WT_VARINT); m.commit = r.varint(end); break;
      case 9: expectWire('Message.reject', wt, WT_VARINT); m.reject = r.varint(end) !== 0; break;
      case 10: expectWire('Message.hint_index', wt, WT_VARINT); m.hintIndex = r.varint(end); break;
      case 11: expectWire('Message.hint_term', wt, WT_VARINT); m.hintTerm = r.varint(end); break;
      case 12: {
        expectWire('Message.snapshot', wt, WT_LEN);
        const meta = nested(r, end, readMeta);
        if (meta instanceof Invalid) invalid ??= meta;
        else m.snapshot = { meta };
        break;
      }
      case 13: expectWire('Message.context', wt, WT_LEN); m.context = r.str(end); break;
      case 14: expectWire('Message.transfer', wt, WT_VARINT); m.transfer = r.varint(end) !== 0; break;
      default: r.skip(wt, end); // a newer peer's field: ignore, as protobuf intends
    }
  }
  if (invalid !== undefined) return invalid;
  const t = TYPES[type];
  if (t === undefined) return new Invalid(`unknown message type ${type}`);
  if (from === '' || to === '') return new Invalid(`${t} message without from/to`);
  // Rebuilt in the canonical field order so decoded messages look like the ones the core builds.
  const msg: Message = { type: t, from, to, term };
  if (m.logTerm !== undefined) msg.logTerm = m.logTerm;
  if (m.index !== undefined) msg.index = m.index;
  if (entries !== undefined) msg.entries = entries;
  else if (t === 'app') msg.entries = []; // protobuf cannot tell [] from absent; see raft.proto
  if (m.commit !== undefined) msg.commit = m.commit;
  if (m.reject !== undefined) msg.reject = m.reject;
  if (m.hintIndex !== undefined) msg.hintIndex = m.hintIndex;
  if (m.hintTerm !== undefined) msg.hintTerm = m.hintTerm;
  if (m.snapshot !== undefined) msg.snapshot = m.snapshot;
  if (m.context !== undefined) msg.context = m.context;
  if (m.transfer !== undefined) msg.transfer = m.transfer;
  for (const k of NUMERIC) {
    const v = msg[k];
    if (v !== undefined && !isUint(v)) return new Invalid(`${t} message ${k} exceeds 2^53`);
  }
  for (const k of REQUIRED[t] ?? []) {
    if (msg[k] === undefined) return new Invalid(`${t} message without ${k}`);
  }
  return msg;
}

function asBuffer(buf: Uint8Array): Buffer {
  return Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
}

export interface DecodedBatch {
  messages: Message[];
  /** Why each dropped message was dropped (well-formed protobuf, unusable values). */
  invalid: string[];
}

/** Decodes a Batch frame. Throws MalformedFrameError when the frame itself is broken. */
export function decodeBatch(frame: Uint8Array): DecodedBatch {
  const r = new Reader(asBuffer(frame));
  const end = frame.byteLength;
  const out: DecodedBatch = { messages: [], invalid: [] };
  while (r.pos < end) {
    const tag = r.varint(end);
    const wt = tag & 7;
    if (Math.floor(tag / 8) !== 1) { r.skip(wt, end); continue; }
    expectWire('Batch.messages', wt, WT_LEN);
    const m = nested(r, end, readMessage);
    if (m instanceof Invalid) out.invalid.push(m.reason);
    else out.messages.push(m);
  }
  return out;
}

export interface DecodedSnapshotChunk {
  /** First chunk: the message, or why it is unusable. */
  message?: Message | { invalid: string };
  totalBytes: number;
  hasData: boolean;
  offset: number;
  /** A view into the frame (the receiver copies it into the assembled snapshot). */
  data: Uint8Array;
}

/** Decodes a SnapshotChunk frame. Throws MalformedFrameError when the frame itself is broken. */
export function decodeSnapshotChunk(frame: Uint8Array): DecodedSnapshotChunk {
  const buf = asBuffer(frame);
  const r = new Reader(buf);
  const end = frame.byteLength;
  const out: DecodedSnapshotChunk = { totalBytes: 0, hasData: false, offset: 0, data: new Uint8Array(0) };
  while (r.pos < end) {
    const tag = r.varint(end);
    const wt = tag & 7;
    switch (Math.floor(tag / 8)) {
      case 1: {
        expectWire('SnapshotChunk.message', wt, WT_LEN);
        const m = nested(r, end, readMessage);
        out.message = m instanceof Invalid ? { invalid: m.reason } : m;
        break;
      }
      case 2: expectWire('SnapshotChunk.total_bytes', wt, WT_VARINT); out.totalBytes = r.varint(end); break;
      case 3: expectWire('SnapshotChunk.has_data', wt, WT_VARINT); out.hasData = r.varint(end) !== 0; break;
      case 4: expectWire('SnapshotChunk.offset', wt, WT_VARINT); out.offset = r.varint(end); break;
      case 5: {
        expectWire('SnapshotChunk.data', wt, WT_LEN);
        const [s, e] = r.len(end);
        out.data = new Uint8Array(buf.buffer, buf.byteOffset + s, e - s);
        break;
      }
      default: r.skip(wt, end);
    }
  }
  if (!isUint(out.totalBytes) || !isUint(out.offset)) throw new MalformedFrameError('snapshot chunk offset/total exceeds 2^53');
  return out;
}
