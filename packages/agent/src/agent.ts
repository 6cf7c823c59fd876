// The agent: a composition of parts started in dependency order and stopped in reverse.
//   every agent:  LAN gossip pool → role → local services and checks → HTTP → DNS → join
//   server role:  server port + Raft, leader routines, the catalog replica   (server/role.ts)
//   client role:  servers found in gossip, writes and reads forwarded to them (client/role.ts)
// The role modules are loaded on demand, so a client agent never loads Raft or the state machine's
// server half.
import { createLogger, setLogLevel, type Logger } from './logger.ts';
import type { RuntimeConfig } from './config/runtime.ts';
import { resolveNodeId } from './nodeId.ts';
import type { Server } from './server/server.ts';
import type { AgentRole } from './role.ts';
import { GossipPool } from './gossip/libp2p/pool.ts';
import { lanPoolOptions } from './gossip/fromConfig.ts';
import { retryJoin } from './gossip/retryJoin.ts';
import { consulEventName, decodeConsulEvent, encodeConsulEvent, rawConsulEventName } from './gossip/consulEvents.ts';
import { LocalState } from './local/state.ts';
import { LocalStateError } from './local/errors.ts';
import { AntiEntropy } from './local/antiEntropy.ts';
import { FilePersistence } from './local/persist.ts';
import { EventLog, eventMatchesAgent } from './http/events.ts';
import { serviceRegistrationFromJson, checkRegistrationFromJson } from './http/routes/agent.ts';
import { sidecarIdFor } from './structs/sidecar.ts';
import { createHttpServer, type HttpServer } from './http/server.ts';
import type { AgentBackend } from './http/backend.ts';
import { startDnsServer, type DnsServer } from './dns/index.ts';

export interface Agent {
  readonly nodeId: string;
  readonly httpPort: number;
  readonly dnsPort: number;
  /** The server, on a server agent. */
  readonly server: Server | undefined;
  readonly pool: GossipPool;
  /** Stops the agent. With `leave` (default: leave_on_terminate), leaves the cluster first. */
  stop(opts?: { leave?: boolean }): Promise<void>;
  /** SIGHUP: applies a re-read configuration (services and checks from config files, see reloadDefinitions). */
  reload(next: RuntimeConfig): Promise<void>;
}

/** The backend the HTTP API runs on, with the read hook clustering adds (see the report to http/). */
export type ServerBackend = AgentBackend & {
  /** Default-consistency reads: resolves once the local store is as current as the leader's. */
  defaultRead(signal?: AbortSignal): Promise<void>;
};

export interface StartAgentOptions {
  logger?: Logger;
  /** Re-reads the configuration (flags and files); enables PUT /v1/agent/reload, which does what SIGHUP does. */
  reloadConfig?: () => RuntimeConfig;
}

export async function startAgent(config: RuntimeConfig, opts: StartAgentOptions = {}): Promise<Agent> {
  const logger = opts.logger ?? createLogger({ level: config.logLevel.toLowerCase(), json: config.logJson });
  const log = logger.child({ component: 'agent' });
  const stack: Array<() => Promise<void> | void> = [];
  const ac = new AbortController();
  const stopAll = async () => {
    ac.abort();
    for (const fn of stack.reverse()) {
      try { await fn(); } catch (err) { log.error({ err }, 'error while stopping'); }
    }
    stack.length = 0;
  };

  try {
    const nodeId = await resolveNodeId(config);
    log.info({ node: config.nodeName, id: nodeId, datacenter: config.datacenter, server: config.serverMode, dev: config.devMode }, 'starting Trellis agent');

    const pool = await GossipPool.create(lanPoolOptions(config, { nodeId, logger: logger.child({ component: 'agent.gossip.lan' }) }));
    await pool.start();
    // Stopping without leave(): the others see this agent fail, as after a crash.
    stack.push(() => pool.stop());

    const role: AgentRole = config.serverMode
      ? await (await import('./server/role.ts')).startServerRole({ config, nodeId, logger, pool })
      : await (await import('./client/role.ts')).startClientRole({ config, nodeId, logger, pool });
    stack.push(() => role.stop());

    // With ACLs on, a service registered through the API is saved with its token (persist.ts).
    const serviceTokens = config.acl.enabled ? role.backend.acl?.serviceTokens : undefined;
    const persist = config.devMode || !config.dataDir ? undefined
      : new FilePersistence(config.dataDir, serviceTokens ? { serviceToken: (id) => serviceTokens.get(id) } : {});
    let antiEntropy: { soon(): void } | undefined;
    const local = new LocalState({
      ...(persist ? { persist } : {}),
      node: {
        Node: config.nodeName, ID: nodeId, Address: config.advertiseAddrLan, Datacenter: config.datacenter,
        TaggedAddresses: config.taggedAddresses, Meta: config.nodeMeta,
      },
      apply: (cmd) => role.apply(cmd),
      catalogState: role.catalogState,
      ...(role.syncLater ? { syncLater: role.syncLater, onOutOfSync: () => antiEntropy?.soon() } : {}),
      runChecks: {
        logger: logger.child({ component: 'agent.checks' }),
        enableScriptChecks: config.enableScriptChecks, enableLocalScriptChecks: config.enableLocalScriptChecks,
      },
      onError: (err, what) => log.warn({ err }, `local state: ${what}`),
      sidecarPorts: { min: config.ports.sidecarMinPort, max: config.ports.sidecarMaxPort },
    });
    stack.push(() => local.close());

    // User events arrive through gossip on every agent, this one included; each keeps those whose
    // filters select it.
    const events = new EventLog();
    pool.on('event', (e) => {
      const name = rawConsulEventName(e.name);
      if (name === undefined) return;
      try {
        const ev = decodeConsulEvent(e.payload, e.ltime);
        if (eventMatchesAgent(ev, config.nodeName, local.services().map((s) => s.service))) events.ingest(ev);
      } catch (err) {
        log.warn({ err: (err as Error).message, event: name }, 'dropped a malformed user event');
      }
    });

    // Services and checks from config files (`services`, `checks`) go through the same decoder and
    // validation as PUT /v1/agent/service/register (a bad one already failed config validation or
    // fails here with a clear error); those registered through the API earlier come back from the
    // data dir.
    startDefinitionsRegistration(config, local, persist, serviceTokens, log, ac.signal);
    antiEntropy = startAntiEntropy(local, pool, log, config.aeIntervalMs, ac.signal);

    let stopping: Promise<void> | undefined;
    let leaving: Promise<void> | undefined;
    const leave = (): Promise<void> => {
      leaving ??= (async () => {
        await role.leave();
        await pool.leave();
      })();
      return leaving;
    };
    // Reload (SIGHUP, PUT /v1/agent/reload): one at a time, each against the configuration the
    // previous one left.
    let current = config;
    let reloading = Promise.resolve();
    const reload = (next: RuntimeConfig): Promise<void> => {
      const run = reloading.then(async () => {
        await reloadDefinitions(current, next, local);
        if (next.logLevel !== current.logLevel) setLogLevel(logger, next.logLevel);
        current = next;
        log.info({ log_level: next.logLevel }, 'reloaded configuration: services and checks from config files, log level');
      });
      reloading = run.catch(() => {});
      return run;
    };
    const backend: ServerBackend = {
      ...role.backend,
      ...(opts.reloadConfig ? { reload: () => reload(opts.reloadConfig!()) } : {}),
      defaultRead: role.backend.defaultRead ?? (async () => {}),
      apply: (cmd) => role.apply(cmd),
      config: { ...config, nodeId },
      local,
      events,
      members: () => pool.members(),
      join: (address) => pool.join([address]),
      forceLeave: (node, prune) => pool.forceLeave(node, prune),
      fireEvent: (ev) => pool.fireEvent(consulEventName(ev.Name), encodeConsulEvent(ev)),
      leave: async () => {
        await leave();
        setTimeout(() => process.kill(process.pid, 'SIGTERM'), 50).unref();
      },
    };

    let http: HttpServer | undefined;
    let httpPort = -1;
    // A server builds its HTTP API even without a port: client agents' requests run through it.
    if (config.ports.http > 0 || config.serverMode) {
      const host = config.httpAddrs[0] ?? '127.0.0.1';
      http = createHttpServer(backend, { host, port: config.ports.http, logger, routes: role.httpRoutes?.(backend) ?? [], extraHosts: config.httpAddrs.slice(1) });
      role.attachHttp?.(http, backend);
      if (config.ports.http > 0) httpPort = (await http.listen()).port;
      stack.push(() => http!.close());
    }
    let dns: DnsServer | undefined;
    let dnsPort = -1;
    if (config.ports.dns > 0 && role.dnsLookup) {
      const host = config.dnsAddrs[0] ?? '127.0.0.1';
      dns = await startDnsServer({
        host, port: config.ports.dns, domain: config.domain, datacenter: config.datacenter, nodeName: config.nodeName,
        lookup: role.dnsLookup, logger: logger.child({ component: 'agent.dns' }),
        ttlSeconds: Math.round(config.dns.nodeTtlMs / 1000), udpAnswerLimit: config.dns.udpAnswerLimit, enableTruncate: config.dns.enableTruncate,
      });
      dnsPort = dns.port;
      stack.push(() => dns!.close());
    }

    // -join: the agent does not start unless one of the addresses answers (Consul's start_join).
    if (config.startJoinLan.length > 0) {
      try {
        const n = await pool.join(config.startJoinLan);
        log.info({ joined: n }, 'Join cluster completed');
      } catch (err) {
        throw new Error(`could not join the cluster through -join ${config.startJoinLan.join(', ')}: ${(err as Error).message}`, { cause: err });
      }
    }
    if (config.retryJoinLan.length > 0) {
      void retryJoin(pool, config.retryJoinLan, {
        intervalMs: config.retryIntervalLanMs, maxAttempts: config.retryMaxAttemptsLan, signal: ac.signal, logger: log,
      }).catch((err: Error) => {
        if (!ac.signal.aborted) log.error({ err: err.message }, 'retry join failed: giving up (-retry-max); this agent stays alone until joined');
      });
    }

    // -join-wan / -retry-join-wan: servers' WAN pool (a client agent has none: Consul warns).
    if (role.joinWan) await role.joinWan();
    else if (config.startJoinWan.length > 0 || config.retryJoinWan.length > 0) {
      log.warn({}, "(WAN) couldn't join: Err: Must be a server to join WAN cluster");
    }

    log.info({}, 'Trellis agent running!');
    return {
      nodeId, httpPort, dnsPort, server: role.server, pool,
      reload,
      stop: (o = {}) => {
        stopping ??= (async () => {
          if (o.leave ?? config.leaveOnTerminate) {
            try {
              await leave();
            } catch (err) {
              log.warn({ err }, 'leaving the cluster failed; stopping anyway');
            }
          }
          await stopAll();
        })();
        return stopping;
      },
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

/**
 * Registers, in the background, the services and checks from config files and those persisted from
 * earlier API registrations (config wins for the same ID). Registering needs a leader, so each is
 * retried every second until it succeeds or the agent stops; one that is refused (LocalStateError: e.g.
 * a script check while scripts are disabled) is logged and dropped without holding up the others.
 */
function startDefinitionsRegistration(
  config: RuntimeConfig, local: LocalState, persisted: FilePersistence | undefined, serviceTokens: Map<string, string> | undefined, log: Logger, signal: AbortSignal,
): void {
  const items: Array<{ what: string; run: () => Promise<void> }> = [];
  const configSidecars = new Set<string>();
  try {
    for (const def of config.services) {
      const s = serviceRegistrationFromJson(def);
      const sidecar = s.sidecar ? { sidecar: s.sidecar } : {};
      items.push({ what: `service ${s.service.ID} (configuration)`, run: () => local.addService(s.service, s.checks, { fromConfig: true, ...sidecar }) });
      // The sidecar comes from the file too: a copy persisted by an earlier API registration is not loaded.
      if (s.sidecar) configSidecars.add(`service ${sidecarIdFor(s.service.ID)} (configuration)`);
    }
    for (const def of config.checks) {
      const c = checkRegistrationFromJson(def);
      items.push({ what: `check ${c.CheckID} (configuration)`, run: () => local.addCheck(c, { fromConfig: true }) });
    }
  } catch (err) {
    log.error({ err }, 'a service or check in the configuration is invalid; none of them was registered');
    items.length = 0;
  }
  if (persisted) {
    const fromConfig = new Set([...items.map((i) => i.what), ...configSidecars]);
    const { services, sidecarIds, serviceTokens: tokens, checks, problems } = persisted.load();
    for (const p of problems) log.warn({}, `persisted registrations: ${p}`);
    for (const svc of services) {
      if (fromConfig.has(`service ${svc.ID} (configuration)`)) continue;
      // Before the service is added: its first sync carries its own token, as before the restart.
      const token = tokens.get(svc.ID);
      if (token !== undefined && serviceTokens && !serviceTokens.has(svc.ID)) serviceTokens.set(svc.ID, token);
      items.push({ what: `service ${svc.ID} (persisted)`, run: () => local.addService(svc, [], { asSidecar: sidecarIds.has(svc.ID) }) });
    }
    // Checks after services: a service's check needs its service.
    for (const c of checks) {
      if (fromConfig.has(`check ${c.CheckID} (configuration)`)) continue;
      items.push({ what: `check ${c.CheckID} (persisted)`, run: () => local.addCheck(c) });
    }
  }
  if (items.length === 0) return;
  void (async () => {
    let pending = items;
    for (let attempt = 0; pending.length > 0 && !signal.aborted; attempt++) {
      const retry: typeof items = [];
      for (const item of pending) {
        if (signal.aborted) return;
        try {
          await item.run();
        } catch (err) {
          if (err instanceof LocalStateError && err.refused) {
            log.error({ err: (err as Error).message }, `${item.what} cannot be registered; fix it and reload`);
          } else {
            retry.push(item);
            if (attempt % 10 === 0) log.warn({ err: (err as Error).message }, `could not register ${item.what} yet; retrying`);
          }
        }
      }
      if (retry.length === 0) {
        log.info({ registered: items.length }, 'registered services and checks from the configuration and the data directory');
        return;
      }
      pending = retry;
      await new Promise((r) => setTimeout(r, 1000).unref());
    }
  })();
}

/**
 * SIGHUP for services and checks (Consul's ReloadConfig: unload the ones from config, load the new
 * ones): those defined in the new configuration are registered (a changed one replaced, its checks
 * with it), those the old configuration defined and the new one does not are removed, and those
 * registered through the API are left alone. Everything is decoded before anything changes, so a
 * definition that does not decode refuses the whole reload. The log level changes too; other
 * settings keep their values until a restart.
 */
async function reloadDefinitions(prev: RuntimeConfig, next: RuntimeConfig, local: LocalState): Promise<void> {
  const services = next.services.map((def) => serviceRegistrationFromJson(def));
  const checks = next.checks.map((def) => checkRegistrationFromJson(def));
  const keepServices = new Set(services.map((s) => s.service.ID));
  const keepChecks = new Set(checks.map((c) => c.CheckID));
  const keepSidecars = new Set(services.filter((s) => s.sidecar).map((s) => sidecarIdFor(s.service.ID)));
  for (const def of prev.services) {
    const prevDef = serviceRegistrationFromJson(def);
    const id = prevDef.service.ID;
    if (!keepServices.has(id) && local.service(id)) await local.removeService(id);
    // A service that keeps its ID but no longer defines a sidecar loses it (Consul unloads and reloads both).
    const sidecarId = sidecarIdFor(id);
    if (prevDef.sidecar && !keepSidecars.has(sidecarId) && local.service(sidecarId)?.locallyRegisteredAsSidecar) await local.removeService(sidecarId);
  }
  for (const def of prev.checks) {
    const id = checkRegistrationFromJson(def).CheckID;
    if (!keepChecks.has(id) && local.check(id)) await local.removeCheck(id);
  }
  for (const s of services) await local.addService(s.service, s.checks, { fromConfig: true, replaceExistingChecks: true, ...(s.sidecar ? { sidecar: s.sidecar } : {}) });
  for (const c of checks) await local.addCheck(c, { fromConfig: true });
}

/**
 * Anti-entropy (local/antiEntropy.ts) on the real clock: full syncs of the local state to the
 * catalog every ae_interval (scaled by the gossip pool's size), soon after a server joins or a change
 * was kept locally, and every few seconds while such a change is unwritten.
 */
function startAntiEntropy(local: LocalState, pool: GossipPool, log: Logger, intervalMs: number, signal: AbortSignal): { soon(): void } {
  const ae = new AntiEntropy({
    sync: () => local.syncFull(),
    outOfSync: () => local.outOfSync,
    clusterSize: () => pool.members().length,
    intervalMs,
    onSynced: (writes) => log.info({ writes }, 'anti-entropy: synced local services and checks to the catalog'),
    onError: (err) => log.debug({ err: (err as Error).message }, 'anti-entropy sync failed; retrying'),
  });
  ae.start();
  // A server appearing (this agent joined, or servers came back) deserves a prompt sync.
  const onJoin = (row: { Tags: Record<string, string> }): void => {
    if (row.Tags.role === 'consul') ae.soon();
  };
  pool.on('member-join', onJoin);
  signal.addEventListener('abort', () => {
    ae.stop();
    pool.off('member-join', onJoin);
  }, { once: true });
  return ae;
}
