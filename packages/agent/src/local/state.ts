// Agent-local state: the services and checks this agent owns (registered through agent/* or its
// config files), with their definitions. Consul keeps this in agent/local/state.go and syncs it to
// the catalog by anti-entropy; what the agent holds wins over the catalog for its own node.
//
// On a server agent a registration or removal is written to the catalog through Raft first and
// recorded locally only once that succeeded, so `catalog/service` shows a registration as soon as
// the HTTP call returns and a failed write (no leader) leaves both sides unchanged. Check results
// (TTL updates and expiry, runner reports) are recorded here at once and written after. Writes are
// ordered per service and check (keyedQueue.ts), never behind one global queue: a slow Raft write
// delays later writes of the same item only, and no check result waits for it to show here.
// `syncFull()` is the anti-entropy pass (planSync.ts decides; antiEntropy.ts schedules it).
// TTL checks are run here too (they need nothing but a timer): a TTL that is not renewed turns the
// check critical with Consul's "TTL expired" output.

import type {
  CatalogRegisterCommand, CheckStatus, Command, CommandResult, HealthCheck, HealthCheckInput, NodeServiceInput, StateReader,
} from '../state/types.ts';
import { isActiveCheck, startCheckRunner, truncateOutput, type AliasSource, type CheckRunner, type Timers } from '../checks/index.ts';
import type { Logger } from '../logger.ts';
import type { LocalPersistence } from './persist.ts';
import type { CatalogNodeView, LocalNodeInfo } from './types.ts';
import type { ServiceFields } from '../state/types.ts';
import {
  NODE_MAINT_CHECK_ID, SERVICE_MAINT_PREFIX, DEFAULT_OUTPUT_MAX_BYTES, checkDefinition, checkKind, goDur, type CheckType,
} from '../structs/check.ts';
import { applyOk } from '../state/apply.ts';
import { LocalStateError } from './errors.ts';
import { planSync, type LocalSnapshot } from './planSync.ts';
import { KeyedQueue } from './keyedQueue.ts';
import { DEFAULT_SIDECAR_PORTS, allocateSidecarPort, sidecarDefaultChecks, sidecarIdFor } from '../structs/sidecar.ts';

const DEFAULT_NODE_MAINT_REASON = 'Maintenance mode is enabled for this node, but no reason was provided. This is a default message.';
const DEFAULT_SERVICE_MAINT_REASON = 'Maintenance mode is enabled for this service, but no reason was provided. This is a default message.';

/** A check as the agent holds it: the catalog row (without indexes) and how it runs. */
export interface LocalCheck {
  check: Omit<HealthCheck, 'CreateIndex' | 'ModifyIndex'>;
  type: CheckType | null;
}

export interface LocalService {
  service: ServiceFields;
  /**
   * Registered as the sidecar of `<id>` (Consul's LocallyRegisteredAsSidecar): removed with that
   * service. Kept in the data directory, so it still holds after a restart.
   */
  locallyRegisteredAsSidecar?: boolean;
}

/** What addService registers along with a service: its `<id>-sidecar-proxy` (structs/sidecar.ts). */
export interface SidecarRegistration {
  /** Port 0: the first free port of the agent's sidecar range. */
  service: ServiceFields;
  /** None: Consul's default checks (TCP on the proxy's port, alias of the service). */
  checks: CheckType[];
}

export interface LocalStateOptions {
  node: LocalNodeInfo;
  /** Proposes a command through Raft (AgentBackend.apply). */
  apply: (cmd: Command) => Promise<CommandResult>;
  /**
   * The catalog's rows for this node, which syncFull() compares with what this agent holds: a
   * server reads its own replica, a client agent asks a server (Forward.NodeState).
   */
  catalogState: (node: string) => CatalogNodeView | Promise<CatalogNodeView>;
  timers?: Timers;
  /**
   * Runs the active checks (HTTP, TCP, UDP, gRPC, script, alias: checks/) of registered checks.
   * Without it only TTL checks change status on their own.
   */
  runChecks?: {
    logger: Logger;
    /** enable_script_checks: script checks from any source. */
    enableScriptChecks: boolean;
    /** enable_local_script_checks: script checks from configuration files. */
    enableLocalScriptChecks: boolean;
    /** Shortest interval honoured (Consul: 1 s); tests lower it. */
    minIntervalMs?: number;
  };
  /**
   * Client agents: says whether a failed catalog write means "no server can be reached now". Such a
   * change is kept here anyway (the request succeeds, as in Consul) and anti-entropy writes it once
   * a server answers. Without it (servers), a failed catalog write fails the request and changes
   * nothing.
   */
  syncLater?: (err: unknown) => boolean;
  /** Called when a change was kept here without reaching the catalog (anti-entropy should run soon). */
  onOutOfSync?: () => void;
  /** Keeps API registrations across restarts (persist.ts); absent with -dev. */
  persist?: LocalPersistence;
  /** Reports background failures (TTL expiry writes, anti-entropy); defaults to ignoring them. */
  onError?: (err: unknown, what: string) => void;
  /** ports.sidecar_min_port / sidecar_max_port (default 21000–21255; 0 disables assignment). */
  sidecarPorts?: { min: number; max: number };
}

/** Serialises port assignment: two sidecars registered at once never get the same port. */
const SIDECAR_PORTS_KEY = 'sidecar-ports';

const realTimers: Timers = {
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref?.();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

export interface AddServiceOptions {
  /** The service's checks not in `checks` are removed (Consul's replace-existing-checks). */
  replaceExistingChecks?: boolean;
  /** From a configuration file: not persisted; local script checks allowed. */
  fromConfig?: boolean;
  /** Also registers this sidecar, removed with the service. */
  sidecar?: SidecarRegistration;
  /** The service is itself a sidecar registered earlier (reloaded from the data directory). */
  asSidecar?: boolean;
}

export class LocalState {
  readonly node: LocalNodeInfo;
  readonly #apply: (cmd: Command) => Promise<CommandResult>;
  readonly #catalogState: (node: string) => CatalogNodeView | Promise<CatalogNodeView>;
  /** The catalog's node row is known to match this agent's node (set by a full node write, checked by syncFull). */
  #nodeSynced = false;
  readonly #timers: Timers;
  readonly #onError: (err: unknown, what: string) => void;
  readonly #services = new Map<string, LocalService>();
  readonly #checks = new Map<string, LocalCheck>();
  readonly #ttlTimers = new Map<string, unknown>();
  /** Active check runners by check ID; the token tells a stopped runner's late reports apart. */
  readonly #runners = new Map<string, { runner: CheckRunner; token: object }>();
  /** DeregisterCriticalServiceAfter timers, by check ID, while the check is critical. */
  readonly #criticalTimers = new Map<string, unknown>();
  readonly #changeListeners = new Set<() => void>();
  readonly #runChecks: LocalStateOptions['runChecks'];
  readonly #persist: LocalPersistence | undefined;
  readonly #syncLater: ((err: unknown) => boolean) | undefined;
  readonly #onOutOfSync: (() => void) | undefined;
  #outOfSync = false;
  /** Last output a TTL check was given, for the "TTL expired" message. */
  readonly #ttlLastOutput = new Map<string, string>();
  /** Catalog writes, ordered per service and check. */
  readonly #queue = new KeyedQueue();
  /** A status write queued and not started yet, by check ID (later results share it). */
  readonly #statusWrites = new Map<string, Promise<void>>();
  /** Last local change of each service and check (by queue key), for syncFull to skip items changed since its plan. */
  readonly #stamps = new Map<string, number>();
  #seq = 0;
  /** Counts changes kept here because no server answered (syncFull clears outOfSync only if none came meanwhile). */
  #deferrals = 0;
  #version = 0;
  readonly #waiters = new Set<() => void>();
  #closed = false;
  readonly #sidecarPorts: { min: number; max: number };

  constructor(opts: LocalStateOptions) {
    this.#sidecarPorts = opts.sidecarPorts ?? DEFAULT_SIDECAR_PORTS;
    this.node = opts.node;
    this.#apply = opts.apply;
    this.#catalogState = opts.catalogState;
    this.#timers = opts.timers ?? realTimers;
    this.#onError = opts.onError ?? (() => {});
    this.#runChecks = opts.runChecks;
    this.#persist = opts.persist;
    this.#syncLater = opts.syncLater;
    this.#onOutOfSync = opts.onOutOfSync;
  }

  /** A change was kept here that the catalog has not seen yet (cleared by a successful syncFull). */
  get outOfSync(): boolean {
    return this.#outOfSync;
  }

  // ---- reads -------------------------------------------------------------------------------

  services(): LocalService[] {
    return [...this.#services.values()];
  }

  service(id: string): LocalService | undefined {
    return this.#services.get(id);
  }

  checks(): LocalCheck[] {
    return [...this.#checks.values()];
  }

  check(id: string): LocalCheck | undefined {
    return this.#checks.get(id);
  }

  /** Checks of one service, in registration order. */
  serviceChecks(serviceId: string): LocalCheck[] {
    return this.checks().filter((c) => c.check.ServiceID === serviceId);
  }

  /** Increases on every local change (for hash-based blocking on agent/service/:id). */
  get version(): number {
    return this.#version;
  }

  /** How many wait() calls are pending (blocking agent/service reads parked on this state). */
  get waiterCount(): number {
    return this.#waiters.size;
  }

  /** Resolves true on the next local change, false when `signal` aborts. */
  wait(signal: AbortSignal): Promise<boolean> {
    if (signal.aborted) return Promise.resolve(false);
    return new Promise((resolve) => {
      const onChange = (): void => {
        signal.removeEventListener('abort', onAbort);
        resolve(true);
      };
      const onAbort = (): void => {
        this.#waiters.delete(onChange);
        resolve(false);
      };
      this.#waiters.add(onChange);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  // ---- writes ------------------------------------------------------------------------------
  //
  // Registrations and removals are written to the catalog first and recorded here once the write
  // succeeded, so a refused write (no leader) changes nothing and the catalog shows a registration
  // when the call returns. They queue per item (KeyedQueue: the service, its checks), not behind
  // one another: a slow write of one service holds up nothing of another.
  //
  // Check results (TTL updates, TTL expiry, runner reports) are recorded here at once, whatever
  // write is pending; their catalog write queues behind the pending writes of the same check and
  // service and sends the check as it is when its turn comes, so the catalog ends with the latest
  // result and an older one never lands after a newer one.

  /**
   * Registers (or replaces) a service with its checks. Checks without an ID get Consul's
   * `service:<id>` (or `service:<id>:<n>` when there are several). A re-registered check keeps its
   * current status and output. With `replaceExistingChecks`, the service's checks not in `checks`
   * are removed; otherwise they stay.
   */
  addService(svc: ServiceFields, checks: CheckType[], opts: AddServiceOptions = {}): Promise<void> {
    const sc = opts.sidecar;
    // With no checks given, a sidecar gets two default checks: their IDs are those of two checks.
    const sidecarChecks = sc && sc.checks.length === 0 ? [{}, {}] : sc?.checks ?? [];
    const keys = [...this.#serviceWriteKeys(svc.ID, checks), ...(sc ? [...this.#serviceWriteKeys(sidecarIdFor(svc.ID), sidecarChecks), SIDECAR_PORTS_KEY] : [])];
    return this.#write(keys, async () => {
      // Everything that can refuse the sidecar is decided before the service is written, so a
      // refusal (no port left, a script check not allowed) changes nothing.
      const sidecar = sc ? this.#completeSidecar(svc, sc) : undefined;
      for (const ct of sidecar?.checks ?? []) this.#checkRunnable(ct, opts.fromConfig ?? false);
      await this.#addServiceNow(svc, checks, opts, opts.asSidecar ?? false);
      // Consul adds the sidecar after its service; a failed sidecar write leaves the service registered.
      if (sidecar) await this.#addServiceNow(sidecar.service, sidecar.checks, opts, true);
    });
  }

  /** The sidecar with its port (Consul's sidecarPortFromServiceIDLocked) and default checks. */
  #completeSidecar(parent: ServiceFields, sc: SidecarRegistration): SidecarRegistration {
    let service = { ...sc.service, ID: sidecarIdFor(parent.ID) };
    if (service.Port < 1) {
      const got = allocateSidecarPort(this.services().map((s) => s.service), service.ID, this.#sidecarPorts);
      if ('error' in got) throw new LocalStateError('ERR_LOCAL_NO_SIDECAR_PORT', got.error);
      service = { ...service, Port: got.port };
    }
    return { service, checks: sc.checks.length > 0 ? sc.checks : sidecarDefaultChecks(service) };
  }

  /** The queue keys a registration of service `id` with `checks` touches. */
  #serviceWriteKeys(id: string, checks: CheckType[]): string[] {
    const ids = this.#defaultCheckIds(id, checks);
    return [svcKey(id), ...ids.flatMap((cid) => this.#checkKeys(cid)), ...this.serviceChecks(id).map((c) => checkKey(c.check.CheckID))];
  }

  #defaultCheckIds(serviceId: string, checks: CheckType[]): string[] {
    return checks.map((ct, i) => {
      if (ct.CheckID) return ct.CheckID;
      return checks.length > 1 ? `service:${serviceId}:${i + 1}` : `service:${serviceId}`;
    });
  }

  /** addService's body for one service, inside the write queue. */
  async #addServiceNow(svc: ServiceFields, checks: CheckType[], opts: AddServiceOptions, asSidecar: boolean): Promise<void> {
    const ids = this.#defaultCheckIds(svc.ID, checks);
    for (const ct of checks) this.#checkRunnable(ct, opts.fromConfig ?? false);
    const newChecks: LocalCheck[] = checks.map((ct, i) => ({ check: this.#keepStatus(this.#buildCheck(ids[i]!, ct, svc)), type: ct }));
    const keep = new Set(ids);
    const stale = opts.replaceExistingChecks
      ? this.serviceChecks(svc.ID).filter((c) => !keep.has(c.check.CheckID) && !c.check.CheckID.startsWith(SERVICE_MAINT_PREFIX))
      : [];
    const staleIds = new Set(stale.map((c) => c.check.CheckID));
    // Existing checks that stay must carry the (possibly new) service tags into the catalog.
    const kept = (): LocalCheck[] => this.serviceChecks(svc.ID)
      .filter((c) => !keep.has(c.check.CheckID) && !staleIds.has(c.check.CheckID))
      .map((c) => ({ ...c, check: { ...c.check, ServiceName: svc.Service, ServiceTags: [...svc.Tags] } }));

    await this.#catalog(() => this.#register({ Service: this.#serviceInput(svc), Checks: [...newChecks, ...kept()].map((c) => this.#checkInput(c.check)) }));
    for (const id of staleIds) {
      await this.#catalog(() => this.#deregister({ CheckID: id }));
    }

    this.#putService(svc, asSidecar);
    for (const id of staleIds) this.#dropCheck(id);
    for (const c of kept()) this.#putCheck(c);
    for (const c of newChecks) {
      // A result that arrived while the write was in flight wins (its own write follows this one).
      const lc = { check: this.#keepStatus(c.check), type: c.type };
      this.#putCheck(lc);
      this.#startCheck(lc);
    }
    if (!opts.fromConfig) {
      this.#persisting(`service ${svc.ID}`, (p) => {
        p.saveService(svc, asSidecar ? { locallyRegisteredAsSidecar: true } : undefined);
        for (const c of newChecks) if (c.type) p.saveCheck({ ...c.type, CheckID: c.check.CheckID, ServiceID: svc.ID });
        for (const id of staleIds) p.removeCheck(id);
      });
    }
    this.#changed();
  }

  /**
   * Removes a service and its checks (404 with Consul's text when unknown), and its sidecar when it
   * was registered with it (Consul's removeServiceLocked).
   */
  removeService(id: string): Promise<void> {
    const sidecarId = sidecarIdFor(id);
    const keys = [svcKey(id), ...this.serviceChecks(id).map((c) => checkKey(c.check.CheckID))];
    if (this.#services.get(sidecarId)?.locallyRegisteredAsSidecar) keys.push(svcKey(sidecarId), ...this.serviceChecks(sidecarId).map((c) => checkKey(c.check.CheckID)));
    return this.#write(keys, async () => {
      if (!this.#services.has(id)) {
        throw new LocalStateError('ERR_LOCAL_UNKNOWN_SERVICE', `Unknown service ID ${JSON.stringify(id)}. Ensure that the service ID is passed, not the service name.`);
      }
      await this.#removeServiceNow(id);
      if (this.#services.get(sidecarId)?.locallyRegisteredAsSidecar) await this.#removeServiceNow(sidecarId);
    });
  }

  async #removeServiceNow(id: string): Promise<void> {
    await this.#catalog(() => this.#deregister({ ServiceID: id }));
    const checks = this.serviceChecks(id);
    this.#services.delete(id);
    this.#stamps.delete(svcKey(id));
    for (const c of checks) this.#dropCheck(c.check.CheckID);
    this.#persisting(`service ${id}`, (p) => {
      p.removeService(id);
      for (const c of checks) p.removeCheck(c.check.CheckID);
    });
    this.#changed();
  }

  /** Registers (or replaces) a check. A check on a service must name a local service (404). */
  addCheck(ct: CheckType & { CheckID: string; ServiceID?: string }, opts: { fromConfig?: boolean } = {}): Promise<void> {
    const keys = [...this.#checkKeys(ct.CheckID), ...(ct.ServiceID ? [svcKey(ct.ServiceID)] : [])];
    return this.#write(keys, async () => {
      this.#checkRunnable(ct, opts.fromConfig ?? false);
      let svc: ServiceFields | undefined;
      if (ct.ServiceID) {
        svc = this.#services.get(ct.ServiceID)?.service;
        if (!svc) throw new LocalStateError('ERR_LOCAL_UNKNOWN_SERVICE', `ServiceID ${JSON.stringify(ct.ServiceID)} does not exist`);
      }
      const build = () => (ct.Status ? this.#buildCheck(ct.CheckID, ct, svc) : this.#keepStatus(this.#buildCheck(ct.CheckID, ct, svc)));
      await this.#catalog(() => this.#register({ Check: this.#checkInput(build()) }));
      // Rebuilt: a result that arrived while the write was in flight wins (its own write follows).
      const lc: LocalCheck = { check: build(), type: ct };
      this.#dropCheck(ct.CheckID);
      this.#putCheck(lc);
      this.#startCheck(lc);
      if (!opts.fromConfig) this.#persisting(`check ${ct.CheckID}`, (p) => p.saveCheck(ct));
      this.#changed();
    });
  }

  /** Removes a check (404 with Consul's text when unknown). */
  removeCheck(id: string): Promise<void> {
    return this.#write(this.#checkKeys(id), async () => {
      if (!this.#checks.has(id)) {
        throw new LocalStateError('ERR_LOCAL_UNKNOWN_CHECK', `Unknown check ID ${JSON.stringify(id)}. Ensure that the check ID is passed, not the check name.`);
      }
      await this.#catalog(() => this.#deregister({ CheckID: id }));
      this.#dropCheck(id);
      this.#persisting(`check ${id}`, (p) => p.removeCheck(id));
      this.#changed();
    });
  }

  /**
   * Sets a TTL check's status and output (agent/check/pass|warn|fail|update) and restarts its TTL.
   * Only TTL checks accept updates, as in Consul; an unchanged status and output writes nothing.
   * The new status shows here at once; the promise settles with its catalog write, and a refused
   * write (no leader) takes the update back unless a newer result replaced it meanwhile.
   */
  updateTtlCheck(id: string, status: CheckStatus, output: string): Promise<void> {
    if (this.#closed) return Promise.reject(stopped());
    const lc = this.#checks.get(id);
    if (!lc || !lc.type || !(lc.type.TTLNs && lc.type.TTLNs > 0)) {
      return Promise.reject(new LocalStateError('ERR_LOCAL_NOT_TTL_CHECK', `CheckID ${JSON.stringify(id)} does not have associated TTL`));
    }
    const max = lc.type.OutputMaxSize && lc.type.OutputMaxSize > 0 ? lc.type.OutputMaxSize : DEFAULT_OUTPUT_MAX_BYTES;
    const out = truncateOutput(output, max);
    this.#ttlLastOutput.set(id, out);
    this.#armTtl(lc);
    const next = this.#setStatus(id, status, out);
    if (!next) return Promise.resolve();
    return this.#writeCheckStatus(id).catch((err: unknown) => {
      if (this.#checks.get(id) === next) {
        this.#putCheck(lc);
        this.#trackCritical(lc.check, lc.type);
        this.#changed();
      }
      throw err;
    });
  }

  /** Puts a service into maintenance: a critical `_service_maintenance:<id>` check. */
  enableServiceMaintenance(serviceId: string, reason: string): Promise<void> {
    const id = SERVICE_MAINT_PREFIX + serviceId;
    return this.#write([svcKey(serviceId), checkKey(id)], async () => {
      const svc = this.#services.get(serviceId)?.service;
      if (!svc) throw new LocalStateError('ERR_LOCAL_UNKNOWN_SERVICE', `No service registered with ID ${JSON.stringify(serviceId)}`);
      if (this.#checks.has(id)) return; // Already in maintenance: Consul keeps the first reason.
      const check = this.#buildCheck(id, { Name: 'Service Maintenance Mode', Notes: reason || DEFAULT_SERVICE_MAINT_REASON, Status: 'critical' }, svc);
      check.Type = 'maintenance';
      await this.#catalog(() => this.#register({ Check: this.#checkInput(check) }));
      this.#putCheck({ check, type: null });
      this.#changed();
    });
  }

  disableServiceMaintenance(serviceId: string): Promise<void> {
    const id = SERVICE_MAINT_PREFIX + serviceId;
    return this.#write([svcKey(serviceId), checkKey(id)], async () => {
      if (!this.#services.has(serviceId)) throw new LocalStateError('ERR_LOCAL_UNKNOWN_SERVICE', `No service registered with ID ${JSON.stringify(serviceId)}`);
      if (!this.#checks.has(id)) return;
      await this.#catalog(() => this.#deregister({ CheckID: id }));
      this.#dropCheck(id);
      this.#changed();
    });
  }

  /** Puts the node into maintenance: a critical `_node_maintenance` check. */
  enableNodeMaintenance(reason: string): Promise<void> {
    return this.#write([checkKey(NODE_MAINT_CHECK_ID)], async () => {
      if (this.#checks.has(NODE_MAINT_CHECK_ID)) return;
      const check = this.#buildCheck(NODE_MAINT_CHECK_ID, { Name: 'Node Maintenance Mode', Notes: reason || DEFAULT_NODE_MAINT_REASON, Status: 'critical' });
      check.Type = 'maintenance';
      await this.#catalog(() => this.#register({ Check: this.#checkInput(check) }));
      this.#putCheck({ check, type: null });
      this.#changed();
    });
  }

  disableNodeMaintenance(): Promise<void> {
    return this.#write([checkKey(NODE_MAINT_CHECK_ID)], async () => {
      if (!this.#checks.has(NODE_MAINT_CHECK_ID)) return;
      await this.#catalog(() => this.#deregister({ CheckID: NODE_MAINT_CHECK_ID }));
      this.#dropCheck(NODE_MAINT_CHECK_ID);
      this.#changed();
    });
  }

  /**
   * Anti-entropy: makes the catalog's view of this node match the local state. Registers the node,
   * services and checks that differ, and deregisters the node's catalog services and checks that
   * this agent does not hold (except serfHealth, which the leader owns): planSync decides, and each
   * write queues with the other writes of its item. An item that changed here after the plan was
   * made is skipped: the change's own write carries it. Returns the number of writes made.
   */
  async syncFull(): Promise<number> {
    if (this.#closed) throw stopped();
    const deferrals = this.#deferrals;
    const cat = await this.#catalogState(this.node.Node);
    const planned = new Map(this.#stamps);
    const plan = planSync(this.#snapshot(), cat);
    const catalogOwner = new Map(cat.checks.map((c) => [c.CheckID, c.ServiceID]));
    let writes = 0;
    for (const cmd of plan) {
      let item = 'node';
      let keys: string[] = [];
      switch (cmd.op) {
        case 'registerService': item = svcKey(cmd.service.ID); keys = [item]; break;
        case 'deregisterService': item = svcKey(cmd.serviceId); keys = [item]; break;
        case 'registerCheck': item = checkKey(cmd.check.CheckID); keys = [item, ...(cmd.check.ServiceID ? [svcKey(cmd.check.ServiceID)] : [])]; break;
        case 'deregisterCheck': {
          item = checkKey(cmd.checkId);
          const owner = catalogOwner.get(cmd.checkId);
          keys = [item, ...(owner ? [svcKey(owner)] : [])];
          break;
        }
      }
      const wrote = await this.#queue.run(keys, async () => {
        if (item !== 'node' && this.#stamps.get(item) !== planned.get(item)) return false;
        switch (cmd.op) {
          case 'registerNode':
            this.#nodeSynced = false;
            await this.#register({});
            break;
          case 'registerService': await this.#register({ Service: cmd.service }); break;
          case 'deregisterService': await this.#deregister({ ServiceID: cmd.serviceId }); break;
          case 'registerCheck': await this.#register({ Check: cmd.check }); break;
          case 'deregisterCheck': await this.#deregister({ CheckID: cmd.checkId }); break;
        }
        return true;
      });
      if (wrote) writes++;
    }
    // A change kept locally during this pass (no server) is still unwritten.
    if (this.#deferrals === deferrals) this.#outOfSync = false;
    return writes;
  }

  /** What this agent holds, as planSync compares it with the catalog. */
  #snapshot(): LocalSnapshot {
    return {
      node: this.node,
      services: [...this.#services.values()].map(({ service }) => this.#serviceInput(service)),
      checks: [...this.#checks.values()].map(({ check }) => this.#checkInput(check)),
    };
  }

  /** Stops TTL timers and wakes waiters; later mutations are refused. */
  close(): void {
    this.#closed = true;
    for (const h of this.#ttlTimers.values()) this.#timers.clearTimeout(h);
    this.#ttlTimers.clear();
    for (const { runner } of this.#runners.values()) runner.stop();
    this.#runners.clear();
    for (const h of this.#criticalTimers.values()) this.#timers.clearTimeout(h);
    this.#criticalTimers.clear();
    this.#changed();
  }

  // ---- internals ---------------------------------------------------------------------------

  /** A registration or removal: queued on the items it touches; refused once the agent stops. */
  #write<T>(keys: string[], fn: () => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(stopped());
    return this.#queue.run(keys, fn);
  }

  /** The queue keys of a check: itself and, when it belongs to one, its service. */
  #checkKeys(id: string): string[] {
    const owner = this.#checks.get(id)?.check.ServiceID;
    return owner ? [checkKey(id), svcKey(owner)] : [checkKey(id)];
  }

  #putService(svc: ServiceFields, asSidecar: boolean): void {
    this.#services.set(svc.ID, asSidecar ? { service: svc, locallyRegisteredAsSidecar: true } : { service: svc });
    this.#stamps.set(svcKey(svc.ID), ++this.#seq);
  }

  #putCheck(lc: LocalCheck): void {
    this.#checks.set(lc.check.CheckID, lc);
    this.#stamps.set(checkKey(lc.check.CheckID), ++this.#seq);
  }

  /** A re-registered check keeps the status and output it has now. */
  #keepStatus(check: LocalCheck['check']): LocalCheck['check'] {
    const cur = this.#checks.get(check.CheckID);
    return cur ? { ...check, Status: cur.check.Status, Output: cur.check.Output } : check;
  }

  #changed(): void {
    for (const fn of this.#changeListeners) fn();
    this.#version++;
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const w of waiters) w();
  }

  #buildCheck(id: string, ct: CheckType, svc?: ServiceFields): Omit<HealthCheck, 'CreateIndex' | 'ModifyIndex'> {
    const kind = checkKind(ct);
    const check: Omit<HealthCheck, 'CreateIndex' | 'ModifyIndex'> = {
      Node: this.node.Node,
      CheckID: id,
      Name: ct.Name || (svc ? `Service '${svc.Service}' check` : id),
      Status: ct.Status || 'critical',
      Notes: ct.Notes ?? '',
      Output: '',
      ServiceID: svc?.ID ?? '',
      ServiceName: svc?.Service ?? '',
      ServiceTags: svc ? [...svc.Tags] : [],
      Type: kind,
      Definition: checkDefinition(ct),
    };
    const interval = goDur(ct.IntervalNs);
    const timeout = goDur(ct.TimeoutNs);
    if (interval) check.Interval = interval;
    if (timeout) check.Timeout = timeout;
    return check;
  }

  #serviceInput(svc: ServiceFields): NodeServiceInput & { ID: string } {
    const input: NodeServiceInput & { ID: string } = {
      Kind: svc.Kind, ID: svc.ID, Service: svc.Service, Tags: [...svc.Tags], Address: svc.Address,
      TaggedAddresses: { ...svc.TaggedAddresses }, Meta: { ...svc.Meta }, Port: svc.Port,
      Weights: { ...svc.Weights }, EnableTagOverride: svc.EnableTagOverride,
    };
    if (svc.SocketPath) input.SocketPath = svc.SocketPath;
    if (svc.Proxy) input.Proxy = svc.Proxy;
    if (svc.Connect) input.Connect = svc.Connect;
    return input;
  }

  #checkInput(check: Omit<HealthCheck, 'CreateIndex' | 'ModifyIndex'>): HealthCheckInput & { CheckID: string } {
    return { ...check, ServiceTags: [...check.ServiceTags], Definition: { ...check.Definition } };
  }

  async #register(parts: Pick<CatalogRegisterCommand, 'Service' | 'Check' | 'Checks'>): Promise<void> {
    const n = this.node;
    const cmd: CatalogRegisterCommand = {
      type: 'catalogRegister', Node: n.Node, ID: n.ID, Address: n.Address, Datacenter: n.Datacenter,
      TaggedAddresses: { ...n.TaggedAddresses }, NodeMeta: { ...n.Meta }, ...parts,
    };
    // Write the node row only until it is known to be current (as Consul's anti-entropy does), so
    // registering a service does not bump the node's ModifyIndex and wake every node watcher. A
    // missing node is written whatever SkipNodeUpdate says.
    if (this.#nodeSynced) cmd.SkipNodeUpdate = true;
    await applyOk(this.#apply, cmd);
    this.#nodeSynced = true;
  }

  async #deregister(what: { ServiceID?: string; CheckID?: string }): Promise<void> {
    await applyOk(this.#apply, { type: 'catalogDeregister', Node: this.node.Node, ...what });
  }

  /** Records a check result here at once; undefined when it changes nothing. */
  #setStatus(id: string, status: CheckStatus, output: string): LocalCheck | undefined {
    const cur = this.#checks.get(id);
    if (!cur || (cur.check.Status === status && cur.check.Output === output)) return undefined;
    const lc: LocalCheck = { check: { ...cur.check, Status: status, Output: output }, type: cur.type };
    this.#putCheck(lc);
    this.#trackCritical(lc.check, lc.type);
    this.#changed();
    return lc;
  }

  /**
   * Writes a check's current row to the catalog, after the writes already queued for the check and
   * its service. Results that come while one such write waits share it: it sends the row as it is
   * when its turn comes, so a burst of results costs one write.
   */
  #writeCheckStatus(id: string): Promise<void> {
    const waiting = this.#statusWrites.get(id);
    if (waiting) return waiting;
    const write = this.#queue.run(this.#checkKeys(id), async () => {
      this.#statusWrites.delete(id);
      const cur = this.#checks.get(id);
      if (!cur) return; // Removed meanwhile: the removal wrote the catalog.
      await this.#catalog(() => this.#register({ Check: this.#checkInput(cur.check) }));
    });
    this.#statusWrites.set(id, write);
    return write;
  }

  /**
   * A runner's result: recorded here first (agent/checks shows what the agent saw), then written to
   * the catalog; a failed write is left to anti-entropy, and the next result tries again.
   */
  #runnerReport(id: string, token: object, status: CheckStatus, output: string): void {
    if (this.#closed || this.#runners.get(id)?.token !== token) return;
    if (!this.#setStatus(id, status, output)) return;
    this.#writeCheckStatus(id).catch((err: unknown) => this.#onError(err, `writing the status of check ${id} to the catalog (anti-entropy will retry)`));
  }

  /** A catalog write of a local change; see LocalStateOptions.syncLater for when a failure is deferred. */
  async #catalog(write: () => Promise<void>): Promise<void> {
    try {
      await write();
    } catch (err) {
      if (!this.#syncLater?.(err)) throw err;
      this.#deferrals++;
      if (!this.#outOfSync) {
        const denied = (err as { code?: unknown } | null)?.code === 'ERR_PERMISSION_DENIED';
        this.#onError(err, denied
          ? "the write's token may not write this agent's node yet: the change is kept on this agent and anti-entropy will write it to the catalog once the node is (acl.tokens.agent writes the node)"
          : 'no server reachable: the change is kept on this agent and anti-entropy will write it to the catalog');
      }
      this.#outOfSync = true;
      this.#onOutOfSync?.();
    }
  }

  /** Writes registrations to disk; a failure is reported, never fails the request (the catalog has it). */
  #persisting(what: string, fn: (p: LocalPersistence) => void): void {
    if (!this.#persist) return;
    try {
      fn(this.#persist);
    } catch (err) {
      this.#onError(err, `persisting ${what} to the data directory`);
    }
  }

  /** Refuses (400) a check this agent cannot run, before anything is written. */
  #checkRunnable(ct: CheckType, fromConfig: boolean): void {
    const kind = checkKind(ct);
    if (kind === 'h2ping' || kind === 'docker' || kind === 'os_service') {
      throw new LocalStateError('ERR_LOCAL_CHECK_UNSUPPORTED', `Invalid check: ${kind} checks are not supported by this agent`);
    }
    if (kind === 'script' && this.#runChecks) {
      const rc = this.#runChecks;
      if (!(rc.enableScriptChecks || (fromConfig && rc.enableLocalScriptChecks))) {
        throw new LocalStateError('ERR_LOCAL_SCRIPTS_DISABLED', fromConfig || !rc.enableLocalScriptChecks
          ? "Scripts are disabled on this agent; to enable, configure 'enable_script_checks' or 'enable_local_script_checks' to true"
          : "Scripts are disabled on this agent from remote calls; to enable, configure 'enable_script_checks' to true");
      }
    }
  }

  /** Starts what makes a check change status: its TTL timer or its runner. */
  #startCheck(lc: LocalCheck): void {
    const id = lc.check.CheckID;
    this.#stopRunner(id);
    this.#armTtl(lc);
    this.#trackCritical(lc.check, lc.type);
    const ct = lc.type;
    if (!ct || !this.#runChecks || !isActiveCheck(ct) || this.#closed) return;
    const rc = this.#runChecks;
    const token = {};
    try {
      const runner = startCheckRunner(ct, {
        checkId: id,
        report: (status, output) => this.#runnerReport(id, token, status, output),
        logger: rc.logger,
        // Registration already refused scripts this agent may not run.
        enableScriptChecks: true,
        alias: this.#aliasSource(id),
        timers: this.#timers,
        ...(rc.minIntervalMs !== undefined ? { minIntervalMs: rc.minIntervalMs } : {}),
      });
      this.#runners.set(id, { runner, token });
    } catch (err) {
      this.#onError(err, `starting check ${id}`);
    }
  }

  #stopRunner(id: string): void {
    const r = this.#runners.get(id);
    if (!r) return;
    r.runner.stop();
    this.#runners.delete(id);
  }

  /** What an alias check (`self`) mirrors: this agent's checks, or a remote node's from the catalog. */
  #aliasSource(self: string): AliasSource {
    return {
      target: async (node, serviceId) => {
        const counts = (c: { CheckID: string; ServiceID: string }) => c.CheckID !== self && (c.ServiceID === '' || c.ServiceID === serviceId);
        if (node === undefined || node === this.node.Node) {
          const checks = [...this.#checks.values()].map((c) => c.check).filter(counts);
          return { found: serviceId === undefined || this.#services.has(serviceId), checks };
        }
        const cat = await this.#catalogState(node);
        return {
          found: serviceId === undefined ? cat.node !== null : cat.services.some((s) => s.ID === serviceId),
          checks: cat.checks.filter(counts),
        };
      },
      subscribe: (onChange) => {
        this.#changeListeners.add(onChange);
        return () => { this.#changeListeners.delete(onChange); };
      },
    };
  }

  /** Consul's DeregisterCriticalServiceAfter: a service whose check stays critical that long is removed. */
  #trackCritical(check: Omit<HealthCheck, 'CreateIndex' | 'ModifyIndex'>, ct: CheckType | null): void {
    const id = check.CheckID;
    const after = ct?.DeregisterCriticalServiceAfterNs ?? 0;
    if (check.Status !== 'critical' || after <= 0 || check.ServiceID === '' || this.#closed) {
      const h = this.#criticalTimers.get(id);
      if (h !== undefined) this.#timers.clearTimeout(h);
      this.#criticalTimers.delete(id);
      return;
    }
    if (this.#criticalTimers.has(id)) return;
    const serviceId = check.ServiceID;
    this.#criticalTimers.set(id, this.#timers.setTimeout(() => {
      this.#criticalTimers.delete(id);
      if (this.#checks.get(id)?.check.Status !== 'critical' || !this.#services.has(serviceId)) return;
      this.removeService(serviceId).then(
        () => this.#runChecks?.logger.warn({ service: serviceId, check: id }, 'check was critical for longer than DeregisterCriticalServiceAfter: deregistered the service'),
        (err: unknown) => this.#onError(err, `deregistering service ${serviceId} after its check ${id} stayed critical`),
      );
    }, after / 1e6));
  }

  #dropCheck(id: string): void {
    this.#checks.delete(id);
    this.#stamps.delete(checkKey(id));
    this.#ttlLastOutput.delete(id);
    this.#stopRunner(id);
    const crit = this.#criticalTimers.get(id);
    if (crit !== undefined) {
      this.#timers.clearTimeout(crit);
      this.#criticalTimers.delete(id);
    }
    const h = this.#ttlTimers.get(id);
    if (h !== undefined) {
      this.#timers.clearTimeout(h);
      this.#ttlTimers.delete(id);
    }
  }

  /** (Re)starts a TTL check's timer; on expiry the check turns critical ("TTL expired"). */
  #armTtl(lc: LocalCheck): void {
    const id = lc.check.CheckID;
    const prev = this.#ttlTimers.get(id);
    if (prev !== undefined) {
      this.#timers.clearTimeout(prev);
      this.#ttlTimers.delete(id);
    }
    const ttl = lc.type?.TTLNs ?? 0;
    if (ttl <= 0 || this.#closed) return;
    const handle = this.#timers.setTimeout(() => {
      this.#ttlTimers.delete(id);
      const last = this.#ttlLastOutput.get(id) ?? '';
      const output = last === '' ? 'TTL expired' : `TTL expired (last output before timeout follows): ${last}`;
      if (this.#closed || !this.#setStatus(id, 'critical', output)) return;
      this.#writeCheckStatus(id).catch((err: unknown) => this.#onError(err, `writing TTL check ${id}'s expiry to the catalog (anti-entropy will retry)`));
    }, ttl / 1e6);
    this.#ttlTimers.set(id, handle);
  }
}

/** LocalStateOptions.catalogState over a local replica (server agents, tests). */
export function catalogStateFromStore(store: StateReader): (node: string) => CatalogNodeView {
  return (node) => ({
    node: store.node(node).value,
    services: store.nodeServices(node).value?.Services ?? [],
    checks: store.nodeChecks(node).value,
  });
}

function svcKey(id: string): string {
  return `svc:${id}`;
}

function checkKey(id: string): string {
  return `check:${id}`;
}

function stopped(): LocalStateError {
  return new LocalStateError('ERR_STOPPED', 'agent is shutting down');
}
