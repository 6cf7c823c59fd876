// Consul's `?filter=` expressions (hashicorp/go-bexpr). Usage at the HTTP edge:
//
//   if (query.filter) {                       // Consul skips an empty filter
//     const f = compileFilter(query.filter, CheckServiceNodeSchema);   // FilterError → 400, err.message as body
//     rows = f.apply(rows);
//   }
export { compileFilter, parseFilter, type Filter } from './compile.ts';
export { FilterError, FILTER_ERROR_PREFIX, type SourcePosition } from './errors.ts';
export type { FieldType, FilterSchema, ListType, MapType, ObjectType, ScalarType } from './schema.ts';
export { CheckServiceNodeSchema, HealthCheckSchema, NodeSchema, NodeServiceSchema, ServiceNodeSchema } from './consulSchemas.ts';
export type { Expression, MatchExpression, MatchOperator } from './ast.ts';
export { parseExpression } from './parser.ts';
