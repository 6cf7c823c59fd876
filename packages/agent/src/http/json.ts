// JSON at the HTTP edge, where Go's types meet JavaScript's one number type.
//
// Out (every JSON answer goes through encodeJson):
//   - bytes (Go's []byte: KV values, event payloads) are base64 strings;
//   - bigints (Go's uint64 where all 64 bits are used: KV Flags) are exact JSON numbers. Consul
//     prints `"Flags":3304740253564472344`, and its clients decode that into a uint64: a string
//     would fail their decoder, and a double would print 3304740253564472300 and break every lock.
// In (bodies that carry such a uint64, i.e. txn):
//   - parseJsonExact keeps the source text of every number that is not a plain non-negative safe
//     integer, keyed by the object (or array) holding it, so decode()'s 'uint64' fields read the
//     exact digits while every other field, opaque user data included, parses as before.

/** Node ≥ 21 (V8's JSON.parse source text access and JSON.rawJSON); typed here because the
 *  es2024 lib does not declare them yet. */
interface JsonWithRaw {
  rawJSON(text: string): unknown;
}
interface ReviverContext {
  source?: string;
}

const rawJSON = (JSON as unknown as JsonWithRaw).rawJSON;

/** Go's encoding/json of plain data: bytes as base64, bigint as an exact number. */
export function encodeJson(value: unknown, indent?: number): string {
  return JSON.stringify(value, jsonReplacer, indent);
}

/** The holder's own value is checked because JSON.stringify has already applied Buffer#toJSON to
 *  `value` (a Buffer would otherwise arrive as {type, data}). */
function jsonReplacer(this: Record<string, unknown>, key: string, value: unknown): unknown {
  const raw = this[key];
  if (raw instanceof Uint8Array) return Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('base64');
  if (typeof value === 'bigint') return rawJSON(value.toString());
  return value;
}

/** Source texts of the numbers JS could not keep exactly, per holder; dies with the parsed value. */
const numberSources = new WeakMap<object, Map<string, string>>();

const PLAIN_UINT = /^[0-9]+$/;

/**
 * JSON.parse that also remembers the literal text of every number that is not a plain non-negative
 * safe integer (2^64−1, -1, 1e3, 1.0), for numberSource(). The parsed values are JSON.parse's own.
 * Throws JSON.parse's SyntaxError.
 */
export function parseJsonExact(text: string): unknown {
  return JSON.parse(text, function reviver(this: object, key: string, value: unknown, context?: ReviverContext) {
    if (typeof value === 'number' && context?.source !== undefined && !(Number.isSafeInteger(value) && PLAIN_UINT.test(context.source))) {
      let m = numberSources.get(this);
      if (m === undefined) numberSources.set(this, (m = new Map()));
      m.set(key, context.source);
    }
    return value;
  } as (this: unknown, key: string, value: unknown) => unknown);
}

/**
 * The literal text of `holder[key]` as sent, when parseJsonExact recorded one (the number was not a
 * plain non-negative safe integer); undefined otherwise, including for values parsed elsewhere.
 */
export function numberSource(holder: object, key: string): string | undefined {
  return numberSources.get(holder)?.get(key);
}
