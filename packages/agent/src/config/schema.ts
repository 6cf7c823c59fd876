// The shape of Consul's JSON configuration (snake_case keys, as in Consul's agent/config/config.go),
// a decoder that checks a parsed file against it, and the merge Consul applies between sources.
//
// A decoded source is a plain object with canonical snake_case keys whose values are already typed:
// durations are milliseconds (or, inside service/check definitions, the validated Go string, since
// those are handed to the agent in the HTTP API's shape), lists are arrays, maps are objects.
// Keys are matched after folding CamelCase to snake_case ("NodeName" = "node_name"), because users
// paste definitions written for Consul's HTTP API into config files and Consul accepts them there.

import { parseGoDuration, DurationError } from './duration.ts';
import { ConfigError } from './errors.ts';
import { normalizeConfigEntry } from './configEntry.ts';
import { toSnakeCase } from './keys.ts';

export { toSnakeCase } from './keys.ts';

export type Schema =
  | { readonly kind: 'string' }
  | { readonly kind: 'bool' }
  | { readonly kind: 'int' }
  | { readonly kind: 'number' }
  /** A Go duration string, decoded to milliseconds. */
  | { readonly kind: 'duration' }
  /** A Go duration string, validated and kept as written (for API-shaped service/check definitions). */
  | { readonly kind: 'durationString' }
  | { readonly kind: 'list'; readonly of: Schema }
  /** An object whose keys the user chooses (node_meta, headers); keys are kept verbatim. */
  | { readonly kind: 'map'; readonly of: Schema }
  | { readonly kind: 'object'; readonly fields: Readonly<Record<string, Schema>> }
  /** Free-form JSON kept as written (connect.ca_config, a service's proxy block). */
  | { readonly kind: 'any' }
  /** A deprecated spelling: the value is stored at `target` with a warning. A target without dots
   *  is a sibling key; a dotted target is a path from the top of the config (top-level keys only). */
  | { readonly kind: 'alias'; readonly target: string; readonly of: Schema }
  /** A real Consul key that has no effect in Trellis yet: accepted (so Consul configs load) with a warning. */
  | { readonly kind: 'ignored' }
  /** A config entry (config_entries.bootstrap): HCL blocks folded the way Consul's entry decoder does. */
  | { readonly kind: 'configEntry' };

export type RawConfig = Record<string, unknown>;

const str: Schema = { kind: 'string' };
const bool: Schema = { kind: 'bool' };
const int: Schema = { kind: 'int' };
const num: Schema = { kind: 'number' };
const dur: Schema = { kind: 'duration' };
const durStr: Schema = { kind: 'durationString' };
const any: Schema = { kind: 'any' };
const ignored: Schema = { kind: 'ignored' };
const strList: Schema = { kind: 'list', of: str };
const strMap: Schema = { kind: 'map', of: str };
const configEntry: Schema = { kind: 'configEntry' };
const obj = (fields: Record<string, Schema>): Schema => ({ kind: 'object', fields });
const list = (of: Schema): Schema => ({ kind: 'list', of });
const alias = (target: string, of: Schema): Schema => ({ kind: 'alias', target, of });

const tlsBlockFields: Record<string, Schema> = {
  ca_file: str,
  ca_path: str,
  cert_file: str,
  key_file: str,
  tls_min_version: str,
  tls_cipher_suites: str,
  verify_incoming: bool,
  verify_outgoing: bool,
  // Consul accepts every field in every block (and warns where one does not apply).
  verify_server_hostname: bool,
  use_auto_cert: bool,
};

export const CHECK_SCHEMA: Schema = obj({
  id: str,
  check_id: alias('id', str),
  name: str,
  notes: str,
  service_id: str,
  token: str,
  status: str,
  args: strList,
  script_args: alias('args', strList),
  http: str,
  header: { kind: 'map', of: strList },
  method: str,
  body: str,
  disable_redirects: bool,
  tcp: str,
  udp: str,
  grpc: str,
  grpc_use_tls: bool,
  tls_server_name: str,
  tls_skip_verify: bool,
  h2ping: str,
  h2ping_use_tls: bool,
  alias_node: str,
  alias_service: str,
  docker_container_id: str,
  shell: str,
  os_service: str,
  interval: durStr,
  timeout: durStr,
  ttl: durStr,
  deregister_critical_service_after: durStr,
  success_before_passing: int,
  failures_before_critical: int,
  failures_before_warning: int,
  output_max_size: int,
});

const MESH_GATEWAY_SCHEMA: Schema = obj({ mode: str });

/** Consul's Upstream (agent/config/config.go): written as repeated `upstreams { … }` blocks in HCL. */
const UPSTREAM_SCHEMA: Schema = obj({
  destination_type: str,
  destination_namespace: str,
  destination_partition: str,
  destination_peer: str,
  destination_name: str,
  datacenter: str,
  local_bind_address: str,
  local_bind_port: int,
  local_bind_socket_path: str,
  local_bind_socket_mode: str,
  config: any,
  mesh_gateway: MESH_GATEWAY_SCHEMA,
});

/** Consul's ServiceProxy: the `proxy` block of a connect-proxy service or of a sidecar_service. */
const PROXY_SCHEMA: Schema = obj({
  destination_service_name: str,
  destination_service_id: str,
  local_service_address: str,
  local_service_port: int,
  local_service_socket_path: str,
  transparent_proxy: obj({ outbound_listener_port: int, dialed_directly: bool }),
  mode: str,
  config: any,
  upstreams: list(UPSTREAM_SCHEMA),
  mesh_gateway: MESH_GATEWAY_SCHEMA,
  expose: obj({
    checks: bool,
    port: int,
    paths: list(obj({ listener_port: int, path: str, protocol: str, local_path_port: int })),
  }),
});

// A service's fields; `connect.sidecar_service` is itself a service definition, so the record is
// filled in after SERVICE_SCHEMA exists.
const serviceFields: Record<string, Schema> = {};
export const SERVICE_SCHEMA: Schema = obj(serviceFields);
Object.assign(serviceFields, {
  id: str,
  name: str,
  kind: str,
  address: str,
  socket_path: str,
  port: int,
  tags: strList,
  meta: strMap,
  tagged_addresses: { kind: 'map', of: obj({ address: str, port: int }) },
  enable_tag_override: bool,
  token: str,
  namespace: str,
  partition: str,
  weights: obj({ passing: int, warning: int }),
  check: CHECK_SCHEMA,
  checks: list(CHECK_SCHEMA),
  connect: obj({ native: bool, sidecar_service: SERVICE_SCHEMA }),
  proxy: PROXY_SCHEMA,
  locality: obj({ region: str, zone: str }),
});

const gossipFields = obj({
  gossip_nodes: int,
  gossip_interval: dur,
  probe_interval: dur,
  probe_timeout: dur,
  suspicion_mult: int,
  retransmit_mult: int,
});

/** Every key of a Consul agent config file that Trellis reads, accepts, or knows to be deprecated. */
export const CONFIG_SCHEMA: Schema = obj({
  acl: obj({
    enabled: bool,
    default_policy: str,
    down_policy: str,
    policy_ttl: dur,
    token_ttl: dur,
    role_ttl: dur,
    enable_token_persistence: bool,
    enable_token_replication: bool,
    enable_key_list_policy: bool,
    disabled_ttl: ignored,
    msp_disable_bootstrap: ignored,
    tokens: obj({
      managed_service_provider: ignored,
      initial_management: str,
      agent: str,
      agent_recovery: str,
      default: str,
      replication: str,
      config_file_service_registration: str,
      dns: str,
      master: alias('initial_management', str),
      agent_master: alias('agent_recovery', str),
    }),
  }),
  addresses: obj({ dns: str, http: str, https: str, grpc: str, grpc_tls: str }),
  // One of Consul's "non-user configurable values" (config.go): its own test agents shorten it.
  ae_interval: dur,
  advertise_addr: str,
  advertise_addr_wan: str,
  advertise_addr_ipv4: ignored,
  advertise_addr_ipv6: ignored,
  advertise_addr_wan_ipv4: ignored,
  advertise_addr_wan_ipv6: ignored,
  advertise_reconnect_timeout: ignored,
  alt_domain: str,
  // Security settings Trellis does not enforce yet are typed here so that security.ts can refuse
  // the values that ask for protection (and accept the ones that ask for none).
  auto_config: obj({
    enabled: bool,
    intro_token: str,
    intro_token_file: str,
    server_addresses: strList,
    dns_sans: strList,
    ip_sans: strList,
    authorization: obj({ enabled: bool, static: any }),
  }),
  auto_encrypt: obj({ tls: bool, allow_tls: bool, dns_san: strList, ip_san: strList }),
  auto_reload_config: ignored,
  autopilot: obj({
    cleanup_dead_servers: bool,
    last_contact_threshold: dur,
    max_trailing_logs: int,
    min_quorum: int,
    server_stabilization_time: dur,
    disable_upgrade_migration: ignored,
    redundancy_zone_tag: ignored,
    upgrade_version_tag: ignored,
  }),
  bind_addr: str,
  bootstrap: bool,
  bootstrap_expect: int,
  check: CHECK_SCHEMA,
  checks: list(CHECK_SCHEMA),
  cache: ignored,
  check_output_max_size: ignored,
  check_update_interval: dur,
  client_addr: str,
  cloud: ignored,
  config_entries: obj({ bootstrap: list(configEntry) }),
  connect: obj({
    enabled: bool,
    ca_provider: str,
    ca_config: any,
    enable_mesh_gateway_wan_federation: bool,
    test_ca_leaf_root_change_spread: ignored,
  }),
  data_dir: str,
  datacenter: str,
  default_intention_policy: str,
  default_query_time: dur,
  disable_anonymous_signature: ignored,
  disable_coordinates: ignored,
  disable_host_node_id: ignored,
  disable_http_unprintable_char_filter: ignored,
  disable_keyring_file: ignored,
  disable_remote_exec: ignored,
  disable_update_check: ignored,
  discard_check_output: ignored,
  discovery_max_stale: ignored,
  dns_config: obj({
    allow_stale: bool,
    a_record_limit: int,
    disable_compression: bool,
    enable_truncate: bool,
    max_stale: dur,
    node_ttl: dur,
    only_passing: bool,
    recursor_strategy: str,
    recursor_timeout: dur,
    service_ttl: { kind: 'map', of: dur },
    udp_answer_limit: int,
    use_cache: bool,
    cache_max_age: dur,
    enable_additional_node_meta_txt: bool,
    soa: obj({ expire: int, min_ttl: int, refresh: int, retry: int }),
    prefer_namespace: ignored,
  }),
  domain: str,
  enable_agent_tls_for_checks: ignored,
  enable_central_service_config: ignored,
  enable_debug: ignored,
  enable_local_script_checks: bool,
  enable_script_checks: bool,
  enable_syslog: ignored,
  encrypt: str,
  encrypt_verify_incoming: bool,
  encrypt_verify_outgoing: bool,
  experiments: ignored,
  gossip_lan: gossipFields,
  gossip_wan: gossipFields,
  http_config: obj({
    allow_write_http_from: strList,
    block_endpoints: strList,
    max_header_bytes: int,
    response_headers: strMap,
    use_cache: bool,
  }),
  leave_on_terminate: bool,
  limits: obj({
    http_max_conns_per_client: int,
    https_handshake_timeout: dur,
    kv_max_value_size: int,
    rpc_handshake_timeout: dur,
    rpc_max_burst: int,
    rpc_max_conns_per_client: int,
    rpc_rate: num,
    txn_max_req_len: int,
    request_limits: obj({ mode: str, read_rate: num, write_rate: num }),
    rpc_client_timeout: ignored,
  }),
  license_path: ignored,
  locality: ignored,
  log_file: ignored,
  log_json: bool,
  log_level: str,
  log_rotate_bytes: ignored,
  log_rotate_duration: ignored,
  log_rotate_max_files: ignored,
  log_sublevels: ignored,
  max_query_time: dur,
  node_id: str,
  node_meta: strMap,
  node_name: str,
  peering: ignored,
  performance: obj({ leave_drain_time: dur, raft_multiplier: int, rpc_hold_timeout: dur }),
  pid_file: str,
  ports: obj({
    dns: int,
    http: int,
    https: int,
    grpc: int,
    grpc_tls: int,
    serf_lan: int,
    serf_wan: int,
    server: int,
    proxy_min_port: int,
    proxy_max_port: int,
    sidecar_min_port: int,
    sidecar_max_port: int,
    expose_min_port: int,
    expose_max_port: int,
  }),
  primary_datacenter: str,
  primary_gateways: strList,
  primary_gateways_interval: dur,
  protocol: ignored,
  raft_boltdb: ignored,
  raft_logstore: ignored,
  raft_protocol: int,
  raft_snapshot_interval: dur,
  raft_snapshot_threshold: int,
  raft_trailing_logs: int,
  reconnect_timeout: dur,
  reconnect_timeout_wan: dur,
  recursors: strList,
  rejoin_after_leave: bool,
  retry_interval: dur,
  retry_interval_wan: dur,
  retry_join: strList,
  retry_join_wan: strList,
  retry_max: int,
  retry_max_wan: int,
  rpc: ignored,
  serf_lan: ignored,
  serf_wan: str,
  serf_lan_allowed_cidrs: strList,
  serf_wan_allowed_cidrs: strList,
  server: bool,
  server_name: ignored,
  service: SERVICE_SCHEMA,
  services: list(SERVICE_SCHEMA),
  session_ttl_min: dur,
  skip_leave_on_interrupt: bool,
  snapshot_agent: ignored,
  start_join: strList,
  start_join_wan: strList,
  syslog_facility: ignored,
  tagged_addresses: ignored,
  telemetry: obj({
    disable_hostname: bool,
    filter_default: bool,
    metrics_prefix: str,
    prefix_filter: strList,
    prometheus_retention_time: dur,
    disable_compat_1_9: ignored,
    dogstatsd_addr: ignored,
    dogstatsd_tags: ignored,
    statsd_address: ignored,
    statsite_address: ignored,
    retry_failed_connection: ignored,
    enable_host_metrics: ignored,
    circonus_api_app: ignored,
    circonus_api_token: ignored,
    circonus_api_url: ignored,
    circonus_broker_id: ignored,
    circonus_broker_select_tag: ignored,
    circonus_check_display_name: ignored,
    circonus_check_force_metric_activation: ignored,
    circonus_check_id: ignored,
    circonus_check_instance_id: ignored,
    circonus_check_search_tag: ignored,
    circonus_check_tags: ignored,
    circonus_submission_interval: ignored,
    circonus_submission_url: ignored,
  }),
  tls: obj({
    defaults: obj(tlsBlockFields),
    internal_rpc: obj(tlsBlockFields),
    https: obj(tlsBlockFields),
    grpc: obj(tlsBlockFields),
  }),
  // Pre-1.12 top-level TLS keys: still everywhere in real configs.
  ca_file: alias('tls.defaults.ca_file', str),
  ca_path: alias('tls.defaults.ca_path', str),
  cert_file: alias('tls.defaults.cert_file', str),
  key_file: alias('tls.defaults.key_file', str),
  tls_min_version: alias('tls.defaults.tls_min_version', str),
  tls_cipher_suites: alias('tls.defaults.tls_cipher_suites', str),
  verify_incoming: alias('tls.defaults.verify_incoming', bool),
  verify_outgoing: alias('tls.defaults.verify_outgoing', bool),
  verify_server_hostname: alias('tls.internal_rpc.verify_server_hostname', bool),
  verify_incoming_rpc: alias('tls.internal_rpc.verify_incoming', bool),
  verify_incoming_https: alias('tls.https.verify_incoming', bool),
  tls_prefer_server_cipher_suites: ignored,
  // Pre-1.4 ACL keys. acl_datacenter also turned ACLs on, so it is kept as itself for security.ts.
  acl_datacenter: str,
  acl_default_policy: alias('acl.default_policy', str),
  acl_down_policy: alias('acl.down_policy', str),
  acl_ttl: alias('acl.token_ttl', dur),
  acl_enable_key_list_policy: alias('acl.enable_key_list_policy', bool),
  enable_acl_replication: alias('acl.enable_token_replication', bool),
  acl_master_token: alias('acl.tokens.initial_management', str),
  acl_agent_master_token: alias('acl.tokens.agent_recovery', str),
  acl_agent_token: alias('acl.tokens.agent', str),
  acl_token: alias('acl.tokens.default', str),
  acl_replication_token: alias('acl.tokens.replication', str),
  translate_wan_addrs: ignored,
  ui: alias('ui_config.enabled', bool),
  ui_dir: alias('ui_config.dir', str),
  ui_content_path: alias('ui_config.content_path', str),
  ui_config: obj({
    enabled: bool,
    dir: str,
    content_path: str,
    metrics_provider: str,
    metrics_provider_options_json: str,
    metrics_proxy: any,
    metrics_provider_files: ignored,
    dashboard_url_templates: strMap,
  }),
  unix_sockets: ignored,
  use_streaming_backend: ignored,
  watches: ignored,
  xds: ignored,
  // Values Consul sets itself (not user-configurable) and keys of Consul Enterprise: accepted so
  // that a config written for those loads, with a warning.
  check_deregister_interval_min: ignored,
  check_reap_interval: ignored,
  consul: ignored,
  revision: ignored,
  segment_limit: ignored,
  segment_name_limit: ignored,
  sync_coordinate_interval_min: ignored,
  sync_coordinate_rate_target: ignored,
  version: ignored,
  version_prerelease: ignored,
  version_metadata: ignored,
  build_date: ignored,
  audit: ignored,
  read_replica: ignored,
  non_voting_server: ignored,
  segment: ignored,
  segments: ignored,
  partition: ignored,
  license_poll_base_time: ignored,
  license_poll_max_time: ignored,
  license_update_base_time: ignored,
  license_update_max_time: ignored,
  reporting: ignored,
});

interface DecodeContext {
  readonly file: string;
  readonly warnings: string[];
  /** Root of the decoded source, where aliases write their targets. */
  readonly root: RawConfig;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  switch (typeof v) {
    case 'string': return `string ${JSON.stringify(v)}`;
    case 'number': return `number ${v}`;
    case 'boolean': return `boolean ${v}`;
    case 'object': return 'an object';
    default: return typeof v;
  }
}

function expected(s: Schema): string {
  switch (s.kind) {
    case 'string': return 'a string';
    case 'bool': return 'a boolean (true or false)';
    case 'int': return 'an integer';
    case 'number': return 'a number';
    case 'duration':
    case 'durationString': return 'a Go duration string such as "10s" or "1m30s"';
    case 'list':
      if (s.of.kind === 'string') return 'a list of strings';
      if (s.of.kind === 'object') return 'a list of objects';
      return `a list whose items are each ${expected(s.of)}`;
    case 'map':
    case 'object': return 'an object';
    case 'alias': return expected(s.of);
    case 'any':
    case 'ignored': return 'any value';
    case 'configEntry': return 'a config entry (an object with a Kind)';
  }
}

function typeError(ctx: DecodeContext, path: string, s: Schema, v: unknown): ConfigError {
  // An HCL block written more than once is a list of objects; say so in the user's terms.
  const got = Array.isArray(v) && v.length > 1 && v.every(isPlainObject) && s.kind !== 'list'
    ? `${v.length} of them (a block written ${v.length} times): write it once`
    : describe(v);
  return new ConfigError('ERR_CONFIG_TYPE', `config: ${ctx.file}: field "${path}" must be ${expected(s)}, got ${got}`, { field: path, file: ctx.file });
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Decodes one parsed JSON document against CONFIG_SCHEMA (or another object schema). Throws
 * ConfigError naming the file and key path on the first unknown key or wrongly typed value.
 */
export function decodeSource(doc: unknown, file: string, warnings: string[], schema: Schema = CONFIG_SCHEMA): RawConfig {
  const root: RawConfig = {};
  const ctx: DecodeContext = { file, warnings, root };
  if (!isPlainObject(doc)) throw typeError(ctx, '(top level)', schema, doc);
  decodeObjectInto(schema, schema === CONFIG_SCHEMA ? repeatedDefinitionsToLists(doc) : doc, '', ctx, root);
  // Consul folds a single "service"/"check" into the lists before merging, so that later sources
  // add to them rather than replace them.
  if (schema === CONFIG_SCHEMA) {
    for (const [one, many] of [['service', 'services'], ['check', 'checks']] as const) {
      if (root[one] !== undefined) {
        root[many] = [...((root[many] as unknown[] | undefined) ?? []), root[one]];
        delete root[one];
      }
    }
  }
  return root;
}

/**
 * `service { … }` (or `check { … }`) written more than once in one HCL file: Consul refuses the
 * list (the field holds one definition); we read them as `services`/`checks`, which is what the
 * writer meant and what Consul's documentation tells them to write instead.
 */
function repeatedDefinitionsToLists(doc: Record<string, unknown>): Record<string, unknown> {
  const extra: Record<'services' | 'checks', unknown[]> = { services: [], checks: [] };
  const kept: Array<[string, unknown]> = [];
  for (const [key, value] of Object.entries(doc)) {
    const canonical = toSnakeCase(key);
    if ((canonical === 'service' || canonical === 'check') && Array.isArray(value) && value.length > 1 && value.every(isPlainObject)) {
      extra[canonical === 'service' ? 'services' : 'checks'].push(...value);
    } else {
      kept.push([key, value]);
    }
  }
  // fromEntries defines own properties: a key "__proto__" stays a key (and is refused as unknown).
  const out: Record<string, unknown> = Object.fromEntries(kept);
  for (const many of ['services', 'checks'] as const) {
    if (extra[many].length === 0) continue;
    const key = Object.keys(out).find((k) => toSnakeCase(k) === many) ?? many;
    const existing = out[key];
    out[key] = [...(Array.isArray(existing) ? existing : existing === undefined ? [] : [existing]), ...extra[many]];
  }
  return out;
}

/**
 * Consul's decode.HookWeakDecodeFromSlice: HCL 1 turns every block into a list of objects, so a
 * list of exactly one item decodes into any field that is not itself a list. Lists of other
 * lengths are left alone (and then fail the type check, as in Consul).
 */
function weakFromSlice(s: Schema, v: unknown): unknown {
  if (s.kind === 'list' || s.kind === 'any' || s.kind === 'alias' || s.kind === 'ignored') return v;
  return Array.isArray(v) && v.length === 1 ? v[0] : v;
}

/**
 * The same hook on a free-form (interface{}) field: every one-object list inside it becomes the
 * object (decode.unSlice), since nothing says which of its keys are lists.
 */
export function unSlice(v: unknown): unknown {
  if (Array.isArray(v)) {
    if (v.length === 1 && isPlainObject(v[0])) return unSlice(v[0]);
    return v.map(unSlice);
  }
  if (!isPlainObject(v)) return v;
  const out: Record<string, unknown> = {};
  for (const [k, item] of Object.entries(v)) out[k] = unSlice(item);
  return out;
}

function decodeObjectInto(s: Schema, v: Record<string, unknown>, path: string, ctx: DecodeContext, out: RawConfig): void {
  if (s.kind !== 'object') throw new Error('decodeObjectInto needs an object schema');
  const deferredAliases: Array<[Schema & { kind: 'alias' }, unknown, string]> = [];
  for (const [key, value] of Object.entries(v)) {
    const canonical = toSnakeCase(key);
    const childPath = path ? `${path}.${key}` : key;
    const field = Object.hasOwn(s.fields, canonical) ? s.fields[canonical] : undefined; // not Object.prototype's keys
    if (!field) {
      const hint = suggest(canonical, Object.keys(s.fields));
      throw new ConfigError('ERR_CONFIG_UNKNOWN_KEY',
        `config: ${ctx.file}: unknown field "${childPath}"${hint ? ` (did you mean "${path ? `${path}.` : ''}${hint}"?)` : ''}`,
        { field: childPath, file: ctx.file });
    }
    if (value === null) continue; // JSON null leaves the setting unset, as in Consul
    if (field.kind === 'alias') { deferredAliases.push([field, value, childPath]); continue; }
    if (field.kind === 'ignored') {
      ctx.warnings.push(`config: ${ctx.file}: "${childPath}" is a Consul setting that Trellis does not use yet; it has no effect`);
      continue;
    }
    out[canonical] = decodeValue(field, value, childPath, ctx);
  }
  // Aliases after the real keys so that the current spelling wins when a file has both.
  for (const [field, value, childPath] of deferredAliases) {
    const decoded = decodeValue(field.of, value, childPath, ctx);
    const absolute = field.target.includes('.');
    setIfAbsent(absolute ? ctx.root : out, field.target.split('.'), decoded);
    const current = absolute || !path ? field.target : `${path}.${field.target}`;
    ctx.warnings.push(`config: ${ctx.file}: "${childPath}" is deprecated; use "${current}"`);
  }
}

function setIfAbsent(target: RawConfig, parts: string[], value: unknown): void {
  let o = target;
  for (const p of parts.slice(0, -1)) {
    if (!isPlainObject(o[p])) o[p] = {};
    o = o[p] as RawConfig;
  }
  const last = parts[parts.length - 1]!;
  if (o[last] === undefined) o[last] = value;
}

function decodeValue(s: Schema, raw: unknown, path: string, ctx: DecodeContext): unknown {
  const v = weakFromSlice(s, raw);
  switch (s.kind) {
    case 'string':
      if (typeof v !== 'string') throw typeError(ctx, path, s, v);
      return v;
    case 'bool':
      if (typeof v !== 'boolean') throw typeError(ctx, path, s, v);
      return v;
    case 'int':
      if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw typeError(ctx, path, s, v);
      return v;
    case 'number':
      if (typeof v !== 'number' || !Number.isFinite(v)) throw typeError(ctx, path, s, v);
      return v;
    case 'duration':
    case 'durationString': {
      if (typeof v !== 'string') throw typeError(ctx, path, s, v);
      let ms: number;
      try {
        ms = parseGoDuration(v);
      } catch (err) {
        if (!(err instanceof DurationError)) throw err;
        throw new ConfigError('ERR_CONFIG_TYPE', `config: ${ctx.file}: field "${path}" is not a valid duration (${err.message}); use a Go duration such as "10s" or "1m30s"`, { field: path, file: ctx.file });
      }
      return s.kind === 'duration' ? ms : v;
    }
    case 'list': {
      if (!Array.isArray(v)) throw typeError(ctx, path, s, v);
      return v.map((item, i) => decodeValue(s.of, item, `${path}[${i}]`, ctx));
    }
    case 'map': {
      if (!isPlainObject(v)) throw typeError(ctx, path, s, v);
      const out: Record<string, unknown> = {};
      for (const [k, item] of Object.entries(v)) {
        if (item === null) continue;
        out[k] = decodeValue(s.of, item, `${path}.${k}`, ctx);
      }
      return out;
    }
    case 'object': {
      if (!isPlainObject(v)) throw typeError(ctx, path, s, v);
      const out: RawConfig = {};
      decodeObjectInto(s, v, path, ctx, out);
      return out;
    }
    case 'any':
      return unSlice(v);
    case 'configEntry':
      if (!isPlainObject(v)) throw typeError(ctx, path, s, v);
      return normalizeConfigEntry(v);
    case 'alias':
    case 'ignored':
      throw new Error(`unreachable: ${s.kind} handled by the object decoder`);
  }
}

/** Closest known key within edit distance 2, for "did you mean" hints. */
function suggest(key: string, known: string[]): string | undefined {
  let best: string | undefined;
  let bestD = 3;
  for (const k of known) {
    const d = editDistance(key, k);
    if (d < bestD) { bestD = d; best = k; }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 2) return 3;
  const prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = prev[j]!;
      prev[j] = Math.min(prev[j]! + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = tmp;
    }
  }
  return prev[b.length]!;
}

/**
 * Consul's merge of two sources: later scalars win, lists concatenate, maps overlay key by key,
 * objects merge field by field, free-form values are replaced whole.
 */
export function mergeSources(a: RawConfig, b: RawConfig, schema: Schema = CONFIG_SCHEMA): RawConfig {
  return mergeValue(schema, a, b) as RawConfig;
}

function mergeValue(s: Schema | undefined, a: unknown, b: unknown): unknown {
  if (b === undefined) return a;
  if (a === undefined) return b;
  switch (s?.kind) {
    case 'list':
      return [...(a as unknown[]), ...(b as unknown[])];
    case 'map':
      return { ...(a as object), ...(b as object) };
    case 'object': {
      const out: RawConfig = { ...(a as RawConfig) };
      for (const [k, v] of Object.entries(b as RawConfig)) out[k] = mergeValue(s.fields[k], out[k], v);
      return out;
    }
    default:
      return b;
  }
}
