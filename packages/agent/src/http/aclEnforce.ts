// Where ACLs are enforced on the HTTP API, in three choke points instead of in every handler:
//
//   1. guardRequest: before a handler runs, the rights its endpoint needs (agent/*, operator/*,
//      single-object reads, txn ops...), from the path, query and body; refused → 403 with Consul's
//      "Permission denied: ..." text, nothing run.
//   2. authorizeCommand: every state change a handler proposes passes here first (the HTTP server
//      wraps backend.apply), so KV, catalog, session, config-entry, intention and txn writes are
//      checked as the command the FSM will apply. The leader runs the same check on writes other
//      agents forward to it (server/aclServer.ts), with the token they carried.
//   3. filterResult: list and recursive reads drop what the token may not read and say so with
//      X-Consul-Results-Filtered-By-ACLs: true. A blocking query is filtered every time it answers.
import { AsyncLocalStorage } from 'node:async_hooks';
import type { Authorizer, Permission, Resource } from '../acl/authorizer.ts';
import { ERR_PERMISSION_DENIED, permissionDeniedMessage, type Identity } from '../acl/identity.ts';
import type { Command, StateReader, TxnOp } from '../state/index.ts';
import type { RequestContext } from './context.ts';
import { HttpError } from './errors.ts';

/**
 * The identity of a write request being served, for the check made below its handler (apply, which
 * has no ctx). Handlers read ctx.identity; GET and HEAD handlers, which propose nothing, run outside it.
 */
export const aclRequest = new AsyncLocalStorage<Identity>();

export const FILTERED_HEADER = 'X-Consul-Results-Filtered-By-ACLs';

/** The token a request carries: X-Consul-Token, else Authorization: Bearer, else ?token= (Consul's order). */
export function requestToken(headers: Record<string, string | string[] | undefined>, query: URLSearchParams): string | undefined {
  const h = headers['x-consul-token'];
  const x = Array.isArray(h) ? h[0] : h;
  if (x !== undefined && x !== '') return x;
  const auth = headers.authorization;
  const a = Array.isArray(auth) ? auth[0] : auth;
  if (a !== undefined) {
    const m = /^Bearer\s+(.+)$/i.exec(a.trim());
    if (m) return m[1]!.trim();
  }
  const q = query.get('token');
  if (q !== null && q !== '') return q;
  return undefined;
}

export function denied(identity: Identity, resource: Resource, permission: Permission, name?: string): HttpError {
  return new HttpError(403, permissionDeniedMessage(identity.accessorId, resource, permission, name), 'ERR_PERMISSION_DENIED');
}

export function require(identity: Identity, resource: Resource, permission: Permission, name?: string): void {
  if (!identity.authorizer.allowed(resource, permission, name)) throw denied(identity, resource, permission, name);
}

// ---- 2. commands ---------------------------------------------------------------------------------

function serviceNameOf(store: StateReader, node: string, serviceId: string): string | undefined {
  return store.nodeServices(node).value?.Services.find((s) => s.ID.toLowerCase() === serviceId.toLowerCase())?.Service;
}

/** Service kinds whose config entry is about one service (read/write need service rights on it). */
const SERVICE_SCOPED_KINDS = new Set(['service-defaults', 'service-resolver', 'service-router', 'service-splitter']);

/** Consul's ConfigEntry CanRead / CanWrite: which right an entry of this kind and name needs. */
export function configEntryRight(kind: string, name: string, permission: 'read' | 'write'): [Resource, Permission, string?] | undefined {
  const k = kind.toLowerCase();
  if (SERVICE_SCOPED_KINDS.has(k)) return ['service', permission, name];
  if (k === 'service-intentions') return ['intention', permission, name];
  // proxy-defaults, mesh, gateways, exported-services...: anyone may read; writing needs mesh (or operator).
  return permission === 'read' ? undefined : ['mesh', 'write'];
}

function checkRegistration(a: Identity, store: StateReader, c: Extract<Command, { type: 'catalogRegister' }>): void {
  const existing = store.node(c.Node).value;
  if (!existing || !c.SkipNodeUpdate) {
    // Consul asks node:write only when the node row would change; an unchanged node is free.
    const same = existing && existing.Address === (c.Address ?? existing.Address) && (c.ID === undefined || c.ID === '' || existing.ID === c.ID)
      && JSON.stringify(existing.Meta ?? {}) === JSON.stringify(c.NodeMeta ?? existing.Meta ?? {})
      && JSON.stringify(existing.TaggedAddresses ?? {}) === JSON.stringify(c.TaggedAddresses ?? existing.TaggedAddresses ?? {});
    if (!same) require(a, 'node', 'write', c.Node);
  }
  const svc = c.Service;
  if (svc) {
    require(a, 'service', 'write', svc.Service);
    // A proxy also needs write on the service it fronts (Consul's vetRegisterWithACL).
    const dest = svc.Proxy?.DestinationServiceName;
    if (svc.Kind === 'connect-proxy' && dest) require(a, 'service', 'write', dest);
  }
  for (const chk of [...(c.Check ? [c.Check] : []), ...(c.Checks ?? [])]) {
    const sid = chk.ServiceID ?? '';
    if (sid === '') {
      require(a, 'node', 'write', chk.Node ?? c.Node);
    } else {
      const name = svc && (svc.ID ?? svc.Service).toLowerCase() === sid.toLowerCase() ? svc.Service : serviceNameOf(store, c.Node, sid);
      require(a, 'service', 'write', name ?? sid);
    }
  }
}

function checkTxnOps(a: Identity, store: StateReader, ops: readonly TxnOp[]): void {
  for (const raw of ops) {
    const op = raw as unknown as Record<string, Record<string, unknown> | undefined>;
    if (op.KV) {
      const verb = String(op.KV.Verb ?? '');
      const key = String(op.KV.Key ?? '');
      if (verb === 'get' || verb.startsWith('check-')) require(a, 'key', 'read', key);
      else if (verb === 'get-tree') {
        if (!a.authorizer.allowed('key', 'read', key)) throw denied(a, 'key', 'read', key);
      } else if (verb === 'delete-tree') {
        if (!a.authorizer.keyWritePrefix(key)) throw denied(a, 'key', 'write', key);
      } else require(a, 'key', 'write', key);
    }
    const write = (v: unknown) => String(v ?? '') !== 'get';
    if (op.Node) {
      const n = (op.Node.Node as Record<string, unknown> | undefined) ?? {};
      require(a, 'node', write(op.Node.Verb) ? 'write' : 'read', String(n.Node ?? ''));
    }
    if (op.Service) {
      const s = (op.Service.Service as Record<string, unknown> | undefined) ?? {};
      const name = String(s.Service ?? '') || serviceNameOf(store, String(op.Service.Node ?? ''), String(s.ID ?? '')) || String(s.ID ?? '');
      require(a, 'service', write(op.Service.Verb) ? 'write' : 'read', name);
    }
    if (op.Check) {
      const c = (op.Check.Check as Record<string, unknown> | undefined) ?? {};
      const perm = write(op.Check.Verb) ? 'write' : 'read';
      if (String(c.ServiceID ?? '') === '') require(a, 'node', perm, String(c.Node ?? ''));
      else require(a, 'service', perm, String(c.ServiceName ?? '') || serviceNameOf(store, String(c.Node ?? ''), String(c.ServiceID)) || String(c.ServiceID));
    }
    if (op.Session) {
      const s = (op.Session.Session as Record<string, unknown> | undefined) ?? {};
      const node = String(s.Node ?? '') || store.sessionGet(String(s.ID ?? '')).value?.Node || '';
      require(a, 'session', 'write', node);
    }
  }
}

/**
 * Throws 403 unless `identity` may apply `cmd`. Internal commands (ACL init, CA state, tombstone
 * reaping) need management rights, so a forwarded write cannot smuggle them in.
 */
export function authorizeCommand(identity: Identity, store: StateReader, cmd: Command): void {
  const c = cmd as Command & Record<string, unknown>;
  switch (cmd.type) {
    case 'kvSet': case 'kvCas': case 'kvLock': case 'kvUnlock': case 'kvDelete': case 'kvDeleteCas':
      require(identity, 'key', 'write', cmd.Key);
      return;
    case 'kvDeleteTree':
      if (!identity.authorizer.keyWritePrefix(cmd.Prefix)) throw denied(identity, 'key', 'write', cmd.Prefix);
      return;
    case 'catalogRegister':
      checkRegistration(identity, store, cmd);
      return;
    case 'catalogDeregister': {
      if (cmd.ServiceID) require(identity, 'service', 'write', serviceNameOf(store, cmd.Node, cmd.ServiceID) ?? cmd.ServiceID);
      else if (cmd.CheckID) {
        const chk = store.nodeChecks(cmd.Node).value.find((x) => x.CheckID === cmd.CheckID);
        if (chk && chk.ServiceID !== '') require(identity, 'service', 'write', chk.ServiceName);
        else require(identity, 'node', 'write', cmd.Node);
      } else require(identity, 'node', 'write', cmd.Node);
      return;
    }
    case 'sessionCreate': {
      const s = (c.Session ?? {}) as Record<string, unknown>;
      require(identity, 'session', 'write', String(s.Node ?? ''));
      return;
    }
    case 'sessionDestroy': {
      const s = store.sessionGet(cmd.ID).value;
      if (s) require(identity, 'session', 'write', s.Node);
      return;
    }
    case 'configEntrySet': {
      const right = configEntryRight(String(cmd.Entry.Kind), String(cmd.Entry.Name), 'write');
      if (right) require(identity, ...right);
      return;
    }
    case 'configEntryDelete': {
      const right = configEntryRight(cmd.Kind, cmd.Name, 'write');
      if (right) require(identity, ...right);
      return;
    }
    case 'txn':
      checkTxnOps(identity, store, cmd.Ops);
      return;
    case 'aclTokenSet': case 'aclTokenDelete': case 'aclPolicySet': case 'aclPolicyDelete': case 'aclRoleSet': case 'aclRoleDelete':
      require(identity, 'acl', 'write');
      return;
    default:
      // aclBootstrap is checked by its endpoint (anyone may try, once); the rest is the servers' own.
      if (cmd.type === 'aclBootstrap') return;
      require(identity, 'acl', 'write');
  }
}

/**
 * The token an agent's own catalog write is made with (Consul's anti-entropy): a service's rows
 * with the token it was registered with through the API (kept with the service in the data dir
 * across restarts: local/persist.ts); a service without one (from a config file) with
 * acl.tokens.config_file_service_registration when set; everything else with acl.tokens.agent
 * (else the default).
 */
export function antiEntropyToken(acl: { serviceTokens: Map<string, string> }, tokens: { agent: string; default: string; configFileServiceRegistration?: string }, cmd: Command): string {
  let serviceId: string | undefined;
  if (cmd.type === 'catalogRegister') serviceId = cmd.Service?.ID ?? cmd.Service?.Service ?? cmd.Check?.ServiceID ?? cmd.Checks?.[0]?.ServiceID;
  else if (cmd.type === 'catalogDeregister') serviceId = cmd.ServiceID;
  const own = serviceId ? acl.serviceTokens.get(serviceId) ?? tokens.configFileServiceRegistration : undefined;
  return own || tokens.agent || tokens.default;
}

/** Remembers the token a service (and its sidecar) was registered with on this agent. */
export function recordServiceToken(acl: { serviceTokens: Map<string, string> }, ctx: RequestContext, token: string | undefined): void {
  if (!token) return;
  const b = jsonBody(ctx);
  const name = String(field(b, 'Name') ?? '');
  const id = String(field(b, 'ID') ?? '') || name;
  if (id === '') return;
  acl.serviceTokens.set(id, token);
  const connect = field(b, 'Connect') as Record<string, unknown> | undefined;
  const sidecar = connect ? field(connect, 'SidecarService') : undefined;
  if (sidecar && typeof sidecar === 'object') {
    const sid = String(field(sidecar as Record<string, unknown>, 'ID') ?? '') || `${id}-sidecar-proxy`;
    acl.serviceTokens.set(sid, token);
  }
}

// ---- 1. endpoints ----------------------------------------------------------------------------------

function jsonBody(ctx: RequestContext): Record<string, unknown> {
  if (!ctx.body || ctx.body.length === 0) return {};
  try {
    const v: unknown = JSON.parse(ctx.body.toString('utf8'));
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? v as Record<string, unknown> : {};
  } catch {
    return {};
  }
}

/** A field of a JSON body, matched case-insensitively as Go's encoding/json does. */
function field(o: Record<string, unknown>, name: string): unknown {
  if (name in o) return o[name];
  const lower = name.toLowerCase();
  for (const [k, v] of Object.entries(o)) if (k.toLowerCase() === lower) return v;
  return undefined;
}

/** What a guard needs to know about the agent it runs on. */
export interface GuardEnv {
  nodeName: string;
  store: StateReader;
  /** acl.enable_key_list_policy: KV listings (?recurse, ?keys) need `list` on the prefix. */
  enableKeyListPolicy?: boolean;
  /** Agent-local services (for deregistration and checks by ID): service ID → name. */
  localServiceName(id: string): string | undefined;
  /** Agent-local checks: check ID → the service it belongs to ('' for node checks). */
  localCheckService(id: string): { serviceName: string } | undefined;
}

/**
 * The rights an endpoint needs before its handler runs. Returns normally when allowed (or when the
 * endpoint's rights are checked elsewhere: writes by authorizeCommand, lists by filterResult).
 */
export function guardRequest(path: string, ctx: RequestContext, a: Identity, env: GuardEnv): void {
  const m = ctx.method;
  const write = m !== 'GET' && m !== 'HEAD';
  switch (path) {
    case '/v1/kv/':
      if (write) return;
      if (ctx.has('recurse') || ctx.has('keys')) {
        // acl.enable_key_list_policy: a listing needs `list` on its prefix before anything is read
        // (Consul's KVS.List / ListKeys answer acl.ErrPermissionDenied, the bare text); the entries
        // are then filtered by `read` as always.
        if (env.enableKeyListPolicy && !a.authorizer.allowed('key', 'list', ctx.rest)) {
          throw new HttpError(403, ERR_PERMISSION_DENIED, 'ERR_PERMISSION_DENIED');
        }
        return;
      }
      require(a, 'key', 'read', ctx.rest);
      return;
    case '/v1/agent/self': case '/v1/agent/metrics':
      require(a, 'agent', 'read', env.nodeName);
      return;
    case '/v1/agent/reload': case '/v1/agent/leave': case '/v1/agent/join/':
      require(a, 'agent', 'write', env.nodeName);
      return;
    case '/v1/agent/force-leave/':
      require(a, 'operator', 'write');
      return;
    case '/v1/agent/maintenance':
      require(a, 'node', 'write', env.nodeName);
      return;
    case '/v1/agent/service/register': {
      const b = jsonBody(ctx);
      const name = String(field(b, 'Name') ?? field(b, 'Service') ?? '');
      require(a, 'service', 'write', name);
      const kind = String(field(b, 'Kind') ?? '');
      const proxy = field(b, 'Proxy') as Record<string, unknown> | undefined;
      const dest = proxy ? String(field(proxy, 'DestinationServiceName') ?? '') : '';
      if (kind === 'connect-proxy' && dest) require(a, 'service', 'write', dest);
      const connect = field(b, 'Connect') as Record<string, unknown> | undefined;
      const sidecar = connect ? field(connect, 'SidecarService') : undefined;
      if (sidecar && typeof sidecar === 'object') {
        const sc = sidecar as Record<string, unknown>;
        require(a, 'service', 'write', String(field(sc, 'Name') ?? '') || `${name}-sidecar-proxy`);
      }
      return;
    }
    case '/v1/agent/service/deregister/': case '/v1/agent/service/maintenance/': {
      require(a, 'service', 'write', env.localServiceName(ctx.rest) ?? ctx.rest);
      return;
    }
    case '/v1/agent/service/':
      require(a, 'service', 'read', env.localServiceName(ctx.rest) ?? ctx.rest);
      return;
    case '/v1/agent/check/register': {
      const b = jsonBody(ctx);
      const sid = String(field(b, 'ServiceID') ?? '');
      if (sid === '') require(a, 'node', 'write', env.nodeName);
      else require(a, 'service', 'write', env.localServiceName(sid) ?? sid);
      return;
    }
    case '/v1/agent/check/deregister/': case '/v1/agent/check/pass/': case '/v1/agent/check/warn/':
    case '/v1/agent/check/fail/': case '/v1/agent/check/update/': {
      const chk = env.localCheckService(ctx.rest);
      if (chk && chk.serviceName !== '') require(a, 'service', 'write', chk.serviceName);
      else require(a, 'node', 'write', env.nodeName);
      return;
    }
    case '/v1/agent/connect/ca/leaf/':
      require(a, 'service', 'write', ctx.rest);
      return;
    case '/v1/agent/connect/authorize': {
      const b = jsonBody(ctx);
      require(a, 'service', 'write', String(field(b, 'Target') ?? ''));
      return;
    }
    case '/v1/event/fire/':
      require(a, 'event', 'write', ctx.rest);
      return;
    case '/v1/session/info/':
      return;
    case '/v1/session/renew/': {
      const s = env.store.sessionGet(ctx.rest).value;
      if (s) require(a, 'session', 'write', s.Node);
      return;
    }
    case '/v1/connect/ca/configuration':
      require(a, 'operator', write ? 'write' : 'read');
      return;
    case '/v1/internal/connect/ca/sign':
      require(a, 'service', 'write', '');
      return;
    case '/v1/discovery-chain/':
      require(a, 'service', 'read', ctx.rest);
      return;
    case '/v1/config/': {
      if (write) return;
      const [kind = '', ...rest] = ctx.rest.split('/');
      const name = rest.join('/');
      if (name !== '') {
        const right = configEntryRight(kind, name, 'read');
        if (right) require(a, ...right);
      }
      return;
    }
    case '/v1/txn': {
      const body = ctx.body && ctx.body.length > 0 ? (() => {
        try {
          return JSON.parse(ctx.body!.toString('utf8')) as unknown;
        } catch {
          return undefined;
        }
      })() : undefined;
      if (Array.isArray(body)) checkTxnOps(a, env.store, body.map((op) => normalizeTxnOp(op)));
      return;
    }
    case '/v1/snapshot':
      require(a, 'acl', 'write');
      return;
    // Consul's Intention.Get / Check: intention read on (Check: service read of) the destination.
    case '/v1/connect/intentions/exact':
      // Writes too: a delete of a source that is not there proposes nothing, and still needs the right.
      require(a, 'intention', write ? 'write' : 'read', ctx.get('destination') ?? '');
      return;
    case '/v1/connect/intentions/check':
      require(a, 'service', 'read', ctx.get('destination') ?? '');
      return;
  }
  if (path.startsWith('/v1/operator/')) require(a, 'operator', write ? 'write' : 'read');
}

/** Txn ops as clients send them (any key case) in the shape checkTxnOps reads. */
function normalizeTxnOp(op: unknown): TxnOp {
  const out: Record<string, unknown> = {};
  if (typeof op !== 'object' || op === null) return out as unknown as TxnOp;
  for (const [k, v] of Object.entries(op as Record<string, unknown>)) {
    const key = ['KV', 'Node', 'Service', 'Check', 'Session'].find((x) => x.toLowerCase() === k.toLowerCase());
    if (!key || typeof v !== 'object' || v === null) continue;
    const inner: Record<string, unknown> = {};
    for (const [ik, iv] of Object.entries(v as Record<string, unknown>)) inner[ik.charAt(0).toUpperCase() + ik.slice(1)] = iv;
    out[key] = inner;
  }
  return out as unknown as TxnOp;
}

// ---- 3. results ------------------------------------------------------------------------------------

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);

/** Keeps what `keep` allows; notes whether anything was dropped. */
function keepList(v: unknown, keep: (x: Obj) => boolean, dropped: { any: boolean }): unknown {
  if (!Array.isArray(v)) return v;
  const out = v.filter((x) => !isObj(x) || keep(x));
  if (out.length !== v.length) dropped.any = true;
  return out;
}

function keepMap(v: unknown, keep: (k: string, x: unknown) => boolean, dropped: { any: boolean }): unknown {
  if (!isObj(v)) return v;
  const out: Obj = {};
  for (const [k, x] of Object.entries(v)) {
    if (keep(k, x)) out[k] = x;
    else dropped.any = true;
  }
  return out;
}

/**
 * Drops from a handler's result what the identity may not read. Returns the value to send and
 * whether anything was dropped (then the response carries X-Consul-Results-Filtered-By-ACLs).
 */
export function filterResult(path: string, ctx: RequestContext, value: unknown, a: Identity): { value: unknown; filtered: boolean } {
  const z = a.authorizer;
  const dropped = { any: false };
  const node = (n: unknown) => z.allowed('node', 'read', String(n ?? ''));
  const svc = (s: unknown) => z.allowed('service', 'read', String(s ?? ''));
  const check = (c: Obj) => node(c.Node) && (String(c.ServiceName ?? '') === '' || svc(c.ServiceName));
  let out = value;
  switch (path) {
    // KV listings are filtered in their handler (routes/kv.ts), before ?keys folds and before the
    // 404 for an empty answer, as Consul's KVS.List / ListKeys filter in the RPC.
    case '/v1/catalog/nodes': case '/v1/internal/ui/nodes':
      out = keepList(value, (n) => node(n.Node), dropped);
      break;
    case '/v1/catalog/services':
      out = keepMap(value, (k) => svc(k), dropped);
      break;
    case '/v1/catalog/service/': case '/v1/catalog/connect/':
      out = keepList(value, (s) => svc(s.ServiceName) && node(s.Node), dropped);
      break;
    case '/v1/catalog/node/': case '/v1/catalog/node-services/': {
      if (!isObj(value)) break;
      const n = value.Node;
      if (isObj(n) && !node(n.Node)) {
        dropped.any = true;
        out = null;
        break;
      }
      const services = value.Services;
      out = { ...value, Services: Array.isArray(services) ? keepList(services, (s) => svc(s.Service), dropped) : keepMap(services, (_k, s) => !isObj(s) || svc(s.Service), dropped) };
      break;
    }
    case '/v1/health/service/': case '/v1/health/connect/':
      out = keepList(value, (e) => svc(isObj(e.Service) ? e.Service.Service : '') && node(isObj(e.Node) ? e.Node.Node : ''), dropped);
      break;
    case '/v1/health/checks/': case '/v1/health/node/': case '/v1/health/state/': case '/v1/agent/checks':
      out = Array.isArray(value) ? keepList(value, check, dropped) : keepMap(value, (_k, c) => !isObj(c) || check(c), dropped);
      break;
    case '/v1/agent/services':
      out = keepMap(value, (_k, s) => !isObj(s) || svc(s.Service), dropped);
      break;
    case '/v1/agent/members':
      out = keepList(value, (m) => node(m.Name), dropped);
      break;
    case '/v1/internal/ui/services':
      out = keepList(value, (s) => svc(s.Name), dropped);
      break;
    case '/v1/session/list': case '/v1/session/node/': case '/v1/session/info/':
      out = keepList(value, (s) => z.allowed('session', 'read', String(s.Node ?? '')), dropped);
      break;
    case '/v1/event/list':
      out = keepList(value, (e) => z.allowed('event', 'read', String(e.Name ?? '')), dropped);
      break;
    case '/v1/config/':
      if (ctx.method === 'GET' && Array.isArray(value)) {
        out = keepList(value, (e) => {
          const right = configEntryRight(String(e.Kind ?? ''), String(e.Name ?? ''), 'read');
          return right === undefined || z.allowed(...right);
        }, dropped);
      }
      break;
    case '/v1/connect/intentions':
      if (ctx.method === 'GET') out = keepList(value, (i) => z.allowed('intention', 'read', String(i.DestinationName ?? '')), dropped);
      break;
    case '/v1/connect/intentions/': {
      // One intention by ID (Consul's Intention.Get): intention read on its destination, else 403.
      if (ctx.method === 'GET' && isObj(value) && !z.allowed('intention', 'read', String(value.DestinationName ?? ''))) {
        throw denied(a, 'intention', 'read', String(value.DestinationName ?? ''));
      }
      break;
    }
    case '/v1/connect/intentions/match':
      // {name: [intentions]}: each list keeps what the token may read.
      if (isObj(value)) {
        const o: Obj = {};
        for (const [k, v] of Object.entries(value)) o[k] = keepList(v, (i) => z.allowed('intention', 'read', String(i.DestinationName ?? '')), dropped);
        out = o;
      }
      break;
  }
  return { value: out, filtered: dropped.any };
}

export type { Authorizer };
