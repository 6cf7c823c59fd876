// One config document (an agent config file, a service definition, a config entry) from its text,
// in JSON or HCL 1 as Consul reads them: the format comes from the file's extension unless given.
// The result is the raw parsed value; schema.ts (agent config) or configEntry.ts decode it.

import { firstInvalidUtf8 } from '../http/utf8.ts';
import { ConfigError } from './errors.ts';
import { parseHcl, HclSyntaxError } from './hcl.ts';

export type DocumentFormat = 'json' | 'hcl';

/** 'json' for *.json, 'hcl' for *.hcl, '' for anything else (Consul skips those in a directory). */
export function formatFromExtension(file: string): DocumentFormat | '' {
  if (file.endsWith('.json')) return 'json';
  if (file.endsWith('.hcl')) return 'hcl';
  return '';
}

/**
 * A file's bytes as text. Config files must be UTF-8: decoding leniently would turn a broken byte in
 * a service or check name into U+FFFD without a word, so the file is refused naming where it is.
 */
export function utf8Text(bytes: Buffer, file: string): string {
  const at = firstInvalidUtf8(bytes);
  if (at >= 0) {
    const lineStart = bytes.lastIndexOf(0x0a, at - 1) + 1;
    const line = bytes.subarray(0, at).toString('utf8').split('\n').length;
    throw new ConfigError('ERR_CONFIG_PARSE', `config: ${file}: invalid UTF-8 at line ${line}, column ${at - lineStart + 1}: the file must be UTF-8`, { file });
  }
  return bytes.toString('utf8');
}

/**
 * Parses the text of one file. Returns undefined for an empty (or, in HCL, comment-only) file,
 * which Consul treats as contributing nothing. Syntax errors name the file, line and column.
 */
export function parseDocument(text: string, file: string, format: DocumentFormat): unknown {
  if (text.trim() === '') return undefined;
  // HCL 1 reads JSON too: hcl.Decode switches to its JSON parser when the text starts with "{".
  if (format === 'hcl' && !text.trimStart().startsWith('{')) {
    try {
      return parseHcl(text);
    } catch (err) {
      if (!(err instanceof HclSyntaxError)) throw err;
      throw new ConfigError('ERR_CONFIG_PARSE', `config: ${file}: invalid HCL at line ${err.line}, column ${err.column}: ${err.message.replace(/^At \d+:\d+: /, '')}`, { file });
    }
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ConfigError('ERR_CONFIG_PARSE', `config: ${file}: invalid JSON${jsonPosition(text, (err as Error).message)}: ${jsonReason((err as Error).message)}`, { file });
  }
}

/** " at line L, column C" from V8's "... at position N ..." message, when it has one. */
function jsonPosition(text: string, message: string): string {
  const m = /position (\d+)/.exec(message);
  if (!m) return '';
  const pos = Number(m[1]);
  const before = text.slice(0, pos);
  const line = before.split('\n').length;
  const col = pos - before.lastIndexOf('\n');
  return ` at line ${line}, column ${col}`;
}

function jsonReason(message: string): string {
  return message.replace(/ in JSON at position \d+.*$/s, '').replace(/ \(line \d+ column \d+\)$/, '');
}
