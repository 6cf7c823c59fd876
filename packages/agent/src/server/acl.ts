// A server's part of the ACL system (Consul's agent/consul/acl_server.go and leader's
// initializeACLs): tokens resolve from the local replica; a new leader makes sure the builtin
// global-management policy, the anonymous token, the servers' own secret and the configured
// initial management token exist; every write that reaches the leader over the server port is
// checked against the token it was forwarded with (rpc/tokenFrame.ts), and this server forwards its
// own writes with the servers' secret (they were checked where they entered).
import { randomUUID } from 'node:crypto';
import { ANONYMOUS_ACCESSOR_ID, ANONYMOUS_SECRET_ID, GLOBAL_MANAGEMENT_POLICY_ID, GLOBAL_MANAGEMENT_POLICY_NAME } from '../acl/identity.ts';
import { GLOBAL_MANAGEMENT_RULES } from '../acl/rules.ts';
import type { RuntimeConfig } from '../config/runtime.ts';
import { authorizeCommand } from '../http/aclEnforce.ts';
import { storeResolver, type AclBackend } from '../http/aclResolve.ts';
import { loadPersistedTokens } from '../http/aclTokens.ts';
import type { Logger } from '../logger.ts';
import { decodeCommand, type AclInitCommand, type StateStore } from '../state/index.ts';
import type { Writes } from './writes.ts';
import type { DnsLookup } from '../dns/index.ts';
import type { AclResolver } from '../http/aclResolve.ts';

/**
 * DNS answers only what the agent's DNS token (acl.tokens.dns, else acl.tokens.default, else the
 * anonymous token) may read: a service's instances need service:read and node:read on their node,
 * a node lookup node:read (Consul's DNS server resolves its requests with the agent's token).
 */
export function aclDnsLookup(lookup: DnsLookup, resolver: AclResolver, token: () => string): DnsLookup {
  const who = async () => resolver.resolve(token());
  return {
    ...lookup,
    async serviceInstances(service, tag) {
      const z = (await who()).authorizer;
      if (!z.allowed('service', 'read', service)) return [];
      return (await lookup.serviceInstances(service, tag)).filter((i) => z.allowed('node', 'read', i.node));
    },
    async node(name) {
      const z = (await who()).authorizer;
      const n = await lookup.node(name);
      return n && z.allowed('node', 'read', n.node) ? n : undefined;
    },
  };
}

/** The aclInit command a new leader proposes (state/acl.ts aclInit keeps rows that exist). */
export function aclInitCommand(config: Pick<RuntimeConfig, 'acl'>, now = new Date()): AclInitCommand {
  const created = now.toISOString();
  const cmd: AclInitCommand = {
    type: 'aclInit',
    GlobalManagement: {
      ID: GLOBAL_MANAGEMENT_POLICY_ID, Name: GLOBAL_MANAGEMENT_POLICY_NAME,
      Description: 'Builtin Policy that grants unlimited access', Rules: GLOBAL_MANAGEMENT_RULES, Datacenters: [],
    },
    Anonymous: {
      AccessorID: ANONYMOUS_ACCESSOR_ID, SecretID: ANONYMOUS_SECRET_ID, Description: 'Anonymous Token', CreateTime: created,
    },
    ServerSecret: randomUUID(),
  };
  const initial = config.acl.tokens.initialManagement;
  if (initial !== '') {
    cmd.InitialManagement = {
      AccessorID: randomUUID(), SecretID: initial, Description: 'Initial Management Token',
      Policies: [{ ID: GLOBAL_MANAGEMENT_POLICY_ID }], CreateTime: created,
    };
  }
  return cmd;
}

export interface ServerAclOptions {
  config: Pick<RuntimeConfig, 'acl' | 'datacenter' | 'dataDir' | 'nodeName'>;
  store: StateStore;
  writes: Writes;
  apply: (cmd: AclInitCommand) => Promise<{ ok: boolean }>;
  logger: Logger;
}

/** Wires ACLs into a server; undefined (and nothing changed) while acl.enabled is false. */
export function setupServerAcl(o: ServerAclOptions): (AclBackend & { dnsToken: () => string; leaderChanged(isLocal: boolean): void }) | undefined {
  if (!o.config.acl.enabled) return undefined;
  loadPersistedTokens(o.config);
  const log = o.logger.child({ component: 'agent.acl' });
  const resolver = storeResolver(o.store, o.config, () => o.store.aclServerSecret());
  o.writes.forwardToken = () => o.store.aclServerSecret();
  o.writes.authorizeForwarded = (token, command) => {
    const cmd = decodeCommand(command);
    const identity = resolver.resolve(token ?? '');
    if (identity instanceof Promise) throw new Error('the store resolver answers synchronously');
    authorizeCommand(identity, o.store, cmd);
  };
  let leading = false;
  async function initialize(): Promise<void> {
    for (let attempt = 0; leading && attempt < 10; attempt++) {
      try {
        const r = await o.apply(aclInitCommand(o.config));
        if (r.ok) {
          log.info('ACL system initialized');
          return;
        }
      } catch (err) {
        log.warn({ err: (err as Error).message }, 'failed to initialize ACLs; retrying');
      }
      await new Promise((r) => setTimeout(r, 500 * (attempt + 1)).unref());
    }
  }
  const tokens = o.config.acl.tokens;
  return {
    resolver,
    dnsToken: () => tokens.dns || tokens.default,
    defaultToken: tokens.default,
    agentToken: tokens.agent,
    serviceTokens: new Map(),
    leaderChanged(isLocal) {
      leading = isLocal;
      if (isLocal) void initialize();
    },
  };
}
