// Output formatting that matches Consul's byte for byte, because scripts parse it:
// - columnize (ryanuber/columnize, used by members, catalog nodes, operator raft list-peers):
//   columns separated by two spaces, every column but the last padded to its widest cell;
// - text/tabwriter (kv get -detailed, catalog services -tags): padding 6, last cell unpadded;
// - encoding/json's MarshalIndent (kv export): tab indent and HTML-safe escaping of <, >, &.

function displayWidth(s: string): number {
  // Code points, not UTF-16 units; columnize and tabwriter count runes.
  let n = 0;
  for (const _ of s) n++;
  return n;
}

/** ryanuber/columnize.Format with Consul's config (cells already split; they are trimmed). */
export function columnize(rows: ReadonlyArray<readonly string[]>, glue = '  '): string {
  const trimmed = rows.map((r) => r.map((c) => c.trim()));
  const widths: number[] = [];
  for (const r of trimmed) {
    r.forEach((c, i) => { widths[i] = Math.max(widths[i] ?? 0, displayWidth(c)); });
  }
  return trimmed
    .map((r) => r.map((c, i) => (i === r.length - 1 ? c : c + ' '.repeat(widths[i]! - displayWidth(c)) + glue)).join(''))
    .join('\n');
}

/** text/tabwriter with minwidth 0, padding 6, pad char ' ' as Consul configures it; the last cell
 *  of each row is text after the final tab and is not aligned. */
export function tabwrite(rows: ReadonlyArray<readonly string[]>, padding = 6): string {
  const widths: number[] = [];
  for (const r of rows) {
    r.slice(0, -1).forEach((c, i) => { widths[i] = Math.max(widths[i] ?? 0, displayWidth(c)); });
  }
  return rows
    .map((r) => r.map((c, i) => (i === r.length - 1 ? c : c + ' '.repeat(widths[i]! + padding - displayWidth(c)))).join(''))
    .join('\n');
}

/** Go's encoding/json string encoding (HTML-safe: <, >, & and U+2028/2029 escaped). */
export function goJsonString(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    switch (ch) {
      case '"': out += '\\"'; break;
      case '\\': out += '\\\\'; break;
      case '\n': out += '\\n'; break;
      case '\r': out += '\\r'; break;
      case '\t': out += '\\t'; break;
      case '<': out += '\\u003c'; break;
      case '>': out += '\\u003e'; break;
      case '&': out += '\\u0026'; break;
      case '\u2028': out += '\\u2028'; break;
      case '\u2029': out += '\\u2029'; break;
      default:
        out += c < 0x20 ? `\\u${c.toString(16).padStart(4, '0')}` : ch;
    }
  }
  return `${out}"`;
}

/** json.MarshalIndent(v, "", indent) for plain data (objects keep insertion order, bigint allowed). */
export function goJsonIndent(v: unknown, indent = '\t', prefix = ''): string {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'string') return goJsonString(v);
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  const inner = prefix + indent;
  if (Array.isArray(v)) {
    if (v.length === 0) return '[]';
    return `[\n${v.map((x) => inner + goJsonIndent(x, indent, inner)).join(',\n')}\n${prefix}]`;
  }
  const entries = Object.entries(v as Record<string, unknown>).filter(([, x]) => x !== undefined);
  if (entries.length === 0) return '{}';
  return `{\n${entries.map(([k, x]) => `${inner}${goJsonString(k)}: ${goJsonIndent(x, indent, inner)}`).join(',\n')}\n${prefix}}`;
}
