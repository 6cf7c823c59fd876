// Config entry writes (Consul's agent/consul/state/config_entry.go): upsert and delete, each with an
// optional check-and-set on ModifyIndex, and the rules that need the rest of the table: the
// discovery chains (a router or splitter needs an HTTP-like protocol, and the services a chain
// reaches must agree on their protocol; Consul's discoverychain.Compile).
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

/** Consul's ConfigEntryGraphError for a chain whose services disagree on their protocol. */
export function inconsistentProtocolMessage(chain: string, service: string, protocol: string, chainProtocol: string): string {
  return `discovery chain ${JSON.stringify(chain)} uses inconsistent protocols; service ${JSON.stringify(service)} has ${JSON.stringify(protocol)} which is not ${JSON.stringify(chainProtocol)}`;
}

const entryOf = (data: StateData, kind: string, name: string): ConfigEntry | undefined => data.configEntries.get(configEntryKey(kind, name));
const records = (v: unknown): Record<string, unknown>[] => (Array.isArray(v) ? v.filter(isRecord) : []);
const nameOr = (v: unknown, def: string): string => (typeof v === 'string' && v !== '' ? v : def);

/**
 * The part of Consul's discoverychain.Compile that decides whether a chain is valid: it walks the
 * chain's router, splitters and resolvers (redirects, failover targets) as the compiler does,
 * recording each service's protocol; they must all agree, and a chain that routes or splits needs an
 * HTTP-like one. Returns the services the chain read (up to the failure, if any) and the failure,
 * a StateError with Consul's text.
 */
function compileChain(data: StateData, chain: string): { reads: Set<string>; error: StateError | undefined } {
  const visited = new Set<string>();
  try {
    walkChain(data, chain, visited);
    return { reads: visited, error: undefined };
  } catch (e) {
    if (e instanceof StateError) return { reads: visited, error: e };
    throw e;
  }
}

function walkChain(data: StateData, chain: string, visited: Set<string>): void {
  let protocol: string | undefined;
  let advanced = false;
  const record = (service: string): void => {
    visited.add(lower(service));
    const p = serviceProtocol(data, service);
    if (protocol === undefined) protocol = p;
    else if (p !== protocol) throw new StateError('ERR_INVALID_CONFIG_ENTRY', inconsistentProtocolMessage(chain, service, p, protocol));
  };
  const resolversSeen = new Set<string>();
  const resolver = (service: string): void => {
    if (resolversSeen.has(lower(service))) return;
    resolversSeen.add(lower(service));
    record(service);
    const r = entryOf(data, SERVICE_RESOLVER, service);
    if (!r) return;
    if (isRecord(r.Redirect)) resolver(nameOr(r.Redirect.Service, service));
    if (isRecord(r.Failover)) {
      for (const f of Object.values(r.Failover)) {
        if (!isRecord(f)) continue;
        const targets = records(f.Targets);
        if (targets.length === 0) record(nameOr(f.Service, service));
        for (const t of targets) if (typeof t.Peer !== 'string' || t.Peer === '') record(nameOr(t.Service, service));
      }
    }
  };
  const splittersSeen = new Set<string>();
  const splitterOrResolver = (service: string): void => {
    const sp = entryOf(data, SERVICE_SPLITTER, service);
    if (!sp || splittersSeen.has(lower(service))) return resolver(service);
    splittersSeen.add(lower(service));
    advanced = true;
    record(service);
    for (const split of records(sp.Splits)) {
      const target = nameOr(split.Service, service);
      // A split to the splitter's own service goes to its resolver, not round the splitter again.
      if (lower(target) === lower(service)) resolver(target);
      else splitterOrResolver(target);
    }
  };
  const router = entryOf(data, SERVICE_ROUTER, chain);
  if (router) {
    advanced = true;
    record(chain);
    for (const route of records(router.Routes)) {
      const dest = isRecord(route.Destination) ? route.Destination : {};
      splitterOrResolver(nameOr(dest.Service, chain));
    }
    // The catch-all route Consul injects, to the service itself.
    splitterOrResolver(chain);
  } else {
    splitterOrResolver(chain);
  }
  if (advanced && !HTTP_LIKE.has(protocol ?? 'tcp')) {
    throw new StateError('ERR_INVALID_CONFIG_ENTRY', protocolGateMessage(chain, protocol ?? 'tcp'));
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
  for (const chain of chains) {
    const { reads, error } = compileChain(data, chain);
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
