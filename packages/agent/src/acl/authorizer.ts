// A token's policies compiled into one authorizer (Consul's acl/policy_authorizer.go and
// chained_authorizer.go). Pure: built once per token and policy revision, then every check is a map
// lookup and a walk over that resource's prefixes, never a parse.
//
// Precedence, as Consul documents and implements it:
//   - among rules for the same name (several policies on one token): deny > write > list > read;
//   - an exact rule (`key "a/b"`) beats every prefix rule for that name;
//   - otherwise the longest prefix covering the name wins (`key_prefix "a/"` over `key_prefix ""`);
//   - a rule that exists but grants less than asked is a Deny, not a fall-through: `key_prefix ""
//     { policy = "read" }` refuses a write even when default_policy = "allow";
//   - no rule at all: the next authorizer in the chain decides (the default policy).
// mesh falls back to operator, peering to mesh (then operator); intentions on a service come from
// the service rule's `intentions`, else read for a read or write service rule and deny for a deny.
import { GLOBAL_RESOURCES, NAMED_RESOURCES, type AccessLevel, type GlobalResource, type NamedResource, type PolicyRules } from './rules.ts';

/** What an authorizer may be asked for. */
export type Permission = 'read' | 'write' | 'list';
export type Resource = NamedResource | GlobalResource | 'intention';
export type Decision = 'allow' | 'deny' | 'default';

/** Deny > write > list > read (Consul's takesPrecedenceOver). */
const RANK: Record<AccessLevel, number> = { deny: 4, write: 3, list: 2, read: 1 };

function stronger(a: AccessLevel | undefined, b: AccessLevel): AccessLevel {
  return a === undefined || RANK[b] > RANK[a] ? b : a;
}

/** Consul's enforce(): what a rule's level grants for the asked permission. */
export function enforce(rule: AccessLevel | undefined, asked: Permission): Decision {
  switch (rule) {
    case 'write': return 'allow';
    case 'list': return asked === 'write' ? 'deny' : 'allow';
    case 'read': return asked === 'read' ? 'allow' : 'deny';
    case 'deny': return 'deny';
    default: return 'default';
  }
}

/** One resource kind's rules: exact names in a map, prefixes longest first. */
class RuleTable {
  readonly exact = new Map<string, AccessLevel>();
  #prefix = new Map<string, AccessLevel>();
  #sorted: [string, AccessLevel][] = [];

  addExact(name: string, level: AccessLevel): void {
    this.exact.set(name, stronger(this.exact.get(name), level));
  }

  addPrefix(prefix: string, level: AccessLevel): void {
    this.#prefix.set(prefix, stronger(this.#prefix.get(prefix), level));
  }

  seal(): void {
    this.#sorted = [...this.#prefix].sort(([a], [b]) => b.length - a.length);
  }

  get empty(): boolean {
    return this.exact.size === 0 && this.#sorted.length === 0;
  }

  /** The rule that applies to `name`: its exact rule, else its longest prefix rule. */
  lookup(name: string): AccessLevel | undefined {
    const e = this.exact.get(name);
    if (e !== undefined) return e;
    for (const [p, level] of this.#sorted) if (name.startsWith(p)) return level;
    return undefined;
  }

  /** The longest prefix rule covering `name`, ignoring exact rules (for prefix-wide writes). */
  longestPrefix(name: string): AccessLevel | undefined {
    for (const [p, level] of this.#sorted) if (name.startsWith(p)) return level;
    return undefined;
  }

  /** Every rule (exact or prefix) at or under `prefix`. */
  *under(prefix: string): Iterable<AccessLevel> {
    for (const [n, l] of this.exact) if (n.startsWith(prefix)) yield l;
    for (const [p, l] of this.#sorted) if (p.startsWith(prefix)) yield l;
  }
}

/** The checks the rest of the agent makes. */
export interface Authorizer {
  /** Whether `permission` on `resource` (named by `name` for named resources) is granted. */
  allowed(resource: Resource, permission: Permission, name?: string): boolean;
  /** Consul's KeyWritePrefix: write on every key under `prefix` (recursive deletes). */
  keyWritePrefix(prefix: string): boolean;
}

/** The compiled rules of one or more policies; answers 'default' where no rule speaks. */
export class PolicyAuthorizer {
  readonly #named = new Map<NamedResource | 'intention', RuleTable>();
  readonly #global: Partial<Record<GlobalResource, AccessLevel>> = {};

  constructor(policies: readonly PolicyRules[]) {
    for (const r of [...NAMED_RESOURCES, 'intention'] as const) this.#named.set(r, new RuleTable());
    const intentions = this.#named.get('intention')!;
    for (const p of policies) {
      for (const r of NAMED_RESOURCES) {
        const t = this.#named.get(r)!;
        for (const rule of p.exact[r]) t.addExact(rule.name, rule.policy);
        for (const rule of p.prefix[r]) t.addPrefix(rule.name, rule.policy);
      }
      for (const kind of ['exact', 'prefix'] as const) {
        for (const rule of p[kind].service) {
          const level = rule.intentions ?? (rule.policy === 'deny' ? 'deny' : 'read');
          if (kind === 'exact') intentions.addExact(rule.name, level);
          else intentions.addPrefix(rule.name, level);
        }
      }
      for (const g of GLOBAL_RESOURCES) {
        const v = p.global[g];
        if (v !== undefined) this.#global[g] = stronger(this.#global[g], v);
      }
    }
    for (const t of this.#named.values()) t.seal();
  }

  decide(resource: Resource, permission: Permission, name = ''): Decision {
    const t = this.#named.get(resource as NamedResource);
    if (t) {
      // Consul asks no "list" of anything but keys; a list on another kind is a read.
      const asked = resource === 'key' ? permission : permission === 'list' ? 'read' : permission;
      return enforce(t.lookup(name), asked);
    }
    const g = resource as GlobalResource;
    const own = enforce(this.#global[g], permission === 'list' ? 'read' : permission);
    if (own !== 'default') return own;
    if (g === 'peering') return this.decide('mesh', permission);
    if (g === 'mesh') return this.decide('operator', permission);
    return 'default';
  }

  keyWritePrefix(prefix: string): Decision {
    const keys = this.#named.get('key')!;
    for (const level of keys.under(prefix)) if (level !== 'write') return 'deny';
    const covering = keys.longestPrefix(prefix);
    if (covering !== undefined) return covering === 'write' ? 'allow' : 'deny';
    // Only rules under the prefix, all granting write: Consul's Default (the chain decides).
    return 'default';
  }
}

/** Consul's static authorizers: allow-all / deny-all, never granting acl:* (only management does). */
export function staticAuthorizer(defaultAllow: boolean, manage = false): Authorizer {
  return {
    allowed: (resource) => (resource === 'acl' ? manage : defaultAllow),
    keyWritePrefix: () => defaultAllow,
  };
}

/** Compiled policies, then the default policy where no rule speaks (Consul's ChainedAuthorizer). */
export function chainedAuthorizer(policies: readonly PolicyRules[], defaultAllow: boolean): Authorizer {
  const pa = new PolicyAuthorizer(policies);
  const fallback = staticAuthorizer(defaultAllow);
  return {
    allowed(resource, permission, name) {
      const d = pa.decide(resource, permission, name);
      return d === 'default' ? fallback.allowed(resource, permission, name) : d === 'allow';
    },
    keyWritePrefix(prefix) {
      const d = pa.keyWritePrefix(prefix);
      return d === 'default' ? fallback.keyWritePrefix(prefix) : d === 'allow';
    },
  };
}
