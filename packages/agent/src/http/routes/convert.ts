// Decoded request bodies (canonical keys, durations in ns) → state store inputs, with Consul's
// defaults and validation that Consul applies before proposing (servicePreApply and friends).

import { formatGoDurationNs } from '../../config/duration.ts';
import type {
  HealthCheckDefinition, HealthCheckInput, NodeServiceInput, ServiceKind,
} from '../../state/types.ts';
import { isCheckStatus, validateName, validateServiceName } from '../../state/validate.ts';
import { badRequest } from '../errors.ts';

type Obj = Record<string, unknown>;

const SERVICE_KINDS: ReadonlySet<string> = new Set(['', 'connect-proxy', 'mesh-gateway', 'terminating-gateway', 'ingress-gateway', 'api-gateway']);

/** Consul's ipaddr.IsAny: a service may not advertise the wildcard address. */
export function isAnyAddress(addr: string): boolean {
  return addr === '0.0.0.0' || addr === '::' || addr === '[::]' || /^0+(\.0+){3}$/.test(addr);
}

const META_KEY = /^[a-zA-Z0-9_-]+$/;

/** Consul's allowedConsulMetaKeysForMeshGateway: MetaWANFederationKey (`-expose-servers`). */
const MESH_GATEWAY_CONSUL_KEYS = new Set(['consul-wan-federation']);

/**
 * Consul's ValidateServiceMetadata / ValidateNodeMetadata; null when valid. `serviceKind`
 * mesh-gateway may carry consul-wan-federation, the one consul- key Consul allows there.
 */
export function validateMeta(meta: Record<string, string>, kind: 'Node' | 'Service', serviceKind = ''): string | null {
  const entries = Object.entries(meta);
  if (entries.length > 64) return `${kind} metadata cannot contain more than 64 key/value pairs`;
  for (const [k, v] of entries) {
    let why: string | null = null;
    if (k === '') why = 'Key cannot be blank';
    else if (!META_KEY.test(k)) why = 'Key contains invalid characters';
    else if (k.length > 128) why = 'Key is too long (limit: 128 characters)';
    else if (k.startsWith('consul-') && !(serviceKind === 'mesh-gateway' && MESH_GATEWAY_CONSUL_KEYS.has(k))) why = "Key prefix 'consul-' is reserved for internal use";
    else if (v.length > 512) why = 'Value is too long (limit: 512 characters)';
    if (why) return `Couldn't load metadata pair ('${k}', '${v}'): ${why}`;
  }
  return null;
}

/** Consul's ValidateWeights; null when valid. */
export function validateWeights(w: { Passing?: number; Warning?: number }): string | null {
  if ((w.Passing ?? 0) < 1) return 'Passing must be greater than 0';
  if ((w.Warning ?? 0) < 0) return 'Warning must be greater or equal than 0';
  if ((w.Passing ?? 0) > 65535 || (w.Warning ?? 0) > 65535) return 'DNS Weight must be between 0 and 65535';
  return null;
}

function goDur(ns: unknown): string | undefined {
  if (typeof ns !== 'number' || ns === 0) return undefined;
  return formatGoDurationNs(BigInt(Math.trunc(ns)));
}

/** A decoded HealthCheckDefinition (durations in ns) → the store's form (Go duration strings). */
export function definitionInput(d: Obj | undefined): HealthCheckDefinition {
  if (!d) return {};
  const out: HealthCheckDefinition = { ...d };
  for (const k of ['Interval', 'Timeout', 'DeregisterCriticalServiceAfter', 'TTL'] as const) {
    const s = goDur(d[k]);
    if (s === undefined) delete out[k];
    else out[k] = s;
  }
  return out;
}

/** A 400 for a service, check or session name validateName refuses; every path that writes one calls it. */
export function refuseBadName(field: string, name: unknown): void {
  if (typeof name !== 'string') return;
  const why = validateName(field, name);
  if (why !== null) throw badRequest(why);
}

/** A decoded catalog/txn NodeService → NodeServiceInput, with Consul's servicePreApply checks. */
export function serviceInput(svc: Obj): NodeServiceInput {
  const name = (svc.Service as string | undefined) ?? '';
  let id = (svc.ID as string | undefined) ?? '';
  if (id === '' && name !== '') id = name;
  if (id !== '' && name === '') throw badRequest('Must provide service name with ID');
  const nameCheck = validateServiceName(name);
  if (nameCheck.error) throw badRequest(nameCheck.error);
  const kind = (svc.Kind as string | undefined) ?? '';
  if (!SERVICE_KINDS.has(kind)) throw badRequest(`Invalid service kind ${JSON.stringify(kind)}`);
  const address = (svc.Address as string | undefined) ?? '';
  if (isAnyAddress(address)) throw badRequest('Invalid service address');
  const meta = (svc.Meta as Record<string, string> | undefined) ?? {};
  const metaErr = validateMeta(meta, 'Service', kind);
  if (metaErr) throw badRequest(`Invalid Service Meta: ${metaErr}`);
  const out: NodeServiceInput = { ...(svc as Partial<NodeServiceInput>), Service: name, ID: id, Kind: kind as ServiceKind };
  // Accepted for compatibility with what clients send (the Go client posts an api.AgentService),
  // but not part of the catalog row. Weights are stored as given: Consul validates them only on
  // the agent endpoint.
  for (const k of ['Namespace', 'Partition', 'PeerName', 'Locality', 'ContentHash', 'Datacenter', 'LocallyRegisteredAsSidecar', 'CreateIndex']) {
    delete (out as Obj)[k];
  }
  return out;
}

/** A decoded catalog/txn HealthCheck → HealthCheckInput. */
export function checkInput(chk: Obj, defaultNode?: string): HealthCheckInput {
  refuseBadName('check name', chk.Name);
  const status = (chk.Status as string | undefined) ?? '';
  if (status !== '' && !isCheckStatus(status)) {
    throw badRequest(`Invalid check status: '${status}'`);
  }
  const out: HealthCheckInput = {
    ...(chk as Partial<HealthCheckInput>),
    CheckID: (chk.CheckID as string | undefined) ?? '',
    Status: status as HealthCheckInput['Status'],
    Definition: definitionInput(chk.Definition as Obj | undefined),
  };
  if (defaultNode !== undefined && !out.Node) out.Node = defaultNode;
  for (const k of ['Namespace', 'Partition', 'PeerName', 'CreateIndex']) delete (out as Obj)[k];
  return out;
}

/** Parses `?node-meta=key:value` pairs (repeatable) as Consul's parseMetaFilter. */
export function nodeMetaFilters(params: URLSearchParams): Record<string, string> | undefined {
  const all = params.getAll('node-meta');
  if (all.length === 0) return undefined;
  const out: Record<string, string> = {};
  for (const pair of all) {
    const i = pair.indexOf(':');
    if (i < 0) out[pair] = '';
    else out[pair.slice(0, i)] = pair.slice(i + 1);
  }
  return out;
}

/** Whether a node's Meta has every requested key:value. */
export function metaMatches(meta: Record<string, string> | undefined, want: Record<string, string> | undefined): boolean {
  if (!want) return true;
  for (const [k, v] of Object.entries(want)) if ((meta ?? {})[k] !== v) return false;
  return true;
}
