// The state store: the agent's replicated state machine (Consul's agent/consul/state.Store plus its
// FSM's apply). One instance per server; Raft calls `apply` with committed commands in log order,
// HTTP and DNS read through the query methods, and blocking queries wait on WatchSets.
//
// apply is deterministic over (index, command), never throws, and never half-applies: every write
// goes through a WriteTx whose undo log rolls a refused command back. Reads are synchronous and
// return immutable rows, so a reader may keep what it got while later writes replace rows.
import { applyDeregister, applyRegister } from './catalog.ts';
import { configEntryDelete, configEntrySet } from './configEntries.ts';
import { connectCASet } from './connectCA.ts';
import { aclBootstrap, aclInit, aclPolicyDelete, aclPolicySet, aclRoleDelete, aclRoleSet, aclTokenDelete, aclTokenSet } from './acl.ts';
import { StateError, invalidRequest } from './errors.ts';
import { kvsDelete, kvsDeleteCas, kvsDeleteTree, kvsLock, kvsReapTombstones, kvsSet, kvsSetCas, kvsUnlock, pruneLockDelays } from './kvs.ts';
import { isRecord, optBytes, optString, optUint, reqString } from './rows.ts';
import { sessionCreate, sessionDestroy } from './sessions.ts';
import { decodeSnapshot, encodeSnapshot } from './snapshot.ts';
import { SEP, StateData, WriteTx, configEntryKey, lower, nodeKey, scanPrefix, sessionKey, topics } from './tables.ts';
import { runTxn } from './txn.ts';
import { optUint64 } from './uint64.ts';
import { WatchHub, WatchSet, kvTopic } from './watch.ts';
import type {
  ACLPolicy, ACLRole, ACLToken, CAConfiguration, CAProviderState, CARoot, CheckServiceNode, CheckStatusFilter, ConfigEntry, Command, CommandResult, CommandType, CommandValueMap, DirEntry, HealthCheck,
  HealthServiceQueryOptions, Node, NodeService, NodeServicesValue, QueryResult, ServiceNode, ServiceQueryOptions,
  Session, SessionChange, StateReader, TableName, TxnOp, TxnResponse, WatchRecorder,
} from './types.ts';

const SERF_CHECK_ID = 'serfHealth';

function wantedTags(opts?: ServiceQueryOptions): string[] {
  const t = opts?.tag;
  if (t === undefined) return [];
  return (typeof t === 'string' ? [t] : [...t]).map(lower);
}

function hasTags(svc: NodeService, wanted: readonly string[]): boolean {
  if (wanted.length === 0) return true;
  const have = new Set(svc.Tags.map(lower));
  return wanted.every((t) => have.has(t));
}

/** serfHealth first (COMPAT: clients expect it there), then by check ID. */
function nodeCheckOrder(checks: HealthCheck[]): HealthCheck[] {
  const serf = checks.filter((c) => c.CheckID === SERF_CHECK_ID);
  return serf.length === 0 ? checks : [...serf, ...checks.filter((c) => c.CheckID !== SERF_CHECK_ID)];
}

function toServiceNode(node: Node, s: NodeService): ServiceNode {
  const sn: ServiceNode = {
    ID: node.ID,
    Node: node.Node,
    Address: node.Address,
    Datacenter: node.Datacenter,
    TaggedAddresses: node.TaggedAddresses,
    NodeMeta: node.Meta,
    ServiceKind: s.Kind,
    ServiceID: s.ID,
    ServiceName: s.Service,
    ServiceTags: s.Tags,
    ServiceAddress: s.Address,
    ServiceTaggedAddresses: s.TaggedAddresses,
    ServiceWeights: s.Weights,
    ServiceMeta: s.Meta,
    ServicePort: s.Port,
    ServiceEnableTagOverride: s.EnableTagOverride,
    CreateIndex: s.CreateIndex,
    ModifyIndex: s.ModifyIndex,
  };
  if (s.SocketPath !== undefined) sn.ServiceSocketPath = s.SocketPath;
  if (s.Proxy !== undefined) sn.ServiceProxy = s.Proxy;
  if (s.Connect !== undefined) sn.ServiceConnect = s.Connect;
  return Object.freeze(sn);
}

export class StateStore implements StateReader {
  #data = new StateData();
  /** Snapshot restores so far (part of aclGeneration). */
  #restores = 0;
  /** aclGeneration's state: the ACL tables' highest index and the restores it was computed at. */
  #aclGen = 0;
  #aclGenIndex = -1;
  #aclGenRestores = 0;
  readonly #hub = new WatchHub();
  readonly #sessionListeners = new Set<(change: SessionChange) => void>();

  /**
   * Calls `listener` with every change to the session table, right after the apply (or restore)
   * that made it, in apply order. A listener must not throw; if it does, the apply's result is
   * unaffected and the error is reported as a process warning.
   */
  onSessionChange(listener: (change: SessionChange) => void): () => void {
    this.#sessionListeners.add(listener);
    return () => this.#sessionListeners.delete(listener);
  }

  #emitSessionChange(change: SessionChange): void {
    for (const l of this.#sessionListeners) {
      try {
        l(change);
      } catch (err) {
        process.emitWarning(`a session change listener failed: ${(err as Error)?.message ?? String(err)}`);
      }
    }
  }

  /** After a commit: what the command did to each session row it wrote. */
  #reportSessions(tx: WriteTx): void {
    if (this.#sessionListeners.size === 0) return;
    for (const [key, before] of tx.sessionsBefore) {
      const after = this.#data.sessions.get(key);
      if (before && !after) this.#emitSessionChange({ type: 'destroyed', id: before.ID });
      else if (!before && after) this.#emitSessionChange({ type: 'created', session: after });
      else if (before && after && before !== after) {
        // Sessions are never updated in place today; a replaced row counts as destroyed and created.
        this.#emitSessionChange({ type: 'destroyed', id: before.ID });
        this.#emitSessionChange({ type: 'created', session: after });
      }
    }
  }

  // ---- writes ----------------------------------------------------------------------------------

  /**
   * Applies one committed command at Raft index `index`. Deterministic; never throws; a refused
   * command (ok:false) or a txn with failing ops changes nothing and wakes nobody.
   */
  apply<T extends CommandType>(index: number, cmd: Command & { type: T }): CommandResult<T>;
  apply(index: number, cmd: Command): CommandResult;
  apply(index: number, cmd: Command): CommandResult {
    const d = this.#data;
    if (!Number.isSafeInteger(index) || index < 1) {
      return { ok: false, index, error: { code: 'ERR_BAD_COMMAND', message: `Raft index must be a positive integer, got ${index}` } };
    }
    if (index <= d.lastIndex) {
      // Raft hands each index to the FSM once; seeing one again is a driver bug (a replay over
      // state that already has it). Applying it twice would re-run CAS and locks, so refuse.
      return { ok: false, index, error: { code: 'ERR_BAD_COMMAND', message: `entry ${index} is at or below the last applied index ${d.lastIndex}; refusing to apply it twice` } };
    }
    d.lastIndex = index;
    if (!isRecord(cmd) || typeof cmd.type !== 'string') {
      return { ok: false, index, error: { code: 'ERR_BAD_COMMAND', message: 'command has no type' } };
    }
    const now = typeof cmd.now === 'number' && Number.isFinite(cmd.now) ? cmd.now : undefined;
    if (now !== undefined) pruneLockDelays(d, now);
    const tx = new WriteTx(d, index, now);
    try {
      const value = this.#dispatch(tx, cmd);
      if (cmd.type === 'txn' && (value as TxnResponse).Errors !== null) tx.rollback();
      else {
        tx.commit(this.#hub);
        this.#reportSessions(tx);
      }
      return { ok: true, index, value } as CommandResult;
    } catch (e) {
      tx.rollback();
      if (e instanceof StateError) return { ok: false, index, error: e.toCommandError() };
      // A bug, not bad input. Still deterministic (every replica throws alike), still rolled back.
      return { ok: false, index, error: { code: 'ERR_BAD_COMMAND', message: `internal error applying ${cmd.type}: ${(e as Error)?.message ?? String(e)}` } };
    }
  }

  #dispatch(tx: WriteTx, cmd: Command): CommandValueMap[CommandType] {
    const c = cmd as unknown as Record<string, unknown>;
    const key = (): string => {
      const k = reqString(c.Key, 'Key');
      if (k === '') throw new StateError('ERR_INVALID_KEY', 'Missing key name');
      return k;
    };
    const write = () => ({ Key: key(), Value: optBytes(c.Value, 'Value'), Flags: optUint64(c.Flags, 'Flags') });
    switch (cmd.type) {
      case 'catalogRegister':
        applyRegister(tx, cmd);
        return true;
      case 'catalogDeregister':
        applyDeregister(tx, cmd);
        return true;
      case 'kvSet':
        kvsSet(tx, write(), false);
        return true;
      case 'kvCas':
        return kvsSetCas(tx, write(), optUint(c.Index, 'Index'));
      case 'kvLock':
        return kvsLock(tx, { ...write(), Session: optString(c.Session, 'Session') }) === 'acquired';
      case 'kvUnlock':
        return kvsUnlock(tx, { ...write(), Session: optString(c.Session, 'Session') });
      case 'kvDelete':
        kvsDelete(tx, key());
        return true;
      case 'kvDeleteCas':
        return kvsDeleteCas(tx, key(), optUint(c.Index, 'Index'));
      case 'kvDeleteTree':
        kvsDeleteTree(tx, optString(c.Prefix, 'Prefix'));
        return true;
      case 'kvTombstoneReap':
        kvsReapTombstones(tx, optUint(c.UpToIndex, 'UpToIndex'));
        return true;
      case 'sessionCreate':
        return sessionCreate(tx, c.Session).ID;
      case 'sessionDestroy': {
        const id = optString(c.ID, 'ID');
        if (id === '') throw invalidRequest('Must provide ID');
        sessionDestroy(tx, id);
        return true;
      }
      case 'configEntrySet':
        return configEntrySet(tx, c.Entry, c.Cas);
      case 'configEntryDelete':
        return configEntryDelete(tx, c.Kind, c.Name, c.Cas);
      case 'connectCASet':
        return connectCASet(tx, c.Config, c.Roots, c.ProviderState, c.Cas);
      case 'aclTokenSet':
        return aclTokenSet(tx, c.Token, c.Create === true);
      case 'aclTokenDelete':
        return aclTokenDelete(tx, c.AccessorID);
      case 'aclPolicySet':
        return aclPolicySet(tx, c.Policy, c.Create === true);
      case 'aclPolicyDelete':
        return aclPolicyDelete(tx, c.ID);
      case 'aclRoleSet':
        return aclRoleSet(tx, c.Role, c.Create === true);
      case 'aclRoleDelete':
        return aclRoleDelete(tx, c.ID);
      case 'aclBootstrap':
        return aclBootstrap(tx, c.Token, c.ResetIndex, c.GlobalManagement);
      case 'aclInit':
        return aclInit(tx, c);
      case 'txn':
        return runTxn(tx, c.Ops);
      default:
        throw new StateError('ERR_BAD_COMMAND', `unknown command type ${JSON.stringify((cmd as { type: unknown }).type)}`);
    }
  }

  /**
   * Runs read-only txn ops against the current state without Raft (Consul's TxnRO; see
   * isReadOnlyTxn). Any write op in `ops` is run and then rolled back, so this never changes state.
   */
  readTxn(ops: readonly TxnOp[]): TxnResponse {
    const tx = new WriteTx(this.#data, this.#data.lastIndex || 1, undefined);
    try {
      return runTxn(tx, ops);
    } catch (e) {
      if (e instanceof StateError) return { Results: null, Errors: [{ OpIndex: 0, What: e.message }] };
      throw e;
    } finally {
      tx.rollback();
    }
  }

  // ---- snapshot / restore ----------------------------------------------------------------------

  /** The whole state as bytes (deterministic for equal states). */
  snapshot(): Uint8Array {
    return encodeSnapshot(this.#data);
  }

  /**
   * Replaces the whole state with a snapshot's. Throws SnapshotFormatError (code
   * ERR_SNAPSHOT_INVALID) on anything it cannot read, leaving the current state untouched. Wakes
   * every blocking query, since indexes may have gone backwards.
   */
  restore(data: Uint8Array): void {
    this.#data = decodeSnapshot(data);
    this.#restores++;
    this.#hub.publishAll();
    this.#emitSessionChange({ type: 'reset' });
  }

  // ---- watches ---------------------------------------------------------------------------------

  /** A new watch set for one blocking-query attempt. */
  watchSet(): WatchSet {
    return new WatchSet(this.#hub);
  }

  /** Listeners currently registered by waiting watch sets (leak checks, metrics). */
  watchListenerCount(): number {
    return this.#hub.listenerCount();
  }

  // ---- reads -----------------------------------------------------------------------------------

  lastIndex(): number {
    return this.#data.lastIndex;
  }

  tableIndex(...tables: TableName[]): number {
    let max = 0;
    for (const t of tables) max = Math.max(max, this.#data.tableIndex(t));
    return Math.max(1, max);
  }

  #kvsIndex(): number {
    return this.tableIndex('kvs', 'tombstones');
  }

  nodes(ws?: WatchRecorder): QueryResult<Node[]> {
    ws?.addTable('nodes');
    return { index: this.tableIndex('nodes'), value: this.#data.nodes.valuesArray() };
  }

  node(name: string, ws?: WatchRecorder): QueryResult<Node | null> {
    ws?.addTopic(topics.node(name));
    return { index: this.tableIndex('nodes'), value: this.#data.nodes.get(nodeKey(name)) ?? null };
  }

  nodeServices(name: string, ws?: WatchRecorder): QueryResult<NodeServicesValue | null> {
    ws?.addTopic(topics.node(name));
    ws?.addTopic(topics.nodeServices(name));
    const index = this.tableIndex('nodes', 'services');
    const node = this.#data.nodes.get(nodeKey(name));
    if (!node) return { index, value: null };
    const services: NodeService[] = [];
    scanPrefix(this.#data.services, nodeKey(name) + SEP, (_k, row) => {
      services.push(row.Service);
    });
    return { index, value: { Node: node, Services: services } };
  }

  services(ws?: WatchRecorder): QueryResult<Record<string, string[]>> {
    ws?.addTable('services');
    const tags = new Map<string, Set<string>>();
    this.#data.services.forEach((row) => {
      let s = tags.get(row.Service.Service);
      if (!s) tags.set(row.Service.Service, (s = new Set()));
      for (const t of row.Service.Tags) s.add(t);
    });
    const value: Record<string, string[]> = {};
    for (const name of [...tags.keys()].sort()) value[name] = [...tags.get(name)!].sort();
    return { index: this.tableIndex('services'), value };
  }

  /** Consul's maxIndexForService: the service's own index, else the last extinction, else the catalog's. */
  #serviceIndex(name: string): number {
    const d = this.#data;
    const own = d.serviceIndexes.get(lower(name));
    if (own !== undefined) return Math.max(1, own);
    if (d.serviceExtinctionIndex > 0) return d.serviceExtinctionIndex;
    return this.tableIndex('nodes', 'services', 'checks');
  }

  /**
   * The instances a query for `service` covers: those of that name, or with `connect` (Consul's
   * connect index) the connect-proxies whose Proxy.DestinationServiceName is `service` and the
   * instances of that name that are Connect-native. Proxy writes move the destination's index too
   * (catalog.ts), so the query's index and watch topic stay the destination's.
   */
  #serviceKeys(service: string, connect: boolean | undefined): string[] {
    const d = this.#data;
    if (!connect) return d.serviceKeysByName(service);
    const want = lower(service);
    const keys: string[] = [];
    d.services.forEach((row, key) => {
      const s = row.Service;
      const proxyFor = s.Kind === 'connect-proxy' && lower(s.Proxy?.DestinationServiceName ?? '') === want;
      const native = s.Connect?.Native === true && lower(s.Service) === want;
      if (proxyFor || native) keys.push(key);
    });
    return keys;
  }

  serviceNodes(service: string, opts?: ServiceQueryOptions, ws?: WatchRecorder): QueryResult<ServiceNode[]> {
    ws?.addTopic(topics.service(service));
    const d = this.#data;
    const tags = wantedTags(opts);
    const value: ServiceNode[] = [];
    for (const key of this.#serviceKeys(service, opts?.connect)) {
      const row = d.services.get(key)!;
      if (!hasTags(row.Service, tags)) continue;
      const node = d.nodes.get(nodeKey(row.Node));
      if (node) value.push(toServiceNode(node, row.Service));
    }
    return { index: this.#serviceIndex(service), value };
  }

  healthServiceNodes(service: string, opts?: HealthServiceQueryOptions, ws?: WatchRecorder): QueryResult<CheckServiceNode[]> {
    ws?.addTopic(topics.service(service));
    const d = this.#data;
    const tags = wantedTags(opts);
    const nodeLevel = new Map<string, HealthCheck[]>();
    const value: CheckServiceNode[] = [];
    for (const key of this.#serviceKeys(service, opts?.connect)) {
      const row = d.services.get(key)!;
      if (!hasTags(row.Service, tags)) continue;
      const nk = nodeKey(row.Node);
      const node = d.nodes.get(nk);
      if (!node) continue;
      let own = nodeLevel.get(nk);
      const serviceChecks: HealthCheck[] = [];
      const collectOwn = own === undefined;
      if (collectOwn) own = [];
      scanPrefix(d.checks, nk + SEP, (_k, hc) => {
        if (hc.ServiceID === '') {
          if (collectOwn) own!.push(hc);
        } else if (lower(hc.ServiceID) === lower(row.Service.ID)) {
          serviceChecks.push(hc);
        }
      });
      if (collectOwn) nodeLevel.set(nk, (own = nodeCheckOrder(own!)));
      const checks = [...own!, ...serviceChecks];
      if (opts?.passingOnly && !checks.every((c) => c.Status === 'passing')) continue;
      value.push({ Node: node, Service: row.Service, Checks: checks });
    }
    return { index: this.#serviceIndex(service), value };
  }

  nodeChecks(node: string, ws?: WatchRecorder): QueryResult<HealthCheck[]> {
    ws?.addTopic(topics.nodeChecks(node));
    const out: HealthCheck[] = [];
    scanPrefix(this.#data.checks, nodeKey(node) + SEP, (_k, hc) => {
      out.push(hc);
    });
    return { index: this.tableIndex('checks'), value: nodeCheckOrder(out) };
  }

  serviceChecks(service: string, ws?: WatchRecorder): QueryResult<HealthCheck[]> {
    ws?.addTopic(topics.service(service));
    const d = this.#data;
    const out: [string, HealthCheck][] = [];
    for (const key of d.serviceKeysByName(service)) {
      const row = d.services.get(key)!;
      scanPrefix(d.checks, nodeKey(row.Node) + SEP, (k, hc) => {
        if (hc.ServiceID !== '' && lower(hc.ServiceID) === lower(row.Service.ID)) out.push([k, hc]);
      });
    }
    out.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return { index: this.tableIndex('checks'), value: out.map(([, hc]) => hc) };
  }

  checksInState(state: CheckStatusFilter, ws?: WatchRecorder): QueryResult<HealthCheck[]> {
    ws?.addTable('checks');
    const value = state === 'any' ? this.#data.checks.valuesArray() : this.#data.checks.valuesArray().filter((c) => c.Status === state);
    return { index: this.tableIndex('checks'), value };
  }

  kvGet(key: string, ws?: WatchRecorder): QueryResult<DirEntry | null> {
    ws?.addTopic(kvTopic(key));
    const e = this.#data.kvs.get(key);
    return { index: e ? e.ModifyIndex : this.#kvsIndex(), value: e ?? null };
  }

  /** Consul's kvsListTxn index rule: the highest index under the prefix, tombstones included. */
  #prefixIndex(prefix: string, entriesMax: number): number {
    if (prefix === '') return this.#kvsIndex();
    let max = entriesMax;
    scanPrefix(this.#data.tombstones, prefix, (_k, idx) => {
      if (idx > max) max = idx;
    });
    return max > 0 ? max : this.#kvsIndex();
  }

  kvList(prefix: string, ws?: WatchRecorder): QueryResult<DirEntry[]> {
    ws?.addKvPrefix(prefix);
    const value: DirEntry[] = [];
    let max = 0;
    scanPrefix(this.#data.kvs, prefix, (_k, e) => {
      value.push(e);
      if (e.ModifyIndex > max) max = e.ModifyIndex;
    });
    return { index: this.#prefixIndex(prefix, max), value };
  }

  kvKeys(prefix: string, separator: string, ws?: WatchRecorder, visible?: (key: string) => boolean): QueryResult<string[]> {
    ws?.addKvPrefix(prefix);
    const value: string[] = [];
    let max = 0;
    let last = '';
    scanPrefix(this.#data.kvs, prefix, (k, e) => {
      if (e.ModifyIndex > max) max = e.ModifyIndex;
      // Consul's ListKeys filters the entries, then folds what is left: a folder shows when a key
      // under it may be read, whatever the rules say about the folder's own name.
      if (visible && !visible(k)) return;
      if (separator === '') {
        value.push(k);
        return;
      }
      const at = k.indexOf(separator, prefix.length);
      if (at === -1) {
        value.push(k);
        return;
      }
      const folded = k.slice(0, at + separator.length);
      if (folded !== last) {
        value.push(folded);
        last = folded;
      }
    });
    return { index: this.#prefixIndex(prefix, max), value };
  }

  kvLockDelay(key: string): number {
    return this.#data.lockDelays.get(key) ?? 0;
  }

  sessionGet(id: string, ws?: WatchRecorder): QueryResult<Session | null> {
    ws?.addTopic(topics.session(id));
    return { index: this.tableIndex('sessions'), value: this.#data.sessions.get(sessionKey(id)) ?? null };
  }

  sessionList(ws?: WatchRecorder): QueryResult<Session[]> {
    ws?.addTable('sessions');
    return { index: this.tableIndex('sessions'), value: this.#data.sessions.valuesArray() };
  }

  nodeSessions(node: string, ws?: WatchRecorder): QueryResult<Session[]> {
    ws?.addTopic(topics.nodeSessions(node));
    const d = this.#data;
    const value = [...(d.sessionsByNode.get(nodeKey(node)) ?? [])].sort().map((k) => d.sessions.get(k)!);
    return { index: this.tableIndex('sessions'), value };
  }

  // Config entries: Consul answers every read with the table's index (ConfigEntry, ConfigEntriesByKind).

  configEntry(kind: string, name: string, ws?: WatchRecorder): QueryResult<ConfigEntry | null> {
    ws?.addTopic(topics.configEntry(kind, name));
    return { index: this.tableIndex('config-entries'), value: this.#data.configEntries.get(configEntryKey(kind, name)) ?? null };
  }

  configEntries(kind: string, ws?: WatchRecorder): QueryResult<ConfigEntry[]> {
    ws?.addTopic(topics.configKind(kind));
    const value: ConfigEntry[] = [];
    scanPrefix(this.#data.configEntries, lower(kind) + SEP, (_k, e) => {
      value.push(e);
    });
    return { index: this.tableIndex('config-entries'), value };
  }

  configEntriesAll(ws?: WatchRecorder): QueryResult<ConfigEntry[]> {
    ws?.addTable('config-entries');
    return { index: this.tableIndex('config-entries'), value: this.#data.configEntries.valuesArray() };
  }

  // The CA (Consul's CARoots / CAConfig). The provider state (private keys) is not part of
  // StateReader: only the server's signer reads it.

  caRoots(ws?: WatchRecorder): QueryResult<CARoot[]> {
    ws?.addTable('connect-ca-roots');
    return { index: this.tableIndex('connect-ca-roots'), value: this.#data.caRoots.valuesArray() };
  }

  caConfig(ws?: WatchRecorder): QueryResult<CAConfiguration | null> {
    ws?.addTopic(topics.caConfig);
    const c = this.#data.caConfig ?? null;
    return { index: Math.max(1, c?.ModifyIndex ?? 0), value: c };
  }

  /** A root's private key and certificate (secret: never serve or log it). */
  // ---- ACLs (state/acl.ts) -----------------------------------------------------------------------

  aclToken(accessorId: string, ws?: WatchRecorder): QueryResult<ACLToken | null> {
    ws?.addTable('acl-tokens');
    return { index: this.tableIndex('acl-tokens'), value: this.#data.aclTokens.get(accessorId) ?? null };
  }

  /** The token holding this secret (a map lookup: the caller compares secrets in constant time). */
  aclTokenBySecret(secret: string): ACLToken | null {
    const id = this.#data.aclTokenSecrets.get(secret);
    return id === undefined ? null : this.#data.aclTokens.get(id) ?? null;
  }

  aclTokens(ws?: WatchRecorder): QueryResult<ACLToken[]> {
    ws?.addTable('acl-tokens');
    return { index: this.tableIndex('acl-tokens'), value: this.#data.aclTokens.valuesArray() };
  }

  aclPolicy(id: string, ws?: WatchRecorder): QueryResult<ACLPolicy | null> {
    ws?.addTable('acl-policies');
    return { index: this.tableIndex('acl-policies'), value: this.#data.aclPolicies.get(id) ?? null };
  }

  aclPolicyByName(name: string, ws?: WatchRecorder): QueryResult<ACLPolicy | null> {
    ws?.addTable('acl-policies');
    const id = this.#data.aclPolicyNames.get(name);
    return { index: this.tableIndex('acl-policies'), value: id === undefined ? null : this.#data.aclPolicies.get(id) ?? null };
  }

  aclPolicies(ws?: WatchRecorder): QueryResult<ACLPolicy[]> {
    ws?.addTable('acl-policies');
    return { index: this.tableIndex('acl-policies'), value: this.#data.aclPolicies.valuesArray() };
  }

  aclRole(id: string, ws?: WatchRecorder): QueryResult<ACLRole | null> {
    ws?.addTable('acl-roles');
    return { index: this.tableIndex('acl-roles'), value: this.#data.aclRoles.get(id) ?? null };
  }

  aclRoleByName(name: string, ws?: WatchRecorder): QueryResult<ACLRole | null> {
    ws?.addTable('acl-roles');
    const id = this.#data.aclRoleNames.get(name);
    return { index: this.tableIndex('acl-roles'), value: id === undefined ? null : this.#data.aclRoles.get(id) ?? null };
  }

  aclRoles(ws?: WatchRecorder): QueryResult<ACLRole[]> {
    ws?.addTable('acl-roles');
    return { index: this.tableIndex('acl-roles'), value: this.#data.aclRoles.valuesArray() };
  }

  /** Changes with every write to an ACL table and every restore: cached authorizers are valid while it stays. */
  aclGeneration(): number {
    // Raft indexes only grow between restores, so (restores, highest ACL table index) names the ACL
    // rows exactly; the number counts the distinct pairs seen.
    const d = this.#data;
    let index = d.tableIndex('acl-tokens');
    const p = d.tableIndex('acl-policies');
    if (p > index) index = p;
    const r = d.tableIndex('acl-roles');
    if (r > index) index = r;
    if (index !== this.#aclGenIndex || this.#restores !== this.#aclGenRestores) {
      this.#aclGenIndex = index;
      this.#aclGenRestores = this.#restores;
      this.#aclGen++;
    }
    return this.#aclGen;
  }

  aclBootstrapIndex(): number {
    return this.#data.aclBootstrapIndex;
  }

  /** The servers' own secret ('' until made); never shown by the HTTP API. */
  aclServerSecret(): string {
    return this.#data.aclServerSecret;
  }

  caProviderState(rootId: string): CAProviderState | null {
    return this.#data.caProviderState.get(rootId) ?? null;
  }
}
