// L7 intentions on the inbound side (Consul's RBAC HTTP filter from agent/xds/rbac.go): the
// destination's intentions as GET /v1/connect/intentions/match?by=destination answers them (already
// in the agent's precedence order); the first whose source covers the caller applies. Without
// Permissions its Action decides; with Permissions the first permission whose HTTP match holds
// decides. No intention for the caller: undefined, the L4 answer (the agent's authorize) decides.
//
// A request that no permission matches gets the default intention policy, not a deny and not the
// next intention down: rbac.go removes source precedence by giving every lower intention an
// "AND NOT <higher source>" (removeSourcePrecedence), so a `*` intention below a caller's L7
// intention never covers that caller, and what no RBAC policy matches gets the RBAC default (the
// allow-list's deny, or the deny-list's allow: intentionDefaultAllow). The default comes from the
// local agent (defaultFromAgentSelf); while it is unknown the proxy fails closed.

import { routeMatches, type HttpRequestInfo } from './routeMatch.ts';

export interface IntentionPermission { Action: string; HTTP?: Record<string, unknown> | null }
export interface L7Intention {
  SourceName: string;
  SourceNS?: string;
  Action?: string;
  Permissions?: IntentionPermission[] | null;
  Precedence?: number;
}

export interface L7Decision { allowed: boolean; reason: string }

/** What applies when nothing decides (Consul's intentionDefaultAllow) and the reason Consul gives for it. */
export interface IntentionDefault { allow: boolean; reason: string }

/**
 * The local agent's default from GET /v1/agent/self: DebugConfig.DefaultIntentionPolicy when set,
 * else the ACL default policy when ACLs are enabled, else allow (Consul with ACLs off).
 */
export function defaultFromAgentSelf(self: unknown): IntentionDefault {
  const dbg = (self as { DebugConfig?: Record<string, unknown> } | null)?.DebugConfig ?? {};
  const policy = dbg.DefaultIntentionPolicy;
  if (policy === 'allow' || policy === 'deny') return { allow: policy === 'allow', reason: 'Default intention policy' };
  const acl = (dbg.ACLResolverSettings as Record<string, unknown> | undefined)?.ACLDefaultPolicy;
  if (dbg.ACLsEnabled === true && acl === 'deny') return { allow: false, reason: 'Default behavior configured by ACLs' };
  return { allow: true, reason: 'Default behavior configured by ACLs' };
}

export function decideL7(intentions: readonly L7Intention[], sourceService: string, req: HttpRequestInfo, fallback?: IntentionDefault): L7Decision | undefined {
  const ixn = intentions.find((i) => i.SourceName === sourceService || i.SourceName === '*');
  if (!ixn) return undefined;
  const perms = ixn.Permissions ?? [];
  if (perms.length === 0) return { allowed: ixn.Action === 'allow', reason: `intention ${ixn.SourceName}: ${ixn.Action}` };
  for (let i = 0; i < perms.length; i++) {
    const p = perms[i]!;
    // A permission's HTTP block has the route match's fields (PathExact/Prefix/Regex, Header, Methods).
    if (routeMatches({ Match: p.HTTP ? { HTTP: p.HTTP } : undefined }, req)) {
      return { allowed: p.Action === 'allow', reason: `intention ${ixn.SourceName} permission ${i}: ${p.Action}` };
    }
  }
  if (!fallback) return { allowed: false, reason: `intention ${ixn.SourceName}: no permission matches and the default policy is not known yet` };
  return { allowed: fallback.allow, reason: `intention ${ixn.SourceName}: no permission matches; ${fallback.reason}: ${fallback.allow ? 'allow' : 'deny'}` };
}
