// From a request's token to an Identity (AccessorID + compiled authorizer), as Consul's ACL
// resolver does (agent/consul/acl.go): the token's policies, its roles' policies, and the policies
// its service and node identities stand for, compiled once and cached per secret until any ACL row
// changes (the store's aclGeneration), so a check on the hot path is a map lookup.
//
// Servers resolve from their own replica (storeResolver). Client agents have no replica: they ask a
// server (GET /v1/internal/acl/resolve with the token, which answers the token's own rules) and keep
// the answer for acl.token_ttl; while no server answers, acl.down_policy decides (Consul's): allow,
// deny, or (extend-cache / async-cache) keep using what was cached, deny when nothing was.
//
// Secrets: compared in constant time where they are compared; never logged (the AccessorID is).
import { chainedAuthorizer, staticAuthorizer, type Authorizer } from '../acl/authorizer.ts';
import {
  ANONYMOUS_ACCESSOR_ID, ANONYMOUS_SECRET_ID, ERR_ACL_NOT_FOUND, GLOBAL_MANAGEMENT_POLICY_ID, badSecret, secretsEqual, type Identity,
} from '../acl/identity.ts';
import { GLOBAL_MANAGEMENT_RULES, parseRules, type PolicyRules } from '../acl/rules.ts';
import type { RuntimeConfig } from '../config/runtime.ts';
import type { ACLToken, StateReader } from '../state/index.ts';
import { HttpError } from './errors.ts';
import type { ForwardedRequest, ForwardedResponse } from './forward.ts';

/** Resolves the secret a request carried ('' when none) to who it is. Throws 403 "ACL not found". */
export interface AclResolver {
  resolve(secret: string, signal?: AbortSignal): Identity | Promise<Identity>;
}

/** What every agent with ACLs on hands the HTTP layer (AgentBackend.acl). */
export interface AclBackend {
  resolver: AclResolver;
  /** acl.tokens.default: the token of requests that carry none (Consul's user token). */
  defaultToken: string;
  /** acl.tokens.agent: what a client agent's own calls to a server carry (leaf signing, anti-entropy). */
  agentToken?: string;
  /**
   * The token each agent-local service was registered with, by service ID (Consul's service
   * token): anti-entropy writes that service's catalog rows with it. Filled by the HTTP layer.
   */
  serviceTokens: Map<string, string>;
}

export function aclNotFound(why?: string): HttpError {
  return new HttpError(403, why ? `${ERR_ACL_NOT_FOUND}: ${why}` : ERR_ACL_NOT_FOUND, 'ERR_ACL_NOT_FOUND');
}

/** The rules a service identity stands for (Consul's ACLServiceIdentity.SyntheticPolicy). */
export function serviceIdentityRules(name: string): string {
  return `service "${name}" { policy = "write" }\nservice "${name}-sidecar-proxy" { policy = "write" }\nservice_prefix "" { policy = "read" }\nnode_prefix "" { policy = "read" }`;
}

/** The rules a node identity stands for (Consul's ACLNodeIdentity.SyntheticPolicy). */
export function nodeIdentityRules(name: string): string {
  return `node "${name}" { policy = "write" }\nservice_prefix "" { policy = "read" }`;
}

/** A token's rule texts: its policies, its roles' policies, its identities (this datacenter's). */
export function tokenRuleTexts(store: StateReader, token: ACLToken, datacenter: string): { id: string; rules: string }[] {
  const out: { id: string; rules: string }[] = [];
  const seen = new Set<string>();
  const addPolicy = (id: string): void => {
    if (seen.has(id)) return;
    seen.add(id);
    // A link to a deleted policy is ignored, as Consul does.
    const p = store.aclPolicy(id).value;
    if (!p) return;
    if (p.Datacenters.length > 0 && !p.Datacenters.includes(datacenter)) return;
    out.push({ id: `${p.ID}@${p.ModifyIndex}`, rules: p.Rules });
  };
  const addIdentities = (svc: ACLToken['ServiceIdentities'], nodes: ACLToken['NodeIdentities']): void => {
    for (const s of svc) {
      if (s.Datacenters && s.Datacenters.length > 0 && !s.Datacenters.includes(datacenter)) continue;
      out.push({ id: `svc:${s.ServiceName}`, rules: serviceIdentityRules(s.ServiceName) });
    }
    for (const n of nodes) if (n.Datacenter === datacenter) out.push({ id: `node:${n.NodeName}`, rules: nodeIdentityRules(n.NodeName) });
  };
  for (const l of token.Policies) addPolicy(l.ID);
  for (const l of token.Roles) {
    const r = store.aclRole(l.ID).value;
    if (!r) continue;
    for (const p of r.Policies) addPolicy(p.ID);
    addIdentities(r.ServiceIdentities, r.NodeIdentities);
  }
  addIdentities(token.ServiceIdentities, token.NodeIdentities);
  return out;
}

export function isExpired(token: { ExpirationTime: string }, now: number): boolean {
  if (token.ExpirationTime === '') return false;
  const t = Date.parse(token.ExpirationTime);
  return Number.isFinite(t) && t <= now;
}

/** Parsed rules by policy ID and revision: a policy's text is parsed once per change. */
class ParsedRules {
  readonly #cache = new Map<string, PolicyRules>();
  get(id: string, text: string): PolicyRules {
    let r = this.#cache.get(id);
    if (!r) {
      // Stored rules were checked before they were proposed; a text that no longer parses (an
      // older build's) grants nothing rather than failing every request of the token.
      try {
        r = parseRules(text);
      } catch {
        r = parseRules('');
      }
      if (this.#cache.size > 10_000) this.#cache.clear();
      this.#cache.set(id, r);
    }
    return r;
  }
}

const MAX_CACHED = 10_000;

/**
 * acl.tokens.agent_recovery (agent_master): works on this agent alone, even with no server reachable
 * (Consul's agent recovery authorizer: agent:write on this node, node:read everywhere).
 */
function recoveryIdentity(config: { nodeName: string; acl: { tokens: { agentRecovery: string } } }, secret: string): Identity | undefined {
  const recovery = config.acl.tokens.agentRecovery;
  if (recovery === '' || secret === '' || !secretsEqual(secret, recovery)) return undefined;
  const rules = parseRules(`agent "${config.nodeName.replace(/["\\]/g, '')}" { policy = "write" }\nnode_prefix "" { policy = "read" }`);
  return { accessorId: 'agent-recovery', authorizer: chainedAuthorizer([rules], false) };
}

/** Servers: resolves from the local replica; cached per secret until an ACL row changes. */
export function storeResolver(store: StateReader, config: Pick<RuntimeConfig, 'datacenter' | 'acl' | 'nodeName'>, serverSecret: () => string): AclResolver {
  const defaultAllow = config.acl.defaultPolicy === 'allow';
  const parsed = new ParsedRules();
  let generation = -1;
  const cache = new Map<string, { identity: Identity; expiresAt: number }>();
  const management: Identity = { accessorId: '', authorizer: chainedAuthorizer([parseRules(GLOBAL_MANAGEMENT_RULES)], false) };

  function compile(token: ACLToken): Identity {
    const rules = tokenRuleTexts(store, token, config.datacenter).map((t) => parsed.get(t.id, t.rules));
    return { accessorId: token.AccessorID, authorizer: chainedAuthorizer(rules, defaultAllow) };
  }

  return {
    resolve(secret) {
      const gen = store.aclGeneration();
      if (gen !== generation) {
        cache.clear();
        generation = gen;
      }
      const now = Date.now();
      const hit = cache.get(secret);
      if (hit && hit.expiresAt > now) return hit.identity;
      const why = badSecret(secret);
      if (why) throw aclNotFound(why);
      const server = serverSecret();
      if (server !== '' && secretsEqual(secret, server)) return management;
      const recovery = recoveryIdentity(config, secret);
      if (recovery) return recovery;
      const token = store.aclTokenBySecret(secret === '' ? ANONYMOUS_SECRET_ID : secret);
      if (!token || !secretsEqual(token.SecretID, secret === '' ? ANONYMOUS_SECRET_ID : secret)) {
        // No anonymous row yet (a leader has not initialised ACLs): the default policy alone.
        if (secret === '') return { accessorId: ANONYMOUS_ACCESSOR_ID, authorizer: staticAuthorizer(defaultAllow) };
        throw aclNotFound();
      }
      if (isExpired(token, now)) throw aclNotFound();
      const identity = compile(token);
      if (cache.size >= MAX_CACHED) cache.clear();
      const exp = token.ExpirationTime === '' ? Infinity : Date.parse(token.ExpirationTime);
      cache.set(secret, { identity, expiresAt: exp });
      return identity;
    },
  };
}

/** GET /v1/internal/acl/resolve's answer: the caller's own token, as a client agent needs it. */
export interface ResolvedTokenWire {
  AccessorID: string;
  /** Rule texts of every policy the token carries (policies, roles, identities). */
  Rules: string[];
  ExpirationTime: string;
  /** Whether the token holds the builtin global-management policy. */
  Management: boolean;
}

export function resolvedTokenWire(store: StateReader, token: ACLToken, datacenter: string): ResolvedTokenWire {
  return {
    AccessorID: token.AccessorID,
    Rules: tokenRuleTexts(store, token, datacenter).map((t) => t.rules),
    ExpirationTime: token.ExpirationTime,
    Management: token.Policies.some((p) => p.ID === GLOBAL_MANAGEMENT_POLICY_ID),
  };
}

type Forward = (req: ForwardedRequest, signal: AbortSignal) => Promise<ForwardedResponse>;

/** Client agents: asks a server, caches for acl.token_ttl, applies acl.down_policy when none answers. */
export function remoteResolver(forward: Forward, config: Pick<RuntimeConfig, 'acl' | 'nodeName'>, now: () => number = Date.now): AclResolver {
  const defaultAllow = config.acl.defaultPolicy === 'allow';
  const ttl = config.acl.tokenTtlMs > 0 ? config.acl.tokenTtlMs : 30_000;
  const cache = new Map<string, { identity: Identity; fetchedAt: number; expiresAt: number }>();
  const inflight = new Map<string, Promise<Identity>>();

  async function fetchIdentity(secret: string, signal: AbortSignal): Promise<Identity> {
    const res = await forward({
      method: 'GET', url: '/v1/internal/acl/resolve', body: Buffer.alloc(0),
      headers: secret === '' ? {} : { 'x-consul-token': secret },
    }, signal);
    if (res.status === 403) throw new HttpError(403, res.body.toString('utf8') || ERR_ACL_NOT_FOUND, 'ERR_ACL_NOT_FOUND');
    if (res.status !== 200) throw new Error(`resolving the token on a server answered ${res.status}: ${res.body.toString('utf8')}`);
    const wire = JSON.parse(res.body.toString('utf8')) as ResolvedTokenWire;
    const rules = wire.Rules.map((r) => {
      try {
        return parseRules(r);
      } catch {
        return parseRules('');
      }
    });
    const identity: Identity = { accessorId: wire.AccessorID, authorizer: chainedAuthorizer(rules, defaultAllow) };
    const exp = wire.ExpirationTime === '' ? Infinity : Date.parse(wire.ExpirationTime);
    if (cache.size >= MAX_CACHED) cache.clear();
    cache.set(secret, { identity, fetchedAt: now(), expiresAt: exp });
    return identity;
  }

  function downPolicy(secret: string, err: unknown): Identity {
    const cached = cache.get(secret);
    switch (config.acl.downPolicy) {
      case 'allow': return { accessorId: cached?.identity.accessorId ?? '', authorizer: staticAuthorizer(true) };
      case 'deny': return { accessorId: cached?.identity.accessorId ?? '', authorizer: staticAuthorizer(false) };
      default:
        if (cached) return cached.identity;
        throw err instanceof HttpError ? err : new HttpError(500, `ACL not found: no server could resolve the token: ${(err as Error).message}`, 'ERR_ACL_DOWN');
    }
  }

  return {
    async resolve(secret, signal) {
      const why = badSecret(secret);
      if (why) throw aclNotFound(why);
      const recovery = recoveryIdentity(config, secret);
      if (recovery) return recovery;
      const t = now();
      const hit = cache.get(secret);
      if (hit && hit.expiresAt <= t) {
        cache.delete(secret);
        throw aclNotFound();
      }
      if (hit && t - hit.fetchedAt < ttl) return hit.identity;
      let p = inflight.get(secret);
      if (!p) {
        p = fetchIdentity(secret, signal ?? new AbortController().signal).finally(() => inflight.delete(secret));
        inflight.set(secret, p);
      }
      // async-cache: an expired entry is served while the refresh runs.
      if (hit && config.acl.downPolicy === 'async-cache') {
        p.catch(() => undefined);
        return hit.identity;
      }
      try {
        return await p;
      } catch (err) {
        if (err instanceof HttpError && err.statusCode === 403) {
          cache.delete(secret);
          throw err;
        }
        return downPolicy(secret, err);
      }
    },
  };
}
