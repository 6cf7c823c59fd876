// The built-in CA's replicated state (Consul's agent/consul/state/connect_ca.go): the CA
// configuration (with the cluster id), the roots (active one plus older ones kept until the leaves
// they signed expire) and the provider state, which holds the private keys of the roots.
//
// Where the private keys live: as in Consul (its connect-ca-builtin table), in the replicated state,
// so every server can sign leaves and a new leader finds the CA it had. They are therefore in the
// Raft log and snapshots, like Consul's. They are never returned by a read the HTTP layer can reach
// (StateReader has no method for them; only the server's signer reads them through StateStore) and
// never logged.
//
// One command sets the configuration, the roots and the provider state together (Consul's
// CAOpSetRootsAndConfig), with an optional check-and-set on the configuration's ModifyIndex, so a
// rotation made by one leader cannot interleave with another's.
import { StateError, invalidRequest } from './errors.ts';
import { deepFreeze, isRecord, optBool, optString, optUint, reqString } from './rows.ts';
import type { WriteTx } from './tables.ts';
import type { CAConfiguration, CAProviderState, CARoot } from './types.ts';


function strings(v: unknown, field: string): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || !v.every((s) => typeof s === 'string')) throw invalidRequest(`${field} must be a list of strings`);
  return [...v] as string[];
}

/** A root row from a command or a snapshot (shape checked, indexes as given). */
export function caRootFromInput(raw: unknown, where: string): CARoot {
  if (!isRecord(raw)) throw invalidRequest(`${where} must be an object`);
  const id = reqString(raw.ID, `${where}.ID`);
  if (id === '') throw invalidRequest(`${where}.ID is required`);
  const root: CARoot = {
    ID: id,
    Name: optString(raw.Name, `${where}.Name`),
    SerialNumber: optUint(raw.SerialNumber, `${where}.SerialNumber`),
    SigningKeyID: optString(raw.SigningKeyID, `${where}.SigningKeyID`),
    ExternalTrustDomain: optString(raw.ExternalTrustDomain, `${where}.ExternalTrustDomain`),
    NotBefore: optString(raw.NotBefore, `${where}.NotBefore`),
    NotAfter: optString(raw.NotAfter, `${where}.NotAfter`),
    RootCert: reqString(raw.RootCert, `${where}.RootCert`),
    IntermediateCerts: raw.IntermediateCerts === null || raw.IntermediateCerts === undefined ? null : strings(raw.IntermediateCerts, `${where}.IntermediateCerts`),
    Active: optBool(raw.Active, `${where}.Active`),
    RotatedOutAt: optString(raw.RotatedOutAt, `${where}.RotatedOutAt`, '0001-01-01T00:00:00Z'),
    PrivateKeyType: optString(raw.PrivateKeyType, `${where}.PrivateKeyType`),
    PrivateKeyBits: optUint(raw.PrivateKeyBits, `${where}.PrivateKeyBits`),
    CreateIndex: optUint(raw.CreateIndex, `${where}.CreateIndex`),
    ModifyIndex: optUint(raw.ModifyIndex, `${where}.ModifyIndex`),
  };
  return root;
}

export function caConfigFromInput(raw: unknown, where: string): CAConfiguration {
  if (!isRecord(raw)) throw invalidRequest(`${where} must be an object`);
  const config = raw.Config ?? {};
  if (!isRecord(config)) throw invalidRequest(`${where}.Config must be an object`);
  return {
    ClusterID: reqString(raw.ClusterID, `${where}.ClusterID`),
    Provider: optString(raw.Provider, `${where}.Provider`, 'consul'),
    Config: { ...config },
    ForceWithoutCrossSigning: optBool(raw.ForceWithoutCrossSigning, `${where}.ForceWithoutCrossSigning`),
    CreateIndex: optUint(raw.CreateIndex, `${where}.CreateIndex`),
    ModifyIndex: optUint(raw.ModifyIndex, `${where}.ModifyIndex`),
  };
}

export function caProviderStateFromInput(raw: unknown, where: string): CAProviderState {
  if (!isRecord(raw)) throw invalidRequest(`${where} must be an object`);
  return {
    ID: reqString(raw.ID, `${where}.ID`),
    PrivateKey: reqString(raw.PrivateKey, `${where}.PrivateKey`),
    RootCert: reqString(raw.RootCert, `${where}.RootCert`),
  };
}

/**
 * Sets the CA configuration, the whole set of roots and the provider state at once. `Cas`: 0 only
 * if no configuration exists yet (the first leader's initialisation), N only if the configuration's
 * ModifyIndex is N. Exactly one root must be active. Returns false when the CAS does not hold.
 */
export function connectCASet(tx: WriteTx, configIn: unknown, rootsIn: unknown, stateIn: unknown, casIn: unknown): boolean {
  const config = caConfigFromInput(configIn, 'Config');
  if (config.ClusterID === '') throw invalidRequest('Config.ClusterID is required');
  if (!Array.isArray(rootsIn)) throw invalidRequest('Roots must be a list');
  const roots = rootsIn.map((r, i) => caRootFromInput(r, `Roots[${i}]`));
  const active = roots.filter((r) => r.Active);
  if (active.length !== 1) throw new StateError('ERR_INVALID_REQUEST', `exactly one root must be active, found ${active.length}`);
  if (new Set(roots.map((r) => r.ID)).size !== roots.length) throw invalidRequest('Roots must have distinct IDs');
  const states = stateIn === undefined || stateIn === null ? undefined : (Array.isArray(stateIn) ? stateIn : [stateIn]).map((s, i) => caProviderStateFromInput(s, `ProviderState[${i}]`));

  const existing = tx.data.caConfig;
  if (casIn !== undefined && casIn !== null) {
    const cas = optUint(casIn, 'Cas');
    if (cas === 0 && existing) return false;
    if (cas !== 0 && (!existing || existing.ModifyIndex !== cas)) return false;
  }
  tx.putCAConfig(deepFreeze({ ...config, CreateIndex: existing ? existing.CreateIndex : tx.index, ModifyIndex: tx.index }));

  const before = new Map(tx.data.caRoots.valuesArray().map((r) => [r.ID, r] as const));
  for (const id of before.keys()) if (!roots.some((r) => r.ID === id)) tx.putCARoot(id, undefined);
  for (const r of roots) {
    const old = before.get(r.ID);
    tx.putCARoot(r.ID, deepFreeze({ ...r, CreateIndex: old ? old.CreateIndex : tx.index, ModifyIndex: tx.index }));
  }
  if (states) {
    const keep = new Set(states.map((s) => s.ID));
    for (const s of tx.data.caProviderState.valuesArray()) if (!keep.has(s.ID)) tx.putCAProviderState(s.ID, undefined);
    for (const s of states) tx.putCAProviderState(s.ID, deepFreeze(s));
  }
  return true;
}
