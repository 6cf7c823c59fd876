// A command-line flag parser with the semantics of Go's `flag` package, which Consul uses for every
// command, so that scripts written for `consul` behave the same against `trellis`:
//   -flag value   -flag=value   --flag value   --flag=value
//   booleans: -dev (true), -dev=false; never "-dev false" (that "false" is a positional argument)
//   parsing stops at the first non-flag argument, at "-" alone, or after "--" (which is consumed)
//   repeatable flags (lists, key:value maps) accumulate; other flags keep their last value
//   -h / -help / --help when not defined → FlagError code ERR_HELP (callers print usage, exit 0)
// Error texts are Go's ("flag provided but not defined: -xyz", "flag needs an argument: -node").

import { parseGoDuration, DurationError } from './duration.ts';

export type FlagKind = 'bool' | 'string' | 'int' | 'uint64' | 'duration' | 'list' | 'map';

export interface FlagSpec {
  readonly name: string;
  readonly kind: FlagKind;
  readonly usage: string;
  /** Shown in usage as -name=<placeholder>; defaults to "value". */
  readonly placeholder?: string;
  /** For kind 'map': the separator between key and value (Consul's -node-meta uses ':'). */
  readonly mapSeparator?: ':' | '=';
  /** Usage section heading ("HTTP API Options", "Command Options"); default "Command Options". */
  readonly section?: string;
}

/** bool → boolean, string → string, int → number, uint64 → bigint, duration → milliseconds,
 *  list → string[], map → Record<string, string>. */
export type FlagValue = boolean | string | number | bigint | string[] | Record<string, string>;

export type FlagErrorCode = 'ERR_FLAG_UNDEFINED' | 'ERR_FLAG_SYNTAX' | 'ERR_FLAG_NEEDS_ARGUMENT' | 'ERR_FLAG_VALUE' | 'ERR_HELP';

export class FlagError extends Error {
  readonly code: FlagErrorCode;
  readonly flag: string;
  constructor(code: FlagErrorCode, flag: string, message: string) {
    super(message);
    this.name = 'FlagError';
    this.code = code;
    this.flag = flag;
  }
}

export interface ParsedFlags {
  /** Values of the flags that were given (absent flags are absent: callers apply defaults). */
  readonly values: Map<string, FlagValue>;
  /** Every flag occurrence in command-line order with its raw text (order matters for
   *  -config-file/-config-dir, which share one ordered list in Consul). */
  readonly occurrences: ReadonlyArray<{ readonly name: string; readonly raw: string }>;
  /** Arguments left after the flags. */
  readonly args: string[];
}

const TRUE_WORDS = new Set(['1', 't', 'T', 'TRUE', 'true', 'True']);
const FALSE_WORDS = new Set(['0', 'f', 'F', 'FALSE', 'false', 'False']);

/** Go's strconv.ParseBool. */
export function parseGoBool(s: string): boolean | undefined {
  if (TRUE_WORDS.has(s)) return true;
  if (FALSE_WORDS.has(s)) return false;
  return undefined;
}

const INT_RE = /^[+-]?[0-9]+$/;
const UINT_RE = /^\+?[0-9]+$/;
const MAX_UINT64 = (1n << 64n) - 1n;

export function parseFlags(specs: readonly FlagSpec[], argv: readonly string[]): ParsedFlags {
  const byName = new Map(specs.map((s) => [s.name, s]));
  const values = new Map<string, FlagValue>();
  const occurrences: Array<{ name: string; raw: string }> = [];
  let i = 0;
  while (i < argv.length) {
    const s = argv[i]!;
    if (s.length < 2 || s[0] !== '-') break; // first positional (or "-" alone) ends the flags
    let minuses = 1;
    if (s[1] === '-') {
      minuses = 2;
      if (s.length === 2) { i++; break; } // "--" ends the flags and is consumed
    }
    let name = s.slice(minuses);
    if (name.length === 0 || name[0] === '-' || name[0] === '=') {
      throw new FlagError('ERR_FLAG_SYNTAX', name, `bad flag syntax: ${s}`);
    }
    i++;
    let value: string | undefined;
    const eq = name.indexOf('=');
    if (eq >= 0) {
      value = name.slice(eq + 1);
      name = name.slice(0, eq);
    }
    const spec = byName.get(name);
    if (!spec) {
      if (name === 'help' || name === 'h') throw new FlagError('ERR_HELP', name, 'help requested');
      throw new FlagError('ERR_FLAG_UNDEFINED', name, `flag provided but not defined: -${name}`);
    }
    if (spec.kind === 'bool') {
      if (value === undefined) {
        values.set(name, true);
        occurrences.push({ name, raw: 'true' });
        continue;
      }
      const b = parseGoBool(value);
      if (b === undefined) throw new FlagError('ERR_FLAG_VALUE', name, `invalid boolean value ${JSON.stringify(value)} for -${name}: parse error`);
      values.set(name, b);
      occurrences.push({ name, raw: value });
      continue;
    }
    if (value === undefined) {
      // Go takes the next argument as the value whatever it looks like, even "-x".
      if (i >= argv.length) throw new FlagError('ERR_FLAG_NEEDS_ARGUMENT', name, `flag needs an argument: -${name}`);
      value = argv[i]!;
      i++;
    }
    values.set(name, convert(spec, value, values.get(name)));
    occurrences.push({ name, raw: value });
  }
  return { values, occurrences, args: argv.slice(i) };
}

function convert(spec: FlagSpec, raw: string, previous: FlagValue | undefined): FlagValue {
  const bad = (why: string) => new FlagError('ERR_FLAG_VALUE', spec.name, `invalid value ${JSON.stringify(raw)} for flag -${spec.name}: ${why}`);
  switch (spec.kind) {
    case 'string':
      return raw;
    case 'int': {
      if (!INT_RE.test(raw)) throw bad('parse error');
      const n = Number(raw);
      if (!Number.isSafeInteger(n)) throw bad('value out of range');
      return n;
    }
    case 'uint64': {
      if (!UINT_RE.test(raw)) throw bad('parse error');
      const n = BigInt(raw);
      if (n > MAX_UINT64) throw bad('value out of range');
      return n;
    }
    case 'duration':
      try {
        return parseGoDuration(raw);
      } catch (err) {
        if (err instanceof DurationError) throw bad(err.message);
        throw err;
      }
    case 'list':
      return [...((previous as string[] | undefined) ?? []), raw];
    case 'map': {
      const sep = spec.mapSeparator ?? '=';
      const at = raw.indexOf(sep);
      if (at <= 0) throw bad(`expected key${sep}value`);
      return { ...((previous as Record<string, string> | undefined) ?? {}), [raw.slice(0, at)]: raw.slice(at + 1) };
    }
    case 'bool':
      throw new Error('unreachable: bool flags are handled by the caller');
  }
}

/** Typed accessors so callers do not cast at every use. */
export function flagString(p: ParsedFlags, name: string): string | undefined {
  const v = p.values.get(name);
  return typeof v === 'string' ? v : undefined;
}
export function flagBool(p: ParsedFlags, name: string): boolean | undefined {
  const v = p.values.get(name);
  return typeof v === 'boolean' ? v : undefined;
}
export function flagNumber(p: ParsedFlags, name: string): number | undefined {
  const v = p.values.get(name);
  return typeof v === 'number' ? v : undefined;
}
export function flagBigint(p: ParsedFlags, name: string): bigint | undefined {
  const v = p.values.get(name);
  return typeof v === 'bigint' ? v : undefined;
}
export function flagList(p: ParsedFlags, name: string): string[] {
  const v = p.values.get(name);
  return Array.isArray(v) ? v : [];
}
export function flagMap(p: ParsedFlags, name: string): Record<string, string> {
  const v = p.values.get(name);
  return v !== undefined && typeof v === 'object' && !Array.isArray(v) ? v : {};
}

/**
 * Renders help in the layout of Consul's `flags.Usage`: the command's help text, then one section
 * per flag group, each flag as "  -name=<placeholder>" with its description wrapped beneath it.
 */
export function formatUsage(help: string, specs: readonly FlagSpec[]): string {
  const out: string[] = [help.trim(), ''];
  const sections = new Map<string, FlagSpec[]>();
  for (const s of specs) {
    const sec = s.section ?? 'Command Options';
    if (!sections.has(sec)) sections.set(sec, []);
    sections.get(sec)!.push(s);
  }
  for (const [title, list] of sections) {
    out.push(title, '');
    for (const s of [...list].sort((a, b) => a.name.localeCompare(b.name))) {
      out.push(s.kind === 'bool' ? `  -${s.name}` : `  -${s.name}=<${s.placeholder ?? 'value'}>`);
      for (const line of wrap(s.usage, 74)) out.push(`     ${line}`);
      out.push('');
    }
  }
  return out.join('\n').replace(/\n+$/, '\n');
}

function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else {
      line = line ? `${line} ${word}` : word;
    }
  }
  if (line) lines.push(line);
  return lines;
}
