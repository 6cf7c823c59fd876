// Config entry files (`consul config write web.hcl`, and config_entries.bootstrap in an agent
// config), in JSON or HCL 1, turned into the HTTP API's shape (PUT /v1/config): CamelCase keys and
// HCL's blocks folded back into objects. This is the hook for `trellis config write` and the
// config-entry code, which then decode each Kind into its own type.
//
// Consul decodes an entry into its Go struct with decode.HookWeakDecodeFromSlice: a one-object list
// (what an HCL block is) becomes the object unless the struct field is a list. Without Consul's
// structs we name the fields of config entries that are lists of objects (ENTRY_LIST_KEYS).

import fs from 'node:fs';
import { ConfigError } from './errors.ts';
import { formatFromExtension, parseDocument, utf8Text, type DocumentFormat } from './document.ts';
import { toApiKey, toSnakeCase } from './keys.ts';

/**
 * Fields of Consul's config entries (structs/config_entry*.go) that hold lists of objects, in
 * snake_case: splits (service-splitter), routes (service-router, api-gateway), sources and
 * permissions (service-intentions), listeners and services (gateways), overrides (service-defaults
 * upstream_config), header/query_param (router matches), targets (resolver failover), and the
 * route/JWT/extension lists of newer kinds.
 */
const ENTRY_LIST_KEYS: ReadonlySet<string> = new Set([
  'splits', 'routes', 'sources', 'permissions', 'listeners', 'services', 'overrides', 'header',
  'query_param', 'targets', 'parents', 'rules', 'matches', 'filters', 'headers', 'envoy_extensions',
  'providers', 'verify_claims', 'certificates', 'paths', 'destinations', 'jwks', 'claims', 'elements',
]);

/** Maps whose keys are names the user chose and whose values are entry objects (resolver subsets, failover by subset). */
const NAMED_MAP_KEYS: ReadonlySet<string> = new Set(['subsets', 'failover']);

/** Children of these keys are names the user chose (metadata, opaque proxy config, header names). */
const OPAQUE_ENTRY_KEYS: ReadonlySet<string> = new Set(['meta', 'config', 'add', 'set', 'response_headers', 'request_headers_add']);

/** Folds HCL blocks and renames keys to the API's CamelCase (`service_subset` → `ServiceSubset`). */
export function normalizeConfigEntry(raw: Record<string, unknown>): Record<string, unknown> {
  return normalizeObject(raw);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function normalizeObject(o: Record<string, unknown>): Record<string, unknown> {
  const entries: Array<[string, unknown]> = [];
  for (const [key, value] of Object.entries(o)) {
    const snake = toSnakeCase(key);
    const apiKey = toApiKey(snake);
    const v = ENTRY_LIST_KEYS.has(snake) ? value : unwrapBlock(value);
    if (OPAQUE_ENTRY_KEYS.has(snake)) entries.push([apiKey, foldOnly(v)]);
    else if (NAMED_MAP_KEYS.has(snake) && isPlainObject(v)) {
      entries.push([apiKey, Object.fromEntries(Object.entries(v).map(([name, item]) => [name, normalizeValue(unwrapBlock(item))]))]);
    } else entries.push([apiKey, normalizeValue(v)]);
  }
  // fromEntries defines own properties, so even a key "__proto__" stays data.
  return Object.fromEntries(entries);
}

/** An HCL block (a one-object list) as the object it stands for. */
function unwrapBlock(v: unknown): unknown {
  return Array.isArray(v) && v.length === 1 && isPlainObject(v[0]) ? v[0] : v;
}

function normalizeValue(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(normalizeValue);
  if (isPlainObject(v)) return normalizeObject(v);
  return v;
}

/** Inside opaque maps keys are kept as written; HCL blocks are still folded (decode.unSlice). */
function foldOnly(v: unknown): unknown {
  if (Array.isArray(v)) return v.length === 1 && isPlainObject(v[0]) ? foldOnly(v[0]) : v.map(foldOnly);
  if (!isPlainObject(v)) return v;
  return Object.fromEntries(Object.entries(v).map(([k, item]) => [k, foldOnly(item)]));
}

/** Reads one config entry file (.json or .hcl, or `format`) into the API's shape. */
export function readConfigEntryFile(file: string, format?: DocumentFormat): Record<string, unknown> {
  const effective = format ?? formatFromExtension(file);
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (err) {
    throw new ConfigError('ERR_CONFIG_READ', `config: cannot read ${file}: ${(err as Error).message}`, { file });
  }
  const text = utf8Text(bytes, file);
  // Consul's `config write` reads anything that is not .json as HCL (HCL 1 also reads JSON).
  return parseConfigEntryText(text, file, effective === '' ? 'hcl' : effective);
}

/** Parses the text of one config entry and returns it in the API's shape; it must have a Kind. */
export function parseConfigEntryText(text: string, file: string, format: DocumentFormat): Record<string, unknown> {
  const doc = parseDocument(text, file, format);
  if (!isPlainObject(doc)) throw new ConfigError('ERR_CONFIG_INVALID', `config: ${file}: a config entry must be an object with a Kind`, { file });
  const entry = normalizeConfigEntry(doc);
  if (typeof entry['Kind'] !== 'string' || entry['Kind'] === '') {
    throw new ConfigError('ERR_CONFIG_INVALID', `config: ${file}: the config entry has no Kind (e.g. Kind = "service-defaults")`, { file, field: 'Kind' });
  }
  return entry;
}
