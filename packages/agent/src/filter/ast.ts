// The syntax tree of a bexpr filter expression. `contains` is `in` with its operands swapped, as in
// bexpr, so the tree has one operator per meaning.

export type MatchOperator =
  | '=='
  | '!='
  | 'in'
  | 'not in'
  | 'is empty'
  | 'is not empty'
  | 'matches'
  | 'not matches';

export interface Selector {
  /** Path segments: `Service.Meta["a.b"]` is ['Service', 'Meta', 'a.b']. */
  readonly path: readonly string[];
  /** Offset of the selector in the source, for error messages. */
  readonly offset: number;
}

export interface MatchValue {
  /** The literal as written, unquoted: a string's contents, a number's digits, an identifier. */
  readonly raw: string;
  readonly offset: number;
}

export type Expression =
  | { readonly kind: 'or'; readonly left: Expression; readonly right: Expression }
  | { readonly kind: 'and'; readonly left: Expression; readonly right: Expression }
  | { readonly kind: 'not'; readonly operand: Expression }
  | MatchExpression;

export interface MatchExpression {
  readonly kind: 'match';
  readonly selector: Selector;
  readonly operator: MatchOperator;
  /** Absent for `is empty` / `is not empty`. */
  readonly value: MatchValue | undefined;
}

/** bexpr prints selectors joined by dots; so do error messages. */
export function selectorText(path: readonly string[]): string {
  return path.join('.');
}
