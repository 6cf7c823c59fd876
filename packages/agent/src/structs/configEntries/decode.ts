// Decoding a config entry body into its kind's shape, as Consul's structs.DecodeConfigEntry does with
// mapstructure: keys match fields case-insensitively and in snake_case too (`service_subset`,
// `ServiceSubset`, `servicesubset`), scalars are weakly typed (`"8080"` for an int, `"true"` for a
// bool), durations are Go strings or nanoseconds, and a key the kind does not have is an error
// (validateUnusedKeys). The output has Consul's PascalCase names in the struct's field order, so
// reads answer the shape Consul's API does. Pure: no I/O.

import { DurationError, formatGoDurationNs, parseGoDurationNs } from '../../config/duration.ts';

export type FieldSchema =
  | 'string' | 'bool' | 'int' | 'number' | 'duration' | 'strings' | 'ints' | 'stringMap' | 'any'
  | { object: ObjectSchema }
  | { list: FieldSchema }
  | { map: FieldSchema };

export interface FieldSpec {
  type: FieldSchema;
  /** Answered even when not given (Consul's fields without omitempty), with this value. */
  always?: unknown;
}

/** Field name (Consul's PascalCase) → spec, in Consul's struct order. */
export type ObjectSchema = Readonly<Record<string, FieldSchema | FieldSpec>>;

/** A body that does not decode into the kind's type (Consul answers "Request decoding failed: ..."). */
export class ConfigEntryDecodeError extends Error {
  readonly code = 'ERR_INVALID_CONFIG_ENTRY';
  constructor(message: string) {
    super(message);
    this.name = 'ConfigEntryDecodeError';
  }
}

const spec = (f: FieldSchema | FieldSpec): FieldSpec => (typeof f === 'object' && 'type' in f ? f : { type: f });
/** Go's mapstructure + Consul's HookTranslateKeys: case and underscores do not matter. */
export const fold = (key: string): string => key.toLowerCase().replace(/[_-]/g, '');

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'list';
  return typeof v === 'object' ? 'object' : typeof v;
}

function expected(path: string, what: string, v: unknown): never {
  throw new ConfigEntryDecodeError(`'${path}' expected ${what}, got ${typeName(v)} ${JSON.stringify(v)}`);
}

/** An HCL block arrives as a one-object list; mapstructure's HookWeakDecodeFromSlice unwraps it. */
function unwrap(v: unknown): unknown {
  return Array.isArray(v) && v.length === 1 && isPlainObject(v[0]) ? v[0] : v;
}

function decodeInt(v: unknown, path: string): number {
  if (typeof v === 'number' && Number.isInteger(v)) return v;
  if (typeof v === 'string' && /^-?[0-9]+$/.test(v.trim())) return Number(v.trim());
  if (typeof v === 'boolean') return v ? 1 : 0;
  return expected(path, 'an integer', v);
}

function decodeValue(v: unknown, f: FieldSchema, path: string): unknown {
  if (typeof f === 'object' && 'object' in f) {
    const o = unwrap(v);
    if (!isPlainObject(o)) return expected(path, 'an object', v);
    return decodeObject(o, f.object, path);
  }
  if (typeof f === 'object' && 'list' in f) {
    if (v === null) return [];
    const items = Array.isArray(v) ? v : [v];
    return items.map((item, i) => decodeValue(item, f.list, `${path}[${i}]`));
  }
  if (typeof f === 'object' && 'map' in f) {
    const o = unwrap(v);
    if (!isPlainObject(o)) return expected(path, 'a map', v);
    // Keys are names the user chose (subsets, failover targets): kept as written.
    return Object.fromEntries(Object.entries(o).map(([k, item]) => [k, decodeValue(item, f.map, `${path}[${k}]`)]));
  }
  switch (f) {
    case 'any':
      return v;
    case 'string':
      if (typeof v === 'string') return v;
      if (typeof v === 'number' || typeof v === 'boolean') return String(v);
      return expected(path, 'a string', v);
    case 'bool':
      if (typeof v === 'boolean') return v;
      if (typeof v === 'number') return v !== 0;
      if (typeof v === 'string') {
        if (['1', 't', 'T', 'true', 'TRUE', 'True'].includes(v)) return true;
        if (['0', 'f', 'F', 'false', 'FALSE', 'False', ''].includes(v)) return false;
      }
      return expected(path, 'a bool', v);
    case 'int':
      return decodeInt(v, path);
    case 'number':
      if (typeof v === 'number' && Number.isFinite(v)) return v;
      if (typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v))) return Number(v);
      return expected(path, 'a number', v);
    case 'duration': {
      // Consul prints these as Go strings; nanoseconds (a JSON number) are accepted too.
      if (typeof v === 'number' && Number.isInteger(v)) return formatGoDurationNs(BigInt(v));
      if (typeof v !== 'string') return expected(path, 'a duration', v);
      try {
        return formatGoDurationNs(parseGoDurationNs(v));
      } catch (e) {
        if (e instanceof DurationError) throw new ConfigEntryDecodeError(`error decoding '${path}': ${e.message}`);
        throw e;
      }
    }
    case 'strings': {
      const items = v === null ? [] : Array.isArray(v) ? v : [v];
      return items.map((item, i) => decodeValue(item, 'string', `${path}[${i}]`));
    }
    case 'ints': {
      const items = v === null ? [] : Array.isArray(v) ? v : [v];
      return items.map((item, i) => decodeInt(item, `${path}[${i}]`));
    }
    case 'stringMap': {
      const o = unwrap(v);
      if (!isPlainObject(o)) return expected(path, 'a map of strings', v);
      return Object.fromEntries(Object.entries(o).map(([k, item]) => [k, decodeValue(item, 'string', `${path}[${k}]`)]));
    }
  }
}

/** Consul's validateUnusedKeys wording, namespace and partition keys named as Enterprise features. */
function unusedKey(key: string, path: string): ConfigEntryDecodeError {
  const shown = path === '' ? key : `${path}.${key}`;
  const k = key.toLowerCase();
  if (k.endsWith('namespace')) return new ConfigEntryDecodeError(`invalid config key ${JSON.stringify(shown)}, namespaces are a consul enterprise feature`);
  if (k.endsWith('partition')) return new ConfigEntryDecodeError(`invalid config key ${JSON.stringify(shown)}, partitions are a consul enterprise feature`);
  return new ConfigEntryDecodeError(`invalid config key ${JSON.stringify(shown)}`);
}

/**
 * Decodes an object against its schema. `ignore` lists folded keys that are accepted and dropped
 * (Kind at the top, the read-only Raft indexes).
 */
export function decodeObject(o: Record<string, unknown>, schema: ObjectSchema, path = '', ignore: ReadonlySet<string> = new Set()): Record<string, unknown> {
  const byFold = new Map<string, string>();
  for (const name of Object.keys(schema)) byFold.set(fold(name), name);
  const given = new Map<string, unknown>();
  for (const [key, value] of Object.entries(o)) {
    const f = fold(key);
    if (ignore.has(f)) continue;
    const name = byFold.get(f);
    if (name === undefined) throw unusedKey(key, path);
    if (given.has(name)) throw new ConfigEntryDecodeError(`'${path === '' ? name : `${path}.${name}`}' is given twice (as ${JSON.stringify(key)} too)`);
    given.set(name, value);
  }
  const out: Record<string, unknown> = {};
  for (const [name, raw] of Object.entries(schema)) {
    const s = spec(raw);
    const fieldPath = path === '' ? name : `${path}.${name}`;
    if (given.has(name) && given.get(name) !== null) out[name] = decodeValue(given.get(name), s.type, fieldPath);
    else if (s.always !== undefined) out[name] = structuredClone(s.always);
  }
  return out;
}
