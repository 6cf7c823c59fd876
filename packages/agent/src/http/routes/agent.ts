// /v1/agent/*: the agent's own view (agent/agent_endpoint.go). Services and checks registered here
// live in LocalState and, on a server, are written to the catalog before the call returns.

import { createHash } from 'node:crypto';
import { HealthCheckSchema, NodeServiceSchema } from '../../filter/index.ts';
import type { CheckStatus } from '../../state/types.ts';
import { isCheckStatus, validateServiceName } from '../../state/validate.ts';
import type { AgentMember } from '../backend.ts';
import { parseQueryOptions, waitWithTimeout } from '../blocking.ts';
import { RawBody, type RequestContext } from '../context.ts';
import { decode, decodeBody, DecodeError, type Schema } from '../decode.ts';
import { badRequest, decodeFailed, HttpError, notFound } from '../errors.ts';
import { isEmptyCheckType, validateCheckType, type CheckType } from '../../structs/check.ts';
import type { ServiceFields } from '../../state/types.ts';
import { multiError, parentSidecarErrors, proxyServiceErrors, sidecarFromService, upstreamFromDecoded } from '../../structs/sidecar.ts';
import type { EndpointSpec, RouteDeps } from '../router.ts';
import { CheckDefinitionSchema, CheckUpdateSchema, ServiceDefinitionSchema } from '../schemas.ts';
import { filterMap, filterParam, requireRest, waitLimits } from './common.ts';
import { isAnyAddress, refuseBadName, validateMeta, validateWeights } from './convert.ts';

type Obj = Record<string, unknown>;

const SERVICE_KINDS: ReadonlySet<string> = new Set(['', 'connect-proxy', 'mesh-gateway', 'terminating-gateway', 'ingress-gateway', 'api-gateway']);

/** A decoded AgentServiceCheck / CheckDefinition → CheckType (durations stay in ns). */
export function toCheckType(o: Obj): CheckType {
  const ct: CheckType = {};
  const copy = <K extends keyof CheckType>(k: K, from = k as string) => {
    if (o[from] !== undefined) (ct as Obj)[k] = o[from];
  };
  for (const k of [
    'CheckID', 'Name', 'Notes', 'Status', 'ScriptArgs', 'HTTP', 'Header', 'Method', 'Body', 'TCP', 'UDP', 'GRPC',
    'GRPCUseTLS', 'H2PING', 'H2PingUseTLS', 'TLSServerName', 'TLSSkipVerify', 'DockerContainerID', 'Shell', 'AliasNode',
    'AliasService', 'OSService', 'SuccessBeforePassing', 'FailuresBeforeWarning', 'FailuresBeforeCritical', 'OutputMaxSize',
  ] as const) copy(k);
  copy('IntervalNs', 'Interval');
  copy('TimeoutNs', 'Timeout');
  copy('TTLNs', 'TTL');
  copy('DeregisterCriticalServiceAfterNs', 'DeregisterCriticalServiceAfter');
  return ct;
}

/** Consul's buildAgentService: the api.AgentService JSON of a local service. */
export function agentServiceJson(s: ServiceFields, datacenter: string): Obj {
  const out: Obj = {};
  if (s.Kind) out.Kind = s.Kind;
  out.ID = s.ID;
  out.Service = s.Service;
  out.Tags = s.Tags;
  out.Meta = s.Meta;
  out.Port = s.Port;
  out.Address = s.Address;
  if (s.SocketPath) out.SocketPath = s.SocketPath;
  if (Object.keys(s.TaggedAddresses).length > 0) out.TaggedAddresses = s.TaggedAddresses;
  out.Weights = s.Weights;
  out.EnableTagOverride = s.EnableTagOverride;
  if (s.Proxy) out.Proxy = s.Proxy;
  if (s.Connect) out.Connect = s.Connect;
  out.Datacenter = datacenter;
  return out;
}

function parseBool(raw: string): boolean | undefined {
  if (['1', 't', 'T', 'true', 'TRUE', 'True'].includes(raw)) return true;
  if (['0', 'f', 'F', 'false', 'FALSE', 'False'].includes(raw)) return false;
  return undefined;
}

/** Consul's ?enable for the maintenance endpoints. */
function enableParam(ctx: RequestContext): boolean {
  if (!ctx.has('enable')) throw badRequest('Missing value for enable');
  const raw = ctx.get('enable') ?? '';
  const v = parseBool(raw);
  if (v === undefined) throw badRequest(`Invalid value for enable: ${JSON.stringify(raw)}`);
  return v;
}

/** A registration as LocalState.addService takes it: the service, its checks and its sidecar, if any. */
export interface ServiceRegistration {
  service: ServiceFields;
  checks: CheckType[];
  /** Consul's note for names DNS cannot serve. */
  warning: string | null;
  /** `<id>-sidecar-proxy`, from Connect.SidecarService (port 0 = the agent assigns one). */
  sidecar?: { service: ServiceFields; checks: CheckType[] };
}

/** ServiceDefinition.NodeService's defaulting of a proxy block: every upstream in Consul's stored shape. */
function proxyFromDecoded(proxy: Obj): ServiceFields['Proxy'] {
  const out: Obj = { ...proxy };
  if (Array.isArray(proxy.Upstreams)) out.Upstreams = (proxy.Upstreams as Obj[]).map(upstreamFromDecoded);
  return out;
}

/** The decoded checks of a definition (`Check` and `Checks`), validated as CheckTypes; null = invalid, with why. */
function definitionChecks(def: Obj, invalid: (why: string) => HttpError): CheckType[] {
  const checkDefs: Obj[] = [];
  if (def.Check) checkDefs.push(def.Check as Obj);
  if (def.Checks) checkDefs.push(...(def.Checks as Obj[]));
  const checks: CheckType[] = [];
  for (const c of checkDefs) {
    const ct = toCheckType(c);
    if (isEmptyCheckType(ct) && c === def.Check) continue; // Consul skips an empty `Check` block.
    refuseBadName('check name', ct.Name);
    const why = validateCheckType(ct);
    if (why) throw invalid(why);
    if (ct.Status && !isCheckStatus(ct.Status)) throw badRequest("Status for checks must 'passing', 'warning', 'critical'");
    checks.push(ct);
  }
  return checks;
}

/**
 * Consul's sidecarServiceFromNodeService and the validation AgentRegisterService runs on its
 * result: `raw` is the parent's Connect.SidecarService, decoded here as the ServiceDefinition it is.
 */
function sidecarRegistration(parent: ServiceFields, raw: unknown): { service: ServiceFields; checks: CheckType[] } {
  const def = decodeOrThrow(raw, ServiceDefinitionSchema);
  const why = parentSidecarErrors(parent.Kind, def);
  if (why.length > 0) throw badRequest(`Validation failed: ${multiError(why)}`);
  const checks = definitionChecks(def, (w) => badRequest(`Invalid check in sidecar_service: ${w}`));
  let kind = (def.Kind as string | undefined) ?? '';
  if (kind === 'typical') kind = '';
  if (!SERVICE_KINDS.has(kind)) throw badRequest(`Invalid SidecarService: Invalid service kind: ${JSON.stringify(kind)}`);
  const meta = (def.Meta as Record<string, string> | undefined) ?? {};
  const metaErr = validateMeta(meta, 'Service');
  if (metaErr) throw badRequest(`Invalid SidecarService: ${metaErr}`);
  const w = def.Weights as { Passing?: number; Warning?: number } | undefined;
  const given: ServiceFields = {
    Kind: kind as ServiceFields['Kind'],
    ID: '',
    Service: (def.Name as string | undefined) ?? '',
    Tags: (def.Tags as string[] | undefined) ?? [],
    Address: (def.Address as string | undefined) ?? '',
    TaggedAddresses: (def.TaggedAddresses as ServiceFields['TaggedAddresses'] | undefined) ?? {},
    Meta: meta,
    Port: (def.Port as number | undefined) ?? 0,
    Weights: w ? { Passing: w.Passing ?? 1, Warning: w.Warning ?? 0 } : { Passing: 1, Warning: 1 },
    EnableTagOverride: (def.EnableTagOverride as boolean | undefined) ?? false,
  };
  if (def.SocketPath) given.SocketPath = def.SocketPath as string;
  if (def.Proxy) given.Proxy = proxyFromDecoded(def.Proxy as Obj);
  if (def.Connect) given.Connect = def.Connect as ServiceFields['Connect'];
  const sidecar = sidecarFromService(parent, given);
  const errors = proxyServiceErrors(sidecar);
  if (errors.length > 0) throw badRequest(`Failed Validation: ${multiError(errors)}`);
  return { service: sidecar, checks };
}

/**
 * Validates a decoded service registration (PUT /v1/agent/service/register's body, or a service
 * from a config file in the same JSON shape) as Consul does, and builds what LocalState stores.
 * Throws HttpError 400 with Consul's text. `warning` is Consul's note for names DNS cannot serve.
 * A Connect.SidecarService becomes `sidecar` and leaves the service's own Connect block, as in
 * Consul (it is registration sugar, never stored).
 */
export function serviceRegistration(def: Obj): ServiceRegistration {
  const name = (def.Name as string | undefined) ?? '';
  if (name === '') throw badRequest('Missing service name');
  const nameCheck = validateServiceName(name);
  if (nameCheck.error) throw badRequest(nameCheck.error);
  const address = (def.Address as string | undefined) ?? '';
  if (isAnyAddress(address)) throw badRequest('Invalid service address');
  let weights = { Passing: 1, Warning: 1 };
  if (def.Weights !== undefined) {
    const w = def.Weights as { Passing?: number; Warning?: number };
    const why = validateWeights(w);
    if (why) throw badRequest(`Invalid Weights: ${why}`);
    weights = { Passing: w.Passing ?? 1, Warning: w.Warning ?? 0 };
  }
  const meta = (def.Meta as Record<string, string> | undefined) ?? {};
  const metaErr = validateMeta(meta, 'Service', (def.Kind as string | undefined) ?? '');
  if (metaErr) throw badRequest(`Invalid Service Meta: ${metaErr}`);
  let kind = (def.Kind as string | undefined) ?? '';
  // The api package's name for a typical service.
  if (kind === 'typical') kind = '';
  if (!SERVICE_KINDS.has(kind)) throw badRequest(`Invalid service kind: ${JSON.stringify(kind)}`);
  const port = (def.Port as number | undefined) ?? 0;
  const proxy = def.Proxy as Obj | undefined;
  if (kind === 'connect-proxy') {
    if (!proxy || !proxy.DestinationServiceName) {
      throw badRequest('Validation failed: Proxy.DestinationServiceName must be non-empty for Connect proxy services');
    }
    if (port === 0 && !def.SocketPath) throw badRequest('Validation failed: Port or SocketPath must be set for a Connect proxy');
  }
  if (kind === 'mesh-gateway' && port === 0) throw badRequest('Validation failed: Port must be non-zero for a Mesh Gateway');

  const checks = definitionChecks(def, (why) => badRequest(`Invalid check: ${why}`));

  const svc: ServiceFields = {
    Kind: kind as ServiceFields['Kind'],
    ID: (def.ID as string | undefined) || name,
    Service: name,
    Tags: (def.Tags as string[] | undefined) ?? [],
    Address: address,
    TaggedAddresses: (def.TaggedAddresses as ServiceFields['TaggedAddresses'] | undefined) ?? {},
    Meta: meta,
    Port: port,
    Weights: weights,
    EnableTagOverride: (def.EnableTagOverride as boolean | undefined) ?? false,
  };
  if (def.SocketPath) svc.SocketPath = def.SocketPath as string;
  if (proxy) svc.Proxy = proxyFromDecoded(proxy);
  const connect = def.Connect as ServiceFields['Connect'] | undefined;
  let sidecar: ServiceRegistration['sidecar'];
  if (connect) {
    const { SidecarService: sidecarDef, ...rest } = connect;
    if (sidecarDef !== undefined && sidecarDef !== null) sidecar = sidecarRegistration(svc, sidecarDef);
    if (Object.keys(rest).length > 0 || sidecarDef === undefined) svc.Connect = rest;
  }
  return { service: svc, checks, warning: nameCheck.warning, ...(sidecar ? { sidecar } : {}) };
}

/** Decodes and validates a registration given as parsed JSON (e.g. a config file's service). */
export function serviceRegistrationFromJson(raw: unknown): ServiceRegistration {
  return serviceRegistration(decodeOrThrow(raw, ServiceDefinitionSchema));
}

/**
 * Validates a check registration (PUT /v1/agent/check/register's body, or a config file's check in
 * the same JSON shape); the result goes to LocalState.addCheck.
 */
export function checkRegistrationFromJson(raw: unknown): CheckType & { CheckID: string; ServiceID?: string } {
  return checkRegistration(decodeOrThrow(raw, CheckDefinitionSchema));
}

function decodeOrThrow(raw: unknown, schema: Schema): Obj {
  try {
    return decode(raw, schema);
  } catch (err) {
    if (err instanceof DecodeError) throw decodeFailed(err.message);
    throw err;
  }
}

function checkRegistration(def: Obj): CheckType & { CheckID: string; ServiceID?: string } {
  const name = (def.Name as string | undefined) ?? '';
  if (name === '') throw badRequest('Missing check name');
  refuseBadName('check name', name);
  const status = (def.Status as string | undefined) ?? '';
  if (status !== '' && !isCheckStatus(status)) throw badRequest('Bad check status');
  const ct = toCheckType(def);
  const why = validateCheckType(ct);
  if (why) throw badRequest(`Invalid check: ${why}`);
  return { ...ct, CheckID: ct.CheckID || name, ...(def.ServiceID ? { ServiceID: def.ServiceID as string } : {}) };
}

export function agentRoutes(deps: RouteDeps): EndpointSpec[] {
  const { backend, metrics } = deps;
  const cfg = backend.config;
  const local = () => backend.local;

  function selfMember(): AgentMember {
    return {
      Name: cfg.nodeName,
      Addr: cfg.advertiseAddrLan,
      Port: cfg.ports.serfLan,
      Tags: {
        role: cfg.serverMode ? 'consul' : 'node',
        dc: cfg.datacenter,
        segment: '',
        id: cfg.nodeId,
        port: String(cfg.ports.server),
        build: `${cfg.version}:trellis`,
        vsn: '2',
        vsn_min: '2',
        vsn_max: '3',
        raft_vsn: '3',
      },
      Status: 1,
      ProtocolMin: 1,
      ProtocolMax: 5,
      ProtocolCur: 2,
      DelegateMin: 2,
      DelegateMax: 5,
      DelegateCur: 4,
    };
  }

  function self(): unknown {
    const raft = backend.raftStatus();
    const l = local();
    return {
      Config: {
        Datacenter: cfg.datacenter,
        PrimaryDatacenter: cfg.primaryDatacenter,
        NodeName: cfg.nodeName,
        NodeID: cfg.nodeId,
        Revision: 'trellis',
        Server: cfg.serverMode,
        Version: cfg.version,
        BuildDate: '1970-01-01T00:00:00Z',
      },
      DebugConfig: {
        Datacenter: cfg.datacenter,
        PrimaryDatacenter: cfg.primaryDatacenter,
        NodeName: cfg.nodeName,
        NodeID: cfg.nodeId,
        ServerMode: cfg.serverMode,
        DNSDomain: cfg.domain,
        ConnectMeshGatewayWANFederationEnabled: cfg.connect.enableMeshGatewayWanFederation,
        AdvertiseAddrLAN: cfg.advertiseAddrLan,
        HTTPPort: cfg.ports.http,
        DNSPort: cfg.ports.dns,
        ServerPort: cfg.ports.server,
        SerfPortLAN: cfg.ports.serfLan,
        SerfPortWAN: cfg.ports.serfWan,
        NodeMeta: cfg.nodeMeta ?? {},
        // What a proxy's L7 intentions fall back to when no permission matches (Consul's
        // intentionDefaultAllow: this, else the ACL default, which is given here when ACLs are on).
        DefaultIntentionPolicy: cfg.defaultIntentionPolicy || (cfg.acl?.enabled ? cfg.acl.defaultPolicy : ''),
        ACLsEnabled: cfg.acl?.enabled === true,
      },
      Coord: null,
      Member: selfMember(),
      Stats: {
        agent: {
          check_monitors: '0',
          check_ttls: String(l.checks().filter((c) => (c.type?.TTLNs ?? 0) > 0).length),
          checks: String(l.checks().length),
          services: String(l.services().length),
        },
        build: { prerelease: '', revision: 'trellis', version: cfg.version },
        consul: {
          bootstrap: 'false',
          known_datacenters: '1',
          leader: String(raft.knownLeader && raft.lastContactMs === 0),
          leader_addr: raft.leaderAddr,
          server: String(cfg.serverMode),
        },
        raft: {
          applied_index: String(backend.store.lastIndex()),
          num_peers: String(Math.max(0, raft.peers.length - 1)),
        },
        runtime: { arch: process.arch, os: process.platform, version: process.version },
      },
      Meta: cfg.nodeMeta ?? {},
    };
  }

  function members(ctx: RequestContext): AgentMember[] | null {
    const wan = (ctx.get('wan') ?? '') !== '';
    const segment = ctx.get('segment') ?? '';
    if (wan && segment !== '' && segment !== '_all') throw badRequest('Cannot provide a segment with wan=true');
    // A client agent has no WAN pool: Consul's WANMembers is a nil slice there, encoded as null.
    if (wan && !backend.wan) return null;
    const list = wan ? backend.wan!.members() : backend.members?.() ?? [selfMember()];
    const filter = filterParam(ctx);
    return filter ? filter.apply(list) : list;
  }

  function services(ctx: RequestContext): Record<string, Obj> {
    const filter = filterParam(ctx, NodeServiceSchema);
    const out: Record<string, Obj> = {};
    for (const { service } of local().services()) out[service.ID] = agentServiceJson(service, cfg.datacenter);
    return filterMap(out, filter);
  }

  async function service(ctx: RequestContext): Promise<Obj> {
    const id = requireRest(ctx, 'service ID');
    const opts = parseQueryOptions(ctx, waitLimits(deps));
    const hash = ctx.get('hash') ?? '';
    const deadline = performance.now() + opts.waitMs;
    for (;;) {
      const svc = local().service(id)?.service;
      if (!svc) throw notFound(`unknown service ID: ${id}`);
      const json = agentServiceJson(svc, cfg.datacenter);
      const contentHash = createHash('sha256').update(JSON.stringify(json)).digest('hex').slice(0, 16);
      const remaining = deadline - performance.now();
      // Consul's hash-based blocking: wait while the client's hash is still the current one.
      if (hash === '' || hash !== contentHash || remaining <= 0 || ctx.signal.aborted) {
        ctx.header('X-Consul-ContentHash', contentHash);
        return { ...json, ContentHash: contentHash };
      }
      await waitWithTimeout(local(), remaining, ctx.signal);
    }
  }

  async function registerService(ctx: RequestContext): Promise<undefined> {
    const { service: svc, checks, warning, sidecar } = serviceRegistration(decodeBody<Obj>(ctx.body, ServiceDefinitionSchema));
    if (warning) deps.logger?.warn({ service: svc.Service }, warning);
    const r = ctx.getAll('replace-existing-checks');
    const replaceExistingChecks = r.length > 0 && (r[0] === '' || r[0] === 'true');
    const started = performance.now();
    try {
      await local().addService(svc, checks, { replaceExistingChecks, ...(sidecar ? { sidecar } : {}) });
    } finally {
      metrics.measureSince('consul.agent.service.register', started);
    }
    return undefined;
  }

  async function deregisterService(ctx: RequestContext): Promise<undefined> {
    const id = requireRest(ctx, 'service ID');
    await local().removeService(id);
    return undefined;
  }

  async function serviceMaintenance(ctx: RequestContext): Promise<undefined> {
    const id = requireRest(ctx, 'service ID');
    const enable = enableParam(ctx);
    if (enable) await local().enableServiceMaintenance(id, ctx.get('reason') ?? '');
    else await local().disableServiceMaintenance(id);
    return undefined;
  }

  async function nodeMaintenance(ctx: RequestContext): Promise<undefined> {
    const enable = enableParam(ctx);
    if (enable) await local().enableNodeMaintenance(ctx.get('reason') ?? '');
    else await local().disableNodeMaintenance();
    return undefined;
  }

  function checks(ctx: RequestContext): Record<string, Obj> {
    const filter = filterParam(ctx, HealthCheckSchema);
    const out: Record<string, Obj> = {};
    for (const { check } of local().checks()) {
      out[check.CheckID] = { ...check, Interval: check.Interval ?? '', Timeout: check.Timeout ?? '', ExposedPort: check.ExposedPort ?? 0, CreateIndex: 0, ModifyIndex: 0 };
    }
    return filterMap(out, filter);
  }

  async function registerCheck(ctx: RequestContext): Promise<undefined> {
    await local().addCheck(checkRegistration(decodeBody<Obj>(ctx.body, CheckDefinitionSchema)));
    return undefined;
  }

  async function deregisterCheck(ctx: RequestContext): Promise<undefined> {
    const id = requireRest(ctx, 'check ID');
    await local().removeCheck(id);
    return undefined;
  }

  const ttlUpdate = (status: CheckStatus) => async (ctx: RequestContext): Promise<undefined> => {
    const id = requireRest(ctx, 'check ID');
    await local().updateTtlCheck(id, status, ctx.get('note') ?? '');
    return undefined;
  };

  async function updateCheck(ctx: RequestContext): Promise<undefined> {
    const body = decodeBody<Obj>(ctx.body, CheckUpdateSchema);
    const status = (body.Status as string | undefined) ?? '';
    if (!isCheckStatus(status)) throw badRequest(`Invalid check status: '${status}'`);
    const id = requireRest(ctx, 'check ID');
    await local().updateTtlCheck(id, status, (body.Output as string | undefined) ?? '');
    return undefined;
  }

  async function agentMetrics(ctx: RequestContext): Promise<unknown> {
    // go-metrics' runtime gauges under Consul's names (alloc = live JS heap, sys = the process's
    // resident memory), plus V8's own split, sampled when asked.
    const mem = process.memoryUsage();
    metrics.setGauge('consul.runtime.alloc_bytes', mem.heapUsed);
    metrics.setGauge('consul.runtime.sys_bytes', mem.rss);
    metrics.setGauge('trellis.runtime.heap_total_bytes', mem.heapTotal);
    metrics.setGauge('trellis.runtime.external_bytes', mem.external);
    metrics.setGauge('trellis.runtime.array_buffers_bytes', mem.arrayBuffers);
    const accept = String(ctx.headers.accept ?? '').toLowerCase();
    const openMetrics = accept.split(',').some((m) => {
      const [mime, param] = m.split(';').map((s) => s.trim());
      return mime === 'application/openmetrics-text' || (mime === 'text/plain' && param === 'version=0.4.0');
    });
    if (ctx.get('format') === 'prometheus' || openMetrics) {
      const { contentType, body } = await metrics.prometheus();
      return new RawBody(contentType, body);
    }
    return metrics.summary();
  }

  async function reload(): Promise<undefined> {
    if (!backend.reload) throw new HttpError(500, 'Reload is not supported by this agent', 'ERR_UNSUPPORTED');
    await backend.reload();
    return undefined;
  }

  async function leave(): Promise<undefined> {
    if (!backend.leave) throw new HttpError(500, 'Leave is not supported by this agent', 'ERR_UNSUPPORTED');
    await backend.leave();
    return undefined;
  }

  /** `PUT /v1/agent/join/:address` (Consul: 500 with the join error when no member answered). */
  async function join(ctx: RequestContext): Promise<undefined> {
    const address = requireRest(ctx, 'address');
    if ((ctx.get('wan') ?? '') !== '') {
      if (cfg.connect?.enableMeshGatewayWanFederation) throw new HttpError(500, 'WAN join is disabled when wan federation via mesh gateways is enabled', 'ERR_UNSUPPORTED');
      // Consul's text on a client agent (or a server whose WAN pool is off: ports.serf_wan = -1).
      if (!backend.wan) throw new HttpError(500, 'Must be a server to join WAN cluster', 'ERR_UNSUPPORTED');
      await backend.wan.join(address);
      return undefined;
    }
    if (!backend.join) throw new HttpError(500, 'Join is not supported by this agent', 'ERR_UNSUPPORTED');
    await backend.join(address);
    return undefined;
  }

  /** `PUT /v1/agent/force-leave/:node[?prune]`. */
  async function forceLeave(ctx: RequestContext): Promise<undefined> {
    const node = requireRest(ctx, 'node');
    // Consul: ?wan (present, whatever its value) removes a failed member of the WAN pool (<node>.<dc>).
    if (ctx.has('wan')) {
      if (!backend.wan) throw new HttpError(500, 'Must be a server to force-leave a node from the WAN cluster', 'ERR_UNSUPPORTED');
      backend.wan.forceLeave(node, ctx.has('prune'));
      return undefined;
    }
    if (!backend.forceLeave) throw new HttpError(500, 'Force leave is not supported by this agent', 'ERR_UNSUPPORTED');
    await backend.forceLeave(node, ctx.has('prune'));
    return undefined;
  }

  const local_ = { agentLocal: true } as const;
  return [
    { ...local_, path: '/v1/agent/self', methods: { GET: self } },
    { ...local_, path: '/v1/agent/members', methods: { GET: members } },
    { ...local_, path: '/v1/agent/services', methods: { GET: services } },
    { ...local_, path: '/v1/agent/service/', prefix: true, methods: { GET: service } },
    { ...local_, path: '/v1/agent/service/register', methods: { PUT: registerService } },
    { ...local_, path: '/v1/agent/service/deregister/', prefix: true, methods: { PUT: deregisterService } },
    { ...local_, path: '/v1/agent/service/maintenance/', prefix: true, methods: { PUT: serviceMaintenance } },
    { ...local_, path: '/v1/agent/maintenance', methods: { PUT: nodeMaintenance } },
    { ...local_, path: '/v1/agent/checks', methods: { GET: checks } },
    { ...local_, path: '/v1/agent/check/register', methods: { PUT: registerCheck } },
    { ...local_, path: '/v1/agent/check/deregister/', prefix: true, methods: { PUT: deregisterCheck } },
    { ...local_, path: '/v1/agent/check/pass/', prefix: true, methods: { PUT: ttlUpdate('passing') } },
    { ...local_, path: '/v1/agent/check/warn/', prefix: true, methods: { PUT: ttlUpdate('warning') } },
    { ...local_, path: '/v1/agent/check/fail/', prefix: true, methods: { PUT: ttlUpdate('critical') } },
    { ...local_, path: '/v1/agent/check/update/', prefix: true, methods: { PUT: updateCheck } },
    { ...local_, path: '/v1/agent/metrics', methods: { GET: agentMetrics } },
    { ...local_, path: '/v1/agent/reload', methods: { PUT: reload } },
    { ...local_, path: '/v1/agent/leave', methods: { PUT: leave } },
    { ...local_, path: '/v1/agent/join/', prefix: true, methods: { PUT: join } },
    { ...local_, path: '/v1/agent/force-leave/', prefix: true, methods: { PUT: forceLeave } },
  ];
}
