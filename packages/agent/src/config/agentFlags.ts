// The flags of `trellis agent`, named as Consul's (agent/config/flags.go), and their mapping onto
// config-file keys so that flags and files merge through one path.

import { ConfigError } from './errors.ts';
import { parseFlags, type FlagSpec, type ParsedFlags } from './flags.ts';
import type { ConfigFormat } from './file.ts';
import type { RawConfig } from './schema.ts';

interface AgentFlag extends FlagSpec {
  /** Dotted config key the flag sets; absent for flags handled specially (dev, config-file, ...). */
  readonly key?: string;
}

const f = (name: string, kind: FlagSpec['kind'], key: string | undefined, usage: string, extra: Partial<AgentFlag> = {}): AgentFlag =>
  ({ name, kind, usage, ...(key ? { key } : {}), ...extra });

export const AGENT_FLAGS: readonly AgentFlag[] = [
  f('advertise', 'string', 'advertise_addr', 'Sets the advertise address to use.', { placeholder: 'address' }),
  f('advertise-wan', 'string', 'advertise_addr_wan', 'Sets address to advertise on WAN instead of -advertise address.', { placeholder: 'address' }),
  f('bind', 'string', 'bind_addr', 'Sets the bind address for cluster communication.', { placeholder: 'address' }),
  f('bootstrap', 'bool', 'bootstrap', 'Sets server to bootstrap mode.'),
  f('bootstrap-expect', 'int', 'bootstrap_expect', 'Sets server to expect bootstrap mode.', { placeholder: 'n' }),
  f('client', 'string', 'client_addr', 'Sets the address to bind for client access. This includes HTTP, DNS and gRPC (if configured).', { placeholder: 'address' }),
  f('config-dir', 'list', undefined, "Path to a directory to read configuration files from. This will read every file ending in '.json' as configuration in this directory in alphabetical order. Can be specified multiple times.", { placeholder: 'path' }),
  f('config-file', 'list', undefined, 'Path to a JSON file to read configuration from. Can be specified multiple times.', { placeholder: 'path' }),
  f('config-format', 'string', undefined, "Config files are in this format irrespective of their extension. Must be 'hcl' or 'json'", { placeholder: 'json' }),
  f('data-dir', 'string', 'data_dir', 'Path to a data directory to store agent state.', { placeholder: 'path' }),
  f('datacenter', 'string', 'datacenter', 'Datacenter of the agent.', { placeholder: 'name' }),
  f('dev', 'bool', undefined, 'Starts the agent in development mode: a single server, state in memory, bound to 127.0.0.1.'),
  f('dns-port', 'int', 'ports.dns', 'DNS port to use.', { placeholder: 'port' }),
  f('domain', 'string', 'domain', 'Domain to use for DNS interface.', { placeholder: 'domain' }),
  f('enable-local-script-checks', 'bool', 'enable_local_script_checks', 'Enables health check scripts from configuration file.'),
  f('enable-script-checks', 'bool', 'enable_script_checks', 'Enables health check scripts.'),
  f('encrypt', 'string', 'encrypt', 'Provides the gossip encryption key.', { placeholder: 'key' }),
  f('grpc-port', 'int', 'ports.grpc', 'Sets the gRPC API port to listen on.', { placeholder: 'port' }),
  f('hcl', 'list', undefined, 'hcl config fragment. Can be specified multiple times.', { placeholder: 'fragment' }),
  f('http-port', 'int', 'ports.http', 'Sets the HTTP API port to listen on.', { placeholder: 'port' }),
  f('join', 'list', 'start_join', 'Address of an agent to join at start time. Can be specified multiple times.', { placeholder: 'address' }),
  f('join-wan', 'list', 'start_join_wan', 'Address of an agent to join -wan at start time. Can be specified multiple times.', { placeholder: 'address' }),
  f('log-json', 'bool', 'log_json', 'Output logs in JSON format.'),
  f('log-level', 'string', 'log_level', 'Log level of the agent: trace, debug, info, warn or error.', { placeholder: 'level' }),
  f('node', 'string', 'node_name', 'Name of this node. Must be unique in the cluster.', { placeholder: 'name' }),
  f('node-id', 'string', 'node_id', 'A unique ID for this node across space and time. Defaults to a randomly-generated ID that persists in the data-dir.', { placeholder: 'uuid' }),
  f('node-meta', 'map', 'node_meta', 'An arbitrary metadata key/value pair for this node, of the format `key:value`. Can be specified multiple times.', { placeholder: 'key:value', mapSeparator: ':' }),
  f('pid-file', 'string', 'pid_file', 'Path to file to store agent PID.', { placeholder: 'path' }),
  f('primary-datacenter', 'string', 'primary_datacenter', 'The datacenter that is authoritative for ACLs, intentions and the CA.', { placeholder: 'name' }),
  f('recursor', 'list', 'recursors', 'Address of an upstream DNS server. Can be specified multiple times.', { placeholder: 'address' }),
  f('rejoin', 'bool', 'rejoin_after_leave', 'Ignores a previous leave and attempts to rejoin the cluster.'),
  f('retry-interval', 'duration', 'retry_interval', 'Time to wait between join attempts.', { placeholder: 'duration' }),
  f('retry-interval-wan', 'duration', 'retry_interval_wan', 'Time to wait between join -wan attempts.', { placeholder: 'duration' }),
  f('retry-join', 'list', 'retry_join', 'Address of an agent to join at start time with retries enabled. Can be specified multiple times.', { placeholder: 'address' }),
  f('retry-join-wan', 'list', 'retry_join_wan', 'Address of an agent to join -wan at start time with retries enabled. Can be specified multiple times.', { placeholder: 'address' }),
  f('retry-max', 'int', 'retry_max', 'Maximum number of join attempts. Defaults to 0, which will retry indefinitely.', { placeholder: 'n' }),
  f('retry-max-wan', 'int', 'retry_max_wan', 'Maximum number of join -wan attempts. Defaults to 0, which will retry indefinitely.', { placeholder: 'n' }),
  f('serf-lan-port', 'int', 'ports.serf_lan', 'Sets the Serf LAN port to listen on.', { placeholder: 'port' }),
  f('serf-wan-bind', 'string', 'serf_wan', 'Address to bind Serf WAN listeners to.', { placeholder: 'address' }),
  f('serf-wan-port', 'int', 'ports.serf_wan', 'Sets the Serf WAN port to listen on.', { placeholder: 'port' }),
  f('server', 'bool', 'server', 'Switches agent to server mode.'),
  f('server-port', 'int', 'ports.server', 'Sets the server port to listen on.', { placeholder: 'port' }),
  f('ui', 'bool', 'ui_config.enabled', 'Enables the built-in static web UI server.'),
  f('ui-content-path', 'string', 'ui_config.content_path', 'Sets the external UI path to a string. Defaults to: /ui/', { placeholder: 'path' }),
  f('ui-dir', 'string', 'ui_config.dir', 'Path to directory containing the web UI resources.', { placeholder: 'path' }),
];

export interface AgentFlagResult {
  readonly devMode: boolean;
  /** -config-file and -config-dir paths, in command-line order (Consul keeps one list). */
  readonly configPaths: string[];
  readonly configFormat: ConfigFormat;
  /** List-valued flags: merged before the config files, so file lists append after them. */
  readonly slices: RawConfig;
  /** Scalar flags: merged after every file, so flags win. */
  readonly values: RawConfig;
  readonly args: string[];
  /** -hcl fragments, in order: each is a config source read after the config files (as in Consul). */
  readonly hcl: string[];
}

function setPath(target: RawConfig, dotted: string, value: unknown): void {
  const parts = dotted.split('.');
  let o = target;
  for (const p of parts.slice(0, -1)) {
    if (typeof o[p] !== 'object' || o[p] === null) o[p] = {};
    o = o[p] as RawConfig;
  }
  o[parts[parts.length - 1]!] = value;
}

/** Parses `trellis agent` arguments. FlagErrors propagate. */
export function parseAgentFlags(argv: readonly string[]): AgentFlagResult {
  const parsed: ParsedFlags = parseFlags(AGENT_FLAGS, argv);
  const format = (parsed.values.get('config-format') as string | undefined) ?? '';
  if (format !== '' && format !== 'json' && format !== 'hcl') {
    throw new ConfigError('ERR_CONFIG_INVALID', `config: -config-format must be 'json' or 'hcl', not "${format}"`, { field: 'config-format' });
  }
  const slices: RawConfig = {};
  const values: RawConfig = {};
  for (const spec of AGENT_FLAGS) {
    if (!spec.key || !parsed.values.has(spec.name)) continue;
    const v = parsed.values.get(spec.name);
    setPath(spec.kind === 'list' ? slices : values, spec.key, v);
  }
  return {
    devMode: parsed.values.get('dev') === true,
    configPaths: parsed.occurrences.filter((o) => o.name === 'config-file' || o.name === 'config-dir').map((o) => o.raw),
    configFormat: format as ConfigFormat,
    slices,
    values,
    args: parsed.args,
    hcl: parsed.occurrences.filter((o) => o.name === 'hcl').map((o) => o.raw),
  };
}
