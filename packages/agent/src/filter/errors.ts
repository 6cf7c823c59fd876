// The one error a filter expression can raise. The HTTP edge maps it to 400 with `message` as the
// plain-text body; Consul prefixes every bexpr failure the same way, and clients match on it.

export interface SourcePosition {
  /** 1-based line of the expression. */
  readonly line: number;
  /** 1-based column (in UTF-16 code units) within that line. */
  readonly column: number;
  /** 0-based offset into the expression. */
  readonly offset: number;
}

export const FILTER_ERROR_PREFIX = 'Failed to create boolean expression evaluator';

export class FilterError extends Error {
  readonly code = 'ERR_INVALID_FILTER';
  /** The expression that was rejected. */
  readonly expression: string;
  /** What was wrong, without the prefix and position. */
  readonly reason: string;
  /** Where in the expression the problem was found, when it has a place. */
  readonly position: SourcePosition | undefined;

  constructor(expression: string, reason: string, offset?: number) {
    const position = offset === undefined ? undefined : positionOf(expression, offset);
    const where = position ? `${position.line}:${position.column} (${position.offset}): ` : '';
    super(`${FILTER_ERROR_PREFIX}: ${where}${reason}`);
    this.name = 'FilterError';
    this.expression = expression;
    this.reason = reason;
    this.position = position;
  }
}

export function positionOf(src: string, offset: number): SourcePosition {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < offset && i < src.length; i++) {
    if (src.charCodeAt(i) === 10 /* \n */) {
      line++;
      lineStart = i + 1;
    }
  }
  return { line, column: offset - lineStart + 1, offset };
}
