// Config entries as the API and the CLI take them: which kinds exist, decoding a body (any key
// spelling) into its kind's shape, and Consul's Normalize() + Validate() for it. The HTTP edge calls
// parseConfigEntry before proposing; what it returns is what the state store keeps.
//
//   parseConfigEntry({ kind: 'service-defaults', name: 'web', protocol: 'HTTP' })
//     → { Kind: 'service-defaults', Name: 'web', Protocol: 'http', TransparentProxy: {}, ... }

import { ConfigEntryDecodeError, decodeObject, fold } from './decode.ts';
import { KIND_SCHEMAS } from './schemas.ts';
import { ConfigEntryValidationError, KIND_RULES } from './validate.ts';

export { ConfigEntryDecodeError } from './decode.ts';
export { ConfigEntryValidationError } from './validate.ts';
export { intentionPrecedence, intentionCountExact } from './intentions.ts';

/** Every kind Consul knows (structs.MakeConfigEntry); Trellis stores SUPPORTED_KINDS of them. */
export const CONSUL_KINDS: readonly string[] = [
  'service-defaults', 'proxy-defaults', 'service-router', 'service-splitter', 'service-resolver', 'ingress-gateway',
  'terminating-gateway', 'service-intentions', 'mesh', 'exported-services', 'sameness-group', 'api-gateway',
  'bound-api-gateway', 'inline-certificate', 'file-system-certificate', 'http-route', 'tcp-route', 'jwt-provider',
  'control-plane-request-limit', 'registration',
];
export const SUPPORTED_KINDS: readonly string[] = Object.keys(KIND_SCHEMAS);

/** A stored entry's body: Kind and Name first, then its kind's fields in Consul's order. */
export interface ConfigEntryBody {
  Kind: string;
  Name: string;
  [field: string]: unknown;
}

/**
 * Why a kind cannot be used, or null when it can: Consul's text for a kind it does not know, and a
 * plain statement for the gateway kinds Trellis does not store yet.
 */
export function kindError(kind: string): string | null {
  if (SUPPORTED_KINDS.includes(kind)) return null;
  if (CONSUL_KINDS.includes(kind)) return `config entry kind ${JSON.stringify(kind)} is not supported by Trellis yet (supported: ${SUPPORTED_KINDS.join(', ')})`;
  return `invalid config entry kind: ${kind}`;
}

/**
 * Why a kind cannot be read or deleted, or null: only a kind Consul does not know (its
 * MakeConfigEntry error). Reads of a kind Trellis does not store yet answer as for any kind with no
 * entries, so tools that list every kind keep working.
 */
export function readKindError(kind: string): string | null {
  return CONSUL_KINDS.includes(kind) ? null : `invalid config entry kind: ${kind}`;
}

const TOP_LEVEL_IGNORED: ReadonlySet<string> = new Set(['kind', 'createindex', 'modifyindex']);

/**
 * Decodes a body (Consul's structs.DecodeConfigEntry): Kind (or kind) picks the type, every other key
 * must be a field of it. Throws ConfigEntryDecodeError (the HTTP edge prefixes "Request decoding
 * failed: ").
 */
export function decodeConfigEntry(raw: unknown): ConfigEntryBody {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ConfigEntryDecodeError('a config entry must be a JSON object');
  const body = raw as Record<string, unknown>;
  const kindKey = Object.keys(body).find((k) => fold(k) === 'kind');
  if (kindKey === undefined) throw new ConfigEntryDecodeError('Payload does not contain a kind/Kind key at the top level');
  const kind = body[kindKey];
  if (typeof kind !== 'string') throw new ConfigEntryDecodeError('Kind value in payload is not a string');
  const why = kindError(kind);
  if (why !== null) throw new ConfigEntryDecodeError(why);
  const fields = decodeObject(body, KIND_SCHEMAS[kind]!, '', TOP_LEVEL_IGNORED);
  const name = typeof fields.Name === 'string' ? fields.Name : '';
  const { Name: _name, ...rest } = fields;
  return { Kind: kind, Name: name, ...rest };
}

/** Consul's Normalize() then Validate() of the entry's kind; mutates and returns it. */
export function validateConfigEntry(entry: ConfigEntryBody): ConfigEntryBody {
  const rules = KIND_RULES[entry.Kind];
  if (rules === undefined) throw new ConfigEntryValidationError(kindError(entry.Kind) ?? `invalid config entry kind: ${entry.Kind}`);
  // The singletons name themselves; every other kind needs a name.
  if (entry.Kind !== 'proxy-defaults' && entry.Kind !== 'mesh' && entry.Name === '') throw new ConfigEntryValidationError('Name is required');
  rules(entry);
  return entry;
}

/** decodeConfigEntry + validateConfigEntry: the entry as it will be stored. */
export function parseConfigEntry(raw: unknown): ConfigEntryBody {
  return validateConfigEntry(decodeConfigEntry(raw));
}
