// Sidecar proxies registered with their service (Consul's agent/sidecar_service.go and the parts of
// structs.NodeService.ValidateForAgent that concern proxies): a service definition with
// `"Connect": { "SidecarService": {} }` also registers `<id>-sidecar-proxy`, a connect-proxy whose
// defaults come from the service, whose port is the first free one of the agent's sidecar range, and
// whose checks are a TCP check on the proxy's public listener and an alias of the service's health.
// Plain data and pure functions; the HTTP layer builds the sidecar, the local state gives it a port.

import type { ConnectProxyConfig, ServiceFields } from '../state/types.ts';
import type { CheckType } from './check.ts';

/** Consul's structs.SidecarProxySuffix. */
export const SIDECAR_SUFFIX = '-sidecar-proxy';

/** Consul's defaults for ports.sidecar_min_port / sidecar_max_port. */
export const DEFAULT_SIDECAR_PORTS = { min: 21000, max: 21255 } as const;

export function sidecarIdFor(serviceId: string): string {
  return serviceId + SIDECAR_SUFFIX;
}

const GATEWAY_KINDS: ReadonlySet<string> = new Set(['mesh-gateway', 'terminating-gateway', 'ingress-gateway', 'api-gateway']);

export function isGatewayKind(kind: string): boolean {
  return GATEWAY_KINDS.has(kind);
}

/** hashicorp/go-multierror's default format, which Consul's validation errors print with. */
export function multiError(errors: readonly string[]): string {
  if (errors.length === 1) return `1 error occurred:\n\t* ${errors[0]}\n\n`;
  return `${errors.length} errors occurred:\n\t${errors.map((e) => `* ${e}`).join('\n\t')}\n\n`;
}

/**
 * The parent's own rules about its SidecarService (NodeService.ValidateForAgent, "Nested sidecar
 * validation" and "Gateways cannot have sidecars"). `sidecar` is the decoded SidecarService.
 */
export function parentSidecarErrors(parentKind: string, sidecar: Record<string, unknown>): string[] {
  const errors: string[] = [];
  if (isGatewayKind(parentKind)) errors.push(`A ${parentKind} cannot have a sidecar service defined`);
  if (sidecar.ID) errors.push('A SidecarService cannot specify an ID as this is managed by the agent');
  const connect = sidecar.Connect as Record<string, unknown> | undefined;
  if (connect && connect.SidecarService !== undefined && connect.SidecarService !== null) {
    errors.push('A SidecarService cannot have a nested SidecarService');
  }
  return errors;
}

/** Consul's api.Upstream as stored: DestinationType defaulted to "service" (ServiceDefinition.NodeService). */
export interface Upstream {
  DestinationType: string;
  DestinationNamespace?: string;
  DestinationPartition?: string;
  DestinationPeer?: string;
  DestinationName: string;
  Datacenter: string;
  LocalBindAddress?: string;
  LocalBindPort?: number;
  LocalBindSocketPath?: string;
  LocalBindSocketMode?: string;
  Config?: Record<string, unknown>;
  MeshGateway: Record<string, unknown>;
  [field: string]: unknown;
}

/** An upstream decoded to Consul's field names → the stored shape, with Consul's JSON omissions. */
export function upstreamFromDecoded(u: Record<string, unknown>): Upstream {
  const out: Upstream = {
    DestinationType: (u.DestinationType as string | undefined) || 'service',
    DestinationName: (u.DestinationName as string | undefined) ?? '',
    Datacenter: (u.Datacenter as string | undefined) ?? '',
    MeshGateway: (u.MeshGateway as Record<string, unknown> | undefined) ?? {},
  };
  for (const k of ['DestinationNamespace', 'DestinationPartition', 'DestinationPeer', 'LocalBindAddress', 'LocalBindSocketPath', 'LocalBindSocketMode'] as const) {
    const v = u[k] as string | undefined;
    if (v) out[k] = v;
  }
  const port = u.LocalBindPort as number | undefined;
  if (port) out.LocalBindPort = port;
  const config = u.Config as Record<string, unknown> | undefined;
  if (config && Object.keys(config).length > 0) out.Config = config;
  // Keep the order Consul prints: the destination fields, then the local bind, then the rest.
  const ordered: Record<string, unknown> = {};
  for (const k of ['DestinationType', 'DestinationNamespace', 'DestinationPartition', 'DestinationPeer', 'DestinationName', 'Datacenter',
    'LocalBindAddress', 'LocalBindPort', 'LocalBindSocketPath', 'LocalBindSocketMode', 'Config', 'MeshGateway'] as const) {
    if (out[k] !== undefined) ordered[k] = out[k];
  }
  return ordered as unknown as Upstream;
}

/** Consul's Upstream.Validate; null when valid. */
function upstreamError(u: Upstream): string | null {
  if (u.DestinationType !== 'service' && u.DestinationType !== 'prepared_query') {
    return `unknown upstream destination type: ${JSON.stringify(u.DestinationType)}`;
  }
  if (u.DestinationName === '') return 'upstream destination name cannot be empty';
  if (u.DestinationName === '*') return 'upstream destination name cannot be a wildcard';
  if (u.DestinationPeer && u.Datacenter) return 'upstream cannot specify both destination peer and datacenter';
  if (!u.LocalBindPort && !u.LocalBindSocketPath) return 'upstream local bind port or local socket path must be defined and nonzero';
  if (u.LocalBindPort && u.LocalBindSocketPath) return 'only one of upstream local bind port or local socket path can be defined and nonzero';
  return null;
}

function upstreamKey(u: Upstream): string {
  const q = (s: string | undefined) => JSON.stringify(s ?? '');
  return `[type=${q(u.DestinationType)}, name=${q(u.DestinationName)}, partition=${q(u.DestinationPartition)}, namespace=${q(u.DestinationNamespace)}, peer=${q(u.DestinationPeer)}, datacenter=${q(u.Datacenter)}]`;
}

function upstreamAddress(u: Upstream): string {
  if (!u.LocalBindPort && !u.LocalBindAddress && u.LocalBindSocketPath) return u.LocalBindSocketPath;
  const addr = u.LocalBindAddress || '127.0.0.1';
  return `${addr.includes(':') ? `[${addr}]` : addr}:${u.LocalBindPort ?? 0}`;
}

/**
 * Consul's NodeService.ValidateForAgent for the kinds a sidecar can have (the port is not checked:
 * the agent assigns one later). Returns every error, in Consul's order.
 */
export function proxyServiceErrors(s: ServiceFields): string[] {
  const errors: string[] = [];
  const proxy: ConnectProxyConfig = s.Proxy ?? {};
  const upstreams = (proxy.Upstreams ?? []) as unknown as Upstream[];
  if (s.Kind === 'connect-proxy') {
    const dest = proxy.DestinationServiceName ?? '';
    if (dest.trim() === '') errors.push('Proxy.DestinationServiceName must be non-empty for Connect proxy services');
    if (dest === '*') errors.push('Proxy.DestinationServiceName must not be a wildcard for Connect proxy services');
    if (s.Connect?.Native) errors.push('A Proxy cannot also be Connect Native, only typical services');
    const keys = new Set<string>();
    const addrs = new Set<string>();
    for (const u of upstreams) {
      const why = upstreamError(u);
      if (why) {
        errors.push(why);
        continue;
      }
      const key = upstreamKey(u);
      if (keys.has(key)) {
        errors.push(`upstreams cannot contain duplicates of ${key}`);
        continue;
      }
      keys.add(key);
      const addr = upstreamAddress(u);
      if (addrs.has(addr)) {
        errors.push(`upstreams cannot contain duplicates by local bind address and port or unix path; ${JSON.stringify(addr)} is specified twice`);
        continue;
      }
      addrs.add(addr);
    }
  }
  if (isGatewayKind(s.Kind)) {
    if (s.Port === 0 && s.Kind !== 'ingress-gateway' && s.Kind !== 'api-gateway') errors.push(`Port must be non-zero for a ${s.Kind}`);
    if (s.Connect?.SidecarService) errors.push(`A ${s.Kind} cannot have a sidecar service defined`);
    for (const f of ['DestinationServiceName', 'DestinationServiceID', 'LocalServiceAddress', 'LocalServicePort', 'LocalServiceSocketPath'] as const) {
      if (proxy[f]) errors.push(`The Proxy.${f} configuration is invalid for a ${s.Kind}`);
    }
    if (upstreams.length > 0) errors.push(`The Proxy.Upstreams configuration is invalid for a ${s.Kind}`);
  }
  if (s.Connect?.Native && s.Port === 0 && !s.SocketPath) errors.push('Port or SocketPath must be set for a Connect native service.');
  return errors;
}

/**
 * Consul's sidecarServiceFromNodeService, after the SidecarService was decoded into `sidecar` (a
 * service as a registration builds it, Port 0 when none was given): the ID, kind, name, address,
 * tags and meta the sidecar takes from its service, and the proxy's defaults.
 */
export function sidecarFromService(parent: ServiceFields, sidecar: ServiceFields): ServiceFields {
  const out: ServiceFields = { ...sidecar, ID: sidecarIdFor(parent.ID) };
  if (Object.keys(out.Meta).length === 0 && Object.keys(parent.Meta).length > 0) out.Meta = { ...parent.Meta };
  if (out.Tags.length === 0 && parent.Tags.length > 0) out.Tags = [...parent.Tags];
  if (out.Kind === '') out.Kind = 'connect-proxy';
  if (out.Service === '') out.Service = parent.Service + SIDECAR_SUFFIX;
  if (out.Address === '') out.Address = parent.Address;
  const p: ConnectProxyConfig = { ...(sidecar.Proxy ?? {}) };
  if (!p.DestinationServiceName) p.DestinationServiceName = parent.Service;
  if (!p.DestinationServiceID) p.DestinationServiceID = parent.ID;
  const socketPath = p.LocalServiceSocketPath as string | undefined;
  if (!socketPath && (!p.LocalServiceAddress || !(p.LocalServicePort! >= 1))) {
    if (parent.SocketPath) p.LocalServiceSocketPath = parent.SocketPath;
    else {
      if (!p.LocalServiceAddress) p.LocalServiceAddress = '127.0.0.1';
      if (!(p.LocalServicePort! >= 1)) p.LocalServicePort = parent.Port;
    }
  }
  out.Proxy = orderedProxy(p);
  return out;
}

/** The proxy block in Consul's field order, with its always-present objects (Go prints empty structs). */
function orderedProxy(p: ConnectProxyConfig): ConnectProxyConfig {
  const out: ConnectProxyConfig = {};
  for (const k of ['DestinationServiceName', 'DestinationServiceID', 'LocalServiceAddress', 'LocalServicePort', 'LocalServiceSocketPath', 'Mode', 'Config', 'Upstreams']) {
    const v = p[k];
    if (v === undefined || v === '' || v === 0) continue;
    if (k === 'Upstreams' && Array.isArray(v) && v.length === 0) continue;
    out[k] = v;
  }
  out.MeshGateway = p.MeshGateway ?? {};
  out.Expose = p.Expose ?? {};
  for (const [k, v] of Object.entries(p)) if (!(k in out) && v !== undefined) out[k] = v;
  return out;
}

/**
 * Consul's sidecarPortFromServiceIDLocked: the sidecar keeps the port it has when it is already
 * registered with one in the range; otherwise the lowest port of [min, max] that no service of this
 * agent uses. Returns Consul's error text when there is none.
 */
export function allocateSidecarPort(
  services: Iterable<Pick<ServiceFields, 'ID' | 'Port'>>, sidecarId: string, range: { min: number; max: number },
): { port: number } | { error: string } {
  const { min, max } = range;
  if (min < 1 || max < 1) return { error: 'no port provided for sidecar_service and auto-assignment disabled in config' };
  const used = new Set<number>();
  for (const s of services) {
    if (s.Port < min || s.Port > max) continue;
    if (s.ID === sidecarId) return { port: s.Port };
    used.add(s.Port);
  }
  for (let p = min; p <= max; p++) if (!used.has(p)) return { port: p };
  return { error: `no port provided for sidecar_service and none left in the configured range [${min}, ${max}]` };
}

/** Consul's sidecarDefaultChecks: the proxy's public listener (TCP, every 10 s) and its service's health. */
export function sidecarDefaultChecks(sidecar: ServiceFields): CheckType[] {
  const serviceId = sidecar.ID.endsWith(SIDECAR_SUFFIX) ? sidecar.ID.slice(0, -SIDECAR_SUFFIX.length) : sidecar.ID;
  const address = sidecar.Address || (sidecar.Proxy?.LocalServiceAddress ?? '');
  const host = address.includes(':') ? `[${address}]` : address;
  return [
    { Name: 'Connect Sidecar Listening', TCP: `${host}:${sidecar.Port}`, IntervalNs: 10_000_000_000 },
    { Name: `Connect Sidecar Aliasing ${serviceId}`, AliasService: serviceId },
  ];
}
