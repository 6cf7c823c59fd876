// Request body decoding with Go encoding/json's rules, which every Consul client relies on:
//   - object keys match struct fields case-insensitively (an exact match wins), so
//     {"name":"web"} and {"Name":"web"} are the same registration;
//   - `null` leaves a field at its zero value;
//   - a value of the wrong JSON type is an error naming the field and the expected type;
//   - unknown keys are errors only where Consul decodes with DisallowUnknownFields.
// Each request type is described once by a small Schema; decode() returns a plain object whose keys
// are the canonical PascalCase names, so the rest of the code never sees the client's spelling.

import { parseGoDurationNs } from '../config/duration.ts';
import { parseUint64 } from '../state/uint64.ts';
import { decodeFailed } from './errors.ts';
import { numberSource } from './json.ts';
import { invalidUtf8Error } from './utf8.ts';

export type FieldSpec =
  | 'string' | 'bool' | 'int' | 'uint' | 'float'
  /**
   * Go uint64 over its whole range, decoded to a bigint. Exact above 2^53 only when the body was
   * parsed by parseJsonExact (json.ts), which keeps the digits; otherwise such a number is refused
   * rather than rounded. As Go, a non-integer spelling (1e3, 1.0) or a sign is refused.
   */
  | 'uint64'
  /** Go time.Duration: a duration string ("10s", "1m30s") or a number of nanoseconds. Decoded to ns. */
  | 'duration'
  | 'stringArray'
  /** map[string]string: keys are data, not field names, and are kept as sent. */
  | 'stringMap'
  /** Kept as sent (opaque configuration such as a proxy's Config map). */
  | 'any'
  | { object: Schema }
  | { array: FieldSpec }
  | { map: FieldSpec };

export interface Schema {
  /** The Go type name used in error messages, e.g. "ServiceDefinition". */
  readonly name: string;
  readonly fields: Readonly<Record<string, FieldSpec>>;
  /** Extra accepted spellings (Consul's snake_case forms) → canonical field name. */
  readonly aliases?: Readonly<Record<string, string>>;
  /** Unknown keys are errors (`json: unknown field "Foo"`), as with Go's DisallowUnknownFields. */
  readonly strict?: boolean;
  /** Unknown keys are kept as sent (opaque blocks such as a proxy's configuration); else dropped. */
  readonly keepUnknown?: boolean;
}

/** Thrown for bodies that do not fit the schema; the message is Go's text after "Request decode failed: ". */
export class DecodeError extends Error {
  readonly code = 'ERR_DECODE';
  constructor(message: string) {
    super(message);
    this.name = 'DecodeError';
  }
}

/** Parses a JSON body. An empty body is Go's `EOF`, which Consul reports as "Request decode failed: EOF". */
export function parseJsonBody(body: Buffer | string | undefined): unknown {
  if (Buffer.isBuffer(body)) {
    const bad = invalidUtf8Error(body);
    if (bad !== null) throw decodeFailed(bad);
  }
  const text = body === undefined ? '' : typeof body === 'string' ? body : body.toString('utf8');
  if (text.trim() === '') throw decodeFailed('EOF');
  try {
    return JSON.parse(text);
  } catch (err) {
    throw decodeFailed(jsonSyntaxError(text, err as Error));
  }
}

/** A JSON syntax error in Go's words where V8 gives a position ("invalid character 'x' ..."). */
export function jsonSyntaxError(text: string, err: Error): string {
  if (/end of JSON input|Unterminated string/.test(err.message)) return 'unexpected EOF';
  const m = /position (\d+)/.exec(err.message);
  if (m) {
    const pos = Number(m[1]);
    const ch = text[pos];
    if (ch === undefined) return 'unexpected EOF';
    return `invalid character ${JSON.stringify(ch).replace(/^"|"$/g, "'")} at offset ${pos + 1}`;
  }
  const tok = /^Unexpected token '(.)'/su.exec(err.message);
  if (tok) return `invalid character ${JSON.stringify(tok[1]).replace(/^"|"$/g, "'")} looking for beginning of value`;
  return `invalid JSON: ${err.message}`;
}

/** parseJsonBody + decode, with every failure as a 400 "Request decode failed: ...". */
export function decodeBody<T = Record<string, unknown>>(body: Buffer | string | undefined, schema: Schema): T {
  const raw = parseJsonBody(body);
  try {
    return decode(raw, schema) as T;
  } catch (err) {
    if (err instanceof DecodeError) throw decodeFailed(err.message);
    throw err;
  }
}

function jsonKind(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'object') return 'object';
  return typeof v === 'boolean' ? 'bool' : typeof v; // number | string
}

function goTypeName(spec: FieldSpec): string {
  if (typeof spec === 'string') {
    switch (spec) {
      case 'string': return 'string';
      case 'bool': return 'bool';
      case 'int': return 'int';
      case 'uint': return 'uint64';
      case 'uint64': return 'uint64';
      case 'float': return 'float64';
      case 'duration': return 'time.Duration';
      case 'stringArray': return '[]string';
      case 'stringMap': return 'map[string]string';
      case 'any': return 'interface {}';
    }
  }
  if ('object' in spec) return `structs.${spec.object.name}`;
  if ('array' in spec) return `[]${goTypeName(spec.array)}`;
  return `map[string]${goTypeName(spec.map)}`;
}

/** Decodes `raw` (already JSON-parsed) against `schema`. Returns canonical keys only. */
export function decode(raw: unknown, schema: Schema): Record<string, unknown> {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new DecodeError(`json: cannot unmarshal ${jsonKind(raw)} into Go value of type structs.${schema.name}`);
  }
  return decodeObject(raw as Record<string, unknown>, schema, schema.name);
}

function lookupField(schema: Schema, key: string): string | undefined {
  if (Object.hasOwn(schema.fields, key)) return key;
  if (schema.aliases && Object.hasOwn(schema.aliases, key)) return schema.aliases[key];
  const lower = key.toLowerCase();
  for (const name of Object.keys(schema.fields)) {
    if (name.toLowerCase() === lower) return name;
  }
  if (schema.aliases) {
    for (const [alias, name] of Object.entries(schema.aliases)) {
      if (alias.toLowerCase() === lower) return name;
    }
  }
  return undefined;
}

function decodeObject(obj: Record<string, unknown>, schema: Schema, path: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(obj)) {
    const field = lookupField(schema, key);
    if (field === undefined) {
      if (schema.strict) throw new DecodeError(`json: unknown field "${key}"`);
      if (schema.keepUnknown) out[key] = value;
      continue;
    }
    // Go leaves a field untouched on null.
    if (value === null) continue;
    out[field] = decodeValue(value, schema.fields[field]!, `${path}.${field}`, numberSource(obj, key));
  }
  return out;
}

/** `source`: the number's literal text when parseJsonExact kept it (Go prints what was sent). */
function mismatch(value: unknown, spec: FieldSpec, path: string, source?: string): DecodeError {
  const what = typeof value === 'number' ? `number ${source ?? value}` : jsonKind(value);
  return new DecodeError(`json: cannot unmarshal ${what} into Go struct field ${path} of type ${goTypeName(spec)}`);
}

function decodeValue(value: unknown, spec: FieldSpec, path: string, source?: string): unknown {
  if (typeof spec === 'string') {
    switch (spec) {
      case 'string':
        if (typeof value !== 'string') throw mismatch(value, spec, path);
        return value;
      case 'bool':
        if (typeof value !== 'boolean') throw mismatch(value, spec, path);
        return value;
      case 'int':
        if (typeof value !== 'number' || !Number.isSafeInteger(value)) throw mismatch(value, spec, path, source);
        return value;
      case 'uint':
        if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) throw mismatch(value, spec, path, source);
        return value;
      case 'uint64': {
        if (typeof value !== 'number') throw mismatch(value, spec, path);
        // No recorded source means the literal was a plain non-negative safe integer (or the body
        // was parsed without parseJsonExact, where only such a value can be trusted to be exact).
        if (source === undefined && !(Number.isSafeInteger(value) && value >= 0)) throw mismatch(value, spec, path);
        const exact = parseUint64(source ?? String(value));
        if (exact === null) throw mismatch(value, spec, path, source);
        return exact;
      }
      case 'float':
        if (typeof value !== 'number') throw mismatch(value, spec, path, source);
        return value;
      case 'duration':
        if (typeof value === 'number') {
          if (!Number.isFinite(value)) throw mismatch(value, spec, path);
          return Math.trunc(value);
        }
        if (typeof value === 'string') {
          if (value === '') return 0;
          try {
            return Number(parseGoDurationNs(value));
          } catch (err) {
            throw new DecodeError(`${path}: ${(err as Error).message}`);
          }
        }
        throw mismatch(value, spec, path);
      case 'stringArray':
        if (!Array.isArray(value)) throw mismatch(value, spec, path);
        return value.map((v) => {
          if (typeof v !== 'string') throw mismatch(v, 'string', path);
          return v;
        });
      case 'stringMap': {
        if (value === null || typeof value !== 'object' || Array.isArray(value)) throw mismatch(value, spec, path);
        const out: Record<string, string> = {};
        for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
          if (typeof v !== 'string') throw mismatch(v, 'string', `${path}[${k}]`);
          out[k] = v;
        }
        return out;
      }
      case 'any':
        return value;
    }
  }
  if ('object' in spec) {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw mismatch(value, spec, path);
    return decodeObject(value as Record<string, unknown>, spec.object, path);
  }
  if ('array' in spec) {
    if (!Array.isArray(value)) throw mismatch(value, spec, path);
    return value.flatMap((v, i) => (v === null ? [] : [decodeValue(v, spec.array, path, numberSource(value, String(i)))]));
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw mismatch(value, spec, path);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (v === null) continue;
    out[k] = decodeValue(v, spec.map, `${path}[${k}]`, numberSource(value, k));
  }
  return out;
}
