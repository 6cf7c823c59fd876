// Wire format of a command inside a Raft entry. Two layouts, told apart by the first byte:
//   1  JSON. Every command without bytes, byte for byte what earlier builds wrote.
//   2  JSON with its byte fields out of line: [2][u32 BE length of the JSON][JSON][bytes...]. A command
//      that carries KV values is written this way: the values travel raw after the JSON, and the JSON
//      holds [offset, length] into that tail in their place. Base64 (format 1) made an entry ~4/3 of
//      its value, so a 393 KB value overflowed the 512 KiB entry limit while Consul stores 512 KiB.
// Byte fields are only replaced in their known places (KV values), never by a generic tag that could
// collide with user JSON such as Proxy.Config. KV Flags (uint64, a bigint) travel as a number while
// that is exact and as decimal text above 2^53 (uint64Wire), in the same known places.
// Both formats are read, so a log written by an earlier build replays.
import { CommandDecodeError } from './errors.ts';
import { fromBase64 } from './snapshot.ts';
import { isRecord } from './rows.ts';
import type { Command, CommandType } from './types.ts';
import { parseUint64, uint64Wire } from './uint64.ts';
import { SlabAllocator } from './slab.ts';

/** Format 1: the command as JSON, byte fields as base64 text. */
export const COMMAND_FORMAT_VERSION = 1;
/** Format 2: JSON, then the byte fields raw (see the header). */
export const COMMAND_FORMAT_RAW_BYTES = 2;

/** Whether `data` starts like a state store command (either format), as opposed to a control entry. */
export function isCommandData(data: Uint8Array): boolean {
  return data[0] === COMMAND_FORMAT_VERSION || data[0] === COMMAND_FORMAT_RAW_BYTES;
}

const COMMAND_TYPES: ReadonlySet<CommandType> = new Set<CommandType>([
  'catalogRegister', 'catalogDeregister', 'kvSet', 'kvCas', 'kvLock', 'kvUnlock', 'kvDelete', 'kvDeleteCas',
  'kvDeleteTree', 'kvTombstoneReap', 'sessionCreate', 'sessionDestroy', 'configEntrySet', 'configEntryDelete', 'connectCASet', 'txn',
  'aclTokenSet', 'aclTokenDelete', 'aclPolicySet', 'aclPolicyDelete', 'aclRoleSet', 'aclRoleDelete', 'aclBootstrap', 'aclInit',
]);
const VALUE_COMMANDS: ReadonlySet<string> = new Set(['kvSet', 'kvCas', 'kvLock', 'kvUnlock']);

/** Raft entries (encodeCommand) and stored KV values (decodeCommand) come from separate slabs:
 *  they die in different orders (slab.ts). */
const entrySlabs = new SlabAllocator();
const valueSlabs = new SlabAllocator();

/** Collects byte fields for the tail of a format-2 entry (and of rpc/results.ts frames); each becomes [offset, length] in the JSON. */
export class ByteTail {
  readonly parts: Uint8Array[] = [];
  bytes = 0;
  add(v: Uint8Array): [number, number] {
    const ref: [number, number] = [this.bytes, v.byteLength];
    this.parts.push(v);
    this.bytes += v.byteLength;
    return ref;
  }
}

/**
 * Encodes a command for `raft.propose`. Stamps `now` (the proposer's clock, which lock delays use)
 * when the command does not carry one.
 */
export function encodeCommand(cmd: Command, now: number = Date.now()): Uint8Array {
  const wire: Record<string, unknown> = { ...cmd, now: cmd.now ?? now };
  const tail = new ByteTail();
  let hasBytes = false;
  if (VALUE_COMMANDS.has(cmd.type)) {
    if ('Value' in cmd && cmd.Value instanceof Uint8Array) {
      wire.Value = tail.add(cmd.Value);
      hasBytes = true;
    }
    if ('Flags' in cmd && typeof cmd.Flags === 'bigint') wire.Flags = uint64Wire(cmd.Flags);
  }
  if (cmd.type === 'txn' && Array.isArray(cmd.Ops)) {
    wire.Ops = cmd.Ops.map((op) => {
      if (!('KV' in op) || !isRecord(op.KV)) return op;
      const kv: Record<string, unknown> = { ...op.KV };
      if (kv.Value instanceof Uint8Array) {
        kv.Value = tail.add(kv.Value);
        hasBytes = true;
      }
      if (typeof kv.Flags === 'bigint') kv.Flags = uint64Wire(kv.Flags);
      return { ...op, KV: kv };
    });
  }
  return frameCommand(Buffer.from(JSON.stringify(wire)), hasBytes ? tail.parts : undefined, tail.bytes);
}

/** A command entry's bytes: format 1 (the JSON alone) without value bytes, else format 2 (JSON length, JSON, value bytes). */
function frameCommand(json: Uint8Array, tailParts: readonly Uint8Array[] | undefined, tailBytes: number): Uint8Array {
  if (tailParts === undefined) {
    const out = new Uint8Array(json.length + 1);
    out[0] = COMMAND_FORMAT_VERSION;
    out.set(json, 1);
    return out;
  }
  // From the entries' slabs (not Buffer's shared pool, whose slabs stored values share): the Raft
  // log keeps entries for a while and drops them in order, so their slabs are freed in turn.
  const out = entrySlabs.alloc(5 + json.length + tailBytes);
  out[0] = COMMAND_FORMAT_RAW_BYTES;
  new DataView(out.buffer, out.byteOffset, out.byteLength).setUint32(1, json.length);
  out.set(json, 5);
  let at = 5 + json.length;
  for (const part of tailParts) {
    out.set(part, at);
    at += part.byteLength;
  }
  return out;
}

/**
 * The same command with its `now` replaced: the leader stamps its own clock on every write it
 * proposes (server/writes.ts applyOnLeader), so the times the state store keeps (lock-delays) are
 * all read from one clock, the leader's, as in Consul, whose leader checks lock-delays against its
 * own time. Without it a server whose wall clock had been stepped (chaos clock-step) stamped the
 * destroy or the acquire it took: +60 s on the acquiring server, or -60 s on the destroying one,
 * let a second session take a lock 11-24 ms after the first was destroyed, inside a 10 s
 * lock-delay. Only the JSON part is rewritten; the value bytes are copied as they are.
 */
export function restampCommand(data: Uint8Array, now: number): Uint8Array {
  let jsonBytes: Uint8Array;
  let tail: Uint8Array | undefined;
  if (data instanceof Uint8Array && data.length >= 2 && data[0] === COMMAND_FORMAT_VERSION) {
    jsonBytes = data.subarray(1);
  } else if (data instanceof Uint8Array && data.length >= 5 && data[0] === COMMAND_FORMAT_RAW_BYTES) {
    const jsonLength = new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(1);
    if (5 + jsonLength > data.length) throw new CommandDecodeError(`command entry is truncated: its JSON claims ${jsonLength} bytes, ${data.length - 5} follow`);
    jsonBytes = data.subarray(5, 5 + jsonLength);
    tail = data.subarray(5 + jsonLength);
  } else {
    throw new CommandDecodeError('command entry is empty, truncated or of an unknown format');
  }
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(jsonBytes.buffer, jsonBytes.byteOffset, jsonBytes.byteLength).toString('utf8'));
  } catch (e) {
    throw new CommandDecodeError(`command entry is not valid JSON: ${(e as Error).message}`);
  }
  if (!isRecord(doc)) throw new CommandDecodeError('command entry has no type');
  doc.now = now;
  return frameCommand(Buffer.from(JSON.stringify(doc)), tail === undefined ? undefined : [tail], tail?.byteLength ?? 0);
}

/** Reads a byte field: base64 text in format 1, an [offset, length] reference into `tail` in format 2. */
type BytesReader = (v: unknown, where: string) => unknown;

function base64Field(v: unknown, where: string): unknown {
  if (v === undefined || v === null) return v;
  if (typeof v !== 'string') throw new CommandDecodeError(`${where} must be base64 text in the wire format`);
  return fromBase64(v);
}

function tailField(tail: Uint8Array): BytesReader {
  return (v, where) => {
    if (v === undefined || v === null) return v;
    if (!Array.isArray(v) || v.length !== 2 || !Number.isSafeInteger(v[0]) || !Number.isSafeInteger(v[1]) || v[0] < 0 || v[1] < 0 || v[0] + v[1] > tail.byteLength) {
      throw new CommandDecodeError(`${where} must be an [offset, length] inside the entry's ${tail.byteLength} bytes of values`);
    }
    // A copy: the entry may be a view into a larger buffer (a batch of entries off the network)
    // that a stored value must not keep alive.
    return valueSlabs.copy(tail.subarray(v[0], v[0] + v[1]));
  };
}

/** Decimal text becomes the exact bigint; a number is left for the store to check (every older
 *  entry has one, and the store refuses an unsafe one rather than keep a rounded value). */
function flagsField(v: unknown, where: string): unknown {
  if (typeof v !== 'string') return v;
  const parsed = parseUint64(v);
  if (parsed === null) throw new CommandDecodeError(`${where} must be a number or the decimal text of an unsigned 64-bit integer in the wire format`);
  return parsed;
}

/** Decodes a Raft entry's data. Throws CommandDecodeError for anything this version cannot read. */
export function decodeCommand(data: Uint8Array): Command {
  if (!(data instanceof Uint8Array) || data.length < 2) throw new CommandDecodeError('command entry is empty or truncated');
  let jsonBytes: Uint8Array;
  let bytesField: BytesReader;
  if (data[0] === COMMAND_FORMAT_VERSION) {
    jsonBytes = data.subarray(1);
    bytesField = base64Field;
  } else if (data[0] === COMMAND_FORMAT_RAW_BYTES) {
    if (data.length < 5) throw new CommandDecodeError('command entry is empty or truncated');
    const jsonLength = new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(1);
    if (5 + jsonLength > data.length) throw new CommandDecodeError(`command entry is truncated: its JSON claims ${jsonLength} bytes, ${data.length - 5} follow`);
    jsonBytes = data.subarray(5, 5 + jsonLength);
    bytesField = tailField(data.subarray(5 + jsonLength));
  } else {
    throw new CommandDecodeError(`command format version ${data[0]} is not supported (this build reads ${COMMAND_FORMAT_VERSION} and ${COMMAND_FORMAT_RAW_BYTES})`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(jsonBytes.buffer, jsonBytes.byteOffset, jsonBytes.byteLength).toString('utf8'));
  } catch (e) {
    throw new CommandDecodeError(`command entry is not valid JSON: ${(e as Error).message}`);
  }
  if (!isRecord(doc) || typeof doc.type !== 'string') throw new CommandDecodeError('command entry has no type');
  if (!COMMAND_TYPES.has(doc.type as CommandType)) throw new CommandDecodeError(`unknown command type ${JSON.stringify(doc.type)}`);
  if (VALUE_COMMANDS.has(doc.type)) {
    if (doc.Value !== undefined) doc.Value = bytesField(doc.Value, 'Value');
    if (doc.Flags !== undefined) doc.Flags = flagsField(doc.Flags, 'Flags');
  }
  if (doc.type === 'txn' && Array.isArray(doc.Ops)) {
    doc.Ops = doc.Ops.map((op, i) => {
      if (!isRecord(op) || !isRecord(op.KV)) return op;
      const kv: Record<string, unknown> = { ...op.KV };
      if (kv.Value !== undefined) kv.Value = bytesField(kv.Value, `Ops[${i}].KV.Value`);
      if (kv.Flags !== undefined) kv.Flags = flagsField(kv.Flags, `Ops[${i}].KV.Flags`);
      return { ...op, KV: kv };
    });
  }
  return doc as unknown as Command;
}
