// L7 intentions on the inbound side (Consul's RBAC HTTP filter from agent/xds/rbac.go): the
// destination's intentions as GET /v1/connect/intentions/match?by=destination answers them (already
// in the agent's precedence order); the first whose source covers the caller applies. Without
// Permissions its Action decides; with Permissions the first permission whose HTTP match holds
// decides, and a request no permission matches is denied (Consul applies the default policy; the
// proxy does not know it, so it fails closed). No intention for the caller: undefined, the L4
// answer (the agent's authorize) decides.

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

export function decideL7(intentions: readonly L7Intention[], sourceService: string, req: HttpRequestInfo): L7Decision | undefined {
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
  return { allowed: false, reason: `intention ${ixn.SourceName}: no permission matches` };
}
