// Service and check definitions from config files (and `trellis services register <file>`),
// turned into the JSON shape of Consul's HTTP API (PUT /v1/agent/service/register and
// /v1/agent/check/register): the agent registers them through the same code path as API calls,
// so there is one decoder for registrations, not two. Durations stay Go strings, as in the API.

import { ConfigError } from './errors.ts';
import { parseGoDuration } from './duration.ts';
import { toApiKey } from './keys.ts';

export { toApiKey } from './keys.ts';
import type { RawConfig } from './schema.ts';

export interface CheckDefinition {
  ID?: string;
  Name?: string;
  Notes?: string;
  ServiceID?: string;
  Token?: string;
  Status?: string;
  ScriptArgs?: string[];
  HTTP?: string;
  Header?: Record<string, string[]>;
  Method?: string;
  Body?: string;
  DisableRedirects?: boolean;
  TCP?: string;
  UDP?: string;
  GRPC?: string;
  GRPCUseTLS?: boolean;
  TLSServerName?: string;
  TLSSkipVerify?: boolean;
  H2PING?: string;
  H2PingUseTLS?: boolean;
  AliasNode?: string;
  AliasService?: string;
  DockerContainerID?: string;
  Shell?: string;
  OSService?: string;
  Interval?: string;
  Timeout?: string;
  TTL?: string;
  DeregisterCriticalServiceAfter?: string;
  SuccessBeforePassing?: number;
  FailuresBeforeCritical?: number;
  FailuresBeforeWarning?: number;
  OutputMaxSize?: number;
}

export interface ServiceDefinition {
  ID?: string;
  Name: string;
  Kind?: string;
  Address?: string;
  SocketPath?: string;
  Port?: number;
  Tags?: string[];
  Meta?: Record<string, string>;
  TaggedAddresses?: Record<string, { Address: string; Port: number }>;
  EnableTagOverride?: boolean;
  Token?: string;
  Namespace?: string;
  Partition?: string;
  Weights?: { Passing: number; Warning: number };
  Checks?: CheckDefinition[];
  Connect?: Record<string, unknown>;
  Proxy?: Record<string, unknown>;
  Locality?: Record<string, unknown>;
}

const CHECK_FIELDS: ReadonlyArray<readonly [string, keyof CheckDefinition]> = [
  ['id', 'ID'], ['name', 'Name'], ['notes', 'Notes'], ['service_id', 'ServiceID'], ['token', 'Token'],
  ['status', 'Status'], ['args', 'ScriptArgs'], ['http', 'HTTP'], ['header', 'Header'], ['method', 'Method'],
  ['body', 'Body'], ['disable_redirects', 'DisableRedirects'], ['tcp', 'TCP'], ['udp', 'UDP'], ['grpc', 'GRPC'],
  ['grpc_use_tls', 'GRPCUseTLS'], ['tls_server_name', 'TLSServerName'], ['tls_skip_verify', 'TLSSkipVerify'],
  ['h2ping', 'H2PING'], ['h2ping_use_tls', 'H2PingUseTLS'], ['alias_node', 'AliasNode'],
  ['alias_service', 'AliasService'], ['docker_container_id', 'DockerContainerID'], ['shell', 'Shell'],
  ['os_service', 'OSService'], ['interval', 'Interval'], ['timeout', 'Timeout'], ['ttl', 'TTL'],
  ['deregister_critical_service_after', 'DeregisterCriticalServiceAfter'],
  ['success_before_passing', 'SuccessBeforePassing'], ['failures_before_critical', 'FailuresBeforeCritical'],
  ['failures_before_warning', 'FailuresBeforeWarning'], ['output_max_size', 'OutputMaxSize'],
];

const SERVICE_KINDS = new Set(['', 'typical', 'connect-proxy', 'mesh-gateway', 'terminating-gateway', 'ingress-gateway', 'api-gateway']);
const CHECK_STATUSES = new Set(['', 'passing', 'warning', 'critical']);

function invalid(where: string, message: string, file?: string): ConfigError {
  return new ConfigError('ERR_CONFIG_INVALID', `${file ? `config: ${file}: ` : ''}${where}: ${message}`, { field: where, ...(file ? { file } : {}) });
}

/** Converts a decoded (snake_case) check to the API shape and validates it like Consul's CheckType.Validate. */
export function toCheckDefinition(raw: RawConfig, where: string, file?: string): CheckDefinition {
  const out: Record<string, unknown> = {};
  for (const [snake, api] of CHECK_FIELDS) if (raw[snake] !== undefined) out[api] = raw[snake];
  const c = out as CheckDefinition;
  if (c.Status !== undefined && !CHECK_STATUSES.has(c.Status)) {
    throw invalid(`${where}.status`, `"${c.Status}" is not a check status; use passing, warning or critical`, file);
  }
  const intervalMs = c.Interval ? parseGoDuration(c.Interval) : 0;
  const ttlMs = c.TTL ? parseGoDuration(c.TTL) : 0;
  const intervalCheck = !!(c.ScriptArgs?.length || c.HTTP || c.TCP || c.UDP || c.GRPC || c.H2PING || c.OSService || c.DockerContainerID);
  const aliasCheck = !!(c.AliasNode || c.AliasService);
  if (intervalMs > 0 && ttlMs > 0) throw invalid(where, 'interval and ttl cannot both be specified', file);
  if (intervalCheck && intervalMs <= 0) {
    throw invalid(where, 'interval must be > 0 for script, HTTP, H2PING, TCP, UDP, gRPC, Docker or OS service checks', file);
  }
  if (!intervalCheck && !aliasCheck && ttlMs <= 0) {
    throw invalid(where, 'ttl must be > 0 for TTL checks (a check needs one of args, http, tcp, udp, grpc, h2ping, docker_container_id, os_service, alias_service or ttl)', file);
  }
  for (const k of ['SuccessBeforePassing', 'FailuresBeforeCritical', 'FailuresBeforeWarning', 'OutputMaxSize'] as const) {
    const v = c[k];
    if (v !== undefined && v < 0) throw invalid(where, `${k} cannot be ${v}: must be zero or more`, file);
  }
  return c;
}

/** Converts a decoded (snake_case) service to the API shape and validates it. */
export function toServiceDefinition(raw: RawConfig, where: string, file?: string, opts: { sidecar?: boolean } = {}): ServiceDefinition {
  const name = raw['name'];
  // A sidecar_service may leave its name out: the agent names it `<service>-sidecar-proxy`.
  if (!opts.sidecar && (typeof name !== 'string' || name === '')) throw invalid(where, 'name is required', file);
  const s = (typeof name === 'string' && name !== '' ? { Name: name } : {}) as ServiceDefinition;
  if (raw['id'] !== undefined) s.ID = raw['id'] as string;
  if (raw['kind'] !== undefined) {
    const kind = raw['kind'] as string;
    if (!SERVICE_KINDS.has(kind)) throw invalid(`${where}.kind`, `"${kind}" is not a service kind; use connect-proxy, mesh-gateway, terminating-gateway, ingress-gateway or api-gateway`, file);
    s.Kind = kind;
  }
  if (raw['address'] !== undefined) s.Address = raw['address'] as string;
  if (raw['socket_path'] !== undefined) s.SocketPath = raw['socket_path'] as string;
  if (raw['port'] !== undefined) {
    const port = raw['port'] as number;
    if (port < 0 || port > 65535) throw invalid(`${where}.port`, `${port} is not a port; use 0-65535`, file);
    s.Port = port;
  }
  if (raw['tags'] !== undefined) s.Tags = raw['tags'] as string[];
  if (raw['meta'] !== undefined) {
    s.Meta = raw['meta'] as Record<string, string>;
    validateMeta(s.Meta, `${where}.meta`, file);
  }
  if (raw['tagged_addresses'] !== undefined) {
    s.TaggedAddresses = {};
    for (const [k, v] of Object.entries(raw['tagged_addresses'] as Record<string, RawConfig>)) {
      s.TaggedAddresses[k] = { Address: (v['address'] as string | undefined) ?? '', Port: (v['port'] as number | undefined) ?? 0 };
    }
  }
  if (raw['enable_tag_override'] !== undefined) s.EnableTagOverride = raw['enable_tag_override'] as boolean;
  if (raw['token'] !== undefined) s.Token = raw['token'] as string;
  if (raw['namespace'] !== undefined) s.Namespace = raw['namespace'] as string;
  if (raw['partition'] !== undefined) s.Partition = raw['partition'] as string;
  if (raw['weights'] !== undefined) {
    const w = raw['weights'] as RawConfig;
    const passing = (w['passing'] as number | undefined) ?? 1;
    const warning = (w['warning'] as number | undefined) ?? 1;
    if (passing < 1) throw invalid(`${where}.weights.passing`, `${passing} is not allowed: must be 1 or more`, file);
    if (warning < 0) throw invalid(`${where}.weights.warning`, `${warning} is not allowed: must be 0 or more`, file);
    s.Weights = { Passing: passing, Warning: warning };
  }
  const checks: CheckDefinition[] = [];
  if (raw['check'] !== undefined) checks.push(toCheckDefinition(raw['check'] as RawConfig, `${where}.check`, file));
  ((raw['checks'] as RawConfig[] | undefined) ?? []).forEach((c, i) => checks.push(toCheckDefinition(c, `${where}.checks[${i}]`, file)));
  if (checks.length > 0) s.Checks = checks;
  if (raw['connect'] !== undefined) {
    // sidecar_service is a service definition of its own: converted (and its checks validated) as one.
    const { sidecar_service: sidecar, ...rest } = raw['connect'] as RawConfig;
    s.Connect = toApiKeys(rest) as Record<string, unknown>;
    if (sidecar !== undefined && sidecar !== null) {
      s.Connect['SidecarService'] = toServiceDefinition(sidecar as RawConfig, `${where}.connect.sidecar_service`, file, { sidecar: true });
    }
  }
  if (raw['proxy'] !== undefined) s.Proxy = toApiKeys(raw['proxy']) as Record<string, unknown>;
  if (raw['locality'] !== undefined) s.Locality = toApiKeys(raw['locality']) as Record<string, unknown>;
  if (!opts.sidecar && s.Kind === 'connect-proxy' && !s.Proxy?.['DestinationServiceName']) {
    throw invalid(`${where}.proxy.destination_service_name`, 'is required for a connect-proxy service', file);
  }
  return s;
}

const META_KEY_RE = /^[a-zA-Z0-9_-]+$/;

/** Consul's metadata rules (structs.ValidateMetadata), shared by node_meta and service meta. */
export function validateMeta(meta: Record<string, string>, where: string, file?: string): void {
  const keys = Object.keys(meta);
  if (keys.length > 64) throw invalid(where, `has ${keys.length} pairs: at most 64 are allowed`, file);
  for (const k of keys) {
    if (k === '') throw invalid(where, 'keys cannot be empty', file);
    if (k.length > 128) throw invalid(where, `key "${k.slice(0, 20)}…" is ${k.length} characters: at most 128 are allowed`, file);
    if (!META_KEY_RE.test(k)) throw invalid(where, `key "${k}" may only contain letters, digits, - and _`, file);
    if (k.startsWith('consul-')) throw invalid(where, `key "${k}" uses the reserved prefix "consul-"`, file);
    const v = meta[k]!;
    if (v.length > 512) throw invalid(where, `value of "${k}" is ${v.length} characters: at most 512 are allowed`, file);
  }
}

/** Children of these keys are user-defined names (proxy config, metadata, header names): never renamed. */
const OPAQUE_KEYS = new Set(['config', 'meta', 'header', 'Config', 'Meta', 'Header']);
/** Keys of these maps are user-defined names (lan, wan, …); their values are API objects. */
const NAMED_MAP_KEYS = new Set(['tagged_addresses', 'TaggedAddresses']);
/** Deep key conversion for free-form blocks (connect, proxy), leaving opaque maps as written. */
export function toApiKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(toApiKeys);
  if (typeof v !== 'object' || v === null) return v;
  const out: Record<string, unknown> = {};
  for (const [k, item] of Object.entries(v as Record<string, unknown>)) {
    if (OPAQUE_KEYS.has(k)) out[toApiKey(k)] = item;
    else if (NAMED_MAP_KEYS.has(k) && typeof item === 'object' && item !== null && !Array.isArray(item)) {
      out[toApiKey(k)] = Object.fromEntries(Object.entries(item).map(([name, addr]) => [name, toApiKeys(addr)]));
    } else out[toApiKey(k)] = toApiKeys(item);
  }
  return out;
}
