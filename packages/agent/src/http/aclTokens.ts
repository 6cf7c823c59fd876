// The agent's own tokens (acl.tokens.*) set at runtime: Consul's PUT /v1/agent/token/<kind>
// (`trellis acl set-agent-token`), kept in <data_dir>/acl-tokens.json when
// acl.enable_token_persistence is on and read back at start, where they win over the config
// file's (as Consul's). The file is written 0600; tokens are never logged.
import fs from 'node:fs';
import path from 'node:path';
import type { RuntimeConfig } from '../config/runtime.ts';

export type AgentTokenKind = keyof RuntimeConfig['acl']['tokens'];

/** URL names (Consul's current and legacy ones) → the config field. */
export const AGENT_TOKEN_KINDS: Readonly<Record<string, AgentTokenKind>> = {
  default: 'default', acl_token: 'default',
  agent: 'agent', acl_agent_token: 'agent',
  agent_recovery: 'agentRecovery', agent_master: 'agentRecovery', acl_agent_master_token: 'agentRecovery',
  replication: 'replication', acl_replication_token: 'replication',
  config_file_service_registration: 'configFileServiceRegistration',
  dns: 'dns',
};

/** The file's keys (Consul's persisted-token names). */
const FILE_KEYS: Readonly<Record<AgentTokenKind, string>> = {
  default: 'default', agent: 'agent', agentRecovery: 'agent_recovery', replication: 'replication',
  configFileServiceRegistration: 'config_file_service_registration', dns: 'dns', initialManagement: 'initial_management',
};

export const TOKENS_FILE = 'acl-tokens.json';

function tokensFile(config: Pick<RuntimeConfig, 'dataDir'>): string | undefined {
  return config.dataDir ? path.join(config.dataDir, TOKENS_FILE) : undefined;
}

/** At start: persisted tokens replace the configured ones (only with enable_token_persistence). */
export function loadPersistedTokens(config: Pick<RuntimeConfig, 'dataDir' | 'acl'>): void {
  const file = tokensFile(config);
  if (!config.acl.enableTokenPersistence || !file) return;
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    return; // none persisted yet (or unreadable: the configured tokens stay)
  }
  if (typeof raw !== 'object' || raw === null) return;
  for (const [kind, key] of Object.entries(FILE_KEYS) as [AgentTokenKind, string][]) {
    const v = (raw as Record<string, unknown>)[key];
    if (typeof v === 'string' && v !== '' && kind !== 'initialManagement') config.acl.tokens[kind] = v;
  }
}

/** Sets one token in the running agent, persisting every set token when asked to. */
export function setAgentToken(config: Pick<RuntimeConfig, 'dataDir' | 'acl'>, kind: AgentTokenKind, token: string): void {
  config.acl.tokens[kind] = token;
  const file = tokensFile(config);
  if (!config.acl.enableTokenPersistence || !file) return;
  const out: Record<string, string> = {};
  for (const [k, key] of Object.entries(FILE_KEYS) as [AgentTokenKind, string][]) {
    if (k !== 'initialManagement' && config.acl.tokens[k] !== '') out[key] = config.acl.tokens[k];
  }
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(out), { mode: 0o600 });
  fs.renameSync(tmp, file);
}
