// Anti-entropy's decision, as a pure function (Consul's agent/local State.updateSyncState): compare
// what this agent holds for its own node with what the catalog has, and list the writes that make
// the catalog match. What the agent holds wins; the catalog's serfHealth check and a server's
// `consul` service are the leader's and are never touched (Consul's updateSyncState skips
// structs.ConsulServiceID). No I/O, no clock: LocalState.syncFull() reads both sides and carries the plan out.

import type { HealthCheckInput, NodeServiceInput } from '../state/types.ts';
import { SERF_CHECK_ID } from '../structs/check.ts';
import type { CatalogNodeView, LocalNodeInfo } from './types.ts';

/** What the agent holds, in the shape it writes to the catalog. */
export interface LocalSnapshot {
  node: LocalNodeInfo;
  services: LocalServiceRow[];
  checks: LocalCheckRow[];
}
/** A service and a check as the agent writes them to the catalog (IDs always set). */
export type LocalServiceRow = NodeServiceInput & { ID: string };
export type LocalCheckRow = HealthCheckInput & { CheckID: string };

/** One catalog write of the plan, in the order it must be applied (node, services, then checks). */
export type SyncCommand =
  | { op: 'registerNode' }
  | { op: 'registerService'; service: LocalServiceRow }
  | { op: 'deregisterService'; serviceId: string }
  | { op: 'registerCheck'; check: LocalCheckRow }
  | { op: 'deregisterCheck'; checkId: string };

/** Consul's structs.ConsulServiceID: the leader registers it for every server (server RPC port). */
const CONSUL_SERVICE_ID = 'consul';

/**
 * The writes that make `catalog` match `local`: the node row when missing or different, each local
 * service and check the catalog lacks or holds differently, and a deregistration for each catalog
 * service and check of this node that the agent does not hold (serfHealth and `consul` excepted). Services come
 * before checks, so a service check is written after its service. An empty plan means in sync.
 */
export function planSync(local: LocalSnapshot, catalog: CatalogNodeView): SyncCommand[] {
  const plan: SyncCommand[] = [];
  const n = local.node;
  const cur = catalog.node;
  if (!cur || cur.Address !== n.Address || cur.ID !== n.ID || !sameFields(n.TaggedAddresses, cur.TaggedAddresses) || !sameFields(n.Meta, cur.Meta)) {
    plan.push({ op: 'registerNode' });
  }
  const svcInCatalog = new Map(catalog.services.map((s) => [s.ID, s]));
  const localServices = new Set(local.services.map((s) => s.ID));
  for (const service of local.services) {
    const have = svcInCatalog.get(service.ID);
    if (!have || !sameFields(service, have)) plan.push({ op: 'registerService', service });
  }
  for (const id of svcInCatalog.keys()) {
    if (id !== CONSUL_SERVICE_ID && !localServices.has(id)) plan.push({ op: 'deregisterService', serviceId: id });
  }
  const checkInCatalog = new Map(catalog.checks.map((c) => [c.CheckID, c]));
  const localChecks = new Set(local.checks.map((c) => c.CheckID));
  for (const check of local.checks) {
    const have = checkInCatalog.get(check.CheckID);
    if (!have || !sameFields(check, have)) plan.push({ op: 'registerCheck', check });
  }
  for (const id of checkInCatalog.keys()) {
    if (id !== SERF_CHECK_ID && !localChecks.has(id)) plan.push({ op: 'deregisterCheck', checkId: id });
  }
  return plan;
}

/**
 * True when every field of `want` equals the same field of `have` (deep, JSON-wise). Fields the
 * agent leaves out (undefined) are not compared; a missing list or map in the catalog's row equals
 * an empty one.
 */
export function sameFields(want: object, have: object): boolean {
  const h = have as Record<string, unknown>;
  for (const [k, v] of Object.entries(want)) {
    if (v === undefined) continue;
    if (JSON.stringify(v) !== JSON.stringify(h[k] ?? (Array.isArray(v) ? [] : typeof v === 'object' ? {} : undefined))) return false;
  }
  return true;
}
