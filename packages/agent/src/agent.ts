// The agent: a composition of parts started in dependency order and stopped in reverse.
//   server role: server port + Raft (server/server.ts) → leader routines → local state → HTTP → DNS
// Client agents (no -server) arrive with gossip; until then `trellis agent` must run as a server.
import { createLogger, type Logger } from './logger.ts';
import type { RuntimeConfig } from './config/runtime.ts';
import { resolveNodeId } from './server/raftServer.ts';
import { Server } from './server/server.ts';
import { SessionTimers } from './server/sessionTimers.ts';
import { LeaderRoutines } from './server/leader.ts';
import { catalogDnsLookup } from './server/dnsLookup.ts';
import { registerOperatorRoutes } from './server/operatorRoutes.ts';
import { LocalState } from './http/local.ts';
import { serviceRegistrationFromJson, checkRegistrationFromJson } from './http/routes/agent.ts';
import { createHttpServer, type HttpServer } from './http/server.ts';
import type { AgentBackend } from './http/backend.ts';
import { startDnsServer, type DnsServer } from './dns/index.ts';
import type { Command } from './state/index.ts';

export interface Agent {
  readonly nodeId: string;
  readonly httpPort: number;
  readonly dnsPort: number;
  readonly server: Server;
  /** Stops the agent. With `leave` (default: leave_on_terminate), leaves the cluster first. */
  stop(opts?: { leave?: boolean }): Promise<void>;
}

/** The backend the HTTP API runs on, with the read hook clustering adds (see the report to http/). */
export type ServerBackend = AgentBackend & {
  /** Default-consistency reads: resolves once the local store is as current as the leader's. */
  defaultRead(signal?: AbortSignal): Promise<void>;
};

export async function startAgent(config: RuntimeConfig, opts: { logger?: Logger } = {}): Promise<Agent> {
  const logger = opts.logger ?? createLogger({ level: config.logLevel.toLowerCase(), json: config.logJson });
  const log = logger.child({ component: 'agent' });
  if (!config.serverMode) {
    throw new Error('client agents (without -server) need gossip, which is not built yet: run with -server or -dev');
  }
  const stack: Array<() => Promise<void> | void> = [];
  const stopAll = async () => {
    for (const fn of stack.reverse()) {
      try { await fn(); } catch (err) { log.error({ err }, 'error while stopping'); }
    }
    stack.length = 0;
  };

  try {
    const nodeId = await resolveNodeId(config);
    log.info({ node: config.nodeName, id: nodeId, datacenter: config.datacenter, server: true, dev: config.devMode }, 'starting Trellis agent');

    const server = new Server({ config, nodeId, logger });
    const apply = (cmd: Command) => server.apply(cmd);
    const sessions = new SessionTimers(server.store, apply, logger);
    server.sessions = sessions;
    const leader = new LeaderRoutines({
      config, nodeId, store: server.store, apply, sessions, logger,
      servers: () => server.discovery.servers().filter((s) => s.dc === config.datacenter).map((s) => {
        const m = /^\[?(.*?)\]?:(\d+)$/.exec(s.raftAddr);
        return { id: s.id, name: s.name, address: m?.[1] ?? s.raftAddr, port: Number(m?.[2] ?? config.ports.server), status: s.status };
      }),
    });
    server.discovery.on('change', () => void leader.reconcileServers());
    server.raft.node.on('leaderChange', (e) => {
      void leader.setLeader(e.isLocal).catch((err) => log.error({ err }, 'leader routines failed'));
    });
    // A restored snapshot replaces the catalog and sessions: the leader registers itself again and
    // re-arms every session timer from the restored table.
    server.raft.fsm.events.on('restored', () => {
      if (!server.raft.node.isLeader()) return;
      void leader.setLeader(true).catch((err) => log.error({ err }, 'leader routines after restore failed'));
    });
    await server.start();
    stack.push(() => server.stop());
    stack.push(() => leader.stop());

    const local = new LocalState({
      node: {
        Node: config.nodeName, ID: nodeId, Address: config.advertiseAddrLan, Datacenter: config.datacenter,
        TaggedAddresses: config.taggedAddresses, Meta: config.nodeMeta,
      },
      apply, store: server.store,
      onError: (err, what) => log.warn({ err }, `local state: ${what}`),
    });

    // Services and checks from config files (`services`, `checks`) go through the same decoder and
    // validation as PUT /v1/agent/service/register; a bad one already failed config validation or
    // fails here with a clear error. Registering needs a leader, so it runs in the background and
    // retries until it succeeds (a server of a forming cluster has no leader at start).
    const registerDefinitions = startDefinitionsRegistration(config, local, log);
    stack.push(() => registerDefinitions.abort());

    const backend: ServerBackend = {
      store: server.store,
      apply,
      consistentRead: (signal) => server.consistentRead(signal),
      defaultRead: (signal) => server.defaultRead(signal),
      raftStatus: () => server.raftStatus(),
      config: { ...config, nodeId },
      local,
      sessionTimers: {
        created: (id, ttlNs) => sessions.created(id, ttlNs),
        // Renewals reset the timer on the leader, wherever they arrive.
        renew: (id) => server.renewSession(id),
        destroyed: (id) => sessions.destroyed(id),
      },
      leave: async () => {
        await server.leave();
        setTimeout(() => process.kill(process.pid, 'SIGTERM'), 50).unref();
      },
    };

    let http: HttpServer | undefined;
    let httpPort = -1;
    if (config.ports.http > 0) {
      const host = config.httpAddrs[0] ?? '127.0.0.1';
      http = createHttpServer(backend, { host, port: config.ports.http, logger });
      registerOperatorRoutes(http.app, { server, backend });
      httpPort = (await http.listen()).port;
      stack.push(() => http!.close());
    }
    let dns: DnsServer | undefined;
    let dnsPort = -1;
    if (config.ports.dns > 0) {
      const host = config.dnsAddrs[0] ?? '127.0.0.1';
      dns = await startDnsServer({
        host, port: config.ports.dns, domain: config.domain, datacenter: config.datacenter, nodeName: config.nodeName,
        lookup: catalogDnsLookup(server.store, config.datacenter), logger: logger.child({ component: 'agent.dns' }),
        ttlSeconds: Math.round(config.dns.nodeTtlMs / 1000), udpAnswerLimit: config.dns.udpAnswerLimit, enableTruncate: config.dns.enableTruncate,
      });
      dnsPort = dns.port;
      stack.push(() => dns!.close());
    }
    log.info({}, 'Trellis agent running!');
    return {
      nodeId, httpPort, dnsPort, server,
      stop: async (o = {}) => {
        if (o.leave ?? config.leaveOnTerminate) {
          try {
            await server.leave();
          } catch (err) {
            log.warn({ err }, 'leaving the cluster failed; stopping anyway');
          }
        }
        await stopAll();
      },
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

/** Registers config-file services and checks into the local state, retrying every second until it
 *  succeeds or the agent stops. Returns the controller that stops it. */
function startDefinitionsRegistration(config: RuntimeConfig, local: LocalState, log: Logger): AbortController {
  const ac = new AbortController();
  if (config.services.length === 0 && config.checks.length === 0) return ac;
  void (async () => {
    let decoded;
    try {
      decoded = {
        services: config.services.map((def) => serviceRegistrationFromJson(def)),
        checks: config.checks.map((def) => checkRegistrationFromJson(def)),
      };
    } catch (err) {
      log.error({ err }, 'a service or check in the configuration is invalid; it was not registered');
      return;
    }
    for (let attempt = 0; !ac.signal.aborted; attempt++) {
      try {
        for (const s of decoded.services) await local.addService(s.service, s.checks);
        for (const c of decoded.checks) await local.addCheck(c);
        log.info({ services: decoded.services.length, checks: decoded.checks.length }, 'registered services and checks from the configuration');
        return;
      } catch (err) {
        if (attempt % 10 === 0) log.warn({ err }, 'could not register configured services and checks yet; retrying');
        await new Promise((r) => setTimeout(r, 1000).unref());
      }
    }
  })();
  return ac;
}
