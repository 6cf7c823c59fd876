// Intentions as Consul evaluates them (agent/structs/intention.go, agent/consul/state/intention.go,
// config_entry_intention.go, agent/connect_auth.go). Pure: plain data in, plain data out.
//
// Since Consul 1.9 intentions are stored as service-intentions config entries: one entry per
// destination, one Source per caller. The legacy API and the authorizer see them flattened into
// Intention rows (ToIntention), ordered by precedence:
//
//   precedence  source      destination        (Consul's documented table; Trellis has one namespace)
//   9           web         db                 exact → exact
//   8           *           db                 wildcard → exact
//   6           web         *                  exact → wildcard
//   5           *           *                  wildcard → wildcard
//
// The most precise match wins: the destination's exactness counts first, then the source's. Among
// equal precedence, rows sort by (SourceNS, SourceName, DestinationNS, DestinationName), bytewise.
//
// Default when nothing matches: Consul's agent config default_intention_policy when set, else the
// ACL default (acl.default_policy); with ACLs off that is "allow": so, unless default_intention_policy
// or acl.default_policy is "deny", everything is allowed unless an intention denies it, and a
// `* → *` deny (precedence 5) turns the mesh into deny-by-default for every pair without a more
// precise allow (intentionDefault()).

export const WILDCARD = '*';
export const DEFAULT_NAMESPACE = 'default';

/** One intention as the legacy API shows it (structs.Intention's JSON, Consul CE: no partitions). */
export interface Intention {
  CreatedAt?: string;
  UpdatedAt?: string;
  ID?: string;
  Description?: string;
  SourceNS: string;
  SourceName: string;
  DestinationNS: string;
  DestinationName: string;
  SourcePeer?: string;
  SourceSamenessGroup?: string;
  SourceType: string;
  Action?: string;
  Permissions?: unknown[];
  Meta?: Record<string, string>;
  Precedence: number;
  CreateIndex: number;
  ModifyIndex: number;
}

/** The parts of a stored service-intentions entry this module reads. */
export interface IntentionsEntry {
  Name: string;
  Sources?: unknown;
  CreateIndex?: number;
  ModifyIndex?: number;
}

type Obj = Record<string, unknown>;
const str = (v: unknown): string => (typeof v === 'string' ? v : '');
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Exact parts of (namespace, name): a wildcard namespace 0, a wildcard name 1, else 2 (countExact). */
export function countExact(name: string, namespace = DEFAULT_NAMESPACE): number {
  if (namespace === WILDCARD) return 0;
  return name === WILDCARD ? 1 : 2;
}

/** Consul's UpdatePrecedence: max 9/6/3 by the destination's exact parts, minus the source's missing ones. */
export function precedence(sourceName: string, destinationName: string, sourceNS = DEFAULT_NAMESPACE, destinationNS = DEFAULT_NAMESPACE): number {
  const max = [3, 6, 9][countExact(destinationName, destinationNS)]!;
  return max - (2 - countExact(sourceName, sourceNS));
}

/** Consul's IntentionPrecedenceSorter: precedence descending, then the 4-tuple bytewise ascending. */
export function comparePrecedence(a: Intention, b: Intention): number {
  if (a.Precedence !== b.Precedence) return b.Precedence - a.Precedence;
  for (const k of ['SourceNS', 'SourceName', 'DestinationNS', 'DestinationName'] as const) {
    if (a[k] !== b[k]) return a[k] < b[k] ? -1 : 1;
  }
  return 0;
}

/** One Source of an entry as an Intention row (Consul's SourceIntention → Intention, ToIntention). */
export function sourceToIntention(entry: IntentionsEntry, src: Obj): Intention {
  const ixn: Intention = {
    SourceNS: str(src.Namespace) || DEFAULT_NAMESPACE,
    SourceName: str(src.Name),
    DestinationNS: DEFAULT_NAMESPACE,
    DestinationName: entry.Name,
    SourceType: str(src.Type) || 'consul',
    Precedence: 0,
    CreateIndex: entry.CreateIndex ?? 0,
    ModifyIndex: entry.ModifyIndex ?? 0,
  };
  // Key order as Consul's MarshalJSON writes it: the times first, then the struct's fields.
  const out: Partial<Intention> = {};
  if (str(src.LegacyCreateTime) !== '') out.CreatedAt = str(src.LegacyCreateTime);
  if (str(src.LegacyUpdateTime) !== '') out.UpdatedAt = str(src.LegacyUpdateTime);
  if (str(src.LegacyID) !== '') out.ID = str(src.LegacyID);
  if (str(src.Description) !== '') out.Description = str(src.Description);
  Object.assign(out, { SourceNS: ixn.SourceNS, SourceName: ixn.SourceName, DestinationNS: ixn.DestinationNS, DestinationName: ixn.DestinationName });
  if (str(src.Peer) !== '') out.SourcePeer = str(src.Peer);
  if (str(src.SamenessGroup) !== '') out.SourceSamenessGroup = str(src.SamenessGroup);
  out.SourceType = ixn.SourceType;
  if (str(src.Action) !== '') out.Action = str(src.Action);
  if (Array.isArray(src.Permissions) && src.Permissions.length > 0) out.Permissions = src.Permissions;
  if (isObj(src.LegacyMeta) && Object.keys(src.LegacyMeta).length > 0) out.Meta = src.LegacyMeta as Record<string, string>;
  out.Precedence = precedence(ixn.SourceName, ixn.DestinationName, ixn.SourceNS, ixn.DestinationNS);
  out.CreateIndex = ixn.CreateIndex;
  out.ModifyIndex = ixn.ModifyIndex;
  return out as Intention;
}

/** Every intention of the given service-intentions entries, in precedence order (Intention.List). */
export function flattenIntentions(entries: readonly IntentionsEntry[]): Intention[] {
  const out: Intention[] = [];
  for (const e of entries) {
    if (!Array.isArray(e.Sources)) continue;
    for (const src of e.Sources) if (isObj(src)) out.push(sourceToIntention(e, src));
  }
  return out.sort(comparePrecedence);
}

/** A source that names a service of this cluster (not a peer's or a sameness group's). */
function isLocalSource(ixn: Intention): boolean {
  return (ixn.SourcePeer ?? '') === '' && (ixn.SourceSamenessGroup ?? '') === '';
}

/**
 * Consul's IntentionMatch for one name: by destination, every intention whose destination is the
 * name or `*` (whatever its source); by source, every intention whose source is the name or `*`.
 * Precedence order, so the first row that also fits the other side is the one that applies.
 */
export function matchIntentions(intentions: readonly Intention[], by: 'source' | 'destination', name: string): Intention[] {
  const hit = (v: string): boolean => v === name || v === WILDCARD;
  return intentions
    .filter((i) => (by === 'destination' ? hit(i.DestinationName) : isLocalSource(i) && hit(i.SourceName)))
    .sort(comparePrecedence);
}

/** The exact intention source → destination (no wildcard expansion), if any (IntentionGetExact). */
export function exactIntention(intentions: readonly Intention[], source: string, destination: string): Intention | undefined {
  return intentions.find((i) => i.SourceName === source && i.DestinationName === destination && isLocalSource(i));
}

export interface IntentionDecision {
  allowed: boolean;
  /** The intention that decided, absent when the default did. */
  matched?: Intention;
  /** True when the deciding intention has L7 permissions (an L4 check treats it as deny). */
  hasPermissions: boolean;
}

/**
 * Consul's IntentionDecision: the highest-precedence intention whose source covers `source` and
 * whose destination covers `destination`. An L7 intention (Permissions) cannot be decided without
 * the request, so an L4 decision counts it as deny, as Consul's Check and Authorize do.
 */
export function decideIntention(intentions: readonly Intention[], source: string, destination: string, defaultAllow: boolean): IntentionDecision {
  const covers = (v: string, name: string): boolean => v === name || v === WILDCARD;
  const matched = matchIntentions(intentions, 'destination', destination).find((i) => isLocalSource(i) && covers(i.SourceName, source));
  if (!matched) return { allowed: defaultAllow, hasPermissions: false };
  const hasPermissions = (matched.Permissions?.length ?? 0) > 0;
  return { allowed: !hasPermissions && matched.Action === 'allow', matched, hasPermissions };
}

/** Consul's Intention.String() (CE, no partitions): "default/web => default/db (Precedence: 9, Action: ALLOW)". */
export function intentionString(ixn: Intention): string {
  const id = ixn.ID ? `ID: ${ixn.ID}, ` : '';
  let src = `${ixn.SourceNS}/${ixn.SourceName}`;
  if (ixn.SourcePeer) src = `peer(${ixn.SourcePeer})/${src}`;
  if (ixn.SourceSamenessGroup) src = `sameness-group(${ixn.SourceSamenessGroup})/${src}`;
  const detail = (ixn.Permissions?.length ?? 0) > 0 ? `Permissions: ${ixn.Permissions!.length}` : `Action: ${(ixn.Action ?? '').toUpperCase()}`;
  return `${src} => ${ixn.DestinationNS}/${ixn.DestinationName} (${id}Precedence: ${ixn.Precedence}, ${detail})`;
}

/** Consul's reason text when nothing matched and ACLs (absent in Trellis) gave the default. */
export const DEFAULT_REASON = 'Default behavior configured by ACLs';
/** Consul's reason text when nothing matched and default_intention_policy gave the default. */
export const DEFAULT_POLICY_REASON = 'Default intention policy';

/**
 * The answer when no intention matches (Consul's DefaultIntentionAllow): default_intention_policy
 * when set, else the ACL default, which is allow while Trellis has no ACLs.
 */
export function intentionDefault(defaultIntentionPolicy: '' | 'allow' | 'deny', aclDefaultAllow = true): { allow: boolean; reason: string } {
  // Unset: the ACL default decides (Consul's IntentionDefaultAllow): allow with ACLs off.
  if (defaultIntentionPolicy === '') return { allow: aclDefaultAllow, reason: DEFAULT_REASON };
  return { allow: defaultIntentionPolicy === 'allow', reason: DEFAULT_POLICY_REASON };
}

export interface Authorization {
  Authorized: boolean;
  Reason: string;
}

/**
 * Consul's ConnectAuthorize once the caller's certificate names `sourceService`: the intentions of
 * `target`, first one whose source covers the caller decides; L4 by its Action, L7 is a deny here
 * (the proxy decides those per request).
 */
export function authorizeConnection(intentions: readonly Intention[], sourceService: string, target: string, defaultAllow: boolean, defaultReason = DEFAULT_REASON): Authorization {
  const d = decideIntention(intentions, sourceService, target, defaultAllow);
  if (!d.matched) return { Authorized: d.allowed, Reason: defaultReason };
  if (d.hasPermissions) return { Authorized: false, Reason: `Matched L7 intention: ${intentionString(d.matched)}` };
  return { Authorized: d.allowed, Reason: `Matched L4 intention: ${intentionString(d.matched)}` };
}
