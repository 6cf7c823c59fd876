// The shape of the objects a filter runs over, for checking selectors before any data is seen.
//
// bexpr (as Consul uses it) derives "field configurations" from the Go type of each endpoint's
// result and refuses a filter whose selector names no field (`Selector "Service.Foo" is not valid`),
// whose operator does not apply to the field's type (`matches` on a port), or whose value cannot be
// converted to the field's type (`Service.Port == abc`). A FilterSchema is that Go type written as
// data. The rules per type are bexpr's:
//   string                       ==  !=  in  not in  matches  not matches  (and is [not] empty)
//   integer / number / boolean   ==  !=
//   list of scalars              in  not in  is empty  is not empty
//   list of objects              is empty  is not empty; further selectors apply to every element
//   map (string keys)            in  not in (on keys)  is empty  is not empty; `M.key` selects a value
//   object                       no operator; further selectors name its fields
// `is [not] empty` on strings is newer bexpr behaviour and costs nothing to accept.

import type { MatchOperator } from './ast.ts';

export type ScalarType = 'string' | 'integer' | 'number' | 'boolean';

/** `any` is a field whose shape is not described (e.g. a proxy's free-form Config): all operators apply. */
export type FieldType = ScalarType | 'any' | ListType | MapType | ObjectType;

export interface ListType {
  readonly list: FieldType;
}
export interface MapType {
  readonly map: FieldType;
}
export interface ObjectType {
  readonly fields: FilterSchema;
  /** Fields not listed are accepted and typed at evaluation time (for loosely described blocks). */
  readonly open?: boolean;
}

export type FilterSchema = { readonly [field: string]: FieldType };

export function isList(t: FieldType | undefined): t is ListType {
  return typeof t === 'object' && 'list' in t;
}
export function isMap(t: FieldType | undefined): t is MapType {
  return typeof t === 'object' && 'map' in t;
}
export function isObject(t: FieldType | undefined): t is ObjectType {
  return typeof t === 'object' && 'fields' in t;
}
export function isScalar(t: FieldType | undefined): t is ScalarType {
  return t === 'string' || t === 'integer' || t === 'number' || t === 'boolean';
}

/** A path segment that indexes a list (`Checks.0.Status`), as newer bexpr allows. */
export function isIndexSegment(seg: string): boolean {
  return /^[0-9]+$/.test(seg);
}

/**
 * The type that `seg` selects inside a value of type `t`: undefined when `t` is undefined (no
 * schema) or when an open object has no such field, and `null` when the selection is invalid.
 * Lists are looked through: a field of a list of objects is that field of every element.
 */
export function childType(t: FieldType | undefined, seg: string): FieldType | undefined | null {
  if (t === undefined) return undefined;
  if (t === 'any') return 'any';
  if (isScalar(t)) return null;
  if (isMap(t)) return t.map;
  if (isList(t)) return isIndexSegment(seg) ? t.list : childType(t.list, seg);
  if (Object.hasOwn(t.fields, seg)) return t.fields[seg];
  return t.open ? undefined : null;
}

/** Operators bexpr allows on a field of type `t` (undefined = not known until evaluation). */
export function operatorsFor(t: FieldType | undefined): readonly MatchOperator[] {
  if (t === undefined || t === 'any' || t === 'string') return ALL_OPERATORS;
  if (isScalar(t)) return EQUALITY;
  if (isMap(t)) return CONTAINER;
  if (isList(t)) return isScalar(t.list) || t.list === 'any' ? CONTAINER : EMPTINESS;
  return [];
}

const ALL_OPERATORS: readonly MatchOperator[] = ['==', '!=', 'in', 'not in', 'is empty', 'is not empty', 'matches', 'not matches'];
const EQUALITY: readonly MatchOperator[] = ['==', '!='];
const EMPTINESS: readonly MatchOperator[] = ['is empty', 'is not empty'];
const CONTAINER: readonly MatchOperator[] = ['in', 'not in', 'is empty', 'is not empty'];

/** What a Go zero value looks like in JSON, for struct fields the data leaves out. */
export function zeroValue(t: FieldType | undefined): unknown {
  switch (t) {
    case 'string':
      return '';
    case 'integer':
    case 'number':
      return 0;
    case 'boolean':
      return false;
    case undefined:
    case 'any':
      return undefined;
  }
  if (isList(t)) return [];
  return {};
}

// ---- value coercion (strconv's rules, as bexpr applies them) ----------------------------------

/** strconv.ParseBool. */
export function parseGoBool(raw: string): boolean | undefined {
  switch (raw) {
    case '1': case 't': case 'T': case 'TRUE': case 'true': case 'True':
      return true;
    case '0': case 'f': case 'F': case 'FALSE': case 'false': case 'False':
      return false;
  }
  return undefined;
}

/** strconv.ParseInt(raw, 0, 64): decimal, 0x/0o/0b prefixes, a leading 0 for octal, `_` between digits. */
export function parseGoInt(raw: string): number | undefined {
  const m = /^([+-]?)(.+)$/s.exec(raw);
  if (!m) return undefined;
  const s = m[2]!;
  let base = 10;
  let digits = s;
  let prefixed = false;
  if (/^0[xX]/.test(s)) [base, digits, prefixed] = [16, s.slice(2), true];
  else if (/^0[oO]/.test(s)) [base, digits, prefixed] = [8, s.slice(2), true];
  else if (/^0[bB]/.test(s)) [base, digits, prefixed] = [2, s.slice(2), true];
  else if (s.length > 1 && s[0] === '0') [base, digits, prefixed] = [8, s.slice(1), true];
  const d = base === 16 ? '[0-9a-fA-F]' : base === 8 ? '[0-7]' : base === 2 ? '[01]' : '[0-9]';
  // Go's literal syntax: underscores separate digits, or follow a base prefix.
  if (!new RegExp(`^${prefixed ? '_?' : ''}${d}+(_${d}+)*$`).test(digits)) return undefined;
  const clean = digits.replace(/_/g, '');
  const prefix = base === 16 ? '0x' : base === 8 ? '0o' : base === 2 ? '0b' : '';
  let value = BigInt(prefix + clean);
  if (m[1] === '-') value = -value;
  if (value > 9223372036854775807n || value < -9223372036854775808n) return undefined;
  return Number(value);
}

/** strconv.ParseFloat(raw, 64) for the decimal forms people write; integers in Go's forms too. */
export function parseGoFloat(raw: string): number | undefined {
  if (/^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$/.test(raw)) {
    const n = Number(raw);
    return Number.isFinite(n) ? n : undefined;
  }
  return parseGoInt(raw);
}

/** The value a literal denotes for a field of scalar type `t`, or undefined when it has none. */
export function coerceScalar(raw: string, t: ScalarType): string | number | boolean | undefined {
  switch (t) {
    case 'string':
      return raw;
    case 'integer':
      return parseGoInt(raw);
    case 'number':
      return parseGoFloat(raw);
    case 'boolean':
      return parseGoBool(raw);
  }
}

export function describeType(t: FieldType): string {
  if (typeof t === 'string') return t;
  if (isList(t)) return `list of ${describeType(t.list)}`;
  if (isMap(t)) return `map of ${describeType(t.map)}`;
  return 'object';
}
