// Config entry writes (Consul's agent/consul/state/config_entry.go): upsert and delete, each with an
// optional check-and-set on ModifyIndex, and the one rule that needs the rest of the table: the
// protocol gate of the discovery chain.
//
// What an entry must look like (fields, Name rules, Consul's error texts) is checked by the proposer
// before it proposes (connect/configEntries/), as Consul's ConfigEntry.Apply endpoint validates
// before raftApply. The protocol gate is checked here, inside apply, because it reads other entries:
// done before proposing, a concurrent write (a service-defaults going back to tcp while a router is
// being written) could slip between the check and the commit. Inside apply it is deterministic (it
// reads only the replicated table) and atomic with the write: the write is made, the affected chains
// are checked against the new table, and a violation rolls the whole command back.
import { StateError, invalidRequest } from './errors.ts';
import { deepFreeze, isRecord, optUint, reqString } from './rows.ts';
import { SEP, configEntryKey, lower, scanPrefix, type StateData, type WriteTx } from './tables.ts';
import type { ConfigEntry } from './types.ts';

const PROXY_DEFAULTS = 'proxy-defaults';
const SERVICE_DEFAULTS = 'service-defaults';
const SERVICE_ROUTER = 'service-router';
const SERVICE_SPLITTER = 'service-splitter';
const SERVICE_RESOLVER = 'service-resolver';
const PROXY_GLOBAL = 'global';

/** Protocols whose chains may route and split (Consul's enableAdvancedRoutingForProtocol). */
const HTTP_LIKE: ReadonlySet<string> = new Set(['http', 'http2', 'grpc']);

/** Consul's ConfigEntryGraphError text from discoverychain.Compile. */
export function protocolGateMessage(service: string, protocol: string): string {
  return `discovery chain ${JSON.stringify(service)} uses a protocol ${JSON.stringify(protocol)} that does not permit advanced routing or splitting behavior`;
}

/**
 * The protocol of a service's chain: its service-defaults Protocol, else proxy-defaults/global's
 * Config.protocol, else tcp (Consul's compile.go: recordServiceProtocol).
 */
export function serviceProtocol(data: StateData, service: string): string {
  const sd = data.configEntries.get(configEntryKey(SERVICE_DEFAULTS, service));
  if (sd && typeof sd.Protocol === 'string' && sd.Protocol !== '') return lower(sd.Protocol);
  const pd = data.configEntries.get(configEntryKey(PROXY_DEFAULTS, PROXY_GLOBAL));
  const config = pd?.Config;
  if (isRecord(config) && typeof config.protocol === 'string' && config.protocol !== '') return lower(config.protocol);
  return 'tcp';
}

/** Whether a service's chain uses routing or splitting (a router or splitter is named for it). */
function usesAdvancedRouting(data: StateData, service: string): boolean {
  return data.configEntries.has(configEntryKey(SERVICE_ROUTER, service)) || data.configEntries.has(configEntryKey(SERVICE_SPLITTER, service));
}

/** Names of every service with a router, splitter or resolver (what a proxy-defaults change can affect). */
function chainNames(data: StateData): string[] {
  const names = new Set<string>();
  for (const kind of [SERVICE_ROUTER, SERVICE_SPLITTER, SERVICE_RESOLVER]) {
    scanPrefix(data.configEntries, lower(kind) + SEP, (_k, e) => {
      names.add(e.Name);
    });
  }
  return [...names].sort();
}

/**
 * Consul's validateProposedConfigEntryInGraph, for the rule Trellis enforces: after the change, every
 * chain it may affect that routes or splits has an HTTP-like protocol. Throws (the caller rolls back).
 */
function checkProtocolGate(data: StateData, kind: string, name: string): void {
  let chains: string[];
  switch (lower(kind)) {
    case PROXY_DEFAULTS:
      chains = chainNames(data);
      break;
    case SERVICE_DEFAULTS:
    case SERVICE_ROUTER:
    case SERVICE_SPLITTER:
      chains = [name];
      break;
    default:
      return;
  }
  for (const chain of chains) {
    if (!usesAdvancedRouting(data, chain)) continue;
    const protocol = serviceProtocol(data, chain);
    if (!HTTP_LIKE.has(protocol)) throw new StateError('ERR_INVALID_CONFIG_ENTRY', protocolGateMessage(chain, protocol));
  }
}

function casIndex(v: unknown): number | undefined {
  return v === undefined || v === null ? undefined : optUint(v, 'Cas');
}

/** The stored row: Kind and Name first, the entry's fields as given, the Raft indexes last. */
function entryRow(input: Record<string, unknown>, kind: string, name: string, createIndex: number, modifyIndex: number): ConfigEntry {
  const row: Record<string, unknown> = { Kind: kind, Name: name };
  for (const [k, v] of Object.entries(input)) {
    if (k === 'Kind' || k === 'Name' || k === 'CreateIndex' || k === 'ModifyIndex') continue;
    row[k] = v;
  }
  row.CreateIndex = createIndex;
  row.ModifyIndex = modifyIndex;
  return deepFreeze(row as ConfigEntry);
}

/** Consul's EnsureConfigEntry / EnsureConfigEntryCAS. Returns false when the CAS does not hold. */
export function configEntrySet(tx: WriteTx, entryIn: unknown, casIn: unknown): boolean {
  if (!isRecord(entryIn)) throw invalidRequest('Entry must be an object');
  const kind = reqString(entryIn.Kind, 'Entry.Kind');
  const name = reqString(entryIn.Name, 'Entry.Name');
  if (kind === '') throw invalidRequest('Entry.Kind is required');
  if (name === '') throw invalidRequest('Name is required');
  const cas = casIndex(casIn);
  const key = configEntryKey(kind, name);
  const existing = tx.data.configEntries.get(key);
  if (cas !== undefined) {
    // ModifyIndex 0 means set-if-not-exists.
    if (cas === 0 && existing) return false;
    if (cas !== 0 && (!existing || existing.ModifyIndex !== cas)) return false;
  }
  tx.putConfigEntry(key, entryRow(entryIn, kind, name, existing ? existing.CreateIndex : tx.index, tx.index));
  checkProtocolGate(tx.data, kind, name);
  return true;
}

/**
 * Consul's DeleteConfigEntry / DeleteConfigEntryCAS. Without a CAS a missing entry is a success; with
 * one, false unless the entry exists at exactly that ModifyIndex.
 */
export function configEntryDelete(tx: WriteTx, kindIn: unknown, nameIn: unknown, casIn: unknown): boolean {
  const kind = reqString(kindIn, 'Kind');
  const name = reqString(nameIn, 'Name');
  if (kind === '') throw invalidRequest('Kind is required');
  const cas = casIndex(casIn);
  const key = configEntryKey(kind, name);
  const existing = tx.data.configEntries.get(key);
  if (!existing) return cas === undefined;
  if (cas !== undefined && existing.ModifyIndex !== cas) return false;
  tx.putConfigEntry(key, undefined);
  checkProtocolGate(tx.data, kind, name);
  return true;
}

/** Restores one snapshot row (validated shape, frozen). */
export function configEntryFromSnapshot(raw: Record<string, unknown>, where: string): ConfigEntry {
  const kind = reqString(raw.Kind, `${where}.Kind`);
  const name = reqString(raw.Name, `${where}.Name`);
  if (kind === '' || name === '') throw new StateError('ERR_INVALID_REQUEST', `${where} needs a Kind and a Name`);
  return entryRow(raw, kind, name, optUint(raw.CreateIndex, `${where}.CreateIndex`), optUint(raw.ModifyIndex, `${where}.ModifyIndex`));
}
