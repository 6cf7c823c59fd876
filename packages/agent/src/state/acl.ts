// The ACL tables (Consul's agent/consul/state/acl.go): tokens by AccessorID (and by SecretID),
// policies and roles by ID (and by Name), the bootstrap index, and the servers' own secret.
//
// The FSM checks structure and references only: unique IDs, names and secrets, links to policies
// and roles that exist (a link given by Name is resolved to its ID here, so every server stores the
// same row). Rules are parsed and checked before proposing (acl/rules.ts, at the HTTP edge), since
// the state layer imports nothing above it.
//
// Secrets: a token's SecretID is in the table, as in Consul (the Raft log and snapshots hold them);
// reads that the HTTP layer shows redact it unless the caller has acl:write. `serverSecret` is the
// servers' own management secret (Consul's server management token): servers present it when they
// forward a write they already authorized; it is never shown by any read.
//
// Local: a token that exists only in this datacenter (Consul's Local flag). Replication across
// datacenters (not built yet) copies policies, roles and tokens with Local = false from the primary.
import { StateError, invalidRequest } from './errors.ts';
import { deepFreeze, isRecord, optBool, optString, optStringArray, optUint, reqString } from './rows.ts';
import type { WriteTx } from './tables.ts';
import type { ACLBootstrapResult, ACLLink, ACLNodeIdentity, ACLPolicy, ACLRole, ACLServiceIdentity, ACLToken } from './types.ts';

export const ACL_ANONYMOUS_ACCESSOR_ID = '00000000-0000-0000-0000-000000000002';
export const ACL_GLOBAL_MANAGEMENT_ID = '00000000-0000-0000-0000-000000000001';
const NAME = /^[A-Za-z0-9\-_]{1,128}$/;

function links(v: unknown, field: string): ACLLink[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw invalidRequest(`${field} must be a list`);
  return v.map((x, i) => {
    if (!isRecord(x)) throw invalidRequest(`${field}[${i}] must be an object`);
    return { ID: optString(x.ID, `${field}[${i}].ID`), Name: optString(x.Name, `${field}[${i}].Name`) };
  });
}

function serviceIdentities(v: unknown, field: string): ACLServiceIdentity[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw invalidRequest(`${field} must be a list`);
  return v.map((x, i) => {
    if (!isRecord(x)) throw invalidRequest(`${field}[${i}] must be an object`);
    const name = reqString(x.ServiceName, `${field}[${i}].ServiceName`);
    if (name === '') throw invalidRequest('Service identity is missing the service name field on this token');
    const dcs = optStringArray(x.Datacenters, `${field}[${i}].Datacenters`);
    return dcs.length > 0 ? { ServiceName: name, Datacenters: dcs } : { ServiceName: name };
  });
}

function nodeIdentities(v: unknown, field: string): ACLNodeIdentity[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw invalidRequest(`${field} must be a list`);
  return v.map((x, i) => {
    if (!isRecord(x)) throw invalidRequest(`${field}[${i}] must be an object`);
    const name = reqString(x.NodeName, `${field}[${i}].NodeName`);
    if (name === '') throw invalidRequest('Node identity is missing the node name field on this token');
    return { NodeName: name, Datacenter: optString(x.Datacenter, `${field}[${i}].Datacenter`) };
  });
}

export function aclTokenFromInput(raw: unknown, where: string): ACLToken {
  if (!isRecord(raw)) throw invalidRequest(`${where} must be an object`);
  return {
    AccessorID: reqString(raw.AccessorID, `${where}.AccessorID`),
    SecretID: reqString(raw.SecretID, `${where}.SecretID`),
    Description: optString(raw.Description, `${where}.Description`),
    Policies: links(raw.Policies, `${where}.Policies`),
    Roles: links(raw.Roles, `${where}.Roles`),
    ServiceIdentities: serviceIdentities(raw.ServiceIdentities, `${where}.ServiceIdentities`),
    NodeIdentities: nodeIdentities(raw.NodeIdentities, `${where}.NodeIdentities`),
    Local: optBool(raw.Local, `${where}.Local`),
    ExpirationTime: optString(raw.ExpirationTime, `${where}.ExpirationTime`),
    CreateTime: optString(raw.CreateTime, `${where}.CreateTime`),
    CreateIndex: optUint(raw.CreateIndex, `${where}.CreateIndex`),
    ModifyIndex: optUint(raw.ModifyIndex, `${where}.ModifyIndex`),
  };
}

export function aclPolicyFromInput(raw: unknown, where: string): ACLPolicy {
  if (!isRecord(raw)) throw invalidRequest(`${where} must be an object`);
  return {
    ID: reqString(raw.ID, `${where}.ID`),
    Name: optString(raw.Name, `${where}.Name`),
    Description: optString(raw.Description, `${where}.Description`),
    Rules: optString(raw.Rules, `${where}.Rules`),
    Datacenters: optStringArray(raw.Datacenters, `${where}.Datacenters`),
    CreateIndex: optUint(raw.CreateIndex, `${where}.CreateIndex`),
    ModifyIndex: optUint(raw.ModifyIndex, `${where}.ModifyIndex`),
  };
}

export function aclRoleFromInput(raw: unknown, where: string): ACLRole {
  if (!isRecord(raw)) throw invalidRequest(`${where} must be an object`);
  return {
    ID: reqString(raw.ID, `${where}.ID`),
    Name: optString(raw.Name, `${where}.Name`),
    Description: optString(raw.Description, `${where}.Description`),
    Policies: links(raw.Policies, `${where}.Policies`),
    ServiceIdentities: serviceIdentities(raw.ServiceIdentities, `${where}.ServiceIdentities`),
    NodeIdentities: nodeIdentities(raw.NodeIdentities, `${where}.NodeIdentities`),
    CreateIndex: optUint(raw.CreateIndex, `${where}.CreateIndex`),
    ModifyIndex: optUint(raw.ModifyIndex, `${where}.ModifyIndex`),
  };
}

/** Resolves links given by ID or by Name to {ID, Name} of rows that exist; refuses unknown ones. */
function resolveLinks(input: ACLLink[], kind: 'policy' | 'role', byId: (id: string) => { Name: string } | undefined, idByName: (n: string) => string | undefined): ACLLink[] {
  const out: ACLLink[] = [];
  const seen = new Set<string>();
  for (const l of input) {
    let id = l.ID;
    if (id === '') {
      if (l.Name === '') throw invalidRequest(`${kind === 'policy' ? 'Policy' : 'Role'} links must have an ID or a Name`);
      const found = idByName(l.Name);
      if (found === undefined) throw invalidRequest(`No such ACL ${kind} with name "${l.Name}"`);
      id = found;
    }
    const row = byId(id);
    if (!row) throw invalidRequest(`No such ACL ${kind} with ID "${id}"`);
    if (seen.has(id)) continue;
    seen.add(id);
    out.push({ ID: id, Name: row.Name });
  }
  return out;
}

function tokenLinks(tx: WriteTx, t: ACLToken): ACLToken {
  const d = tx.data;
  return {
    ...t,
    Policies: resolveLinks(t.Policies, 'policy', (id) => d.aclPolicies.get(id), (n) => d.aclPolicyNames.get(n)),
    Roles: resolveLinks(t.Roles, 'role', (id) => d.aclRoles.get(id), (n) => d.aclRoleNames.get(n)),
  };
}

/** Creates (`create`) or replaces a token. Returns the stored row. */
export function aclTokenSet(tx: WriteTx, raw: unknown, create: boolean): ACLToken {
  const t = aclTokenFromInput(raw, 'Token');
  if (t.AccessorID === '' || t.SecretID === '') throw invalidRequest('Token AccessorID and SecretID are required');
  const d = tx.data;
  const existing = d.aclTokens.get(t.AccessorID);
  if (create && existing) throw invalidRequest(`Invalid Token: AccessorID is already in use`);
  if (!create && !existing) throw invalidRequest(`Cannot find token "${t.AccessorID}"`);
  if (existing && existing.SecretID !== t.SecretID) throw invalidRequest('Changing a tokens SecretID is not permitted');
  const holder = d.aclTokenSecrets.get(t.SecretID);
  if (holder !== undefined && holder !== t.AccessorID) throw invalidRequest('Invalid Token: SecretID is already in use');
  const row = tokenLinks(tx, t);
  const stored = deepFreeze({
    ...row,
    CreateTime: existing ? existing.CreateTime : row.CreateTime,
    CreateIndex: existing ? existing.CreateIndex : tx.index,
    ModifyIndex: tx.index,
  });
  tx.putAclToken(t.AccessorID, stored);
  return stored;
}

export function aclTokenDelete(tx: WriteTx, accessorRaw: unknown): boolean {
  const id = optString(accessorRaw, 'AccessorID');
  if (id === ACL_ANONYMOUS_ACCESSOR_ID) throw invalidRequest('Delete operation not permitted on the anonymous token');
  if (!tx.data.aclTokens.has(id)) return false;
  tx.putAclToken(id, undefined);
  return true;
}

export function aclPolicySet(tx: WriteTx, raw: unknown, create: boolean): ACLPolicy {
  const p = aclPolicyFromInput(raw, 'Policy');
  if (p.ID === '') throw invalidRequest('Policy ID is required');
  if (!NAME.test(p.Name)) throw invalidRequest(`Invalid Policy: invalid Name. Only alphanumeric characters, '-' and '_' are allowed`);
  const d = tx.data;
  const existing = d.aclPolicies.get(p.ID);
  if (create && existing) throw invalidRequest('Invalid Policy: ID is already in use');
  if (!create && !existing) throw invalidRequest(`Cannot find policy "${p.ID}"`);
  const holder = d.aclPolicyNames.get(p.Name);
  if (holder !== undefined && holder !== p.ID) throw invalidRequest(`Invalid Policy: A Policy with Name "${p.Name}" already exists`);
  if (existing && p.ID === ACL_GLOBAL_MANAGEMENT_ID) {
    if (p.Name !== existing.Name) throw invalidRequest('Changing the Name for the builtin global-management policy is not permitted');
    if (p.Rules !== existing.Rules) throw invalidRequest('Changing the Rules for the builtin global-management policy is not permitted');
  }
  const stored = deepFreeze({ ...p, CreateIndex: existing ? existing.CreateIndex : tx.index, ModifyIndex: tx.index });
  tx.putAclPolicy(p.ID, stored);
  return stored;
}

export function aclPolicyDelete(tx: WriteTx, idRaw: unknown): boolean {
  const id = optString(idRaw, 'ID');
  if (id === ACL_GLOBAL_MANAGEMENT_ID) throw invalidRequest('Delete operation not permitted on the builtin global-management policy');
  if (!tx.data.aclPolicies.has(id)) return false;
  tx.putAclPolicy(id, undefined);
  return true;
}

export function aclRoleSet(tx: WriteTx, raw: unknown, create: boolean): ACLRole {
  const r = aclRoleFromInput(raw, 'Role');
  if (r.ID === '') throw invalidRequest('Role ID is required');
  if (!NAME.test(r.Name)) throw invalidRequest(`Invalid Role: invalid Name. Only alphanumeric characters, '-' and '_' are allowed`);
  const d = tx.data;
  const existing = d.aclRoles.get(r.ID);
  if (create && existing) throw invalidRequest('Invalid Role: ID is already in use');
  if (!create && !existing) throw invalidRequest(`Cannot find role "${r.ID}"`);
  const holder = d.aclRoleNames.get(r.Name);
  if (holder !== undefined && holder !== r.ID) throw invalidRequest(`Invalid Role: A Role with Name "${r.Name}" already exists`);
  const stored = deepFreeze({
    ...r,
    Policies: resolveLinks(r.Policies, 'policy', (id) => d.aclPolicies.get(id), (n) => d.aclPolicyNames.get(n)),
    CreateIndex: existing ? existing.CreateIndex : tx.index,
    ModifyIndex: tx.index,
  });
  tx.putAclRole(r.ID, stored);
  return stored;
}

export function aclRoleDelete(tx: WriteTx, idRaw: unknown): boolean {
  const id = optString(idRaw, 'ID');
  if (!tx.data.aclRoles.has(id)) return false;
  tx.putAclRole(id, undefined);
  return true;
}

/**
 * The one-time bootstrap (Consul's ACL.Bootstrap): stores a global-management token unless the
 * system was bootstrapped already, in which case only the stored reset index reopens it.
 */
export function aclBootstrap(tx: WriteTx, tokenRaw: unknown, resetIndexRaw: unknown, globalManagementRaw?: unknown): ACLBootstrapResult {
  const reset = optUint(resetIndexRaw, 'ResetIndex');
  const d = tx.data;
  if (d.aclBootstrapIndex !== 0 && reset !== d.aclBootstrapIndex) return { Bootstrapped: false, ResetIndex: d.aclBootstrapIndex };
  // A bootstrap can arrive before the new leader's aclInit is applied: the token's policy comes with it.
  if (!d.aclPolicies.has(ACL_GLOBAL_MANAGEMENT_ID) && isRecord(globalManagementRaw)) aclPolicySet(tx, globalManagementRaw, true);
  aclTokenSet(tx, tokenRaw, true);
  tx.setAclBootstrapIndex(tx.index);
  return { Bootstrapped: true, ResetIndex: tx.index };
}

/**
 * What a new leader makes sure of when ACLs are on (Consul's initializeACLs): the builtin
 * global-management policy, the anonymous token, the servers' own secret, and the configured
 * initial management token (which also counts as the bootstrap). Idempotent: rows that exist stay.
 */
export function aclInit(tx: WriteTx, c: Record<string, unknown>): boolean {
  const d = tx.data;
  if (!d.aclPolicies.has(ACL_GLOBAL_MANAGEMENT_ID) && isRecord(c.GlobalManagement)) aclPolicySet(tx, c.GlobalManagement, true);
  if (!d.aclTokens.has(ACL_ANONYMOUS_ACCESSOR_ID) && isRecord(c.Anonymous)) aclTokenSet(tx, c.Anonymous, true);
  const secret = optString(c.ServerSecret, 'ServerSecret');
  if (d.aclServerSecret === '' && secret !== '') tx.setAclServerSecret(secret);
  if (isRecord(c.InitialManagement)) {
    const im = aclTokenFromInput(c.InitialManagement, 'InitialManagement');
    if (!d.aclTokenSecrets.has(im.SecretID)) {
      if (d.aclTokens.has(im.AccessorID)) throw new StateError('ERR_INVALID_REQUEST', 'InitialManagement AccessorID is already in use');
      aclTokenSet(tx, im, true);
      if (d.aclBootstrapIndex === 0) tx.setAclBootstrapIndex(tx.index);
    }
  }
  return true;
}
