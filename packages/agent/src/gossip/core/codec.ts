// The wire form of SWIM messages: a compact, versioned binary encoding (unsigned varints, length-
// prefixed UTF-8 strings) with strict validation on the way in. Anything that does not decode to
// exactly one well-formed message — unknown version or type, truncated or trailing bytes, bad
// UTF-8, out-of-range numbers, oversized names, tags or payloads — is refused with a
// GossipError('ERR_MALFORMED_MESSAGE') saying what was wrong; the driver drops it and counts it.
//
// Layout: [version=1][type][fields...]. A change of layout bumps the version byte.
import { GossipError } from './errors.ts';
import type {
  Endpoint, Message, MemberIdentity, MemberSnapshot, MemberState, Update, UserEventUpdate,
} from './types.ts';

export const CODEC_VERSION = 1;

/** memberlist MetaMaxSize: encoded member tags (serf puts tags in the node meta) may not exceed this. */
export const TAGS_MAX_BYTES = 512;
export const NAME_MAX_BYTES = 256;
export const ADDR_MAX_BYTES = 64;
export const PEER_ID_MAX_BYTES = 128;
/** Hard ceiling on a user event payload on the wire (serf's configurable limit tops out at 9 KiB). */
export const EVENT_PAYLOAD_MAX_BYTES = 9 * 1024;
export const UPDATES_MAX = 4096;
export const MEMBERS_MAX = 200_000;
/** memberlist incarnations and sequence numbers are uint32. */
const U32_MAX = 0xffff_ffff;

const MSG = { ping: 1, ack: 2, nack: 3, pingReq: 4, gossip: 5, pushPull: 6 } as const;
const UPD = { alive: 1, suspect: 2, dead: 3, forceLeave: 4, userEvent: 5 } as const;
const STATES: MemberState[] = ['alive', 'suspect', 'dead', 'left'];

const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder('utf-8', { fatal: true });

// ---------------------------------------------------------------- encoding

class Writer {
  buf = new Uint8Array(256);
  len = 0;

  private ensure(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.len + n) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
  }

  byte(b: number): void {
    this.ensure(1);
    this.buf[this.len++] = b;
  }

  uvarint(v: number): void {
    this.ensure(8);
    // Division instead of bit shifts: values up to 2^53 do not fit JavaScript's 32-bit operators.
    while (v >= 0x80) {
      this.buf[this.len++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.buf[this.len++] = v;
  }

  bytes(b: Uint8Array): void {
    this.uvarint(b.byteLength);
    this.ensure(b.byteLength);
    this.buf.set(b, this.len);
    this.len += b.byteLength;
  }

  str(s: string): void {
    this.bytes(utf8.encode(s));
  }

  done(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

function writeIdentity(w: Writer, n: MemberIdentity): void {
  w.str(n.name);
  w.str(n.addr);
  w.uvarint(n.port);
  w.str(n.peerId);
  const keys = Object.keys(n.tags).sort();
  w.uvarint(keys.length);
  for (const k of keys) {
    w.str(k);
    w.str(n.tags[k]!);
  }
}

function writeEndpoint(w: Writer, n: Endpoint): void {
  w.str(n.name);
  w.str(n.addr);
  w.uvarint(n.port);
  w.str(n.peerId);
}

function writeUpdate(w: Writer, u: Update): void {
  switch (u.type) {
    case 'alive':
      w.byte(UPD.alive);
      writeIdentity(w, u.node);
      w.uvarint(u.incarnation);
      return;
    case 'suspect':
    case 'dead':
      w.byte(UPD[u.type]);
      w.str(u.node);
      w.uvarint(u.incarnation);
      w.str(u.from);
      return;
    case 'forceLeave':
      w.byte(UPD.forceLeave);
      w.str(u.node);
      w.uvarint(u.incarnation);
      w.byte(u.prune ? 1 : 0);
      w.str(u.from);
      return;
    case 'userEvent':
      w.byte(UPD.userEvent);
      w.uvarint(u.ltime);
      w.str(u.name);
      w.bytes(u.payload);
      return;
  }
}

function writeUpdates(w: Writer, us: Update[]): void {
  w.uvarint(us.length);
  for (const u of us) writeUpdate(w, u);
}

/** Encodes a message. The core validates what it originates (tags, event sizes), so this does not re-check. */
export function encodeMessage(m: Message): Uint8Array {
  const w = new Writer();
  w.byte(CODEC_VERSION);
  switch (m.type) {
    case 'ping':
      w.byte(MSG.ping); w.uvarint(m.seq); w.str(m.from); writeEndpoint(w, m.replyTo); w.str(m.target);
      writeUpdates(w, m.updates);
      break;
    case 'ack':
    case 'nack':
      w.byte(MSG[m.type]); w.uvarint(m.seq); w.str(m.from); writeUpdates(w, m.updates);
      break;
    case 'pingReq':
      w.byte(MSG.pingReq); w.uvarint(m.seq); w.str(m.from); writeEndpoint(w, m.replyTo); writeEndpoint(w, m.target);
      w.byte(m.nack ? 1 : 0);
      writeUpdates(w, m.updates);
      break;
    case 'gossip':
      w.byte(MSG.gossip); w.str(m.from); writeUpdates(w, m.updates);
      break;
    case 'pushPull':
      w.byte(MSG.pushPull); w.str(m.from); w.byte((m.join ? 1 : 0) | (m.reply ? 2 : 0));
      w.uvarint(m.members.length);
      for (const s of m.members) {
        writeIdentity(w, s.node);
        w.uvarint(s.incarnation);
        w.byte(STATES.indexOf(s.state));
      }
      w.uvarint(m.eventLTime);
      w.uvarint(m.events.length);
      for (const e of m.events) writeUpdate(w, e);
      break;
  }
  return w.done();
}

/** Encoded size of one update, cached per object (broadcast queues size the same update many times). */
const sizeCache = new WeakMap<Update, number>();
export function updateSize(u: Update): number {
  let n = sizeCache.get(u);
  if (n === undefined) {
    const w = new Writer();
    writeUpdate(w, u);
    n = w.len;
    sizeCache.set(u, n);
  }
  return n;
}

/** Encoded size of a set of tags as they travel (the 512-byte limit applies to this). */
export function tagsSize(tags: Readonly<Record<string, string>>): number {
  const w = new Writer();
  const keys = Object.keys(tags);
  w.uvarint(keys.length);
  for (const k of keys) {
    w.str(k);
    w.str(tags[k]!);
  }
  return w.len;
}

// ---------------------------------------------------------------- decoding

function malformed(why: string): never {
  throw new GossipError('ERR_MALFORMED_MESSAGE', `malformed gossip message: ${why}`);
}

class Reader {
  readonly buf: Uint8Array;
  pos = 0;
  constructor(buf: Uint8Array) {
    this.buf = buf;
  }

  byte(what: string): number {
    if (this.pos >= this.buf.byteLength) malformed(`truncated reading ${what}`);
    return this.buf[this.pos++]!;
  }

  uvarint(what: string, max: number): number {
    let v = 0;
    let mul = 1;
    for (let i = 0; i < 8; i++) {
      const b = this.byte(what);
      v += (b & 0x7f) * mul;
      if ((b & 0x80) === 0) {
        if (i > 0 && b === 0) malformed(`${what} is not minimally encoded`);
        if (v > max) malformed(`${what} ${v} is out of range (max ${max})`);
        return v;
      }
      mul *= 0x80;
    }
    return malformed(`${what} varint is too long`);
  }

  bytes(what: string, maxLen: number): Uint8Array {
    const n = this.uvarint(`${what} length`, maxLen);
    if (this.pos + n > this.buf.byteLength) malformed(`truncated reading ${what}`);
    const out = this.buf.slice(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  str(what: string, maxLen: number, allowEmpty = false): string {
    const b = this.bytes(what, maxLen);
    if (b.byteLength === 0 && !allowEmpty) malformed(`${what} is empty`);
    let s: string;
    try {
      s = utf8Strict.decode(b);
    } catch {
      // The decoder's own message adds nothing an operator can use; ours names the field.
      return malformed(`${what} is not valid UTF-8`);
    }
    return s;
  }

  bool(what: string): boolean {
    const b = this.byte(what);
    if (b > 1) malformed(`${what} flag must be 0 or 1, got ${b}`);
    return b === 1;
  }
}

function readIdentity(r: Reader): MemberIdentity {
  const name = r.str('member name', NAME_MAX_BYTES);
  const addr = r.str(`address of ${name}`, ADDR_MAX_BYTES, true);
  const port = r.uvarint(`port of ${name}`, 65535);
  const peerId = r.str(`peer id of ${name}`, PEER_ID_MAX_BYTES, true);
  const tagsStart = r.pos;
  const count = r.uvarint(`tag count of ${name}`, TAGS_MAX_BYTES);
  const tags: Record<string, string> = Object.create(null);
  let prev = '';
  for (let i = 0; i < count; i++) {
    const k = r.str(`tag key of ${name}`, TAGS_MAX_BYTES);
    if (i > 0 && k <= prev) malformed(`tags of ${name} are not sorted and unique at "${k}"`);
    prev = k;
    tags[k] = r.str(`tag ${k} of ${name}`, TAGS_MAX_BYTES, true);
  }
  if (r.pos - tagsStart > TAGS_MAX_BYTES) malformed(`tags of ${name} exceed ${TAGS_MAX_BYTES} bytes`);
  return { name, addr, port, peerId, tags: { ...tags } };
}

function readEndpoint(r: Reader, what: string): Endpoint {
  const name = r.str(`${what} name`, NAME_MAX_BYTES);
  const addr = r.str(`${what} address`, ADDR_MAX_BYTES, true);
  const port = r.uvarint(`${what} port`, 65535);
  const peerId = r.str(`${what} peer id`, PEER_ID_MAX_BYTES, true);
  return { name, addr, port, peerId };
}

function readUpdate(r: Reader): Update {
  const t = r.byte('update type');
  switch (t) {
    case UPD.alive: {
      const node = readIdentity(r);
      return { type: 'alive', node, incarnation: r.uvarint('incarnation', U32_MAX) };
    }
    case UPD.suspect:
    case UPD.dead: {
      const node = r.str('member name', NAME_MAX_BYTES);
      const incarnation = r.uvarint('incarnation', U32_MAX);
      const from = r.str('sender name', NAME_MAX_BYTES);
      return { type: t === UPD.suspect ? 'suspect' : 'dead', node, incarnation, from };
    }
    case UPD.forceLeave: {
      const node = r.str('member name', NAME_MAX_BYTES);
      const incarnation = r.uvarint('incarnation', U32_MAX);
      const prune = r.bool('prune');
      const from = r.str('sender name', NAME_MAX_BYTES);
      return { type: 'forceLeave', node, incarnation, prune, from };
    }
    case UPD.userEvent:
      return readUserEvent(r);
    default:
      return malformed(`unknown update type ${t}`);
  }
}

function readUserEvent(r: Reader): UserEventUpdate {
  const ltime = r.uvarint('event ltime', Number.MAX_SAFE_INTEGER);
  const name = r.str('event name', NAME_MAX_BYTES);
  const payload = r.bytes('event payload', EVENT_PAYLOAD_MAX_BYTES);
  return { type: 'userEvent', ltime, name, payload };
}

function readUpdates(r: Reader): Update[] {
  const n = r.uvarint('update count', UPDATES_MAX);
  const out: Update[] = [];
  for (let i = 0; i < n; i++) out.push(readUpdate(r));
  return out;
}

/** Decodes one message, or throws ERR_MALFORMED_MESSAGE naming what was wrong. */
export function decodeMessage(bytes: Uint8Array): Message {
  const r = new Reader(bytes);
  const version = r.byte('version');
  if (version !== CODEC_VERSION) malformed(`unsupported version ${version} (this agent speaks ${CODEC_VERSION})`);
  const type = r.byte('message type');
  let m: Message;
  switch (type) {
    case MSG.ping: {
      const seq = r.uvarint('seq', U32_MAX);
      const from = r.str('sender name', NAME_MAX_BYTES);
      const replyTo = readEndpoint(r, 'reply-to');
      const target = r.str('target name', NAME_MAX_BYTES);
      m = { type: 'ping', seq, from, replyTo, target, updates: readUpdates(r) };
      break;
    }
    case MSG.ack:
    case MSG.nack: {
      const seq = r.uvarint('seq', U32_MAX);
      const from = r.str('sender name', NAME_MAX_BYTES);
      m = { type: type === MSG.ack ? 'ack' : 'nack', seq, from, updates: readUpdates(r) };
      break;
    }
    case MSG.pingReq: {
      const seq = r.uvarint('seq', U32_MAX);
      const from = r.str('sender name', NAME_MAX_BYTES);
      const replyTo = readEndpoint(r, 'reply-to');
      const target = readEndpoint(r, 'target');
      const nack = r.bool('nack');
      m = { type: 'pingReq', seq, from, replyTo, target, nack, updates: readUpdates(r) };
      break;
    }
    case MSG.gossip: {
      const from = r.str('sender name', NAME_MAX_BYTES);
      m = { type: 'gossip', from, updates: readUpdates(r) };
      break;
    }
    case MSG.pushPull: {
      const from = r.str('sender name', NAME_MAX_BYTES);
      const flags = r.byte('push-pull flags');
      if (flags > 3) malformed(`push-pull flags ${flags} has unknown bits`);
      const count = r.uvarint('member count', MEMBERS_MAX);
      const members: MemberSnapshot[] = [];
      for (let i = 0; i < count; i++) {
        const node = readIdentity(r);
        const incarnation = r.uvarint('incarnation', U32_MAX);
        const s = r.byte('member state');
        const state = STATES[s];
        if (!state) malformed(`member state ${s} of ${node.name} is unknown`);
        members.push({ node, incarnation, state });
      }
      const eventLTime = r.uvarint('event ltime', Number.MAX_SAFE_INTEGER);
      const nEvents = r.uvarint('event count', UPDATES_MAX);
      const events: UserEventUpdate[] = [];
      for (let i = 0; i < nEvents; i++) {
        const t = r.byte('update type');
        if (t !== UPD.userEvent) malformed(`push-pull events must be user events, got update type ${t}`);
        events.push(readUserEvent(r));
      }
      m = { type: 'pushPull', from, join: (flags & 1) !== 0, reply: (flags & 2) !== 0, members, eventLTime, events };
      break;
    }
    default:
      return malformed(`unknown message type ${type}`);
  }
  if (r.pos !== bytes.byteLength) malformed(`${bytes.byteLength - r.pos} trailing bytes after a ${m.type} message`);
  return m;
}
