// Catalog writes: nodes, services, checks (agent/consul/state/catalog.go and Catalog.Register's
// validation). What matters to clients:
// - writes that change nothing are skipped, so indexes and blocking queries do not churn;
// - every change to a service instance, its checks, its node's checks or its node row moves that
//   service name's index (health queries block on it);
// - a check written as critical, or deleted, invalidates the sessions bound to it; deleting a node
//   deletes its services and checks and invalidates its sessions.
import { StateError, invalidRequest, missingNode, missingService } from './errors.ts';
import { INDEX_FIELDS, checkFromInput, deepFreeze, nodeFromInput, optBool, optString, sameData, serviceFromInput } from './rows.ts';
import { invalidateCheckSessions, invalidateNodeSessions } from './sessions.ts';
import { SEP, checkKey, lower, nodeKey, scanPrefix, serviceKey, type StateData, type WriteTx } from './tables.ts';
import { isUuid } from './validate.ts';
import type { CatalogDeregisterCommand, CatalogRegisterCommand, HealthCheck, Node, NodeService } from './types.ts';

export const SERF_CHECK_ID = 'serfHealth';

/** Re-throws a StateError with Consul's context prefix, keeping its code. */
function within<T>(prefix: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof StateError) throw new StateError(e.code, `${prefix}${e.message}`);
    throw e;
  }
}

function bumpServicesOfNode(tx: WriteTx, nk: string): void {
  scanPrefix(tx.data.services, nk + SEP, (_k, row) => {
    bumpInstance(tx, row.Service);
  });
}

/**
 * A service instance (or its health) changed: its name's index moves, and so does its proxy
 * destination's, which the connect queries (health/connect/:service) read and block on.
 */
function bumpInstance(tx: WriteTx, svc: NodeService): void {
  tx.bumpService(svc.Service);
  const dest = svc.Kind === 'connect-proxy' ? svc.Proxy?.DestinationServiceName : undefined;
  if (dest && lower(dest) !== lower(svc.Service)) tx.bumpService(dest);
}

/** Consul's ensureNoNodeWithSimilarNameTxn: a healthy node keeps its name against a new ID. */
function nameConflict(d: StateData, node: Node, allowClashWithoutId: boolean): string | null {
  const other = d.nodes.get(nodeKey(node.Node));
  if (!other || lower(other.ID) === lower(node.ID)) return null;
  const serf = d.checks.get(checkKey(other.Node, SERF_CHECK_ID));
  const healthy = serf !== undefined && serf.Status !== 'critical';
  if (!(other.ID === '' && allowClashWithoutId) && healthy) {
    return `Node name ${node.Node} is reserved by node ${other.ID} with name ${other.Node} (${other.Address})`;
  }
  return null;
}

/** Consul's ensureNodeTxn, including renames by node ID. Returns the stored row. */
export function ensureNode(tx: WriteTx, node: Node): Node {
  const d = tx.data;
  let prior: Node | undefined;
  if (node.ID !== '') {
    const byIdKey = d.nodeIds.get(lower(node.ID));
    const byId = byIdKey === undefined ? undefined : d.nodes.get(byIdKey);
    if (byId) {
      prior = byId;
      if (lower(byId.Node) !== lower(node.Node)) {
        const conflict = nameConflict(d, node, false);
        if (conflict) throw new StateError('ERR_NODE_ID_CONFLICT', `Error while renaming Node ID: ${JSON.stringify(node.ID)} (${node.Address}): ${conflict}`);
        // The node was renamed: its old registration goes, as in Consul.
        deleteNode(tx, byId.Node);
      }
    } else {
      const conflict = nameConflict(d, node, true);
      if (conflict) throw new StateError('ERR_NODE_ID_CONFLICT', `Error while renaming Node ID: ${JSON.stringify(node.ID)}: ${conflict}`);
    }
  }
  const key = nodeKey(node.Node);
  prior ??= d.nodes.get(key);
  const row: Node = { ...node, CreateIndex: prior ? prior.CreateIndex : tx.index, ModifyIndex: tx.index };
  if (prior && sameData(prior, row, INDEX_FIELDS)) return prior;
  const frozen = deepFreeze(row);
  tx.putNode(key, frozen);
  // Health answers embed the node row: every service on it changed.
  bumpServicesOfNode(tx, key);
  return frozen;
}

/** Consul's ensureNodeCASTxn: ModifyIndex 0 creates only if absent. */
export function ensureNodeCas(tx: WriteTx, node: Node, casIndex: number): boolean {
  const existing = tx.data.nodes.get(nodeKey(node.Node));
  if (casIndex === 0 && existing) return false;
  if (casIndex !== 0 && (!existing || existing.ModifyIndex !== casIndex)) return false;
  ensureNode(tx, node);
  return true;
}

function lastInstanceGone(tx: WriteTx, name: string): void {
  if (tx.data.serviceKeysByName(name).length === 0) tx.serviceExtinct(name);
}

/** Consul's ensureServiceTxn. Returns the stored row. */
export function ensureService(tx: WriteTx, nodeName: string, svc: NodeService): NodeService {
  const node = tx.data.nodes.get(nodeKey(nodeName));
  if (!node) throw missingNode();
  const key = serviceKey(node.Node, svc.ID);
  const existing = tx.data.services.get(key);
  const row: NodeService = { ...svc, CreateIndex: existing ? existing.Service.CreateIndex : tx.index, ModifyIndex: tx.index };
  if (existing && sameData(existing.Service, row, INDEX_FIELDS)) return existing.Service;
  const frozen = deepFreeze(row);
  tx.putService(key, { Node: node.Node, Service: frozen });
  bumpInstance(tx, frozen);
  if (existing) bumpInstance(tx, existing.Service);
  if (existing && lower(existing.Service.Service) !== lower(frozen.Service)) {
    // Re-registered under another name: the old name lost an instance.
    lastInstanceGone(tx, existing.Service.Service);
  }
  return frozen;
}

export function ensureServiceCas(tx: WriteTx, nodeName: string, svc: NodeService, casIndex: number): boolean {
  const existing = tx.data.services.get(serviceKey(nodeName, svc.ID));
  if (casIndex === 0 && existing) return false;
  if (casIndex !== 0 && (!existing || existing.Service.ModifyIndex !== casIndex)) return false;
  ensureService(tx, nodeName, svc);
  return true;
}

/** Consul's ensureCheckTxn. Returns the stored row. */
export function ensureCheck(tx: WriteTx, hc: HealthCheck): HealthCheck {
  const d = tx.data;
  const nk = nodeKey(hc.Node);
  const node = d.nodes.get(nk);
  if (!node) throw missingNode();
  const key = checkKey(node.Node, hc.CheckID);
  const existing = d.checks.get(key);
  const row: HealthCheck = { ...hc, Node: node.Node, CreateIndex: existing ? existing.CreateIndex : tx.index, ModifyIndex: tx.index };
  let owner: NodeService | undefined;
  if (hc.ServiceID !== '') {
    const svc = d.services.get(serviceKey(node.Node, hc.ServiceID));
    if (!svc) throw missingService();
    owner = svc.Service;
    row.ServiceID = svc.Service.ID;
    row.ServiceName = svc.Service.Service;
    row.ServiceTags = [...svc.Service.Tags];
  } else {
    row.ServiceName = '';
    row.ServiceTags = [];
  }
  const modified = !(existing && sameData(existing, row, INDEX_FIELDS));
  if (modified) {
    if (owner !== undefined) bumpInstance(tx, owner);
    else bumpServicesOfNode(tx, nk);
  }
  // Consul invalidates on every critical write, changed or not: a session must never outlive the
  // health it was bound to.
  if (row.Status === 'critical') invalidateCheckSessions(tx, node.Node, row.CheckID);
  if (!modified) return existing!;
  const frozen = deepFreeze(row);
  tx.putCheck(key, frozen);
  return frozen;
}

export function ensureCheckCas(tx: WriteTx, hc: HealthCheck, casIndex: number): boolean {
  const existing = tx.data.checks.get(checkKey(hc.Node, hc.CheckID));
  if (casIndex === 0 && existing) return false;
  if (casIndex !== 0 && (!existing || existing.ModifyIndex !== casIndex)) return false;
  ensureCheck(tx, hc);
  return true;
}

/** Consul's deleteCheckTxn; a missing check is a no-op (false). */
export function deleteCheck(tx: WriteTx, nodeName: string, checkId: string): boolean {
  const key = checkKey(nodeName, checkId);
  const hc = tx.data.checks.get(key);
  if (!hc) return false;
  if (hc.ServiceID !== '') {
    const svc = tx.data.services.get(serviceKey(hc.Node, hc.ServiceID));
    if (svc) bumpInstance(tx, svc.Service);
    else tx.bumpService(hc.ServiceName);
  } else {
    bumpServicesOfNode(tx, nodeKey(hc.Node));
  }
  tx.putCheck(key, undefined);
  invalidateCheckSessions(tx, hc.Node, hc.CheckID);
  return true;
}

export function deleteCheckCas(tx: WriteTx, nodeName: string, checkId: string, casIndex: number): boolean {
  const hc = tx.data.checks.get(checkKey(nodeName, checkId));
  if (!hc || hc.ModifyIndex !== casIndex) return false;
  return deleteCheck(tx, nodeName, checkId);
}

/** Consul's deleteServiceTxn: the service's checks go with it. */
export function deleteService(tx: WriteTx, nodeName: string, serviceId: string): boolean {
  const key = serviceKey(nodeName, serviceId);
  const row = tx.data.services.get(key);
  if (!row) return false;
  const own: HealthCheck[] = [];
  scanPrefix(tx.data.checks, nodeKey(nodeName) + SEP, (_k, hc) => {
    if (hc.ServiceID !== '' && lower(hc.ServiceID) === lower(row.Service.ID)) own.push(hc);
  });
  for (const hc of own) deleteCheck(tx, hc.Node, hc.CheckID);
  tx.putService(key, undefined);
  bumpInstance(tx, row.Service);
  lastInstanceGone(tx, row.Service.Service);
  return true;
}

export function deleteServiceCas(tx: WriteTx, nodeName: string, serviceId: string, casIndex: number): boolean {
  const row = tx.data.services.get(serviceKey(nodeName, serviceId));
  if (!row || row.Service.ModifyIndex !== casIndex) return false;
  return deleteService(tx, nodeName, serviceId);
}

/** Consul's deleteNodeTxn: services, checks, then the node, then its sessions. */
export function deleteNode(tx: WriteTx, nodeName: string): boolean {
  const nk = nodeKey(nodeName);
  const node = tx.data.nodes.get(nk);
  if (!node) return false;
  const serviceIds: string[] = [];
  scanPrefix(tx.data.services, nk + SEP, (_k, row) => {
    serviceIds.push(row.Service.ID);
  });
  for (const id of serviceIds) deleteService(tx, node.Node, id);
  const checkIds: string[] = [];
  scanPrefix(tx.data.checks, nk + SEP, (_k, hc) => {
    checkIds.push(hc.CheckID);
  });
  for (const id of checkIds) deleteCheck(tx, node.Node, id);
  // Coordinates of the node go here once that table has rows.
  tx.putNode(nk, undefined);
  invalidateNodeSessions(tx, node.Node);
  return true;
}

export function deleteNodeCas(tx: WriteTx, nodeName: string, casIndex: number): boolean {
  const node = tx.data.nodes.get(nodeKey(nodeName));
  if (!node || node.ModifyIndex !== casIndex) return false;
  return deleteNode(tx, nodeName);
}

/** Consul's RegisterRequest.ChangesNode. */
function changesNode(node: Node, existing: Node): boolean {
  return !sameData(node, existing, INDEX_FIELDS);
}

/** Catalog.Register's checks and the FSM's ensureRegistrationTxn, in one deterministic step. */
export function applyRegister(tx: WriteTx, cmd: CatalogRegisterCommand): void {
  const nodeName = optString(cmd.Node, 'Node');
  if (nodeName === '') throw invalidRequest('Must provide node');
  const skipNodeUpdate = optBool(cmd.SkipNodeUpdate, 'SkipNodeUpdate');
  const address = optString(cmd.Address, 'Address');
  if (address === '' && !skipNodeUpdate) throw invalidRequest('Must provide address if SkipNodeUpdate is not set');
  const id = optString(cmd.ID, 'ID');
  if (id !== '' && !isUuid(id)) throw invalidRequest(`Bad node ID: uuid string is improperly formatted: ${JSON.stringify(id)}`);

  const node = nodeFromInput({
    ID: id, Node: nodeName, Address: address, Datacenter: cmd.Datacenter, TaggedAddresses: cmd.TaggedAddresses, Meta: cmd.NodeMeta,
  });
  // Parse everything before writing anything: a malformed check must not leave a half registration
  // (the undo log would cover it, but failing early gives the clearer error).
  const service = cmd.Service === undefined || cmd.Service === null ? undefined : serviceFromInput(cmd.Service);
  const rawChecks: unknown[] = [];
  if (cmd.Check !== undefined && cmd.Check !== null) rawChecks.push(cmd.Check);
  if (cmd.Checks !== undefined && cmd.Checks !== null) {
    if (!Array.isArray(cmd.Checks)) throw invalidRequest('Checks must be a list');
    rawChecks.push(...cmd.Checks);
  }
  const checks = rawChecks.map((c, i) => checkFromInput(c as Record<string, unknown>, nodeName, `Checks[${i}]`));

  const existing = tx.data.nodes.get(nodeKey(nodeName));
  if (!existing || (!skipNodeUpdate && changesNode(node, existing))) {
    within('failed inserting node: ', () => ensureNode(tx, node));
  }
  if (service) within('failed inserting service: ', () => ensureService(tx, nodeName, service));
  for (const hc of checks) {
    if (lower(hc.Node) !== lower(nodeName)) {
      throw invalidRequest(`check node ${JSON.stringify(hc.Node)} does not match node ${JSON.stringify(nodeName)}`);
    }
    within(`failed inserting check on node ${JSON.stringify(hc.Node)}: `, () => ensureCheck(tx, hc));
  }
}

/** The FSM's applyDeregister: a service, else a check, else the whole node. Missing is fine. */
export function applyDeregister(tx: WriteTx, cmd: CatalogDeregisterCommand): void {
  const nodeName = optString(cmd.Node, 'Node');
  if (nodeName === '') throw invalidRequest('Must provide node');
  const serviceId = optString(cmd.ServiceID, 'ServiceID');
  const checkId = optString(cmd.CheckID, 'CheckID');
  if (serviceId !== '') deleteService(tx, nodeName, serviceId);
  else if (checkId !== '') deleteCheck(tx, nodeName, checkId);
  else deleteNode(tx, nodeName);
}
