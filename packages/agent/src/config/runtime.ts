// The agent's one typed configuration. Consul's flag and JSON names are the outside skin; inside,
// every field is camelCase with its unit in its name, every default lives in DEFAULT_SOURCE below,
// and validateConfig() is the single place that decides what is allowed.
//
// Sources merge in Consul's order (agent/config/builder.go):
//   defaults < dev-mode defaults < list-valued flags < config files (in order) < other flags
// Later scalars win, lists concatenate, maps overlay (see mergeSources).

import fs from 'node:fs';
import os from 'node:os';
import net from 'node:net';
import { ConfigError } from './errors.ts';
import { parseAgentFlags } from './agentFlags.ts';
import { loadConfigPaths, parseConfigText, type ConfigSource } from './file.ts';
import { CONFIG_SCHEMA, mergeSources, type RawConfig } from './schema.ts';
import { refuseUnenforcedProtection } from './security.ts';
import { toCheckDefinition, toServiceDefinition, validateMeta, type CheckDefinition, type ServiceDefinition } from './serviceDefinition.ts';

export const TRELLIS_VERSION = '0.1.0';

export type LogLevel = 'TRACE' | 'DEBUG' | 'INFO' | 'WARN' | 'ERROR';

/** Ports; -1 means the listener is disabled. */
export interface RuntimePorts {
  http: number;
  https: number;
  dns: number;
  grpc: number;
  grpcTls: number;
  server: number;
  serfLan: number;
  serfWan: number;
  sidecarMinPort: number;
  sidecarMaxPort: number;
  exposeMinPort: number;
  exposeMaxPort: number;
}

export interface GossipConfig {
  gossipNodes: number;
  gossipIntervalMs: number;
  probeIntervalMs: number;
  probeTimeoutMs: number;
  suspicionMult: number;
  retransmitMult: number;
}

export interface TlsSettings {
  caFile: string;
  caPath: string;
  certFile: string;
  keyFile: string;
  tlsMinVersion: string;
  tlsCipherSuites: string;
  verifyIncoming: boolean;
  verifyOutgoing: boolean;
}

export interface RuntimeConfig {
  version: string;
  devMode: boolean;
  serverMode: boolean;
  bootstrap: boolean;
  bootstrapExpect: number;
  nodeName: string;
  /** '' when not configured: the agent generates one (and persists it in dataDir unless devMode). */
  nodeId: string;
  nodeMeta: Record<string, string>;
  datacenter: string;
  primaryDatacenter: string;
  /**
   * primary_gateways: WAN addresses (host:port) of the primary datacenter's mesh gateways, with
   * connect.enable_mesh_gateway_wan_federation the way a secondary's servers reach the primary's
   * before the WAN pool says where its gateways are.
   */
  primaryGateways: string[];
  /** primary_gateways_interval (Consul: 30 s). */
  primaryGatewaysIntervalMs: number;
  /** Always fully qualified with a trailing dot, e.g. "consul.". */
  domain: string;
  altDomain: string;
  /** '' only in dev mode, where all state is in memory. */
  dataDir: string;
  pidFile: string;

  bindAddr: string;
  /** Where the WAN gossip pool listens (Consul's serf_wan, -serf-wan-bind); bindAddr unless set. */
  serfWanBindAddr: string;
  advertiseAddrLan: string;
  advertiseAddrWan: string;
  /** Node tagged addresses as Consul builds them: lan, lan_ipv4|lan_ipv6, wan, wan_ipv4|wan_ipv6. */
  taggedAddresses: Record<string, string>;
  clientAddrs: string[];
  /** IPs each client listener binds (addresses.<x>, else client_addr); empty when its port is -1. */
  httpAddrs: string[];
  httpsAddrs: string[];
  dnsAddrs: string[];
  grpcAddrs: string[];
  ports: RuntimePorts;

  startJoinLan: string[];
  startJoinWan: string[];
  retryJoinLan: string[];
  retryJoinWan: string[];
  retryIntervalLanMs: number;
  retryIntervalWanMs: number;
  /** 0 retries forever. */
  retryMaxAttemptsLan: number;
  retryMaxAttemptsWan: number;
  rejoinAfterLeave: boolean;
  leaveOnTerminate: boolean;
  skipLeaveOnInterrupt: boolean;
  reconnectTimeoutLanMs: number;
  reconnectTimeoutWanMs: number;
  /** Anti-entropy's full-sync period before scaling by cluster size (Consul's ae_interval, 1 min). */
  aeIntervalMs: number;

  /** Base64 gossip key (16, 24 or 32 bytes), '' for none. */
  encryptKey: string;
  encryptVerifyIncoming: boolean;
  encryptVerifyOutgoing: boolean;
  gossipLan: GossipConfig;
  gossipWan: GossipConfig;

  raftMultiplier: number;
  /** Already scaled by raftMultiplier. */
  raftElectionTimeoutMs: number;
  raftHeartbeatTimeoutMs: number;
  raftLeaderLeaseTimeoutMs: number;
  raftSnapshotThreshold: number;
  raftSnapshotIntervalMs: number;
  raftTrailingLogs: number;
  sessionTtlMinMs: number;
  leaveDrainTimeMs: number;
  rpcHoldTimeoutMs: number;
  autopilot: {
    cleanupDeadServers: boolean;
    lastContactThresholdMs: number;
    maxTrailingLogs: number;
    minQuorum: number;
    serverStabilizationTimeMs: number;
  };

  logLevel: LogLevel;
  logJson: boolean;

  ui: { enabled: boolean; dir: string; contentPath: string; metricsProvider: string; dashboardUrlTemplates: Record<string, string> };
  http: { responseHeaders: Record<string, string>; blockEndpoints: string[]; allowWriteHttpFrom: string[]; maxHeaderBytes: number; useCache: boolean };
  limits: {
    httpMaxConnsPerClient: number;
    httpsHandshakeTimeoutMs: number;
    rpcHandshakeTimeoutMs: number;
    /** Requests per second; Infinity when unlimited (Consul's rpc_rate = -1). */
    rpcRate: number;
    rpcMaxBurst: number;
    rpcMaxConnsPerClient: number;
    kvMaxValueSizeBytes: number;
    txnMaxReqLenBytes: number;
  };
  defaultQueryTimeMs: number;
  maxQueryTimeMs: number;
  /**
   * Consul's default_intention_policy: the answer when no intention matches ('' = the ACL
   * default, which is allow while Trellis has no ACLs).
   */
  defaultIntentionPolicy: '' | 'allow' | 'deny';
  checkUpdateIntervalMs: number;

  dns: {
    allowStale: boolean;
    maxStaleMs: number;
    nodeTtlMs: number;
    /** Per-service TTLs; the key "*" is the wildcard default, as in Consul. */
    serviceTtlMs: Record<string, number>;
    udpAnswerLimit: number;
    aRecordLimit: number;
    enableTruncate: boolean;
    onlyPassing: boolean;
    disableCompression: boolean;
    recursors: string[];
    recursorStrategy: 'sequential' | 'random';
    recursorTimeoutMs: number;
    useCache: boolean;
    cacheMaxAgeMs: number;
    soa: { refresh: number; retry: number; expire: number; minTtl: number };
  };

  acl: {
    enabled: boolean;
    defaultPolicy: 'allow' | 'deny';
    downPolicy: 'allow' | 'deny' | 'extend-cache' | 'async-cache';
    policyTtlMs: number;
    tokenTtlMs: number;
    roleTtlMs: number;
    enableTokenPersistence: boolean;
    enableTokenReplication: boolean;
    enableKeyListPolicy: boolean;
    tokens: { initialManagement: string; agent: string; agentRecovery: string; default: string; replication: string; configFileServiceRegistration: string; dns: string };
  };

  connect: { enabled: boolean; caProvider: string; caConfig: Record<string, unknown>; enableMeshGatewayWanFederation: boolean };
  /** config_entries.bootstrap, as written (decoded by the config-entry code). */
  configEntriesBootstrap: unknown[];

  telemetry: { metricsPrefix: string; disableHostname: boolean; filterDefault: boolean; prefixFilter: string[]; prometheusRetentionTimeMs: number };

  tls: {
    defaults: TlsSettings;
    /** Each protocol's block inherits every field it does not set from defaults. */
    internalRpc: TlsSettings & { verifyServerHostname: boolean };
    https: TlsSettings;
    grpc: TlsSettings & { useAutoCert: boolean };
  };

  enableScriptChecks: boolean;
  enableLocalScriptChecks: boolean;
  /** Registered at start in the HTTP API's JSON shape (PUT /v1/agent/service/register). */
  services: ServiceDefinition[];
  /** Registered at start in the HTTP API's JSON shape (PUT /v1/agent/check/register). */
  checks: CheckDefinition[];

  /** The -config-file/-config-dir paths this config was read from (for reload). */
  configFiles: string[];
}

/** Consul's defaults (agent/config/default.go and consul.DefaultConfig), in config-file shape. */
const DEFAULT_SOURCE: RawConfig = {
  ae_interval: 60_000,
  acl: {
    enabled: false, default_policy: 'allow', down_policy: 'extend-cache', policy_ttl: 30_000, token_ttl: 30_000, role_ttl: 30_000,
    enable_token_persistence: false, enable_token_replication: false, enable_key_list_policy: false,
    tokens: { initial_management: '', agent: '', agent_recovery: '', default: '', replication: '', config_file_service_registration: '', dns: '' },
  },
  advertise_addr: '',
  advertise_addr_wan: '',
  alt_domain: '',
  autopilot: { cleanup_dead_servers: true, last_contact_threshold: 200, max_trailing_logs: 250, min_quorum: 0, server_stabilization_time: 10_000 },
  bind_addr: '0.0.0.0',
  bootstrap: false,
  bootstrap_expect: 0,
  check_update_interval: 5 * 60_000,
  checks: [],
  client_addr: '127.0.0.1',
  config_entries: { bootstrap: [] },
  connect: { enabled: false, ca_provider: '', ca_config: {}, enable_mesh_gateway_wan_federation: false },
  data_dir: '',
  datacenter: 'dc1',
  default_intention_policy: '',
  default_query_time: 300_000,
  domain: 'consul.',
  enable_script_checks: false,
  encrypt: '',
  encrypt_verify_incoming: true,
  encrypt_verify_outgoing: true,
  http_config: { response_headers: {}, block_endpoints: [], allow_write_http_from: [], max_header_bytes: 0, use_cache: true },
  log_json: false,
  log_level: 'INFO',
  max_query_time: 600_000,
  node_id: '',
  node_meta: {},
  node_name: '',
  pid_file: '',
  primary_datacenter: '',
  primary_gateways: [],
  primary_gateways_interval: 30_000,
  recursors: [],
  rejoin_after_leave: false,
  retry_interval: 30_000,
  retry_interval_wan: 30_000,
  retry_join: [],
  retry_join_wan: [],
  retry_max: 0,
  retry_max_wan: 0,
  reconnect_timeout: 72 * 3600_000,
  reconnect_timeout_wan: 72 * 3600_000,
  server: false,
  services: [],
  session_ttl_min: 10_000,
  start_join: [],
  start_join_wan: [],
  tls: {
    defaults: {
      ca_file: '', ca_path: '', cert_file: '', key_file: '', tls_min_version: 'TLSv1_2', tls_cipher_suites: '',
      verify_incoming: false, verify_outgoing: false, verify_server_hostname: false,
    },
    grpc: { use_auto_cert: false },
  },
  ui_config: { enabled: false, dir: '', content_path: '/ui/', metrics_provider: '', dashboard_url_templates: {} },
  gossip_lan: { gossip_interval: 200, gossip_nodes: 3, retransmit_mult: 4, probe_interval: 1000, probe_timeout: 500, suspicion_mult: 4 },
  gossip_wan: { gossip_interval: 500, gossip_nodes: 4, retransmit_mult: 4, probe_interval: 5000, probe_timeout: 3000, suspicion_mult: 6 },
  dns_config: {
    allow_stale: true, a_record_limit: 0, udp_answer_limit: 3, max_stale: 87600 * 3600_000, recursor_timeout: 2000,
    recursor_strategy: 'sequential', cache_max_age: 0, node_ttl: 0, service_ttl: {}, enable_truncate: false, only_passing: false,
    disable_compression: false, use_cache: false,
    soa: { refresh: 3600, retry: 600, expire: 86400, min_ttl: 0 },
  },
  limits: {
    http_max_conns_per_client: 200, https_handshake_timeout: 5000, rpc_handshake_timeout: 5000, rpc_rate: -1,
    rpc_max_burst: 1000, rpc_max_conns_per_client: 100, kv_max_value_size: 512 * 1024, txn_max_req_len: 512 * 1024,
  },
  performance: { leave_drain_time: 5000, raft_multiplier: 5, rpc_hold_timeout: 7000 },
  ports: {
    dns: 8600, http: 8500, https: -1, grpc: -1, grpc_tls: -1, serf_lan: 8301, serf_wan: 8302, server: 8300,
    sidecar_min_port: 21000, sidecar_max_port: 21255, expose_min_port: 21500, expose_max_port: 21755,
  },
  raft_protocol: 3,
  raft_snapshot_threshold: 16384,
  raft_snapshot_interval: 30_000,
  raft_trailing_logs: 10240,
  telemetry: { metrics_prefix: 'consul', disable_hostname: false, filter_default: true, prefix_filter: [], prometheus_retention_time: 0 },
};

/** What -dev changes (Consul's DevSource), plus Trellis' single-server bootstrap. */
const DEV_SOURCE: RawConfig = {
  bind_addr: '127.0.0.1',
  client_addr: '127.0.0.1',
  server: true,
  bootstrap: true,
  log_level: 'DEBUG',
  ui_config: { enabled: true },
  connect: { enabled: true },
  performance: { raft_multiplier: 1 },
  ports: { grpc: 8502 },
  gossip_lan: { gossip_interval: 100, probe_interval: 100, probe_timeout: 100, suspicion_mult: 3 },
  gossip_wan: { gossip_interval: 100, probe_interval: 100, probe_timeout: 100, suspicion_mult: 3 },
};

/** Raft timing before the multiplier (hashicorp/raft defaults that Consul scales). */
const RAFT_TIMING = { electionTimeoutMs: 1000, heartbeatTimeoutMs: 1000, leaderLeaseTimeoutMs: 500 };
/** Consul's DevConsulSource: fast elections for a single dev server (not scaled further). */
const RAFT_TIMING_DEV = { electionTimeoutMs: 52, heartbeatTimeoutMs: 35, leaderLeaseTimeoutMs: 20 };
const MAX_RAFT_MULTIPLIER = 10;

/** Things outside the arguments that building a config consults; injectable for tests. */
export interface ConfigEnv {
  hostname?: () => string;
  networkInterfaces?: () => NodeJS.Dict<os.NetworkInterfaceInfo[]>;
}

export interface BuildResult {
  config: RuntimeConfig;
  /** Non-fatal findings (deprecated keys, ignored keys, names DNS cannot serve): print them. */
  warnings: string[];
}

/** The configuration with no flags and no files: data_dir is '' and the advertise address is the
 *  bind address (0.0.0.0) since nothing is detected from the host; use it as a reference for the
 *  default values, not to start an agent. */
export function defaults(env: ConfigEnv = {}): RuntimeConfig {
  const warnings: string[] = [];
  return assemble(DEFAULT_SOURCE, { devMode: false, configFiles: [], detectAdvertise: false }, env, warnings);
}

/**
 * Builds and validates the runtime configuration from `trellis agent` arguments. Throws FlagError
 * for malformed flags and ConfigError for everything else (unreadable files, unknown keys, wrong
 * types, values that validateConfig refuses).
 */
export function buildRuntimeConfig(argv: readonly string[], env: ConfigEnv = {}): BuildResult {
  const flags = parseAgentFlags(argv);
  if (flags.args.length > 0) {
    throw new ConfigError('ERR_FLAG', `unexpected argument "${flags.args[0]}": the agent takes only flags (did you forget a '-' or a flag's value?)`);
  }
  const warnings: string[] = [];
  const files = loadConfigPaths(flags.configPaths, flags.configFormat, warnings);
  // -hcl fragments come after the files and before the other flags, as in Consul's builder.
  const fragments: ConfigSource[] = [];
  flags.hcl.forEach((text, i) => {
    const name = `flags-${i}.hcl`;
    const raw = parseConfigText(text, name, warnings, CONFIG_SCHEMA, 'hcl');
    if (raw) fragments.push({ name, raw });
  });
  const sources: ConfigSource[] = [
    { name: 'defaults', raw: DEFAULT_SOURCE },
    ...(flags.devMode ? [{ name: 'dev', raw: DEV_SOURCE }] : []),
    { name: 'command line flags', raw: flags.slices },
    ...files,
    ...fragments,
    { name: 'command line flags', raw: flags.values },
  ];
  let merged: RawConfig = {};
  for (const s of sources) merged = mergeSources(merged, s.raw);
  refuseUnenforcedProtection(merged, sources, warnings);
  // Checked before anything that inspects the host (address detection), as it is the first thing
  // a new user gets wrong and the message says what to do.
  if (!flags.devMode && !merged['data_dir']) throw dataDirRequired();
  const config = assemble(merged, { devMode: flags.devMode, configFiles: flags.configPaths, detectAdvertise: true }, env, warnings);
  validateConfig(config, warnings);
  return { config, warnings };
}

// --- assembly: merged raw config → RuntimeConfig -------------------------------------------------

/**
 * Reads the merged config, which always holds DEFAULT_SOURCE: every key read with `get` has its
 * default there (one source of defaults); a key without one is a programming error, caught by the
 * unit test that builds the defaults. `optional` is for the few keys whose absence means "derive
 * it" (an addresses.* entry, a TLS block inheriting tls.defaults, leave_on_terminate by role).
 */
function readers(raw: RawConfig): { get: <T>(path: string) => T; optional: <T>(path: string) => T | undefined } {
  const optional = <T>(path: string): T | undefined => {
    let o: unknown = raw;
    for (const p of path.split('.')) {
      if (typeof o !== 'object' || o === null) return undefined;
      o = (o as RawConfig)[p];
    }
    return o as T | undefined;
  };
  const get = <T>(path: string): T => {
    const v = optional<T>(path);
    if (v === undefined) throw new Error(`config: "${path}" has no default in DEFAULT_SOURCE`);
    return v;
  };
  return { get, optional };
}

function invalid(field: string, message: string): ConfigError {
  return new ConfigError('ERR_CONFIG_INVALID', message, { field });
}

function dataDirRequired(): ConfigError {
  return invalid('data_dir', 'data_dir cannot be empty: give -data-dir <path> (state is kept there) or run with -dev to keep state in memory');
}

function assemble(raw: RawConfig, meta: { devMode: boolean; configFiles: string[]; detectAdvertise: boolean }, env: ConfigEnv, warnings: string[]): RuntimeConfig {
  const { get, optional } = readers(raw);
  const devMode = meta.devMode;
  const serverMode = get<boolean>('server');
  const datacenter = get<string>('datacenter').toLowerCase();
  const primaryDatacenter = get<string>('primary_datacenter').toLowerCase() || datacenter;

  // Consul: 0 disables a listener, like -1. Other values pass through for validateConfig to judge.
  const port = (key: string): number => {
    const v = get<number>(`ports.${key}`);
    return v === 0 ? -1 : v;
  };
  const ports: RuntimePorts = {
    http: port('http'), https: port('https'), dns: port('dns'), grpc: port('grpc'), grpcTls: port('grpc_tls'),
    server: port('server'), serfLan: port('serf_lan'), serfWan: port('serf_wan'),
    sidecarMinPort: port('sidecar_min_port'), sidecarMaxPort: port('sidecar_max_port'),
    exposeMinPort: port('expose_min_port'), exposeMaxPort: port('expose_max_port'),
  };

  // Addresses. go-sockaddr templates ("{{ GetPrivateIP }}") are Consul's; we refuse them clearly.
  const bindAddr = singleIp('bind_addr', get<string>('bind_addr'));
  const serfWanRaw = optional<string>('serf_wan') ?? '';
  const serfWanBindAddr = serfWanRaw ? singleIp('serf_wan', serfWanRaw) : bindAddr;
  const advertiseRaw = get<string>('advertise_addr');
  const advertiseWanRaw = get<string>('advertise_addr_wan');
  if (advertiseRaw !== '' && isAnyAddr(advertiseRaw)) throw invalid('advertise_addr', `advertise_addr cannot be ${advertiseRaw}: Advertise address cannot be 0.0.0.0, :: or [::]; give an address other agents can reach`);
  if (advertiseWanRaw !== '' && isAnyAddr(advertiseWanRaw)) throw invalid('advertise_addr_wan', `advertise_addr_wan cannot be ${advertiseWanRaw}: Advertise WAN address cannot be 0.0.0.0, :: or [::]`);
  let advertiseAddrLan = advertiseRaw ? singleIp('advertise_addr', advertiseRaw) : bindAddr;
  if (isAnyAddr(advertiseAddrLan) && meta.detectAdvertise) advertiseAddrLan = detectAdvertiseAddr(advertiseAddrLan, env);
  const advertiseAddrWan = advertiseWanRaw ? singleIp('advertise_addr_wan', advertiseWanRaw) : advertiseAddrLan;
  const taggedAddresses: Record<string, string> = { lan: advertiseAddrLan, wan: advertiseAddrWan };
  taggedAddresses[net.isIPv6(advertiseAddrLan) ? 'lan_ipv6' : 'lan_ipv4'] = advertiseAddrLan;
  taggedAddresses[net.isIPv6(advertiseAddrWan) ? 'wan_ipv6' : 'wan_ipv4'] = advertiseAddrWan;

  const clientAddrs = ipList('client_addr', get<string>('client_addr'));
  if (clientAddrs.length === 0) warnings.push('client_addr is empty, client services (DNS, HTTP, HTTPS, gRPC) will not be listening for connections');
  const listenAddrs = (key: string, p: number): string[] => {
    if (p <= 0) return [];
    const own = optional<string>(`addresses.${key}`) ?? '';  // unset: the client addresses
    return own ? ipList(`addresses.${key}`, own) : clientAddrs;
  };

  const logLevel = normalizeLogLevel(get<string>('log_level'));
  const nodeName = (get<string>('node_name') || (env.hostname ?? os.hostname)()).trim();
  let domain = get<string>('domain').trim().toLowerCase();
  if (domain !== '' && !domain.endsWith('.')) domain += '.';
  let altDomain = get<string>('alt_domain').trim().toLowerCase();
  if (altDomain !== '' && !altDomain.endsWith('.')) altDomain += '.';

  const raftMultiplier = get<number>('performance.raft_multiplier');
  const timing = devMode ? RAFT_TIMING_DEV : {
    electionTimeoutMs: RAFT_TIMING.electionTimeoutMs * raftMultiplier,
    heartbeatTimeoutMs: RAFT_TIMING.heartbeatTimeoutMs * raftMultiplier,
    leaderLeaseTimeoutMs: RAFT_TIMING.leaderLeaseTimeoutMs * raftMultiplier,
  };

  const gossip = (pool: 'gossip_lan' | 'gossip_wan'): GossipConfig => ({
    gossipNodes: get<number>(`${pool}.gossip_nodes`),
    gossipIntervalMs: get<number>(`${pool}.gossip_interval`),
    probeIntervalMs: get<number>(`${pool}.probe_interval`),
    probeTimeoutMs: get<number>(`${pool}.probe_timeout`),
    suspicionMult: get<number>(`${pool}.suspicion_mult`),
    retransmitMult: get<number>(`${pool}.retransmit_mult`),
  });

  // tls.defaults comes from DEFAULT_SOURCE; each other block (internal_rpc, https, grpc) inherits
  // what it does not set from tls.defaults, as in Consul.
  const tlsDefaults: TlsSettings = {
    caFile: get<string>('tls.defaults.ca_file'),
    caPath: get<string>('tls.defaults.ca_path'),
    certFile: get<string>('tls.defaults.cert_file'),
    keyFile: get<string>('tls.defaults.key_file'),
    tlsMinVersion: get<string>('tls.defaults.tls_min_version'),
    tlsCipherSuites: get<string>('tls.defaults.tls_cipher_suites'),
    verifyIncoming: get<boolean>('tls.defaults.verify_incoming'),
    verifyOutgoing: get<boolean>('tls.defaults.verify_outgoing'),
  };
  const tlsBlock = (prefix: string): TlsSettings => ({
    caFile: optional<string>(`${prefix}.ca_file`) ?? tlsDefaults.caFile,
    caPath: optional<string>(`${prefix}.ca_path`) ?? tlsDefaults.caPath,
    certFile: optional<string>(`${prefix}.cert_file`) ?? tlsDefaults.certFile,
    keyFile: optional<string>(`${prefix}.key_file`) ?? tlsDefaults.keyFile,
    tlsMinVersion: optional<string>(`${prefix}.tls_min_version`) ?? tlsDefaults.tlsMinVersion,
    tlsCipherSuites: optional<string>(`${prefix}.tls_cipher_suites`) ?? tlsDefaults.tlsCipherSuites,
    verifyIncoming: optional<boolean>(`${prefix}.verify_incoming`) ?? tlsDefaults.verifyIncoming,
    verifyOutgoing: optional<boolean>(`${prefix}.verify_outgoing`) ?? tlsDefaults.verifyOutgoing,
  });

  let bootstrap = get<boolean>('bootstrap');
  let bootstrapExpect = get<number>('bootstrap_expect');
  if (bootstrapExpect === 1) {
    // Consul: bootstrap_expect = 1 is bootstrap mode.
    bootstrap = true;
    bootstrapExpect = 0;
    warnings.push('bootstrap_expect = 1: this is the same as bootstrap mode');
  }

  const raftProtocol = get<number>('raft_protocol');
  if (raftProtocol !== 3) throw invalid('raft_protocol', `raft_protocol version ${raftProtocol} is not supported: only 3 is`);
  const rpcRate = get<number>('limits.rpc_rate');
  const enableScriptChecks = get<boolean>('enable_script_checks');

  return {
    version: TRELLIS_VERSION,
    devMode,
    serverMode,
    bootstrap,
    bootstrapExpect,
    nodeName,
    nodeId: get<string>('node_id').trim().toLowerCase(),
    nodeMeta: get<Record<string, string>>('node_meta'),
    datacenter,
    primaryDatacenter,
    primaryGateways: get<string[]>('primary_gateways'),
    primaryGatewaysIntervalMs: get<number>('primary_gateways_interval'),
    domain,
    altDomain,
    dataDir: get<string>('data_dir'),
    pidFile: get<string>('pid_file'),

    bindAddr,
    serfWanBindAddr,
    advertiseAddrLan,
    advertiseAddrWan,
    taggedAddresses,
    clientAddrs,
    httpAddrs: listenAddrs('http', ports.http),
    httpsAddrs: listenAddrs('https', ports.https),
    dnsAddrs: listenAddrs('dns', ports.dns),
    grpcAddrs: listenAddrs('grpc', ports.grpc),
    ports,

    startJoinLan: get<string[]>('start_join'),
    startJoinWan: get<string[]>('start_join_wan'),
    retryJoinLan: get<string[]>('retry_join'),
    retryJoinWan: get<string[]>('retry_join_wan'),
    retryIntervalLanMs: get<number>('retry_interval'),
    retryIntervalWanMs: get<number>('retry_interval_wan'),
    retryMaxAttemptsLan: get<number>('retry_max'),
    retryMaxAttemptsWan: get<number>('retry_max_wan'),
    rejoinAfterLeave: get<boolean>('rejoin_after_leave'),
    // Consul: clients leave on SIGTERM and servers do not; servers skip leave on SIGINT.
    leaveOnTerminate: optional<boolean>('leave_on_terminate') ?? !serverMode,
    skipLeaveOnInterrupt: optional<boolean>('skip_leave_on_interrupt') ?? serverMode,
    reconnectTimeoutLanMs: get<number>('reconnect_timeout'),
    reconnectTimeoutWanMs: get<number>('reconnect_timeout_wan'),
    aeIntervalMs: get<number>('ae_interval'),

    encryptKey: get<string>('encrypt'),
    encryptVerifyIncoming: get<boolean>('encrypt_verify_incoming'),
    encryptVerifyOutgoing: get<boolean>('encrypt_verify_outgoing'),
    gossipLan: gossip('gossip_lan'),
    gossipWan: gossip('gossip_wan'),

    raftMultiplier,
    raftElectionTimeoutMs: timing.electionTimeoutMs,
    raftHeartbeatTimeoutMs: timing.heartbeatTimeoutMs,
    raftLeaderLeaseTimeoutMs: timing.leaderLeaseTimeoutMs,
    raftSnapshotThreshold: get<number>('raft_snapshot_threshold'),
    raftSnapshotIntervalMs: get<number>('raft_snapshot_interval'),
    raftTrailingLogs: get<number>('raft_trailing_logs'),
    sessionTtlMinMs: get<number>('session_ttl_min'),
    leaveDrainTimeMs: get<number>('performance.leave_drain_time'),
    rpcHoldTimeoutMs: get<number>('performance.rpc_hold_timeout'),
    autopilot: {
      cleanupDeadServers: get<boolean>('autopilot.cleanup_dead_servers'),
      lastContactThresholdMs: get<number>('autopilot.last_contact_threshold'),
      maxTrailingLogs: get<number>('autopilot.max_trailing_logs'),
      minQuorum: get<number>('autopilot.min_quorum'),
      serverStabilizationTimeMs: get<number>('autopilot.server_stabilization_time'),
    },

    logLevel,
    logJson: get<boolean>('log_json'),

    ui: {
      enabled: get<boolean>('ui_config.enabled'),
      dir: get<string>('ui_config.dir'),
      contentPath: normalizeContentPath(get<string>('ui_config.content_path')),
      metricsProvider: get<string>('ui_config.metrics_provider'),
      dashboardUrlTemplates: get<Record<string, string>>('ui_config.dashboard_url_templates'),
    },
    http: {
      responseHeaders: get<Record<string, string>>('http_config.response_headers'),
      blockEndpoints: get<string[]>('http_config.block_endpoints'),
      allowWriteHttpFrom: get<string[]>('http_config.allow_write_http_from'),
      maxHeaderBytes: get<number>('http_config.max_header_bytes'),
      useCache: get<boolean>('http_config.use_cache'),
    },
    limits: {
      httpMaxConnsPerClient: get<number>('limits.http_max_conns_per_client'),
      httpsHandshakeTimeoutMs: get<number>('limits.https_handshake_timeout'),
      rpcHandshakeTimeoutMs: get<number>('limits.rpc_handshake_timeout'),
      rpcRate: rpcRate < 0 ? Infinity : rpcRate,
      rpcMaxBurst: get<number>('limits.rpc_max_burst'),
      rpcMaxConnsPerClient: get<number>('limits.rpc_max_conns_per_client'),
      kvMaxValueSizeBytes: get<number>('limits.kv_max_value_size'),
      txnMaxReqLenBytes: get<number>('limits.txn_max_req_len'),
    },
    defaultQueryTimeMs: get<number>('default_query_time'),
    defaultIntentionPolicy: get<string>('default_intention_policy') as '' | 'allow' | 'deny',
    maxQueryTimeMs: get<number>('max_query_time'),
    checkUpdateIntervalMs: get<number>('check_update_interval'),

    dns: {
      allowStale: get<boolean>('dns_config.allow_stale'),
      maxStaleMs: get<number>('dns_config.max_stale'),
      nodeTtlMs: get<number>('dns_config.node_ttl'),
      serviceTtlMs: get<Record<string, number>>('dns_config.service_ttl'),
      udpAnswerLimit: get<number>('dns_config.udp_answer_limit'),
      aRecordLimit: get<number>('dns_config.a_record_limit'),
      enableTruncate: get<boolean>('dns_config.enable_truncate'),
      onlyPassing: get<boolean>('dns_config.only_passing'),
      disableCompression: get<boolean>('dns_config.disable_compression'),
      recursors: get<string[]>('recursors'),
      recursorStrategy: get<string>('dns_config.recursor_strategy') as 'sequential' | 'random',
      recursorTimeoutMs: get<number>('dns_config.recursor_timeout'),
      useCache: get<boolean>('dns_config.use_cache'),
      cacheMaxAgeMs: get<number>('dns_config.cache_max_age'),
      soa: {
        refresh: get<number>('dns_config.soa.refresh'),
        retry: get<number>('dns_config.soa.retry'),
        expire: get<number>('dns_config.soa.expire'),
        minTtl: get<number>('dns_config.soa.min_ttl'),
      },
    },

    acl: {
      enabled: get<boolean>('acl.enabled'),
      defaultPolicy: get<string>('acl.default_policy') as 'allow' | 'deny',
      downPolicy: get<string>('acl.down_policy') as RuntimeConfig['acl']['downPolicy'],
      policyTtlMs: get<number>('acl.policy_ttl'),
      tokenTtlMs: get<number>('acl.token_ttl'),
      roleTtlMs: get<number>('acl.role_ttl'),
      enableTokenPersistence: get<boolean>('acl.enable_token_persistence'),
      enableTokenReplication: get<boolean>('acl.enable_token_replication'),
      enableKeyListPolicy: get<boolean>('acl.enable_key_list_policy'),
      tokens: {
        initialManagement: get<string>('acl.tokens.initial_management'),
        agent: get<string>('acl.tokens.agent'),
        agentRecovery: get<string>('acl.tokens.agent_recovery'),
        default: get<string>('acl.tokens.default'),
        replication: get<string>('acl.tokens.replication'),
        configFileServiceRegistration: get<string>('acl.tokens.config_file_service_registration'),
        dns: get<string>('acl.tokens.dns'),
      },
    },

    connect: {
      enabled: get<boolean>('connect.enabled'),
      caProvider: get<string>('connect.ca_provider'),
      caConfig: get<Record<string, unknown>>('connect.ca_config'),
      enableMeshGatewayWanFederation: get<boolean>('connect.enable_mesh_gateway_wan_federation'),
    },
    configEntriesBootstrap: get<unknown[]>('config_entries.bootstrap'),

    telemetry: {
      metricsPrefix: get<string>('telemetry.metrics_prefix'),
      disableHostname: get<boolean>('telemetry.disable_hostname'),
      filterDefault: get<boolean>('telemetry.filter_default'),
      prefixFilter: get<string[]>('telemetry.prefix_filter'),
      prometheusRetentionTimeMs: get<number>('telemetry.prometheus_retention_time'),
    },

    tls: {
      defaults: tlsDefaults,
      // A verify_server_hostname written in tls.defaults (Consul's documentation has had it there) is
      // honoured rather than dropped: it can only make the server port stricter.
      internalRpc: { ...tlsBlock('tls.internal_rpc'), verifyServerHostname: optional<boolean>('tls.internal_rpc.verify_server_hostname') ?? get<boolean>('tls.defaults.verify_server_hostname') },
      https: tlsBlock('tls.https'),
      grpc: { ...tlsBlock('tls.grpc'), useAutoCert: get<boolean>('tls.grpc.use_auto_cert') },
    },

    enableScriptChecks,
    enableLocalScriptChecks: optional<boolean>('enable_local_script_checks') ?? enableScriptChecks,
    services: get<RawConfig[]>('services').map((s, i) => toServiceDefinition(s, `services[${i}]`)),
    checks: get<RawConfig[]>('checks').map((c, i) => toCheckDefinition(c, `checks[${i}]`)),

    configFiles: meta.configFiles,
  };
}

function isAnyAddr(a: string): boolean {
  return a === '0.0.0.0' || a === '::' || a === '[::]';
}

function stripBrackets(a: string): string {
  return a.startsWith('[') && a.endsWith(']') ? a.slice(1, -1) : a;
}

function ipList(field: string, value: string): string[] {
  if (value.includes('{{')) {
    throw invalid(field, `${field} "${value}" is a go-sockaddr template, which Trellis does not support yet; give one or more IP addresses separated by spaces`);
  }
  return value.split(/\s+/).filter(Boolean).map((a) => {
    if (a.startsWith('unix://')) throw invalid(field, `${field} cannot be a unix socket (${a}); give an IP address`);
    const ip = stripBrackets(a);
    if (net.isIP(ip) === 0) throw invalid(field, `${field}: invalid ip address: ${a}`);
    return ip;
  });
}

function singleIp(field: string, value: string): string {
  const list = ipList(field, value);
  if (list.length === 0) throw invalid(field, `${field} cannot be empty`);
  if (list.length > 1) throw invalid(field, `${field} cannot contain multiple addresses (${value}); use addresses.{dns,http,https} for more than one client address`);
  return list[0]!;
}

// go-sockaddr's notion of "private" (what Consul uses): the RFC 6890 special-purpose blocks that
// are not loopback or link-local, i.e. RFC 1918, shared address space, and the test networks.
const PRIVATE_V4 = [
  /^10\./, /^172\.(1[6-9]|2\d|3[01])\./, /^192\.168\./, /^100\.(6[4-9]|[7-9]\d|1[01]\d|12[0-7])\./,
  /^192\.0\.0\./, /^192\.0\.2\./, /^198\.1[89]\./, /^198\.51\.100\./, /^203\.0\.113\./,
];

/** Consul: binding to 0.0.0.0 advertises the single private IPv4 address (or public IPv6 for ::). */
function detectAdvertiseAddr(bind: string, env: ConfigEnv): string {
  const ifaces = (env.networkInterfaces ?? os.networkInterfaces)();
  const v6 = bind !== '0.0.0.0';
  const kind = v6 ? 'public IPv6' : 'private IPv4';
  const found: string[] = [];
  for (const list of Object.values(ifaces)) {
    for (const a of list ?? []) {
      if (a.internal) continue;
      if (!v6 && a.family === 'IPv4' && PRIVATE_V4.some((re) => re.test(a.address))) found.push(a.address);
      if (v6 && a.family === 'IPv6' && !/^(fe80|fc|fd)/i.test(a.address)) found.push(a.address);
    }
  }
  const unique = [...new Set(found)];
  if (unique.length === 0) throw invalid('bind_addr', `No ${kind} address found: bind_addr is ${bind}, so an address to advertise must be detected; set -bind or -advertise to this host's address`);
  if (unique.length > 1) throw invalid('bind_addr', `Multiple ${kind} addresses found (${unique.join(', ')}). Please configure one with 'bind' and/or 'advertise'.`);
  return unique[0]!;
}

const LOG_LEVELS: Readonly<Record<string, LogLevel>> = {
  trace: 'TRACE', debug: 'DEBUG', info: 'INFO', warn: 'WARN', warning: 'WARN', err: 'ERROR', error: 'ERROR',
};

function normalizeLogLevel(v: string): LogLevel {
  const l = LOG_LEVELS[v.trim().toLowerCase()];
  if (!l) throw invalid('log_level', `log_level cannot be "${v}": use trace, debug, info, warn or error`);
  return l;
}

function normalizeContentPath(p: string): string {
  let out = p.startsWith('/') ? p : `/${p}`;
  if (!out.endsWith('/')) out += '/';
  return out;
}

// --- validation -----------------------------------------------------------------------------------

const BASIC_NAME_RE = /^[a-z0-9_-]+$/;
const DNS_INVALID_RE = /[^A-Za-z0-9-]/;
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const DNS_LABEL_RE = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;

function validateBasicName(field: string, value: string, allowEmpty: boolean): void {
  if (value === '') {
    if (allowEmpty) return;
    throw invalid(field, `${field} cannot be empty`);
  }
  if (!BASIC_NAME_RE.test(value)) {
    throw invalid(field, `${field} can only contain lowercase alphanumeric, - or _ characters. received: "${value}"`);
  }
}

/**
 * Checks every rule about combinations and ranges. Throws ConfigError (code ERR_CONFIG_INVALID,
 * `field` set) on the first violation; appends non-fatal findings to `warnings`.
 */
export function validateConfig(c: RuntimeConfig, warnings: string[] = []): string[] {
  validateBasicName('datacenter', c.datacenter, false);
  validateBasicName('primary_datacenter', c.primaryDatacenter, true);
  if (!c.devMode) {
    if (c.dataDir === '') throw dataDirRequired();
    let st: fs.Stats | undefined;
    try {
      st = fs.statSync(c.dataDir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw invalid('data_dir', `Error getting info on data_dir "${c.dataDir}": ${(err as Error).message}`);
    }
    if (st && !st.isDirectory()) throw invalid('data_dir', `data_dir "${c.dataDir}" is not a directory`);
  }

  if (c.nodeName === '') throw invalid('node_name', 'node_name cannot be empty: give -node <name> (the hostname is used when it is not set)');
  if (DNS_INVALID_RE.test(c.nodeName)) {
    warnings.push(`Node name "${c.nodeName}" will not be discoverable via DNS due to invalid characters. Valid characters include all alpha-numerics and dashes.`);
  } else if (c.nodeName.length > 63) {
    warnings.push(`Node name "${c.nodeName}" will not be discoverable via DNS due to it being too long. Valid lengths are between 1 and 63 bytes.`);
  }
  if (c.nodeId !== '' && !UUID_RE.test(c.nodeId)) {
    throw invalid('node_id', `node_id "${c.nodeId}" is not a valid UUID: use the form 8-4-4-4-12 hex digits, e.g. "adf4238a-882b-9ddc-4a9d-5b6758e4159e", or leave it unset to generate one`);
  }
  validateMeta(c.nodeMeta, 'node_meta');

  if (c.domain === '' || c.domain === '.') throw invalid('domain', 'domain cannot be empty: the default is "consul."');
  for (const label of c.domain.slice(0, -1).split('.')) {
    if (!DNS_LABEL_RE.test(label) || label.length > 63) throw invalid('domain', `domain "${c.domain}" is not a valid DNS name: each label must be 1-63 letters, digits or dashes`);
  }
  if (c.altDomain !== '') {
    const first = c.altDomain.split('.')[0]!;
    if (['service', 'connect', 'node', 'query', 'addr', c.datacenter].includes(first)) {
      throw invalid('alt_domain', `alt_domain cannot start with {service,connect,node,query,addr,${c.datacenter}}; got "${c.altDomain}"`);
    }
  }

  if (c.bootstrap && !c.serverMode) throw invalid('bootstrap', "'bootstrap = true' requires 'server = true' (add -server)");
  if (c.bootstrapExpect < 0) throw invalid('bootstrap_expect', `bootstrap_expect cannot be ${c.bootstrapExpect}. Must be greater than or equal to zero`);
  if (c.bootstrapExpect > 0 && !c.serverMode) throw invalid('bootstrap_expect', "'bootstrap_expect > 0' requires 'server = true' (add -server)");
  if (c.bootstrapExpect > 0 && c.devMode) throw invalid('bootstrap_expect', "'bootstrap_expect > 0' not allowed in dev mode");
  if (c.bootstrapExpect > 0 && c.bootstrap) throw invalid('bootstrap_expect', "'bootstrap_expect > 0' and 'bootstrap = true' are mutually exclusive: use one");
  if (c.serverMode && !c.devMode && !c.bootstrap && c.bootstrapExpect === 2) {
    warnings.push('bootstrap_expect = 2: A cluster with 2 servers will provide no failure tolerance.');
  } else if (c.serverMode && !c.bootstrap && c.bootstrapExpect > 2 && c.bootstrapExpect % 2 === 0) {
    warnings.push('bootstrap_expect is even number: A cluster with an even number of servers does not achieve optimum fault tolerance.');
  }

  if (!Number.isInteger(c.raftMultiplier) || c.raftMultiplier < 1 || c.raftMultiplier > MAX_RAFT_MULTIPLIER) {
    throw invalid('performance.raft_multiplier', `performance.raft_multiplier cannot be ${c.raftMultiplier}. Must be between 1 and ${MAX_RAFT_MULTIPLIER}`);
  }

  const p = c.ports;
  for (const [name, key] of PORT_KEYS) {
    const v = p[name];
    // We accept only -1 (and 0, normalized to -1) below 1, so that a typo such as -8500 is reported
    // instead of silently turning a listener off as Consul would.
    if (v !== -1 && (!Number.isInteger(v) || v < 1 || v > 65535)) {
      throw invalid(key, `${key} cannot be ${v}: must be a port between 1 and 65535, or -1 to disable it`);
    }
  }
  if (p.sidecarMaxPort < p.sidecarMinPort) throw invalid('ports.sidecar_min_port', `sidecar_min_port (${p.sidecarMinPort}) must be less than sidecar_max_port (${p.sidecarMaxPort}). To disable, set both to zero.`);
  if (p.exposeMaxPort < p.exposeMinPort) throw invalid('ports.expose_min_port', `expose_min_port (${p.exposeMinPort}) must be less than expose_max_port (${p.exposeMaxPort}). To disable, set both to zero.`);
  checkAddressesUnique(c);

  if (c.encryptKey !== '') {
    const bytes = Buffer.from(c.encryptKey, 'base64');
    const canonical = bytes.toString('base64');
    if (canonical !== c.encryptKey || ![16, 24, 32].includes(bytes.length)) {
      throw invalid('encrypt', `encrypt has invalid key: must be 16, 24 or 32 bytes encoded in standard base64 (got ${canonical === c.encryptKey ? `${bytes.length} bytes` : 'text that is not base64'}); generate one with 'trellis keygen'`);
    }
  }

  const positive: Array<[string, number]> = [
    ['retry_interval', c.retryIntervalLanMs], ['retry_interval_wan', c.retryIntervalWanMs],
    ['session_ttl_min', c.sessionTtlMinMs], ['raft_snapshot_interval', c.raftSnapshotIntervalMs],
    ['default_query_time', c.defaultQueryTimeMs], ['max_query_time', c.maxQueryTimeMs],
    ['check_update_interval', c.checkUpdateIntervalMs], ['ae_interval', c.aeIntervalMs],
  ];
  for (const [field, ms] of positive) {
    if (!(ms > 0)) throw invalid(field, `${field} cannot be ${ms}ms: must be a positive duration such as "30s"`);
  }
  const nonNegative: Array<[string, number]> = [
    ['retry_max', c.retryMaxAttemptsLan], ['retry_max_wan', c.retryMaxAttemptsWan],
    ['dns_config.udp_answer_limit', c.dns.udpAnswerLimit], ['dns_config.a_record_limit', c.dns.aRecordLimit],
    ['raft_snapshot_threshold', c.raftSnapshotThreshold], ['raft_trailing_logs', c.raftTrailingLogs],
    ['autopilot.max_trailing_logs', c.autopilot.maxTrailingLogs],
    ['limits.http_max_conns_per_client', c.limits.httpMaxConnsPerClient],
    ['limits.rpc_max_conns_per_client', c.limits.rpcMaxConnsPerClient],
  ];
  for (const [field, n] of nonNegative) {
    if (n < 0) throw invalid(field, `${field} cannot be ${n}. Must be greater than or equal to zero`);
  }
  if (c.limits.kvMaxValueSizeBytes <= 0) throw invalid('limits.kv_max_value_size', `limits.kv_max_value_size cannot be ${c.limits.kvMaxValueSizeBytes}: must be a positive number of bytes`);
  if (c.limits.txnMaxReqLenBytes <= 0) throw invalid('limits.txn_max_req_len', `limits.txn_max_req_len cannot be ${c.limits.txnMaxReqLenBytes}: must be a positive number of bytes`);

  if (!['', 'allow', 'deny'].includes(c.defaultIntentionPolicy)) throw invalid('default_intention_policy', `default_intention_policy cannot be "${c.defaultIntentionPolicy}": use "allow" or "deny"`);
  if (!['allow', 'deny'].includes(c.acl.defaultPolicy)) throw invalid('acl.default_policy', `acl.default_policy cannot be "${c.acl.defaultPolicy}": use "allow" or "deny"`);
  if (!['allow', 'deny', 'extend-cache', 'async-cache'].includes(c.acl.downPolicy)) throw invalid('acl.down_policy', `acl.down_policy cannot be "${c.acl.downPolicy}": use "allow", "deny", "extend-cache" or "async-cache"`);
  if (!['sequential', 'random'].includes(c.dns.recursorStrategy)) throw invalid('dns_config.recursor_strategy', `dns_config.recursor_strategy cannot be "${c.dns.recursorStrategy}": use "sequential" or "random"`);
  for (const r of c.dns.recursors) {
    const host = stripBrackets(r.replace(/:\d+$/, ''));
    if (isAnyAddr(host)) throw invalid('recursors', `DNS recursor address cannot be 0.0.0.0, :: or [::] (got "${r}")`);
    if (r.startsWith('unix://')) throw invalid('recursors', `DNS Recursors cannot be unix sockets: ${r}`);
  }
  if (!c.devMode && c.ui.enabled && c.ui.dir !== '') {
    throw invalid('ui_config.dir', 'Both the ui_config.enabled and ui_config.dir (or -ui and -ui-dir) were specified, please provide only one.');
  }
  if (!/^[A-Za-z0-9/_-]+$/.test(c.ui.contentPath)) throw invalid('ui_config.content_path', `ui-content-path can only contain alphanumeric, -, _, or /. received: "${c.ui.contentPath}"`);
  if (c.connect.enableMeshGatewayWanFederation && !c.connect.enabled) {
    throw invalid('connect.enable_mesh_gateway_wan_federation', "'connect.enable_mesh_gateway_wan_federation=true' requires 'connect.enabled=true'");
  }
  // Consul's builder checks for WAN federation through mesh gateways, and one of Trellis's own:
  // server RPC crosses the gateways by the TLS server name, so the server port must speak TLS.
  if (c.connect.enableMeshGatewayWanFederation && !c.serverMode) {
    throw invalid('connect.enable_mesh_gateway_wan_federation', "'connect.enable_mesh_gateway_wan_federation = true' requires 'server = true'");
  }
  if (c.connect.enableMeshGatewayWanFederation && c.nodeName.includes('/')) {
    throw invalid('connect.enable_mesh_gateway_wan_federation', "'connect.enable_mesh_gateway_wan_federation = true' requires that 'node_name' not contain '/' characters");
  }
  // WAN gossip crosses the gateways too, and secondaries join through primary_gateways.
  if (c.connect.enableMeshGatewayWanFederation && c.retryJoinWan.length > 0) {
    throw invalid('retry_join_wan', "'retry_join_wan' is incompatible with 'connect.enable_mesh_gateway_wan_federation = true'");
  }
  if (c.connect.enableMeshGatewayWanFederation) {
    const t = c.tls.internalRpc;
    const missing = [!t.certFile && 'cert_file', !t.keyFile && 'key_file', !t.caFile && !t.caPath && 'ca_file (or ca_path)'].filter(Boolean);
    if (missing.length > 0) {
      throw invalid('connect.enable_mesh_gateway_wan_federation', `'connect.enable_mesh_gateway_wan_federation = true' requires TLS on the server port (servers reach each other through the mesh gateways by TLS server name): tls.internal_rpc (or tls.defaults) is missing ${missing.join(', ')}`);
    }
  }
  if (c.primaryGateways.length > 0) {
    if (!c.serverMode) throw invalid('primary_gateways', "'primary_gateways' requires 'server = true'");
    if (c.primaryDatacenter === c.datacenter) throw invalid('primary_gateways', "'primary_gateways' should only be configured in a secondary datacenter");
    for (const a of c.primaryGateways) {
      if (!/^(\[[0-9a-fA-F:.]+\]|[^\s:/[\]]+):\d{1,5}$/.test(a) || Number(a.slice(a.lastIndexOf(':') + 1)) > 65535) {
        throw invalid('primary_gateways', `primary_gateways: ${JSON.stringify(a)} is not host:port`);
      }
    }
  }

  for (const s of c.services) {
    for (const chk of s.Checks ?? []) {
      if (chk.ScriptArgs?.length && !c.enableLocalScriptChecks) {
        warnings.push(`service "${s.Name}": script check ${chk.Name ?? chk.ID ?? ''} will not run: enable_local_script_checks (or enable_script_checks) is off`);
      }
    }
  }
  for (const chk of c.checks) {
    if (!chk.Name) throw invalid('checks', `check ${JSON.stringify(chk.ID ?? '')}: name is required`);
  }
  return warnings;
}

const PORT_KEYS: ReadonlyArray<readonly [keyof RuntimePorts, string]> = [
  ['http', 'ports.http'], ['https', 'ports.https'], ['dns', 'ports.dns'], ['grpc', 'ports.grpc'], ['grpcTls', 'ports.grpc_tls'],
  ['server', 'ports.server'], ['serfLan', 'ports.serf_lan'], ['serfWan', 'ports.serf_wan'],
  ['sidecarMinPort', 'ports.sidecar_min_port'], ['sidecarMaxPort', 'ports.sidecar_max_port'],
  ['exposeMinPort', 'ports.expose_min_port'], ['exposeMaxPort', 'ports.expose_max_port'],
];

/** Two listeners on one host and port collide (DNS is TCP and UDP; the others are TCP). */
function checkAddressesUnique(c: RuntimeConfig): void {
  const inUse = new Map<string, string>();
  const claim = (name: string, hosts: string[], port: number) => {
    if (port <= 0) return;
    for (const h of hosts) {
      const key = `${h}:${port}`;
      const other = inUse.get(key);
      if (other) throw invalid(`ports.${name}`, `${name} address ${net.isIPv6(h) ? `[${h}]` : h}:${port} already configured for ${other}: give each listener its own port`);
      inUse.set(key, name);
    }
  };
  claim('dns', c.dnsAddrs, c.ports.dns);
  claim('http', c.httpAddrs, c.ports.http);
  claim('https', c.httpsAddrs, c.ports.https);
  claim('grpc', c.grpcAddrs, c.ports.grpc);
  claim('server', [c.bindAddr], c.ports.server);
  claim('serf_lan', [c.bindAddr], c.ports.serfLan);
  claim('serf_wan', [c.serfWanBindAddr], c.ports.serfWan);
}
