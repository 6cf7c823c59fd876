// Intentions: Consul's legacy API (agent/intentions_endpoint.go, agent/consul/intention_endpoint.go)
// on top of service-intentions config entries, as Consul 1.9+ stores them: one entry per
// destination, one Source per caller.
//   GET    /v1/connect/intentions                        every intention, precedence order (blocking)
//   POST   /v1/connect/intentions                        legacy create: {"ID": "<uuid>"}, kept as the source's LegacyID
//   GET    /v1/connect/intentions/exact?source=&destination=   one intention, 404 "Intention not found"
//   PUT    /v1/connect/intentions/exact?source=&destination=   upsert the source (Action or Permissions): true
//   DELETE /v1/connect/intentions/exact?source=&destination=   remove the source (the entry with its last): true
//   GET    /v1/connect/intentions/match?by=source|destination&name=...   {name: [intentions]}
//   GET    /v1/connect/intentions/check?source=&destination=            {"Allowed": bool}
//   GET|PUT|DELETE /v1/connect/intentions/:id             a legacy-created intention by its ID
// A write reads the destination's entry, changes its Sources, validates the whole entry with the
// config entry rules (structs/configEntries: duplicate sources, partial wildcards, Action with
// Permissions ... with Consul's texts, 400) and writes it back with a check-and-set on its
// ModifyIndex, retrying when another write got in between. Consul does the read-modify-write inside
// its FSM; the CAS gives the same outcome (no lost update) without a new Raft command. Consul answers
// the RPC-side refusals with 500; Trellis answers every bad input with 400 and the same sentence.
// Client agents forward all of it to a server (not agent-local).

import { randomUUID } from 'node:crypto';
import { authorizeConnection, decideIntention, exactIntention, flattenIntentions, intentionDefault, matchIntentions, WILDCARD, type Intention } from '../../connect/intentions.ts';
import { parseSpiffeId, SpiffeParseError, type SpiffeId } from '../../connect/spiffe.ts';
import { applyOk } from '../../state/apply.ts';
import type { ConfigEntry } from '../../state/types.ts';
import { ConfigEntryDecodeError, parseConfigEntry } from '../../structs/configEntries/index.ts';
import type { RequestContext } from '../context.ts';
import { decodeBody, type Schema } from '../decode.ts';
import { EntriesCache } from '../entriesCache.ts';
import { badRequest, HttpError } from '../errors.ts';
import type { EndpointSpec, RouteDeps } from '../router.ts';
import { readQuery } from './common.ts';

export const SERVICE_INTENTIONS = 'service-intentions';
const DEFAULT_NS = 'default';
/** Consul's ErrIntentionNotFound. */
export const INTENTION_NOT_FOUND = 'Intention not found';
/** Bounded retries of a read-modify-write that lost its check-and-set to a concurrent write. */
const CAS_ATTEMPTS = 8;

type Obj = Record<string, unknown>;
const str = (v: unknown): string => (typeof v === 'string' ? v : '');

/** structs.Intention as a request body (Go's lenient decode: unknown keys are dropped). */
const INTENTION_SCHEMA: Schema = {
  name: 'Intention',
  fields: {
    ID: 'string', Description: 'string', SourceNS: 'string', SourceName: 'string', DestinationNS: 'string', DestinationName: 'string',
    SourcePartition: 'string', DestinationPartition: 'string', SourcePeer: 'string', SourceSamenessGroup: 'string',
    SourceType: 'string', Action: 'string', Permissions: 'any', JWT: 'any', DefaultAddr: 'string', DefaultPort: 'int',
    Meta: 'stringMap', Precedence: 'int', CreatedAt: 'any', UpdatedAt: 'any', Hash: 'any', CreateIndex: 'uint', ModifyIndex: 'uint',
  },
};

/** SourceIntention's fields in Consul's JSON order: a stored source is rebuilt in this order. */
const SOURCE_ORDER = [
  'Name', 'Peer', 'Partition', 'Namespace', 'SamenessGroup', 'Action', 'Permissions', 'Precedence', 'LegacyID', 'Type',
  'Description', 'LegacyMeta', 'LegacyCreateTime', 'LegacyUpdateTime',
];
const LEGACY_FIELDS = ['LegacyID', 'LegacyMeta', 'LegacyCreateTime', 'LegacyUpdateTime'];

/** hashicorp/go-multierror's text, as Consul's Intention.Validate answers. */
function multiError(errors: string[]): string {
  return `${errors.length} error${errors.length === 1 ? '' : 's'} occurred:\n${errors.map((e) => `\t* ${e}`).join('\n')}\n\n`;
}

/** Consul CE's validateEnterpriseIntentionNamespace/Partition: only the default (or none) exists. */
function checkTenancy(field: string, value: string, feature: 'Namespaces' | 'Partitions'): void {
  if (value === '' || value.toLowerCase() === DEFAULT_NS) return;
  throw badRequest(`Invalid ${field}(${value}): ${feature} is a Consul Enterprise feature`);
}

/**
 * A source or destination from the query (Consul's parseIntentionStringComponent): "name",
 * "ns/name" or "partition/ns/name"; only the default namespace and partition exist in CE.
 */
function parseTarget(input: string, what: string): string {
  if (input.startsWith('peer:')) throw badRequest(`${what} ${JSON.stringify(input)} is invalid: cannot specify a peer here`);
  const parts = input.split('/');
  if (parts.length > 3) throw badRequest(`${what} ${JSON.stringify(input)} is invalid: input can contain at most two '/'`);
  const name = parts[parts.length - 1]!;
  if (parts.length >= 2) checkTenancy(`${what} namespace `, parts[parts.length - 2]!, 'Namespaces');
  if (parts.length === 3) checkTenancy(`${what} partition `, parts[0]!, 'Partitions');
  return name;
}

/** Consul's required-parameter check: exactly one non-empty value. */
function required(ctx: RequestContext, name: string): string {
  const all = ctx.getAll(name);
  if (all.length !== 1 || all[0] === '') throw badRequest(`required query parameter '${name}' not set`);
  return all[0]!;
}

/** A source in Consul's field order, with any other field after. */
function ordered(src: Obj): Obj {
  const out: Obj = {};
  for (const k of SOURCE_ORDER) if (src[k] !== undefined) out[k] = src[k];
  for (const [k, v] of Object.entries(src)) if (!(k in out) && v !== undefined) out[k] = v;
  return out;
}

const sourceKey = (s: Obj): string => JSON.stringify([str(s.Peer), str(s.SamenessGroup), str(s.Partition), str(s.Name)]);
const isLocalNamed = (s: Obj, name: string): boolean => str(s.Name) === name && str(s.Peer) === '' && str(s.SamenessGroup) === '';

/**
 * The entry to store for `destination` with these sources: validated by the config entry rules with
 * the legacy fields set aside (users may not write them; the legacy API does), which are then put
 * back on their sources. Throws the rule's error (400).
 */
function buildEntry(destination: string, existing: ConfigEntry | null, sources: Obj[]): Obj {
  const legacy = new Map<string, Obj>();
  const plain = sources.map((s) => {
    const copy: Obj = { ...s };
    const kept: Obj = {};
    for (const f of LEGACY_FIELDS) {
      if (copy[f] !== undefined) kept[f] = copy[f];
      delete copy[f];
    }
    // Precedence is read-only: the rules compute it again.
    delete copy.Precedence;
    legacy.set(sourceKey(s), kept);
    return copy;
  });
  const body: Obj = { Kind: SERVICE_INTENTIONS, Name: destination, Sources: plain };
  if (existing?.Meta !== undefined) body.Meta = existing.Meta;
  if (existing?.JWT !== undefined) body.JWT = existing.JWT;
  let entry: Obj;
  try {
    entry = parseConfigEntry(body);
  } catch (err) {
    if (err instanceof ConfigEntryDecodeError) throw badRequest(`Request decode failed: ${err.message}`);
    throw err; // ConfigEntryValidationError: 400 with Consul's text.
  }
  entry.Sources = (entry.Sources as Obj[]).map((s) => ordered({ ...s, ...legacy.get(sourceKey(s)) }));
  return entry;
}

/** The response an endpoint answers for the intentions a write left (the legacy create's ID, or true). */
type Change = (sources: Obj[], existing: ConfigEntry | null) => Obj[] | null;

export function intentionRoutes(deps: RouteDeps): EndpointSpec[] {
  const { backend } = deps;
  const store = backend.store;

  /**
   * Read-modify-write of the destination's entry with a CAS on its ModifyIndex. `change` returns
   * the new sources (an empty list deletes the entry) or null when there is nothing to write.
   */
  async function mutate(ctx: RequestContext, destination: string, change: Change): Promise<void> {
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      // The local replica must include every committed write, or the CAS would fail over and over.
      await backend.consistentRead(ctx.signal);
      const existing = store.configEntry(SERVICE_INTENTIONS, destination).value;
      const current = Array.isArray(existing?.Sources) ? (existing.Sources as Obj[]).map((s) => ({ ...s })) : [];
      const next = change(current, existing);
      if (next === null) return;
      if (next.length === 0) {
        if (!existing) return;
        const { value } = await applyOk(backend.apply, { type: 'configEntryDelete', Kind: SERVICE_INTENTIONS, Name: existing.Name, Cas: existing.ModifyIndex });
        if (value) return;
        continue;
      }
      const entry = buildEntry(existing?.Name ?? destination, existing, next);
      const { value } = await applyOk(backend.apply, { type: 'configEntrySet', Entry: entry as ConfigEntry, Cas: existing ? existing.ModifyIndex : 0 });
      if (value) return;
    }
    throw new HttpError(500, `intention write for ${JSON.stringify(destination)} conflicted with concurrent writes ${CAS_ATTEMPTS} times; try again`, 'ERR_CAS_CONFLICT');
  }

  async function list(ctx: RequestContext): Promise<unknown> {
    const res = await readQuery<Intention[]>(ctx, deps, (ws) => {
      const r = store.configEntries(SERVICE_INTENTIONS, ws);
      return { index: r.index, value: flattenIntentions(r.value) };
    });
    return res.value;
  }

  /** POST: Consul's computeApplyChangesLegacyCreate. */
  /**
   * A legacy body (POST, PUT by ID) decoded and checked as Consul's HTTP edge and Intention.Validate
   * do; returns the source it becomes (without ID and times) and its destination.
   */
  function legacyIntention(ctx: RequestContext): { destination: string; source: Obj; id: string } {
    const ixn = decodeBody<Obj>(ctx.body, INTENTION_SCHEMA);
    if (str(ixn.SourcePeer) !== '') throw badRequest('SourcePeer field is not supported on this endpoint. Use config entries instead');
    if (str(ixn.DestinationPartition) !== '' && str(ixn.DestinationPartition) !== 'default') throw badRequest('Cannot specify a destination partition with this endpoint');
    if (str(ixn.SourcePartition) !== '' && str(ixn.SourcePartition) !== 'default') throw badRequest('Cannot specify a source partition with this endpoint');
    checkTenancy('SourceNS', str(ixn.SourceNS), 'Namespaces');
    checkTenancy('DestinationNS', str(ixn.DestinationNS), 'Namespaces');
    const srcName = str(ixn.SourceName);
    const dstName = str(ixn.DestinationName);
    const errors: string[] = [];
    if (srcName === '') errors.push('SourceName must be set');
    if (dstName === '') errors.push('DestinationName must be set');
    if (srcName !== WILDCARD && srcName.includes(WILDCARD)) errors.push("SourceName: wildcard character '*' cannot be used with partial values");
    if (dstName !== WILDCARD && dstName.includes(WILDCARD)) errors.push("DestinationName: wildcard character '*' cannot be used with partial values");
    if (Buffer.byteLength(str(ixn.Description)) > 512) errors.push('Description exceeds maximum length 512');
    const action = str(ixn.Action);
    if (action !== 'allow' && action !== 'deny') errors.push("Action must be set to 'allow' or 'deny'");
    if (Array.isArray(ixn.Permissions) && ixn.Permissions.length > 0) errors.push('Permissions must not be set when using the legacy APIs');
    const sourceType = str(ixn.SourceType) || 'consul';
    if (sourceType !== 'consul') errors.push("SourceType must be set to 'consul'");
    if (errors.length > 0) throw badRequest(multiError(errors));
    const source: Obj = {
      Name: srcName, Action: action, Type: sourceType,
      ...(str(ixn.Description) !== '' ? { Description: ixn.Description } : {}),
      ...(ixn.Meta && Object.keys(ixn.Meta as Obj).length > 0 ? { LegacyMeta: ixn.Meta } : {}),
    };
    return { destination: dstName, source, id: str(ixn.ID) };
  }

  /** POST: Consul's computeApplyChangesLegacyCreate. */
  async function create(ctx: RequestContext): Promise<unknown> {
    const { destination, source, id: given } = legacyIntention(ctx);
    if (given !== '') throw badRequest('ID must be empty when creating a new intention');
    const id = randomUUID();
    const now = new Date().toISOString();
    const row = { ...source, LegacyID: id, LegacyCreateTime: now, LegacyUpdateTime: now };
    // A second source of the same name fails the entry's duplicate rule, as in Consul.
    await mutate(ctx, destination, (sources) => [...sources, row]);
    return { ID: id };
  }

  /** PUT /v1/connect/intentions/:id: Consul's computeApplyChangesLegacyUpdate (the source may be renamed, not the destination). */
  async function updateById(ctx: RequestContext): Promise<unknown> {
    const id = ctx.rest;
    const { destination, source } = legacyIntention(ctx);
    await backend.consistentRead(ctx.signal);
    const found = flattenIntentions(store.configEntries(SERVICE_INTENTIONS).value).find((i) => i.ID === id);
    if (!found) throw new HttpError(404, `Cannot modify non-existent intention: '${id}'`, 'ERR_NOT_FOUND');
    if (found.DestinationName !== destination) throw badRequest('Cannot modify Destination partition/namespace/name for an intention once it exists.');
    await mutate(ctx, destination, (sources) => {
      const at = sources.findIndex((s) => str(s.LegacyID) === id);
      if (at < 0) throw new HttpError(404, `Cannot modify non-existent intention: '${id}'`, 'ERR_NOT_FOUND');
      const old = sources[at]!;
      sources[at] = { ...source, LegacyID: id, LegacyCreateTime: old.LegacyCreateTime, LegacyUpdateTime: new Date().toISOString() };
      return sources;
    });
    return undefined;
  }

  function exactParams(ctx: RequestContext): { source: string; destination: string } {
    const source = parseTarget(required(ctx, 'source'), 'source');
    const destination = parseTarget(required(ctx, 'destination'), 'destination');
    return { source, destination };
  }

  async function getExact(ctx: RequestContext): Promise<unknown> {
    const { source, destination } = exactParams(ctx);
    const res = await readQuery<Intention | undefined>(ctx, deps, (ws) => {
      const r = store.configEntries(SERVICE_INTENTIONS, ws);
      return { index: r.index, value: exactIntention(flattenIntentions(r.value), source, destination) };
    });
    if (res.value === undefined) throw new HttpError(404, INTENTION_NOT_FOUND, 'ERR_NOT_FOUND');
    return res.value;
  }

  /** PUT: Consul's computeApplyChangesUpsert (the config-entry flavour: Permissions allowed). */
  async function putExact(ctx: RequestContext): Promise<unknown> {
    const { source, destination } = exactParams(ctx);
    const ixn = decodeBody<Obj>(ctx.body, INTENTION_SCHEMA);
    if (str(ixn.SourcePeer) !== '') throw badRequest('SourcePeer field is not supported on this endpoint. Use config entries instead');
    const meta = (ixn.Meta ?? {}) as Record<string, string>;
    await mutate(ctx, destination, (sources, existing) => {
      if (Object.keys(meta).length > 0) {
        // Meta belongs to the enclosing entry; it may only be sent back unchanged.
        if (!existing) throw badRequest('Meta must not be specified');
        const prev = (existing.Meta ?? {}) as Record<string, string>;
        const same = Object.keys(prev).length === Object.keys(meta).length && Object.entries(meta).every(([k, v]) => prev[k] === v);
        if (!same) throw badRequest('Meta must not be specified, or should be unchanged during an update.');
      }
      const next: Obj = { Name: source, Type: str(ixn.SourceType) || 'consul' };
      if (ixn.Action !== undefined && ixn.Action !== '') next.Action = ixn.Action;
      if (Array.isArray(ixn.Permissions) && ixn.Permissions.length > 0) next.Permissions = ixn.Permissions;
      if (str(ixn.Description) !== '') next.Description = ixn.Description;
      const at = sources.findIndex((s) => isLocalNamed(s, source));
      if (at >= 0) sources[at] = next;
      else sources.push(next);
      return sources;
    });
    return true;
  }

  /** DELETE: by-name deletions are idempotent (computeApplyChangesDelete). */
  async function deleteExact(ctx: RequestContext): Promise<unknown> {
    const { source, destination } = exactParams(ctx);
    await mutate(ctx, destination, (sources) => {
      const at = sources.findIndex((s) => isLocalNamed(s, source));
      if (at < 0) return null;
      sources.splice(at, 1);
      return sources;
    });
    return true;
  }

  async function match(ctx: RequestContext): Promise<unknown> {
    const byAll = ctx.getAll('by');
    if (byAll.length !== 1) throw badRequest("required query parameter 'by' not set");
    const by = byAll[0]!;
    if (by !== 'source' && by !== 'destination') throw badRequest("'by' parameter must be one of 'source' or 'destination'");
    const names = ctx.getAll('name');
    if (names.length === 0) throw badRequest("required query parameter 'name' not set");
    const parsed = names.map((n) => parseTarget(n, 'name'));
    const res = await readQuery<Record<string, Intention[]>>(ctx, deps, (ws) => {
      const r = store.configEntries(SERVICE_INTENTIONS, ws);
      const all = flattenIntentions(r.value);
      const out: Record<string, Intention[]> = {};
      names.forEach((n, i) => {
        out[n] = matchIntentions(all, by, parsed[i]!);
      });
      return { index: r.index, value: out };
    });
    return res.value;
  }

  async function check(ctx: RequestContext): Promise<unknown> {
    const sourceType = ctx.get('source-type') ?? 'consul';
    if (sourceType !== 'consul') throw badRequest(`unsupported SourceType: ${JSON.stringify(sourceType)}`);
    const source = parseTarget(required(ctx, 'source'), 'source');
    const destination = parseTarget(required(ctx, 'destination'), 'destination');
    const res = await readQuery<boolean>(ctx, deps, (ws) => {
      const r = store.configEntries(SERVICE_INTENTIONS, ws);
      // The server's default_intention_policy, else allow (no ACLs in Trellis; connect/intentions.ts).
      const def = intentionDefault(backend.config.defaultIntentionPolicy ?? '', !backend.config.acl?.enabled || backend.config.acl.defaultPolicy === 'allow');
      return { index: r.index, value: decideIntention(flattenIntentions(r.value), source, destination, def.allow).allowed };
    });
    return { Allowed: res.value };
  }

  /** GET /v1/connect/intentions/:id: a legacy-created intention by its ID (the source's LegacyID). */
  async function getById(ctx: RequestContext): Promise<unknown> {
    const id = ctx.rest;
    const res = await readQuery<Intention | undefined>(ctx, deps, (ws) => {
      const r = store.configEntries(SERVICE_INTENTIONS, ws);
      return { index: r.index, value: flattenIntentions(r.value).find((i) => i.ID === id) };
    });
    if (res.value === undefined) throw new HttpError(404, INTENTION_NOT_FOUND, 'ERR_NOT_FOUND');
    return res.value;
  }

  /** DELETE /v1/connect/intentions/:id (computeApplyChangesLegacyDelete). */
  async function deleteById(ctx: RequestContext): Promise<unknown> {
    const id = ctx.rest;
    await backend.consistentRead(ctx.signal);
    const found = flattenIntentions(store.configEntries(SERVICE_INTENTIONS).value).find((i) => i.ID === id);
    if (!found) throw new HttpError(404, `Cannot delete non-existent intention: '${id}'`, 'ERR_NOT_FOUND');
    await mutate(ctx, found.DestinationName, (sources) => {
      const at = sources.findIndex((s) => str(s.LegacyID) === id);
      if (at < 0) return null;
      sources.splice(at, 1);
      return sources;
    });
    return undefined;
  }

  return [
    { path: '/v1/connect/intentions', writesInPrimary: true, methods: { GET: list, POST: create } },
    { path: '/v1/connect/intentions/', prefix: true, writesInPrimary: true, methods: { GET: getById, PUT: updateById, DELETE: deleteById } },
    { path: '/v1/connect/intentions/exact', writesInPrimary: true, methods: { GET: getExact, PUT: putExact, DELETE: deleteExact } },
    { path: '/v1/connect/intentions/match', methods: { GET: match } },
    { path: '/v1/connect/intentions/check', methods: { GET: check } },
  ];
}

// ---- POST /v1/agent/connect/authorize -----------------------------------------------------------

/** Consul's ConnectAuthorizeRequest. */
const AUTHORIZE_SCHEMA: Schema = {
  name: 'ConnectAuthorizeRequest',
  fields: { Target: 'string', ClientCertURI: 'string', ClientCertSerial: 'string', Namespace: 'string', Partition: 'string' },
};

/** How long one background blocking read of the intentions waits on a server. */
const WATCH_WAIT_S = 300;

/**
 * Consul's AgentConnectAuthorize (agent/agent_endpoint.go): may a connection from the certificate's
 * service to Target be made? Served by the agent that was asked (agent-local). A server reads its
 * own replica; a client agent answers from an EntriesCache of the service-intentions entries, kept
 * current by a blocking query forwarded to a server, so once warm no authorization waits for a
 * server round trip.
 */
export function authorizeRoutes(deps: RouteDeps): EndpointSpec[] {
  const { backend } = deps;
  let entries: (signal: AbortSignal) => Promise<readonly ConfigEntry[]>;
  const forward = backend.forward;
  if (forward) {
    const cache = new EntriesCache(async (minIndex, signal) => {
      const url = `/v1/config/${SERVICE_INTENTIONS}?index=${minIndex}&wait=${WATCH_WAIT_S}s`;
      const res = await forward({ method: 'GET', url, headers: {}, body: Buffer.alloc(0) }, signal);
      const text = res.body.toString('utf8');
      if (res.status !== 200) throw new Error(`reading intentions from a server: ${res.status} ${text.trim()}`);
      return { index: Number(res.headers['x-consul-index'] ?? 0), entries: JSON.parse(text) as ConfigEntry[] };
    }, {
      onError: (err, failures) => deps.logger?.warn({ err: (err as Error).message, failures }, 'intention cache: refresh failed'),
    });
    deps.onClose?.(() => cache.close());
    entries = (signal) => cache.get(signal);
  } else {
    entries = async () => backend.store.configEntries(SERVICE_INTENTIONS).value;
  }
  // The flattened, sorted rows of the last entries seen: the hot path sorts only after a change.
  let lastEntries: readonly ConfigEntry[] | undefined;
  let lastRows: Intention[] = [];
  const rows = (list: readonly ConfigEntry[]): Intention[] => {
    if (list !== lastEntries) {
      lastEntries = list;
      lastRows = flattenIntentions(list);
    }
    return lastRows;
  };

  async function authorize(ctx: RequestContext): Promise<unknown> {
    const req = decodeBody<Obj>(ctx.body, AUTHORIZE_SCHEMA);
    const target = str(req.Target);
    if (target === '') throw badRequest('Target service must be specified');
    let id: SpiffeId;
    try {
      id = parseSpiffeId(str(req.ClientCertURI));
    } catch (err) {
      if (err instanceof SpiffeParseError) throw badRequest('ClientCertURI not a valid Connect identifier');
      throw err;
    }
    if (id.kind !== 'service') throw badRequest('ClientCertURI not a valid Service identifier');
    // Consul does not check the trust domain here (a cert from another CA fails the TLS handshake).
    const list = await entries(ctx.signal);
    // This agent's default_intention_policy, else allow (no ACLs in Trellis; connect/intentions.ts).
    const def = intentionDefault(backend.config.defaultIntentionPolicy ?? '', !backend.config.acl?.enabled || backend.config.acl.defaultPolicy === 'allow');
    return authorizeConnection(rows(list), id.service, target, def.allow, def.reason);
  }

  return [{ path: '/v1/agent/connect/authorize', agentLocal: true, methods: { POST: authorize } }];
}
