// Config entry writes (Consul's agent/consul/state/config_entry.go): upsert and delete, each with an
// optional check-and-set on ModifyIndex, and the rules that need the rest of the table: every
// discovery chain a write affects must still compile (a router or splitter needs an HTTP-like
// protocol, the services a chain reaches agree on their protocol, named subsets exist, no circular
// redirect or split; Consul's discoverychain.Compile, here connect/discoveryChain.ts).
//
// What an entry must look like (fields, Name rules, Consul's error texts) is checked by the proposer
// before it proposes (structs/configEntries/), as Consul's ConfigEntry.Apply endpoint validates
// before raftApply. The chain rules are checked here, inside apply, because they read other entries:
// done before proposing, a concurrent write (a service-defaults going back to tcp while a router is
// being written) could slip between the check and the commit. Inside apply they are deterministic
// (they read only the replicated table) and atomic with the write: the write is made, the chains it
// affects are compiled against the new table, and a failure rolls the whole command back.
import { StateError, invalidRequest } from './errors.ts';
import { deepFreeze, isRecord, optUint, reqString } from './rows.ts';
import { SEP, configEntryKey, lower, scanPrefix, type StateData, type WriteTx } from './tables.ts';
import type { ConfigEntry } from './types.ts';
import {
  ChainCompileError, compileDiscoveryChain, type ChainEntries, type ChainProxyDefaults, type ChainResolver, type ChainRouter,
  type ChainServiceDefaults, type ChainSplitter,
} from '../connect/discoveryChain.ts';

const PROXY_DEFAULTS = 'proxy-defaults';
const SERVICE_DEFAULTS = 'service-defaults';
const SERVICE_ROUTER = 'service-router';
const SERVICE_SPLITTER = 'service-splitter';
const SERVICE_RESOLVER = 'service-resolver';
const PROXY_GLOBAL = 'global';

/**
 * The compiler's input from the table: every service-defaults, router, splitter and resolver, and
 * proxy-defaults/global. Durations are left out: the graph check reads no timeout, and turning Go
 * duration strings into numbers would need config/ (state/ imports no layer above it).
 */
function chainEntries(data: StateData): ChainEntries {
  const kinds = { [SERVICE_DEFAULTS]: {}, [SERVICE_ROUTER]: {}, [SERVICE_SPLITTER]: {}, [SERVICE_RESOLVER]: {} } as Record<string, Record<string, unknown>>;
  for (const kind of Object.keys(kinds)) {
    scanPrefix(data.configEntries, lower(kind) + SEP, (_k, e) => {
      kinds[kind]![e.Name] = e;
    });
  }
  const resolvers: Record<string, ChainResolver> = {};
  for (const [name, e] of Object.entries(kinds[SERVICE_RESOLVER]!)) {
    const { ConnectTimeout: _c, RequestTimeout: _r, ...rest } = e as Record<string, unknown>;
    resolvers[name] = rest as unknown as ChainResolver;
  }
  const pd = data.configEntries.get(configEntryKey(PROXY_DEFAULTS, PROXY_GLOBAL));
  return {
    ...(pd ? { proxyDefaults: pd as ChainProxyDefaults } : {}),
    serviceDefaults: kinds[SERVICE_DEFAULTS] as Record<string, ChainServiceDefaults>,
    routers: kinds[SERVICE_ROUTER] as unknown as Record<string, ChainRouter>,
    splitters: kinds[SERVICE_SPLITTER] as unknown as Record<string, ChainSplitter>,
    resolvers,
  };
}

/**
 * Consul's validateProposedConfigEntryInGraph for one chain: compile it with the discovery chain
 * compiler (connect/discoveryChain.ts, pure and deterministic) against placeholder datacenter and
 * trust domain, as Consul does. Returns the services the compiler read (up to the failure, if any)
 * and the failure, a StateError with Consul's text (protocol rules, a subset that does not exist, a
 * circular redirect or split, ...).
 */
function compileChain(entries: ChainEntries, chain: string): { reads: Set<string>; error: StateError | undefined } {
  const reads = new Set<string>();
  try {
    compileDiscoveryChain({
      serviceName: chain, datacenter: 'dc1', trustDomain: '11111111-2222-3333-4444-555555555555.consul', entries,
      formatDuration: String, onRead: (service) => reads.add(lower(service)),
    });
    return { reads, error: undefined };
  } catch (e) {
    if (e instanceof ChainCompileError) return { reads, error: new StateError('ERR_INVALID_CONFIG_ENTRY', e.message) };
    throw e;
  }
}

/** Services with a router, splitter or resolver: the chains that exist beyond the default. */
function chainNames(data: StateData): string[] {
  const names = new Map<string, string>();
  for (const kind of [SERVICE_ROUTER, SERVICE_SPLITTER, SERVICE_RESOLVER]) {
    scanPrefix(data.configEntries, lower(kind) + SEP, (_k, e) => {
      if (!names.has(lower(e.Name))) names.set(lower(e.Name), e.Name);
    });
  }
  return [...names.values()].sort();
}

/**
 * Consul's validateProposedConfigEntryInGraph, run on the table as it is after the change: every
 * chain the change can affect must still compile. proxy-defaults affects every chain; a
 * service-defaults, router, splitter or resolver for N affects chain N and every chain that reads N
 * (found by compiling each chain and looking at what it read, so indirect links count too, while a
 * chain that does not read N, even if already invalid, is left alone). Other kinds touch no chain.
 */
function checkDiscoveryChains(data: StateData, kind: string, name: string): void {
  const k = lower(kind);
  const all = k === PROXY_DEFAULTS;
  if (!all && k !== SERVICE_DEFAULTS && k !== SERVICE_ROUTER && k !== SERVICE_SPLITTER && k !== SERVICE_RESOLVER) return;
  const chains = all ? chainNames(data) : [name, ...chainNames(data).filter((c) => lower(c) !== lower(name))];
  const entries = chainEntries(data);
  for (const chain of chains) {
    const { reads, error } = compileChain(entries, chain);
    if (error && (all || lower(chain) === lower(name) || reads.has(lower(name)))) throw error;
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
  checkDiscoveryChains(tx.data, kind, name);
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
  checkDiscoveryChains(tx.data, kind, name);
  return true;
}

/** Restores one snapshot row (validated shape, frozen). */
export function configEntryFromSnapshot(raw: Record<string, unknown>, where: string): ConfigEntry {
  const kind = reqString(raw.Kind, `${where}.Kind`);
  const name = reqString(raw.Name, `${where}.Name`);
  if (kind === '' || name === '') throw new StateError('ERR_INVALID_REQUEST', `${where} needs a Kind and a Name`);
  return entryRow(raw, kind, name, optUint(raw.CreateIndex, `${where}.CreateIndex`), optUint(raw.ModifyIndex, `${where}.ModifyIndex`));
}
