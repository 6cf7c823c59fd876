// Consul's ACL rule language (acl/policy.go, parseCurrent): the Rules text of a policy, in HCL 1 or
// JSON, parsed into plain data. Pure: text in, rules or an error that names the line out.
//
//   key_prefix "app/" { policy = "read" }        resource "name" { policy = ... }  (exact or prefix)
//   service "web" { policy = "write" intentions = "read" }
//   operator = "read"                            single-valued resources
//
// Resources with names: key, node, service, session (by node name), agent (by node name), event,
// query, each with a *_prefix form. Single-valued: acl, operator, mesh, peering, keyring. Policies:
// read, write, deny; "list" for keys only. Unknown keys are ignored, as hcl.Decode into Consul's
// struct ignores them; a wrong policy value or a malformed document is an error.
import { HclSyntaxError, parseHcl, type HclValue } from '../config/hcl.ts';

export type AccessLevel = 'read' | 'write' | 'list' | 'deny';

/** Resource kinds with names, in Consul's order; each has an exact and a `_prefix` form. */
export const NAMED_RESOURCES = ['agent', 'key', 'node', 'service', 'session', 'event', 'query'] as const;
export type NamedResource = (typeof NAMED_RESOURCES)[number];

/** Resource kinds with one value for the whole policy. */
export const GLOBAL_RESOURCES = ['acl', 'operator', 'mesh', 'peering', 'keyring'] as const;
export type GlobalResource = (typeof GLOBAL_RESOURCES)[number];

export interface NamedRule {
  /** The name (exact rules) or prefix (prefix rules) the rule covers. */
  name: string;
  policy: AccessLevel;
  /** service / service_prefix only: the `intentions` sub-rule, when written. */
  intentions?: AccessLevel;
}

/** One policy's rules: for each named resource its exact and prefix rules, and the global ones. */
export interface PolicyRules {
  exact: Record<NamedResource, NamedRule[]>;
  prefix: Record<NamedResource, NamedRule[]>;
  global: Partial<Record<GlobalResource, AccessLevel>>;
}

/** Malformed rules; `line` is 1-based where known. Consul's text starts "Failed to parse ACL rules". */
export class AclRulesError extends Error {
  readonly code = 'ERR_ACL_RULES';
  readonly line: number | undefined;
  constructor(message: string, line?: number) {
    super(message);
    this.name = 'AclRulesError';
    this.line = line;
  }
}

export function emptyRules(): PolicyRules {
  const named = (): Record<NamedResource, NamedRule[]> =>
    ({ agent: [], key: [], node: [], service: [], session: [], event: [], query: [] });
  return { exact: named(), prefix: named(), global: {} };
}

const LEVELS: ReadonlySet<string> = new Set(['read', 'write', 'deny']);

function isLevel(v: unknown, listAllowed: boolean): v is AccessLevel {
  return typeof v === 'string' && (LEVELS.has(v) || (listAllowed && v === 'list'));
}

type Obj = { [key: string]: HclValue | unknown };

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** JSON.parse, with its error turned into a line number. */
function parseJson(text: string): Obj {
  try {
    const v: unknown = JSON.parse(text);
    if (!isObj(v)) throw new AclRulesError('Failed to parse ACL rules: the JSON document must be an object', 1);
    return v;
  } catch (e) {
    if (e instanceof AclRulesError) throw e;
    const msg = (e as Error).message;
    const pos = /position (\d+)/.exec(msg);
    const line = pos ? text.slice(0, Number(pos[1])).split('\n').length : undefined;
    const lineCol = /line (\d+) column (\d+)/.exec(msg);
    const l = lineCol ? Number(lineCol[1]) : line;
    throw new AclRulesError(`Failed to parse ACL rules: ${l !== undefined ? `At line ${l}: ` : ''}${msg}`, l);
  }
}

/**
 * Both HCL's block shape (`key "a" { policy = "read" }` → {key: [{a: [{policy: "read"}]}]}) and
 * JSON's (`{"key": {"a": {"policy": "read"}}}`, or lists of such objects) give, per resource, a list
 * of name → body pairs.
 */
function namedBodies(v: unknown): [string, Obj][] {
  const out: [string, Obj][] = [];
  const visit = (x: unknown): void => {
    if (Array.isArray(x)) {
      for (const el of x) visit(el);
      return;
    }
    if (!isObj(x)) throw new TypeError('expected blocks of the form name { policy = "..." }');
    for (const [name, body] of Object.entries(x)) {
      const bodies = Array.isArray(body) ? body : [body];
      for (const b of bodies) {
        if (!isObj(b)) throw new TypeError(`the rule for ${JSON.stringify(name)} must be a block with a policy`);
        out.push([name, b]);
      }
    }
  };
  visit(v);
  return out;
}

/** A single-valued resource: `operator = "read"`; HCL and JSON give a string. */
function globalValue(v: unknown): unknown {
  return Array.isArray(v) && v.length === 1 ? v[0] : v;
}

/** Finds the first line of `text` where `resource` (and `name`) appear, for error messages. */
function lineOf(text: string, ...words: string[]): number | undefined {
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    if (words.every((w) => lines[i]!.includes(w))) return i + 1;
  }
  for (let i = 0; i < lines.length; i++) if (lines[i]!.includes(words[0]!)) return i + 1;
  return undefined;
}

/** Parses a policy's Rules. Empty text is a policy that grants nothing. Throws AclRulesError. */
export function parseRules(text: string): PolicyRules {
  const rules = emptyRules();
  if (text.trim() === '') return rules;
  if (text.includes('\0')) throw new AclRulesError('Failed to parse ACL rules: the rules contain a NUL byte');
  let doc: Obj;
  if (text.trimStart().startsWith('{')) {
    doc = parseJson(text);
  } else {
    try {
      doc = parseHcl(text);
    } catch (e) {
      if (e instanceof HclSyntaxError) throw new AclRulesError(`Failed to parse ACL rules: ${e.message}`, e.line);
      throw e;
    }
  }

  for (const resource of GLOBAL_RESOURCES) {
    if (!(resource in doc)) continue;
    const v = globalValue(doc[resource]);
    if (v === '') continue;
    if (!isLevel(v, false)) {
      throw new AclRulesError(`Invalid ${resource} policy: ${JSON.stringify(v)} (must be "read", "write" or "deny")`, lineOf(text, resource));
    }
    rules.global[resource] = v;
  }

  for (const resource of NAMED_RESOURCES) {
    for (const kind of ['exact', 'prefix'] as const) {
      const field = kind === 'exact' ? resource : `${resource}_prefix`;
      if (!(field in doc)) continue;
      let bodies: [string, Obj][];
      try {
        bodies = namedBodies(doc[field]);
      } catch (e) {
        throw new AclRulesError(`Failed to parse ACL rules: ${field}: ${(e as Error).message}`, lineOf(text, field));
      }
      for (const [name, body] of bodies) {
        const policy = globalValue(body.policy);
        const where = `${field} ${JSON.stringify(name)}`;
        if (!isLevel(policy, resource === 'key')) {
          const allowed = resource === 'key' ? '"read", "write", "list" or "deny"' : '"read", "write" or "deny"';
          throw new AclRulesError(`Invalid ${field} policy: ${where} has policy ${JSON.stringify(policy ?? '')} (must be ${allowed})`, lineOf(text, field, JSON.stringify(name)));
        }
        const rule: NamedRule = { name, policy };
        if (resource === 'service' && body.intentions !== undefined) {
          const intentions = globalValue(body.intentions);
          if (intentions !== '') {
            if (!isLevel(intentions, false)) {
              throw new AclRulesError(`Invalid ${field} intentions policy: ${where} has intentions ${JSON.stringify(intentions)} (must be "read", "write" or "deny")`, lineOf(text, field, JSON.stringify(name)));
            }
            rule.intentions = intentions;
          }
        }
        rules[kind][resource].push(rule);
      }
    }
  }
  return rules;
}

/** The builtin global-management policy's rules (Consul's ACLPolicyGlobalManagement). */
export const GLOBAL_MANAGEMENT_RULES = `
acl = "write"
agent_prefix "" {
  policy = "write"
}
event_prefix "" {
  policy = "write"
}
key_prefix "" {
  policy = "write"
}
keyring = "write"
node_prefix "" {
  policy = "write"
}
operator = "write"
mesh = "write"
peering = "write"
query_prefix "" {
  policy = "write"
}
service_prefix "" {
  policy = "write"
  intentions = "write"
}
session_prefix "" {
  policy = "write"
}`;
