// Config files and directories, read the way Consul reads them (agent/config/builder.go):
// a path may be a file or a directory; a directory contributes its regular files in lexical order
// (no recursion); files are JSON or HCL 1 by extension (.json, .hcl) or by -config-format, and a
// directory's files with other extensions are skipped with a warning.

import fs from 'node:fs';
import path from 'node:path';
import { ConfigError } from './errors.ts';
import { decodeSource, CONFIG_SCHEMA, type RawConfig, type Schema } from './schema.ts';
import { formatFromExtension, parseDocument, utf8Text, type DocumentFormat } from './document.ts';

export interface ConfigSource {
  /** File path, or a label such as "command line flags" / "defaults". */
  readonly name: string;
  readonly raw: RawConfig;
}

export type ConfigFormat = '' | 'json' | 'hcl';

/** Reads every config file named by -config-file/-config-dir paths, in order. */
export function loadConfigPaths(paths: readonly string[], format: ConfigFormat, warnings: string[]): ConfigSource[] {
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
    const src = sourceFromFile(p, format, warnings);
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
    const src = sourceFromFile(fp, format, warnings);
    if (src) out.push(src);
  }
  return out;
}

function sourceFromFile(file: string, format: ConfigFormat, warnings: string[]): ConfigSource | undefined {
  const effective = format || formatFromExtension(file);
  if (effective === '') {
    warnings.push(`skipping file ${file}, extension must be .hcl or .json, or config format must be set`);
    return undefined;
  }
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (err) {
    throw readError(file, err);
  }
  const text = utf8Text(bytes, file);
  const raw = parseConfigText(text, file, warnings, CONFIG_SCHEMA, effective);
  return raw ? { name: file, raw } : undefined;
}

function readError(p: string, err: unknown): ConfigError {
  const e = err as NodeJS.ErrnoException;
  const why = e.code === 'ENOENT' ? 'no such file or directory' : e.code === 'EACCES' ? 'permission denied' : e.message;
  return new ConfigError('ERR_CONFIG_READ', `config: cannot read ${p}: ${why}`, { file: p });
}

/**
 * Parses and decodes the text of one config file (JSON, or HCL 1 when `format` is 'hcl'). An empty
 * file contributes nothing (undefined), as in Consul.
 */
export function parseConfigText(text: string, file: string, warnings: string[], schema: Schema = CONFIG_SCHEMA, format: DocumentFormat = 'json'): RawConfig | undefined {
  const doc = parseDocument(text, file, format);
  if (doc === undefined) return undefined;
  // An HCL file of only comments parses to {}: also nothing.
  if (format === 'hcl' && typeof doc === 'object' && doc !== null && Object.keys(doc).length === 0) return undefined;
  return decodeSource(doc, file, warnings, schema);
}
