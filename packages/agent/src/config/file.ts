// Config files and directories, read the way Consul reads them (agent/config/builder.go):
// a path may be a file or a directory; a directory contributes its regular files in lexical order
// (no recursion); files are JSON by extension (or by -config-format). HCL is recognised and refused
// with a clear message until a maintained HCL parser is available.

import fs from 'node:fs';
import path from 'node:path';
import { ConfigError } from './errors.ts';
import { decodeSource, CONFIG_SCHEMA, type RawConfig, type Schema } from './schema.ts';

export interface ConfigSource {
  /** File path, or a label such as "command line flags" / "defaults". */
  readonly name: string;
  readonly raw: RawConfig;
}

export type ConfigFormat = '' | 'json' | 'hcl';

function hclError(file: string): ConfigError {
  return new ConfigError('ERR_CONFIG_HCL',
    `config: ${file}: HCL config files are not supported yet; write the same keys as JSON in a .json file ` +
    '(e.g. `datacenter = "dc1"` becomes {"datacenter": "dc1"})', { file });
}

/** Reads every config file named by -config-file/-config-dir paths, in order. */
export function loadConfigPaths(paths: readonly string[], format: ConfigFormat, warnings: string[]): ConfigSource[] {
  if (format === 'hcl') {
    throw new ConfigError('ERR_CONFIG_HCL', 'config: -config-format=hcl is not supported yet; use JSON config files (-config-format=json or a .json extension)');
  }
  const out: ConfigSource[] = [];
  for (const p of paths) out.push(...sourcesFromPath(p, format, warnings));
  return out;
}

function sourcesFromPath(p: string, format: ConfigFormat, warnings: string[]): ConfigSource[] {
  let st: fs.Stats;
  try {
    st = fs.statSync(p);
  } catch (err) {
    throw readError(p, err);
  }
  if (!st.isDirectory()) {
    const src = sourceFromFile(p, format, warnings, true);
    return src ? [src] : [];
  }
  let names: string[];
  try {
    names = fs.readdirSync(p);
  } catch (err) {
    throw readError(p, err);
  }
  // Lexical byte order, as Go's sort.Strings; JS's default sort agrees for the ASCII names people use.
  names.sort();
  const out: ConfigSource[] = [];
  for (const name of names) {
    const fp = path.join(p, name);
    let fst: fs.Stats;
    try {
      fst = fs.statSync(fp); // follows symlinks, like Consul's EvalSymlinks + Stat
    } catch (err) {
      throw readError(fp, err);
    }
    if (fst.isDirectory()) continue; // no recursion into sub-directories
    const src = sourceFromFile(fp, format, warnings, false);
    if (src) out.push(src);
  }
  return out;
}

function sourceFromFile(file: string, format: ConfigFormat, warnings: string[], named: boolean): ConfigSource | undefined {
  const ext = file.endsWith('.json') ? 'json' : file.endsWith('.hcl') ? 'hcl' : '';
  const effective = format || ext;
  if (effective === 'hcl') throw hclError(file);
  if (effective === '') {
    warnings.push(`skipping ${named ? 'config file' : 'file'} ${file}: extension must be .json (or set -config-format=json)`);
    return undefined;
  }
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw readError(file, err);
  }
  const raw = parseConfigText(text, file, warnings);
  return raw ? { name: file, raw } : undefined;
}

function readError(p: string, err: unknown): ConfigError {
  const e = err as NodeJS.ErrnoException;
  const why = e.code === 'ENOENT' ? 'no such file or directory' : e.code === 'EACCES' ? 'permission denied' : e.message;
  return new ConfigError('ERR_CONFIG_READ', `config: cannot read ${p}: ${why}`, { file: p });
}

/**
 * Parses and decodes the text of one JSON config file. An empty file contributes nothing
 * (undefined), as in Consul.
 */
export function parseConfigText(text: string, file: string, warnings: string[], schema: Schema = CONFIG_SCHEMA): RawConfig | undefined {
  if (text.trim() === '') return undefined;
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new ConfigError('ERR_CONFIG_PARSE', `config: ${file}: invalid JSON${jsonPosition(text, (err as Error).message)}: ${jsonReason((err as Error).message)}`, { file });
  }
  return decodeSource(doc, file, warnings, schema);
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
