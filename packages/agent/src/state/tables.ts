// The store's data: primary tables (ordered B+ trees of immutable rows), the secondary indexes
// derived from them, per-table max indexes, and the write transaction that changes them.
//
// Keys follow Consul's memdb schema: node names, service IDs, check IDs and session IDs are matched
// case-insensitively (lower-cased in keys), KV keys exactly. Composite keys join parts with NUL,
// which names and IDs may not contain, so `web\0` never prefixes `web1\0...`.
//
// Atomicity: every change made through a WriteTx is recorded in an undo log. A command that fails
// half way (or a txn with a failing op) rolls back, leaving no trace and waking no watcher; a
// command that succeeds publishes the topics it touched once, at commit.
import { BTree } from './btree.ts';
import { kvTopic, tableTopic, type WatchHub } from './watch.ts';
import type { ACLPolicy, ACLRole, ACLToken, CAConfiguration, CAProviderState, CARoot, ConfigEntry, DirEntry, HealthCheck, Node, NodeService, Session, TableName } from './types.ts';

export interface ServiceRow {
  /** The node's name as stored in its node row. */
  Node: string;
  Service: NodeService;
}

/** Tables Connect work will fill; present now so snapshots and indexes already carry them. */
export const FUTURE_TABLES = ['coordinates', 'intentions'] as const;
export type FutureTable = (typeof FUTURE_TABLES)[number];

export const ALL_TABLES: readonly TableName[] = ['nodes', 'services', 'checks', 'kvs', 'tombstones', 'sessions', 'config-entries', 'connect-ca-roots', 'acl-tokens', 'acl-policies', 'acl-roles', ...FUTURE_TABLES];

export const SEP = '\0';
export const lower = (s: string): string => s.toLowerCase();
export const nodeKey = (node: string): string => lower(node);
export const serviceKey = (node: string, id: string): string => lower(node) + SEP + lower(id);
export const checkKey = (node: string, id: string): string => lower(node) + SEP + lower(id);
export const sessionKey = (id: string): string => lower(id);
/** Consul's config-entries id index: kind and name, both case-insensitive. */
export const configEntryKey = (kind: string, name: string): string => lower(kind) + SEP + lower(name);

/** Watch topics finer than a table. */
export const topics = {
  /** Instances of a service name, their checks, their nodes' checks and rows. */
  service: (name: string): string => `svc:${lower(name)}`,
  /** A node's row. */
  node: (node: string): string => `node:${lower(node)}`,
  /** A node's services. */
  nodeServices: (node: string): string => `nodesvc:${lower(node)}`,
  /** A node's checks. */
  nodeChecks: (node: string): string => `nodechk:${lower(node)}`,
  session: (id: string): string => `sess:${lower(id)}`,
  nodeSessions: (node: string): string => `nodesess:${lower(node)}`,
  /** The config entries of one kind (lists). */
  configKind: (kind: string): string => `cfgkind:${lower(kind)}`,
  /** The CA configuration row. */
  caConfig: 'ca:config',
  /** One config entry. */
  configEntry: (kind: string, name: string): string => `cfg:${lower(kind)}${SEP}${lower(name)}`,
};

/** Visits entries whose key starts with `prefix`, in key order; stop early by returning false. */
export function scanPrefix<V>(tree: BTree<string, V>, prefix: string, visit: (key: string, value: V) => boolean | void): void {
  for (const [k, v] of tree.entries(prefix)) {
    if (!k.startsWith(prefix)) return;
    if (visit(k, v) === false) return;
  }
}

function addToSet(m: Map<string, Set<string>>, k: string, v: string): void {
  let s = m.get(k);
  if (!s) m.set(k, (s = new Set()));
  s.add(v);
}

function removeFromSet(m: Map<string, Set<string>>, k: string, v: string): void {
  const s = m.get(k);
  if (!s) return;
  s.delete(v);
  if (s.size === 0) m.delete(k);
}

/** The check IDs a session is bound to (Consul's Session.CheckIDs). */
export function sessionCheckIds(s: Session): string[] {
  const ids = new Set<string>([...s.NodeChecks, ...(s.Checks ?? []), ...s.ServiceChecks.map((c) => c.ID)]);
  return [...ids];
}

export class StateData {
  readonly nodes = new BTree<string, Node>();
  readonly services = new BTree<string, ServiceRow>();
  readonly checks = new BTree<string, HealthCheck>();
  readonly kvs = new BTree<string, DirEntry>();
  /** KV key (or deleted prefix) → index of the delete (Consul's graveyard). */
  readonly tombstones = new BTree<string, number>();
  readonly sessions = new BTree<string, Session>();
  /** configEntryKey(kind, name) → entry. */
  readonly configEntries = new BTree<string, ConfigEntry>();
  readonly future: Record<FutureTable, BTree<string, unknown>> = {
    coordinates: new BTree(), intentions: new BTree(),
  };
  /** The CA (state/connectCA.ts): roots by ID, the configuration, the provider state by root ID. */
  readonly caRoots = new BTree<string, CARoot>();
  caConfig: CAConfiguration | undefined = undefined;
  readonly caProviderState = new BTree<string, CAProviderState>();
  /** ACLs (state/acl.ts): tokens by AccessorID, policies and roles by ID. */
  readonly aclTokens = new BTree<string, ACLToken>();
  readonly aclPolicies = new BTree<string, ACLPolicy>();
  readonly aclRoles = new BTree<string, ACLRole>();
  /** Index of the bootstrap (0: not bootstrapped); the reset file must name it. */
  aclBootstrapIndex = 0;
  /** The servers' own management secret ('' until a leader with ACLs on made one). */
  aclServerSecret = '';

  // Secondary indexes, always derived from the rows above (rebuilt on restore, never snapshotted).
  /** lower(node ID) → node key. */
  readonly nodeIds = new Map<string, string>();
  /** lower(service name) + SEP + service key → service key. */
  readonly serviceNames = new BTree<string, string>();
  /** node key → session keys. */
  readonly sessionsByNode = new Map<string, Set<string>>();
  /** check key → session keys bound to it. */
  readonly sessionsByCheck = new Map<string, Set<string>>();
  /** session key → KV keys it holds. */
  readonly kvBySession = new Map<string, Set<string>>();
  /** SecretID → AccessorID. */
  readonly aclTokenSecrets = new Map<string, string>();
  /** Policy Name → ID; role Name → ID. */
  readonly aclPolicyNames = new Map<string, string>();
  readonly aclRoleNames = new Map<string, string>();

  readonly tableIndexes = new Map<TableName, number>();
  /** lower(service name) → index of the last change to its instances or their health. */
  readonly serviceIndexes = new Map<string, number>();
  /** Index at which some service name last lost its final instance (Consul's). */
  serviceExtinctionIndex = 0;
  /** KV key → lock-delay expiry, ms since the epoch (proposer's clock). */
  readonly lockDelays = new Map<string, number>();
  /** The Raft index of the last applied command. */
  lastIndex = 0;

  // Each setter replaces (or with undefined removes) one row, keeps the derived indexes in step,
  // and returns the previous row, which is what an undo needs.

  setNode(key: string, row: Node | undefined): Node | undefined {
    const old = this.nodes.get(key);
    if (old && old.ID !== '') this.nodeIds.delete(lower(old.ID));
    if (row) {
      this.nodes.set(key, row);
      if (row.ID !== '') this.nodeIds.set(lower(row.ID), key);
    } else {
      this.nodes.delete(key);
    }
    return old;
  }

  setService(key: string, row: ServiceRow | undefined): ServiceRow | undefined {
    const old = this.services.get(key);
    if (old) this.serviceNames.delete(lower(old.Service.Service) + SEP + key);
    if (row) {
      this.services.set(key, row);
      this.serviceNames.set(lower(row.Service.Service) + SEP + key, key);
    } else {
      this.services.delete(key);
    }
    return old;
  }

  setCheck(key: string, row: HealthCheck | undefined): HealthCheck | undefined {
    const old = this.checks.get(key);
    if (row) this.checks.set(key, row);
    else this.checks.delete(key);
    return old;
  }

  setKv(key: string, row: DirEntry | undefined): DirEntry | undefined {
    const old = this.kvs.get(key);
    if (old?.Session) removeFromSet(this.kvBySession, sessionKey(old.Session), key);
    if (row) {
      this.kvs.set(key, row);
      if (row.Session) addToSet(this.kvBySession, sessionKey(row.Session), key);
    } else {
      this.kvs.delete(key);
    }
    return old;
  }

  setTombstone(key: string, index: number | undefined): number | undefined {
    const old = this.tombstones.get(key);
    if (index === undefined) this.tombstones.delete(key);
    else this.tombstones.set(key, index);
    return old;
  }

  setSession(key: string, row: Session | undefined): Session | undefined {
    const old = this.sessions.get(key);
    if (old) {
      removeFromSet(this.sessionsByNode, nodeKey(old.Node), key);
      for (const id of sessionCheckIds(old)) removeFromSet(this.sessionsByCheck, checkKey(old.Node, id), key);
    }
    if (row) {
      this.sessions.set(key, row);
      addToSet(this.sessionsByNode, nodeKey(row.Node), key);
      for (const id of sessionCheckIds(row)) addToSet(this.sessionsByCheck, checkKey(row.Node, id), key);
    } else {
      this.sessions.delete(key);
    }
    return old;
  }

  setConfigEntry(key: string, row: ConfigEntry | undefined): ConfigEntry | undefined {
    const old = this.configEntries.get(key);
    if (row) this.configEntries.set(key, row);
    else this.configEntries.delete(key);
    return old;
  }

  setCARoot(id: string, row: CARoot | undefined): CARoot | undefined {
    const old = this.caRoots.get(id);
    if (row) this.caRoots.set(id, row);
    else this.caRoots.delete(id);
    return old;
  }

  setCAProviderState(id: string, row: CAProviderState | undefined): CAProviderState | undefined {
    const old = this.caProviderState.get(id);
    if (row) this.caProviderState.set(id, row);
    else this.caProviderState.delete(id);
    return old;
  }

  setAclToken(id: string, row: ACLToken | undefined): ACLToken | undefined {
    const old = this.aclTokens.get(id);
    if (old) this.aclTokenSecrets.delete(old.SecretID);
    if (row) {
      this.aclTokens.set(id, row);
      this.aclTokenSecrets.set(row.SecretID, id);
    } else {
      this.aclTokens.delete(id);
    }
    return old;
  }

  setAclPolicy(id: string, row: ACLPolicy | undefined): ACLPolicy | undefined {
    const old = this.aclPolicies.get(id);
    if (old) this.aclPolicyNames.delete(old.Name);
    if (row) {
      this.aclPolicies.set(id, row);
      this.aclPolicyNames.set(row.Name, id);
    } else {
      this.aclPolicies.delete(id);
    }
    return old;
  }

  setAclRole(id: string, row: ACLRole | undefined): ACLRole | undefined {
    const old = this.aclRoles.get(id);
    if (old) this.aclRoleNames.delete(old.Name);
    if (row) {
      this.aclRoles.set(id, row);
      this.aclRoleNames.set(row.Name, id);
    } else {
      this.aclRoles.delete(id);
    }
    return old;
  }

  tableIndex(t: TableName): number {
    return this.tableIndexes.get(t) ?? 0;
  }

  /** Service keys of every instance of a service name, in index order (node, then service ID). */
  serviceKeysByName(name: string): string[] {
    const out: string[] = [];
    scanPrefix(this.serviceNames, lower(name) + SEP, (_k, v) => {
      out.push(v);
    });
    return out;
  }
}

/** Sorted copy of a derived set, so that what apply does never depends on insertion order. */
export function sortedMembers(m: Map<string, Set<string>>, k: string): string[] {
  return [...(m.get(k) ?? [])].sort();
}

/**
 * One command's changes. Writers go through these methods only, so that rollback and watch
 * notification are complete by construction.
 */
export class WriteTx {
  readonly data: StateData;
  /** The Raft index being applied: every row written gets it as ModifyIndex. */
  readonly index: number;
  /** The proposer's clock (ms), when the command carried one; drives lock delays. */
  readonly now: number | undefined;
  readonly topics = new Set<string>();
  readonly kvKeys = new Set<string>();
  /** Each session row this command wrote, as it was before (the store reports what changed). */
  readonly sessionsBefore = new Map<string, Session | undefined>();
  readonly #undo: (() => void)[] = [];

  constructor(data: StateData, index: number, now: number | undefined) {
    this.data = data;
    this.index = index;
    this.now = now;
  }

  putNode(key: string, row: Node | undefined): void {
    const old = this.data.setNode(key, row);
    this.#undo.push(() => this.data.setNode(key, old));
    this.bumpTable('nodes');
    this.topics.add(topics.node((row ?? old)!.Node));
  }

  putService(key: string, row: ServiceRow | undefined): void {
    const old = this.data.setService(key, row);
    this.#undo.push(() => this.data.setService(key, old));
    this.bumpTable('services');
    this.topics.add(topics.nodeServices((row ?? old)!.Node));
  }

  putCheck(key: string, row: HealthCheck | undefined): void {
    const old = this.data.setCheck(key, row);
    this.#undo.push(() => this.data.setCheck(key, old));
    this.bumpTable('checks');
    this.topics.add(topics.nodeChecks((row ?? old)!.Node));
  }

  putKv(key: string, row: DirEntry | undefined): void {
    const old = this.data.setKv(key, row);
    this.#undo.push(() => this.data.setKv(key, old));
    this.bumpTable('kvs');
    this.topics.add(kvTopic(key));
    this.kvKeys.add(key);
  }

  /** `bump` false: reaping forgets history without advancing any index or waking anyone. */
  putTombstone(key: string, index: number | undefined, bump = true): void {
    const old = this.data.setTombstone(key, index);
    this.#undo.push(() => this.data.setTombstone(key, old));
    if (bump) this.bumpTable('tombstones');
  }

  putSession(key: string, row: Session | undefined): void {
    const old = this.data.setSession(key, row);
    if (!this.sessionsBefore.has(key)) this.sessionsBefore.set(key, old);
    this.#undo.push(() => this.data.setSession(key, old));
    this.bumpTable('sessions');
    const s = (row ?? old)!;
    this.topics.add(topics.session(s.ID));
    this.topics.add(topics.nodeSessions(s.Node));
  }

  putConfigEntry(key: string, row: ConfigEntry | undefined): void {
    const old = this.data.setConfigEntry(key, row);
    this.#undo.push(() => this.data.setConfigEntry(key, old));
    this.bumpTable('config-entries');
    const e = (row ?? old)!;
    this.topics.add(topics.configKind(e.Kind));
    this.topics.add(topics.configEntry(e.Kind, e.Name));
  }

  putCARoot(id: string, row: CARoot | undefined): void {
    const old = this.data.setCARoot(id, row);
    this.#undo.push(() => this.data.setCARoot(id, old));
    this.bumpTable('connect-ca-roots');
  }

  putCAConfig(row: CAConfiguration): void {
    const old = this.data.caConfig;
    this.data.caConfig = row;
    this.#undo.push(() => (this.data.caConfig = old));
    this.topics.add(topics.caConfig);
  }

  /** Secret rows: change no index anyone reads, wake nobody. */
  putCAProviderState(id: string, row: CAProviderState | undefined): void {
    const old = this.data.setCAProviderState(id, row);
    this.#undo.push(() => this.data.setCAProviderState(id, old));
  }

  putAclToken(id: string, row: ACLToken | undefined): void {
    const old = this.data.setAclToken(id, row);
    this.#undo.push(() => this.data.setAclToken(id, old));
    this.bumpTable('acl-tokens');
  }

  putAclPolicy(id: string, row: ACLPolicy | undefined): void {
    const old = this.data.setAclPolicy(id, row);
    this.#undo.push(() => this.data.setAclPolicy(id, old));
    this.bumpTable('acl-policies');
  }

  putAclRole(id: string, row: ACLRole | undefined): void {
    const old = this.data.setAclRole(id, row);
    this.#undo.push(() => this.data.setAclRole(id, old));
    this.bumpTable('acl-roles');
  }

  setAclBootstrapIndex(index: number): void {
    const old = this.data.aclBootstrapIndex;
    this.data.aclBootstrapIndex = index;
    this.#undo.push(() => (this.data.aclBootstrapIndex = old));
  }

  /** A secret row: changes no index anyone reads, wakes nobody. */
  setAclServerSecret(secret: string): void {
    const old = this.data.aclServerSecret;
    this.data.aclServerSecret = secret;
    this.#undo.push(() => (this.data.aclServerSecret = old));
  }

  bumpTable(t: TableName): void {
    const old = this.data.tableIndexes.get(t);
    if (old === this.index) return;
    this.data.tableIndexes.set(t, this.index);
    this.#undo.push(() => (old === undefined ? this.data.tableIndexes.delete(t) : this.data.tableIndexes.set(t, old)));
    this.topics.add(tableTopic(t));
  }

  /** Marks a service name's instances (or their health) as changed at this index. */
  bumpService(name: string): void {
    const k = lower(name);
    const old = this.data.serviceIndexes.get(k);
    this.topics.add(topics.service(name));
    if (old === this.index) return;
    this.data.serviceIndexes.set(k, this.index);
    this.#undo.push(() => (old === undefined ? this.data.serviceIndexes.delete(k) : this.data.serviceIndexes.set(k, old)));
  }

  /** The last instance of a service name is gone: forget its index, remember the extinction. */
  serviceExtinct(name: string): void {
    const k = lower(name);
    const old = this.data.serviceIndexes.get(k);
    const oldExt = this.data.serviceExtinctionIndex;
    this.data.serviceIndexes.delete(k);
    this.data.serviceExtinctionIndex = this.index;
    this.topics.add(topics.service(name));
    this.#undo.push(() => {
      if (old !== undefined) this.data.serviceIndexes.set(k, old);
      this.data.serviceExtinctionIndex = oldExt;
    });
  }

  setLockDelay(key: string, expiresAtMs: number): void {
    const old = this.data.lockDelays.get(key);
    // Re-insert so the map stays roughly ordered by expiry, which pruning relies on.
    this.data.lockDelays.delete(key);
    this.data.lockDelays.set(key, expiresAtMs);
    this.#undo.push(() => {
      this.data.lockDelays.delete(key);
      if (old !== undefined) this.data.lockDelays.set(key, old);
    });
  }

  /** Undoes every change, newest first. */
  rollback(): void {
    for (let i = this.#undo.length - 1; i >= 0; i--) this.#undo[i]!();
    this.#undo.length = 0;
    this.topics.clear();
    this.kvKeys.clear();
  }

  commit(hub: WatchHub): void {
    this.#undo.length = 0;
    hub.publish(this.topics, this.kvKeys);
  }
}
