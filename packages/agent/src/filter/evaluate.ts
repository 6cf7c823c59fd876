// Evaluation of one match expression against a plain (JSON-shaped) object.
//
// bexpr's rules, as Consul's results show them:
// - A selector that passes through a list applies to every element, and the match is true when it
//   is true for any element (`Checks.Status == critical`: some check is critical). A numeric
//   segment indexes the list instead (`Checks.0.Status`).
// - A key missing from a map (or a null map) is "not present": `==`, `in`, `matches`,
//   `is not empty` are false and their negations are true (bexpr's NotPresentDisposition).
// - A struct field the data leaves out has its Go zero value ("" / 0 / false / empty).
// - The value is converted to the field's type (`Service.Port == "80"` compares numbers); where
//   bexpr would fail at evaluation (a value that does not convert, an operator the type does not
//   support), the match is false whatever its operator, so a bad row is never selected.
//
// Without a schema, the data's own types stand in for the Go types; a top-level field that does
// not exist makes the match false, and a deeper key that does not exist counts as not present
// (the data cannot tell a struct from a map; Consul's nested free-form values are maps).

import type { MatchOperator } from './ast.ts';
import { childType, isIndexSegment, isList, isMap, isObject, parseGoBool, parseGoFloat, parseGoInt, zeroValue, type FieldType } from './schema.ts';

export interface PreparedMatch {
  readonly path: readonly string[];
  readonly operator: MatchOperator;
  readonly raw: string;
  /** Compiled once for matches / not matches. */
  readonly regex: RegExp | undefined;
  /** The root type when a schema was given. */
  readonly rootType: FieldType | undefined;
  /** The literal read as a number and as a boolean, computed once (undefined: it is not one). */
  readonly asNumber: number | undefined;
  readonly asBoolean: boolean | undefined;
}

export function prepareMatch(
  path: readonly string[],
  operator: MatchOperator,
  raw: string,
  regex: RegExp | undefined,
  rootType: FieldType | undefined,
  /** What the schema says the value is compared with, if it says. */
  valueType: FieldType | undefined,
): PreparedMatch {
  // strconv reads "0377" as octal for an int field and as 377 for a float one; untyped, JSON numbers are floats.
  const asNumber = valueType === 'integer' ? parseGoInt(raw) : parseGoFloat(raw);
  return { path, operator, raw, regex, rootType, asNumber, asBoolean: parseGoBool(raw) };
}

export function evaluateMatch(m: PreparedMatch, root: unknown): boolean {
  return walk(m, root, m.rootType, 0);
}

function walk(m: PreparedMatch, value: unknown, type: FieldType | undefined, i: number): boolean {
  if (i === m.path.length) return finalTest(m, value, type);
  const seg = m.path[i]!;

  if (Array.isArray(value)) {
    const elemType = isList(type) ? type.list : type === 'any' ? 'any' : undefined;
    if (isIndexSegment(seg)) {
      const idx = Number(seg);
      return idx < value.length ? walk(m, value[idx], elemType, i + 1) : false;
    }
    for (const el of value) if (walk(m, el, elemType, i)) return true;
    return false;
  }

  if (value === null || value === undefined) {
    // A nil list has no element to match; a nil map has no key; untyped nulls behave like maps.
    if (isList(type)) return false;
    if (isMap(type) || type === undefined || type === 'any') return i > 0 ? notPresent(m.operator) : false;
    return walk(m, zeroValue(type), type, i);
  }

  if (typeof value !== 'object') return false; // selecting into a scalar: bexpr errors

  const obj = value as Record<string, unknown>;
  const child = childType(type, seg) ?? undefined;
  if (Object.hasOwn(obj, seg)) return walk(m, obj[seg], child, i + 1);
  if (isObject(type) && Object.hasOwn(type.fields, seg)) return walk(m, zeroValue(child), child, i + 1);
  if (isMap(type)) return notPresent(m.operator);
  return i > 0 ? notPresent(m.operator) : false;
}

function finalTest(m: PreparedMatch, value: unknown, type: FieldType | undefined): boolean {
  let v = value;
  if (v === null || v === undefined) {
    if (type === undefined || type === 'any') return notPresent(m.operator);
    v = zeroValue(type);
  }
  switch (m.operator) {
    case '==':
      return equals(m, v) === true;
    case '!=':
      return equals(m, v) === false;
    case 'in':
      return contains(m, v) === true;
    case 'not in':
      return contains(m, v) === false;
    case 'is empty':
      return isEmpty(v) === true;
    case 'is not empty':
      return isEmpty(v) === false;
    case 'matches':
      return typeof v === 'string' && m.regex !== undefined && m.regex.test(v);
    case 'not matches':
      return typeof v === 'string' && m.regex !== undefined && !m.regex.test(v);
  }
}

/** bexpr's disposition for a selector that finds no map key. */
export function notPresent(op: MatchOperator): boolean {
  return op === '!=' || op === 'not in' || op === 'is empty' || op === 'not matches';
}

/** undefined: the two cannot be compared (bexpr would fail the evaluation). */
function equals(m: PreparedMatch, v: unknown): boolean | undefined {
  switch (typeof v) {
    case 'string':
      return v === m.raw;
    case 'number':
      return m.asNumber === undefined ? undefined : v === m.asNumber;
    case 'boolean':
      return m.asBoolean === undefined ? undefined : v === m.asBoolean;
    default:
      return undefined;
  }
}

function contains(m: PreparedMatch, v: unknown): boolean | undefined {
  if (typeof v === 'string') return v.includes(m.raw);
  // A list of mixed types: elements the value cannot be compared with are skipped, as bexpr does.
  if (Array.isArray(v)) return v.some((el) => equals(m, el) === true);
  if (typeof v === 'object' && v !== null) return Object.hasOwn(v, m.raw);
  return undefined;
}

function isEmpty(v: unknown): boolean | undefined {
  if (typeof v === 'string' || Array.isArray(v)) return v.length === 0;
  if (typeof v === 'object' && v !== null) return Object.keys(v).length === 0;
  return undefined;
}
