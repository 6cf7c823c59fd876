// From expression text to a predicate: parse, check against the schema (when there is one), turn
// `matches` patterns into RegExps once, and build a closure tree so evaluating a row does no parsing
// or lookups beyond the data itself.

import { selectorText, type Expression, type MatchExpression } from './ast.ts';
import { FilterError } from './errors.ts';
import { evaluateMatch, prepareMatch } from './evaluate.ts';
import { parseExpression } from './parser.ts';
import {
  childType,
  coerceScalar,
  describeType,
  isList,
  isMap,
  isScalar,
  operatorsFor,
  type FieldType,
  type FilterSchema,
} from './schema.ts';

export interface Filter {
  /** The expression as given. */
  readonly expression: string;
  /** Whether one row (a plain object as the HTTP API would render it, PascalCase keys) passes. */
  matches(row: unknown): boolean;
  /** The rows that pass, in their order. */
  apply<T>(rows: readonly T[]): T[];
}

/**
 * Compiles a filter expression. With a schema, selectors, operators and values are checked now,
 * as Consul does, and a mistake is a FilterError; without one, they are judged per row at
 * evaluation (an unknown top-level field never matches). Throws only FilterError.
 */
export function compileFilter(expression: string, schema?: FilterSchema): Filter {
  const ast = parseExpression(expression);
  const rootType: FieldType | undefined = schema === undefined ? undefined : { fields: schema };
  const predicate = compileNode(expression, ast, rootType);
  return {
    expression,
    matches: predicate,
    apply: <T>(rows: readonly T[]): T[] => rows.filter((r) => predicate(r)),
  };
}

/** Parses and prepares a filter without a schema. */
export function parseFilter(expression: string): Filter {
  return compileFilter(expression);
}

type Predicate = (row: unknown) => boolean;

function compileNode(src: string, node: Expression, rootType: FieldType | undefined): Predicate {
  switch (node.kind) {
    case 'and': {
      const l = compileNode(src, node.left, rootType);
      const r = compileNode(src, node.right, rootType);
      return (row) => l(row) && r(row);
    }
    case 'or': {
      const l = compileNode(src, node.left, rootType);
      const r = compileNode(src, node.right, rootType);
      return (row) => l(row) || r(row);
    }
    case 'not': {
      const inner = compileNode(src, node.operand, rootType);
      return (row) => !inner(row);
    }
    case 'match':
      return compileMatch(src, node, rootType);
  }
}

function compileMatch(src: string, node: MatchExpression, rootType: FieldType | undefined): Predicate {
  const raw = node.value?.raw ?? '';
  const target = rootType === undefined ? undefined : checkAgainstSchema(src, node, rootType);
  const regex = node.operator === 'matches' || node.operator === 'not matches' ? compileRegex(src, raw, node.value?.offset) : undefined;
  const prepared = prepareMatch(node.selector.path, node.operator, raw, regex, rootType, target);
  return (row) => evaluateMatch(prepared, row);
}

/** Checks a match against the schema; returns the type its value is compared as, when known. */
function checkAgainstSchema(src: string, node: MatchExpression, rootType: FieldType): FieldType | undefined {
  const { path, offset } = node.selector;
  let t: FieldType | undefined = rootType;
  for (let i = 0; i < path.length; i++) {
    const next = childType(t, path[i]!);
    if (next === null) throw new FilterError(src, `Selector "${selectorText(path.slice(0, i + 1))}" is not valid`, offset);
    t = next;
    if (t === undefined) return undefined; // an open object's undescribed field: judged at evaluation
  }
  const sel = selectorText(path);
  if (!operatorsFor(t).includes(node.operator)) {
    const what = t === undefined ? 'this field' : `a field of type ${describeType(t)}`;
    throw new FilterError(src, `Invalid match operator "${node.operator}" for selector "${sel}": it does not apply to ${what}`, offset);
  }
  // The value must convert to what it is compared with: the field itself, a list's elements, or
  // (for maps) the keys, which are strings.
  const target = isList(t) ? t.list : isMap(t) ? 'string' : t;
  if (node.value !== undefined && isScalar(target) && coerceScalar(node.value.raw, target) === undefined) {
    throw new FilterError(
      src,
      `Failed to coerce value "${node.value.raw}" for selector "${sel}": not a valid ${target}`,
      node.value.offset,
    );
  }
  return target;
}

/**
 * Go's RE2 syntax mostly reads the same in JavaScript. A leading `(?i)`/`(?s)`/`(?m)` group, which
 * Go users write and JavaScript lacks, becomes a flag. Unicode mode is tried first (for `\pL`
 * classes), then the permissive mode (for escapes like `\-` that RE2 allows and Unicode mode does not).
 */
function compileRegex(src: string, pattern: string, offset: number | undefined): RegExp {
  let body = pattern;
  let flags = '';
  const lead = /^\(\?([imsU]+)\)/.exec(body);
  if (lead) {
    if (lead[1]!.includes('U')) {
      throw new FilterError(src, `Failed to compile regular expression "${pattern}": the U (ungreedy) flag is not supported`, offset);
    }
    flags = [...new Set(lead[1]!)].join('');
    body = body.slice(lead[0].length);
  }
  try {
    return new RegExp(body, flags + 'u');
  } catch {
    // Not valid in Unicode mode; the permissive mode below decides.
  }
  try {
    return new RegExp(body, flags);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new FilterError(src, `Failed to compile regular expression "${pattern}": ${why}`, offset);
  }
}
