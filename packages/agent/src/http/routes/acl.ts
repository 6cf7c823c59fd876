// The ACL API: Consul's agent/acl_endpoint.go.
//   PUT    /v1/acl/bootstrap                      once; then 403 "Permission denied: ACL bootstrap no
//                                                 longer allowed (reset index: N)" until N is written
//                                                 to <data_dir>/acl-bootstrap-reset
//   PUT    /v1/acl/token                          create          GET /v1/acl/tokens   list (?policy=, ?role=)
//   GET|PUT|DELETE /v1/acl/token/:accessor        read/update/delete
//   PUT    /v1/acl/token/:accessor/clone          GET /v1/acl/token/self
//   PUT    /v1/acl/policy, GET|PUT|DELETE /v1/acl/policy/:id, GET /v1/acl/policy/name/:name, GET /v1/acl/policies
//   PUT    /v1/acl/role,   GET|PUT|DELETE /v1/acl/role/:id,   GET /v1/acl/role/name/:name,   GET /v1/acl/roles
//   GET    /v1/internal/acl/resolve               the caller's own token rules (client agents' resolver)
// Reads need acl:read, writes acl:write; a token's SecretID shows only to acl:write ("<hidden>"
// otherwise). With ACLs off every endpoint answers 401 "ACL support disabled", as Consul's.
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { ANONYMOUS_ACCESSOR_ID, GLOBAL_MANAGEMENT_POLICY_ID, GLOBAL_MANAGEMENT_POLICY_NAME, type Identity } from '../../acl/identity.ts';
import { AclRulesError, GLOBAL_MANAGEMENT_RULES, parseRules } from '../../acl/rules.ts';
import { applyOk } from '../../state/apply.ts';
import { isUuid, parseGoDuration, type ACLPolicy, type ACLRole, type ACLToken } from '../../state/index.ts';
import { require as requireRight, requestToken } from '../aclEnforce.ts';
import { isExpired, resolvedTokenWire } from '../aclResolve.ts';
import { AGENT_TOKEN_KINDS, setAgentToken } from '../aclTokens.ts';
import { setQueryMeta } from '../blocking.ts';
import type { RequestContext } from '../context.ts';
import { jsonSyntaxError } from '../decode.ts';
import { badRequest, HttpError, notFound } from '../errors.ts';
import type { EndpointSpec, RouteDeps } from '../router.ts';

/** Consul's bounds on ExpirationTTL (acl_token_min/max_expiration_ttl defaults). */
const MIN_TTL_NS = 60e9;
const MAX_TTL_NS = 24 * 3600e9;
export const BOOTSTRAP_RESET_FILE = 'acl-bootstrap-reset';
const HIDDEN = '<hidden>';

function body(ctx: RequestContext): Record<string, unknown> {
  const text = ctx.body?.toString('utf8') ?? '';
  if (text.trim() === '') return {};
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw badRequest(`Request decode failed: ${jsonSyntaxError(text, err as Error)}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw badRequest('Request decode failed: the body must be a JSON object');
  // Go's encoding/json matches field names case-insensitively.
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
    const known = FIELDS.find((f) => f.toLowerCase() === k.toLowerCase());
    out[known ?? k] = x;
  }
  return out;
}

const FIELDS = ['AccessorID', 'SecretID', 'Description', 'Policies', 'Roles', 'ServiceIdentities', 'NodeIdentities', 'Local',
  'ExpirationTime', 'ExpirationTTL', 'ID', 'Name', 'Rules', 'Datacenters', 'BootstrapSecret'];

function links(v: unknown, what: string): { ID: string; Name: string }[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw badRequest(`${what} must be a list`);
  return v.map((x) => {
    if (typeof x !== 'object' || x === null) throw badRequest(`${what} entries must be objects with an ID or a Name`);
    const o = x as Record<string, unknown>;
    const id = o.ID ?? o.id ?? '';
    const name = o.Name ?? o.name ?? '';
    if (typeof id !== 'string' || typeof name !== 'string') throw badRequest(`${what} entries must have string ID and Name`);
    return { ID: id, Name: name };
  });
}

/** Consul's JSON of a token: empty lists and zero times left out. */
function tokenJson(t: ACLToken, showSecret: boolean): Record<string, unknown> {
  const out: Record<string, unknown> = {
    AccessorID: t.AccessorID,
    SecretID: showSecret ? t.SecretID : HIDDEN,
    Description: t.Description,
  };
  if (t.Policies.length > 0) out.Policies = t.Policies;
  if (t.Roles.length > 0) out.Roles = t.Roles;
  if (t.ServiceIdentities.length > 0) out.ServiceIdentities = t.ServiceIdentities;
  if (t.NodeIdentities.length > 0) out.NodeIdentities = t.NodeIdentities;
  out.Local = t.Local;
  if (t.ExpirationTime !== '') out.ExpirationTime = t.ExpirationTime;
  out.CreateTime = t.CreateTime;
  out.Hash = '';
  out.CreateIndex = t.CreateIndex;
  out.ModifyIndex = t.ModifyIndex;
  return out;
}

function policyJson(p: ACLPolicy, stub: boolean): Record<string, unknown> {
  const out: Record<string, unknown> = { ID: p.ID, Name: p.Name, Description: p.Description };
  if (!stub) out.Rules = p.Rules;
  if (p.Datacenters.length > 0) out.Datacenters = p.Datacenters;
  out.Hash = '';
  out.CreateIndex = p.CreateIndex;
  out.ModifyIndex = p.ModifyIndex;
  return out;
}

function roleJson(r: ACLRole): Record<string, unknown> {
  const out: Record<string, unknown> = { ID: r.ID, Name: r.Name, Description: r.Description };
  if (r.Policies.length > 0) out.Policies = r.Policies;
  if (r.ServiceIdentities.length > 0) out.ServiceIdentities = r.ServiceIdentities;
  if (r.NodeIdentities.length > 0) out.NodeIdentities = r.NodeIdentities;
  out.Hash = '';
  out.CreateIndex = r.CreateIndex;
  out.ModifyIndex = r.ModifyIndex;
  return out;
}

/** Rules are checked before they are proposed; a 400 names the line. */
function checkRules(rules: string): void {
  try {
    parseRules(rules);
  } catch (e) {
    if (e instanceof AclRulesError) throw badRequest(`Invalid Policy: ${e.message}${e.line !== undefined && !/At (line )?\d+/.test(e.message) ? ` (line ${e.line})` : ''}`);
    throw e;
  }
}

function idParam(v: unknown, what: string): string {
  if (v === undefined || v === null || v === '') return '';
  if (typeof v !== 'string' || !isUuid(v)) throw badRequest(`Invalid ${what}: not a valid UUID`);
  return v;
}

export function aclRoutes(deps: RouteDeps): EndpointSpec[] {
  const { backend } = deps;
  const enabled = (): boolean => backend.config.acl?.enabled === true;

  /** The request's identity (the HTTP server resolved it); 401 while ACLs are off. */
  function who(ctx: RequestContext): Identity {
    if (!enabled()) throw new HttpError(401, 'ACL support disabled', 'ERR_ACL_DISABLED');
    const id = ctx.identity;
    if (!id) throw new HttpError(401, 'ACL support disabled', 'ERR_ACL_DISABLED');
    return id;
  }

  function tokenFromBody(b: Record<string, unknown>, existing: ACLToken | undefined, urlId: string | undefined): Record<string, unknown> {
    const accessor = urlId ?? (idParam(b.AccessorID, 'Token: AccessorID') || randomUUID());
    if (urlId !== undefined && b.AccessorID !== undefined && b.AccessorID !== '' && b.AccessorID !== urlId) {
      throw badRequest('Token Accessor ID in URL and payload do not match');
    }
    let secret = idParam(b.SecretID, 'Token: SecretID');
    if (existing) {
      if (secret !== '' && secret !== existing.SecretID) throw badRequest('Changing a tokens SecretID is not permitted');
      secret = existing.SecretID;
    } else if (secret === '') {
      secret = randomUUID();
    }
    let expiration = existing?.ExpirationTime ?? '';
    if (!existing) {
      if (b.ExpirationTTL !== undefined && b.ExpirationTTL !== '' && b.ExpirationTTL !== 0) {
        const ns = typeof b.ExpirationTTL === 'number' ? b.ExpirationTTL : parseGoDuration(String(b.ExpirationTTL));
        if (ns === null || ns < MIN_TTL_NS || ns > MAX_TTL_NS) {
          throw badRequest(`Invalid Token: Token Expiration TTL '${String(b.ExpirationTTL)}' should be between 1m0s and 24h0m0s`);
        }
        expiration = new Date(Date.now() + ns / 1e6).toISOString();
      } else if (typeof b.ExpirationTime === 'string' && b.ExpirationTime !== '') {
        const t = Date.parse(b.ExpirationTime);
        if (!Number.isFinite(t)) throw badRequest('Invalid Token: ExpirationTime is not a valid time');
        if (t <= Date.now()) throw badRequest('Invalid Token: ExpirationTime cannot be in the past');
        expiration = new Date(t).toISOString();
      }
    }
    if (b.Description !== undefined && typeof b.Description !== 'string') throw badRequest('Description must be a string');
    return {
      AccessorID: accessor,
      SecretID: secret,
      Description: b.Description ?? existing?.Description ?? '',
      Policies: links(b.Policies, 'Policies'),
      Roles: links(b.Roles, 'Roles'),
      ServiceIdentities: b.ServiceIdentities ?? [],
      NodeIdentities: (Array.isArray(b.NodeIdentities) ? b.NodeIdentities : []).map((n: unknown) => {
        const o = (typeof n === 'object' && n !== null ? n : {}) as Record<string, unknown>;
        return { NodeName: o.NodeName, Datacenter: o.Datacenter ?? backend.config.datacenter };
      }),
      Local: existing ? existing.Local : b.Local === true,
      ExpirationTime: expiration,
      CreateTime: existing?.CreateTime ?? new Date().toISOString(),
    };
  }

  function readable(z: Identity): boolean {
    return z.authorizer.allowed('acl', 'read');
  }

  // ---- tokens ----------------------------------------------------------------------------------

  async function tokenCreate(ctx: RequestContext): Promise<unknown> {
    const z = who(ctx);
    requireRight(z, 'acl', 'write');
    const b = body(ctx);
    const t = tokenFromBody(b, undefined, undefined);
    const { value } = await applyOk(backend.apply, { type: 'aclTokenSet', Token: t, Create: true });
    return tokenJson(value, true);
  }

  function tokenOr404(id: string): ACLToken {
    const t = backend.store.aclToken(id).value;
    if (!t) throw new HttpError(403, 'ACL not found', 'ERR_ACL_NOT_FOUND');
    return t;
  }

  async function tokenById(ctx: RequestContext): Promise<unknown> {
    const z = who(ctx);
    let rest = ctx.rest;
    if (rest === 'self' && ctx.method === 'GET') {
      const secret = requestToken(ctx.headers, ctx.query) ?? backend.acl?.defaultToken ?? '';
      const self = backend.store.aclTokenBySecret(secret !== '' ? secret : 'anonymous');
      if (!self || isExpired(self, Date.now())) throw new HttpError(403, 'ACL not found', 'ERR_ACL_NOT_FOUND');
      return tokenJson(self, true);
    }
    const clone = rest.endsWith('/clone');
    if (clone) rest = rest.slice(0, -'/clone'.length);
    if (rest === '' ) throw badRequest('Missing token ID');
    switch (ctx.method) {
      case 'GET': {
        requireRight(z, 'acl', 'read');
        const t = backend.store.aclToken(rest).value;
        setQueryMeta(ctx, backend, backend.store.aclTokens().index, false);
        // Consul answers a missing token as acl.ErrNotFound: 403 "ACL not found".
        if (!t) throw new HttpError(403, 'ACL not found', 'ERR_ACL_NOT_FOUND');
        return tokenJson(t, z.authorizer.allowed('acl', 'write'));
      }
      case 'PUT': {
        requireRight(z, 'acl', 'write');
        const existing = tokenOr404(rest);
        const b = body(ctx);
        if (clone) {
          const copy = tokenFromBody({ Description: b.Description ?? existing.Description, Policies: existing.Policies, Roles: existing.Roles,
            ServiceIdentities: existing.ServiceIdentities, Local: existing.Local }, undefined, undefined);
          copy.NodeIdentities = existing.NodeIdentities;
          copy.ExpirationTime = existing.ExpirationTime;
          const { value } = await applyOk(backend.apply, { type: 'aclTokenSet', Token: copy, Create: true });
          return tokenJson(value, true);
        }
        const t = tokenFromBody(b, existing, rest);
        const { value } = await applyOk(backend.apply, { type: 'aclTokenSet', Token: t, Create: false });
        return tokenJson(value, true);
      }
      case 'DELETE': {
        requireRight(z, 'acl', 'write');
        await applyOk(backend.apply, { type: 'aclTokenDelete', AccessorID: rest });
        return true;
      }
    }
    return undefined;
  }

  function tokenList(ctx: RequestContext): unknown {
    const z = who(ctx);
    requireRight(z, 'acl', 'read');
    const showSecret = z.authorizer.allowed('acl', 'write');
    const res = backend.store.aclTokens();
    const policy = ctx.get('policy');
    const role = ctx.get('role');
    setQueryMeta(ctx, backend, res.index, false);
    return res.value
      .filter((t) => !policy || t.Policies.some((p) => p.ID === policy))
      .filter((t) => !role || t.Roles.some((r) => r.ID === role))
      .map((t) => {
        const j = tokenJson(t, showSecret);
        j.Legacy = false;
        return j;
      });
  }

  // ---- policies --------------------------------------------------------------------------------

  function policyFromBody(b: Record<string, unknown>, id: string): Record<string, unknown> {
    if (typeof b.Name !== 'string' || b.Name === '') throw badRequest('Invalid Policy: no Name is set');
    const rules = b.Rules === undefined || b.Rules === null ? '' : b.Rules;
    if (typeof rules !== 'string') throw badRequest('Invalid Policy: Rules must be a string');
    checkRules(rules);
    if (b.Description !== undefined && typeof b.Description !== 'string') throw badRequest('Description must be a string');
    const dcs = b.Datacenters ?? [];
    if (!Array.isArray(dcs) || !dcs.every((d) => typeof d === 'string')) throw badRequest('Datacenters must be a list of strings');
    return { ID: id, Name: b.Name, Description: b.Description ?? '', Rules: rules, Datacenters: dcs };
  }

  async function policyCreate(ctx: RequestContext): Promise<unknown> {
    requireRight(who(ctx), 'acl', 'write');
    const b = body(ctx);
    if (b.ID !== undefined && b.ID !== '') throw badRequest('Cannot specify an ID in policy creation');
    const { value } = await applyOk(backend.apply, { type: 'aclPolicySet', Policy: policyFromBody(b, randomUUID()), Create: true });
    return policyJson(value, false);
  }

  async function policyById(ctx: RequestContext): Promise<unknown> {
    const z = who(ctx);
    const rest = ctx.rest;
    if (rest.startsWith('name/') && ctx.method === 'GET') {
      requireRight(z, 'acl', 'read');
      const p = backend.store.aclPolicyByName(rest.slice(5));
      setQueryMeta(ctx, backend, p.index, false);
      if (!p.value) throw notFound('ACL policy not found');
      return policyJson(p.value, false);
    }
    if (rest === '') throw badRequest('Missing policy ID');
    switch (ctx.method) {
      case 'GET': {
        requireRight(z, 'acl', 'read');
        const p = backend.store.aclPolicy(rest);
        setQueryMeta(ctx, backend, p.index, false);
        if (!p.value) throw notFound('ACL policy not found');
        return policyJson(p.value, false);
      }
      case 'PUT': {
        requireRight(z, 'acl', 'write');
        const b = body(ctx);
        if (b.ID !== undefined && b.ID !== '' && b.ID !== rest) throw badRequest('Policy ID in URL and payload do not match');
        const { value } = await applyOk(backend.apply, { type: 'aclPolicySet', Policy: policyFromBody(b, rest), Create: false });
        return policyJson(value, false);
      }
      case 'DELETE':
        requireRight(z, 'acl', 'write');
        await applyOk(backend.apply, { type: 'aclPolicyDelete', ID: rest });
        return true;
    }
    return undefined;
  }

  function policyList(ctx: RequestContext): unknown {
    requireRight(who(ctx), 'acl', 'read');
    const res = backend.store.aclPolicies();
    setQueryMeta(ctx, backend, res.index, false);
    return res.value.map((p) => policyJson(p, true));
  }

  // ---- roles -----------------------------------------------------------------------------------

  function roleFromBody(b: Record<string, unknown>, id: string): Record<string, unknown> {
    if (typeof b.Name !== 'string' || b.Name === '') throw badRequest('Invalid Role: no Name is set');
    if (b.Description !== undefined && typeof b.Description !== 'string') throw badRequest('Description must be a string');
    return {
      ID: id, Name: b.Name, Description: b.Description ?? '', Policies: links(b.Policies, 'Policies'),
      ServiceIdentities: b.ServiceIdentities ?? [],
      NodeIdentities: (Array.isArray(b.NodeIdentities) ? b.NodeIdentities : []).map((n: unknown) => {
        const o = (typeof n === 'object' && n !== null ? n : {}) as Record<string, unknown>;
        return { NodeName: o.NodeName, Datacenter: o.Datacenter ?? backend.config.datacenter };
      }),
    };
  }

  async function roleCreate(ctx: RequestContext): Promise<unknown> {
    requireRight(who(ctx), 'acl', 'write');
    const b = body(ctx);
    if (b.ID !== undefined && b.ID !== '') throw badRequest('Cannot specify an ID in role creation');
    const { value } = await applyOk(backend.apply, { type: 'aclRoleSet', Role: roleFromBody(b, randomUUID()), Create: true });
    return roleJson(value);
  }

  async function roleById(ctx: RequestContext): Promise<unknown> {
    const z = who(ctx);
    const rest = ctx.rest;
    if (rest.startsWith('name/') && ctx.method === 'GET') {
      requireRight(z, 'acl', 'read');
      const r = backend.store.aclRoleByName(rest.slice(5));
      setQueryMeta(ctx, backend, r.index, false);
      if (!r.value) throw notFound('ACL role not found');
      return roleJson(r.value);
    }
    if (rest === '') throw badRequest('Missing role ID');
    switch (ctx.method) {
      case 'GET': {
        requireRight(z, 'acl', 'read');
        const r = backend.store.aclRole(rest);
        setQueryMeta(ctx, backend, r.index, false);
        if (!r.value) throw notFound('ACL role not found');
        return roleJson(r.value);
      }
      case 'PUT': {
        requireRight(z, 'acl', 'write');
        const b = body(ctx);
        if (b.ID !== undefined && b.ID !== '' && b.ID !== rest) throw badRequest('Role ID in URL and payload do not match');
        const { value } = await applyOk(backend.apply, { type: 'aclRoleSet', Role: roleFromBody(b, rest), Create: false });
        return roleJson(value);
      }
      case 'DELETE':
        requireRight(z, 'acl', 'write');
        await applyOk(backend.apply, { type: 'aclRoleDelete', ID: rest });
        return true;
    }
    return undefined;
  }

  function roleList(ctx: RequestContext): unknown {
    requireRight(who(ctx), 'acl', 'read');
    const res = backend.store.aclRoles();
    setQueryMeta(ctx, backend, res.index, false);
    return res.value.map(roleJson);
  }

  // ---- bootstrap -------------------------------------------------------------------------------

  /** <data_dir>/acl-bootstrap-reset: the index an operator wrote to allow one more bootstrap. */
  async function readResetIndex(): Promise<{ index: number; file: string } | undefined> {
    const dir = backend.config.dataDir;
    if (!dir) return undefined;
    const file = path.join(dir, BOOTSTRAP_RESET_FILE);
    let text: string;
    try {
      text = await fs.readFile(file, 'utf8');
    } catch {
      return undefined; // no reset file: the ordinary case
    }
    const index = Number(text.trim());
    if (!Number.isSafeInteger(index) || index <= 0) {
      deps.logger?.warn({ file }, 'ignoring the ACL bootstrap reset file: it does not hold an index');
      return undefined;
    }
    return { index, file };
  }

  async function bootstrap(ctx: RequestContext): Promise<unknown> {
    who(ctx);
    const b = body(ctx);
    const secret = idParam(b.BootstrapSecret, 'BootstrapSecret') || randomUUID();
    const reset = await readResetIndex();
    const token = {
      AccessorID: randomUUID(), SecretID: secret, Description: 'Bootstrap Token (Global Management)',
      Policies: [{ ID: GLOBAL_MANAGEMENT_POLICY_ID, Name: '' }], Local: false, CreateTime: new Date().toISOString(),
    };
    // The builtin policy rides along: a bootstrap sent right after the agent is up can reach the log
    // before the new leader's aclInit does (it answered 400 "No such ACL policy" then).
    const GlobalManagement = {
      ID: GLOBAL_MANAGEMENT_POLICY_ID, Name: GLOBAL_MANAGEMENT_POLICY_NAME,
      Description: 'Builtin Policy that grants unlimited access', Rules: GLOBAL_MANAGEMENT_RULES, Datacenters: [],
    };
    const { value } = await applyOk(backend.apply, { type: 'aclBootstrap', Token: token, GlobalManagement, ...(reset ? { ResetIndex: reset.index } : {}) });
    if (!value.Bootstrapped) {
      throw new HttpError(403, `Permission denied: ACL bootstrap no longer allowed (reset index: ${value.ResetIndex})`, 'ERR_PERMISSION_DENIED');
    }
    if (reset) await fs.rm(reset.file, { force: true });
    deps.logger?.info({ accessorId: token.AccessorID }, 'ACL bootstrap completed');
    const stored = backend.store.aclToken(token.AccessorID).value;
    return stored ? tokenJson(stored, true) : tokenJson({ ...token, Roles: [], ServiceIdentities: [], NodeIdentities: [], ExpirationTime: '', CreateIndex: value.ResetIndex, ModifyIndex: value.ResetIndex, Policies: [{ ID: GLOBAL_MANAGEMENT_POLICY_ID, Name: 'global-management' }] }, true);
  }

  /** The caller's own token, for a client agent's resolver (Consul's ACL.TokenRead + PolicyResolve). */
  function resolveSelf(ctx: RequestContext): unknown {
    const z = who(ctx);
    const given = requestToken(ctx.headers, ctx.query) ?? '';
    const secret = given !== '' ? given : 'anonymous';
    const t = backend.store.aclTokenBySecret(secret);
    if (!t) {
      // The servers' own secret or no anonymous row yet: rules that match what the identity is.
      if (z.accessorId === ANONYMOUS_ACCESSOR_ID) return { AccessorID: ANONYMOUS_ACCESSOR_ID, Rules: [], ExpirationTime: '', Management: false };
      throw new HttpError(403, 'ACL not found', 'ERR_ACL_NOT_FOUND');
    }
    return resolvedTokenWire(backend.store, t, backend.config.datacenter);
  }

  /** PUT /v1/agent/token/<kind> {"Token": "..."}: this agent's own token of that kind (acl:write). */
  function setToken(ctx: RequestContext): unknown {
    requireRight(who(ctx), 'acl', 'write');
    const kind = AGENT_TOKEN_KINDS[ctx.rest];
    if (!kind) throw notFound(`Token "${ctx.rest}" is unknown`);
    const raw = ctx.body?.toString('utf8') ?? '';
    let token: unknown;
    try {
      token = raw.trim() === '' ? undefined : (JSON.parse(raw) as Record<string, unknown>)?.Token ?? (JSON.parse(raw) as Record<string, unknown>)?.token;
    } catch (err) {
      throw badRequest(`Request decode failed: ${jsonSyntaxError(raw, err as Error)}`);
    }
    if (typeof token !== 'string') throw badRequest('Request decode failed: the body must be {"Token": "<secret>"}');
    setAgentToken(backend.config, kind, token);
    const acl = backend.acl;
    if (acl) {
      acl.defaultToken = backend.config.acl.tokens.default;
      acl.agentToken = backend.config.acl.tokens.agent;
    }
    deps.logger?.info({ kind: ctx.rest }, 'Updated agent\'s ACL token');
    return undefined;
  }

  return [
    { path: '/v1/agent/token/', prefix: true, agentLocal: true, methods: { PUT: setToken } },
    { path: '/v1/acl/bootstrap', methods: { PUT: bootstrap } },
    { path: '/v1/acl/token', methods: { PUT: tokenCreate } },
    { path: '/v1/acl/token/', prefix: true, methods: { GET: tokenById, PUT: tokenById, DELETE: tokenById } },
    { path: '/v1/acl/tokens', methods: { GET: tokenList } },
    { path: '/v1/acl/policy', methods: { PUT: policyCreate } },
    { path: '/v1/acl/policy/', prefix: true, methods: { GET: policyById, PUT: policyById, DELETE: policyById } },
    { path: '/v1/acl/policies', methods: { GET: policyList } },
    { path: '/v1/acl/role', methods: { PUT: roleCreate } },
    { path: '/v1/acl/role/', prefix: true, methods: { GET: roleById, PUT: roleById, DELETE: roleById } },
    { path: '/v1/acl/roles', methods: { GET: roleList } },
    { path: '/v1/internal/acl/resolve', methods: { GET: resolveSelf } },
  ];
}
