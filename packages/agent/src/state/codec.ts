// Wire format of a command inside a Raft entry: one version byte, then JSON. JSON cannot carry
// bytes, so the binary fields (KV values, in their known places only: a generic tag could collide
// with user JSON such as Proxy.Config) travel as base64 strings. KV Flags (uint64, a bigint) travel
// as a number while that is exact and as decimal text above 2^53 (uint64Wire), in the same known
// places: a command whose Flags fit a double is byte for byte what earlier builds wrote.
import { CommandDecodeError } from './errors.ts';
import { fromBase64 } from './snapshot.ts';
import { isRecord } from './rows.ts';
import type { Command, CommandType } from './types.ts';
import { parseUint64, uint64Wire } from './uint64.ts';

export const COMMAND_FORMAT_VERSION = 1;

const COMMAND_TYPES: ReadonlySet<CommandType> = new Set<CommandType>([
  'catalogRegister', 'catalogDeregister', 'kvSet', 'kvCas', 'kvLock', 'kvUnlock', 'kvDelete', 'kvDeleteCas',
  'kvDeleteTree', 'kvTombstoneReap', 'sessionCreate', 'sessionDestroy', 'txn',
]);
const VALUE_COMMANDS: ReadonlySet<string> = new Set(['kvSet', 'kvCas', 'kvLock', 'kvUnlock']);

const b64 = (v: Uint8Array): string => Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64');

/**
 * Encodes a command for `raft.propose`. Stamps `now` (the proposer's clock, which lock delays use)
 * when the command does not carry one.
 */
export function encodeCommand(cmd: Command, now: number = Date.now()): Uint8Array {
  const wire: Record<string, unknown> = { ...cmd, now: cmd.now ?? now };
  if (VALUE_COMMANDS.has(cmd.type)) {
    if ('Value' in cmd && cmd.Value instanceof Uint8Array) wire.Value = b64(cmd.Value);
    if ('Flags' in cmd && typeof cmd.Flags === 'bigint') wire.Flags = uint64Wire(cmd.Flags);
  }
  if (cmd.type === 'txn' && Array.isArray(cmd.Ops)) {
    wire.Ops = cmd.Ops.map((op) => {
      if (!('KV' in op) || !isRecord(op.KV)) return op;
      const kv: Record<string, unknown> = { ...op.KV };
      if (kv.Value instanceof Uint8Array) kv.Value = b64(kv.Value);
      if (typeof kv.Flags === 'bigint') kv.Flags = uint64Wire(kv.Flags);
      return { ...op, KV: kv };
    });
  }
  const json = Buffer.from(JSON.stringify(wire));
  const out = new Uint8Array(json.length + 1);
  out[0] = COMMAND_FORMAT_VERSION;
  out.set(json, 1);
  return out;
}

function bytesField(v: unknown, where: string): Uint8Array | unknown {
  if (v === undefined || v === null) return v;
  if (typeof v !== 'string') throw new CommandDecodeError(`${where} must be base64 text in the wire format`);
  return fromBase64(v);
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
  if (data[0] !== COMMAND_FORMAT_VERSION) {
    throw new CommandDecodeError(`command format version ${data[0]} is not supported (this build reads ${COMMAND_FORMAT_VERSION})`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(data.buffer, data.byteOffset + 1, data.byteLength - 1).toString('utf8'));
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
