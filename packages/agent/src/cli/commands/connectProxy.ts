// `trellis connect proxy`: runs the built-in sidecar proxy (@trellis/gateway) in this process, so
// the PID a supervisor holds is the proxy. Flags, texts and exit codes are Consul's
// (command/connect/proxy/proxy.go). The gateway is imported only when the command runs: the proxy
// process loads the CLI and the gateway, never the agent runtime (no libp2p, Raft or fastify).

import type { Command } from '../command.ts';
import { execute, makeContext } from '../command.ts';
import { HTTP_CLIENT_FLAGS, clientOptionsFrom } from '../http.ts';
import type { CliIO } from '../io.ts';
import { runUntilSignal } from './runUntilSignal.ts';

export const connectProxyCommand: Command = {
  name: 'connect proxy',
  synopsis: 'Runs a Trellis Connect proxy',
  help: `Usage: trellis connect proxy [options]

  Starts a Trellis Connect proxy and runs until an interrupt is received.
  The proxy accepts inbound mutual TLS connections for a service, authorizes
  them with intentions and forwards them to the local application, and opens
  a local listener for each upstream that connects to a healthy instance of
  the upstream's proxy over mutual TLS.

  The proxy learns its configuration, certificates and CA roots from the
  proxy service registered with the local agent (a connect-proxy, usually the
  sidecar service of a service definition):

    $ trellis connect proxy -sidecar-for web

  Only the agent-API configuration modes (-sidecar-for, -proxy-id) are
  supported; -service/-upstream/-listen flag modes are not.`,
  flags: [
    { name: 'proxy-id', kind: 'string', usage: "The proxy's ID on the local agent." },
    { name: 'sidecar-for', kind: 'string', usage: 'The ID of a service instance on the local agent that this proxy should become a sidecar for. It requires that the proxy service is registered with the agent as a connect-proxy with Proxy.DestinationServiceID set to this value. If more than one such proxy is registered it will fail.' },
    { name: 'log-level', kind: 'string', usage: 'Specifies the log level.' },
    { name: 'log-json', kind: 'bool', usage: 'Output logs in JSON format.' },
    { name: 'metrics-addr', kind: 'string', placeholder: 'address', usage: 'A host:port on which to serve Prometheus metrics at /metrics (connections, bytes, TLS handshake failures, intention denials). Disabled when empty.' },
    { name: 'service', kind: 'string', usage: 'Name of the service this proxy is representing (flag configuration mode: not supported by Trellis yet).' },
    // Consul's flag-mode and debugging flags: accepted by name so scripts get a clear refusal.
    { name: 'upstream', kind: 'list', usage: "Upstream service to support connecting to, as 'name:addr' (flag configuration mode: not supported by Trellis yet)." },
    { name: 'service-addr', kind: 'string', usage: 'Address of the local service to proxy (flag configuration mode: not supported by Trellis yet).' },
    { name: 'listen', kind: 'string', usage: 'Address to listen for inbound connections to the proxied service (flag configuration mode: not supported by Trellis yet).' },
    { name: 'register', kind: 'bool', usage: 'Self-register with the local agent (flag configuration mode: not supported by Trellis yet).' },
    { name: 'register-id', kind: 'string', usage: 'ID suffix for the service (flag configuration mode: not supported by Trellis yet).' },
    { name: 'pprof-addr', kind: 'string', usage: 'Go pprof endpoints in Consul; not supported by Trellis (use -metrics-addr).' },
    ...HTTP_CLIENT_FLAGS,
  ],
  async run(ctx, flags) {
    const { ui, io } = ctx;
    if (flags.args.length > 0) {
      ui.error('==> Should have no non-flag arguments.');
      return 1;
    }
    const unsupported = ['service', 'upstream', 'service-addr', 'listen', 'register', 'register-id', 'pprof-addr'].filter((f) => flags.values.has(f));
    if (unsupported.length > 0) {
      ui.error(`==> ${unsupported.map((f) => `-${f}`).join(', ')}: not supported by Trellis yet. Register a connect-proxy service (Connect.SidecarService) and start the proxy with -sidecar-for or -proxy-id.`);
      return 1;
    }
    const proxyId = (flags.values.get('proxy-id') as string | undefined) || io.env['CONNECT_PROXY_ID'] || '';
    const sidecarFor = (flags.values.get('sidecar-for') as string | undefined) || io.env['CONNECT_SIDECAR_FOR'] || '';
    const gw = await import('@trellis/gateway');
    const levelText = (flags.values.get('log-level') as string | undefined) ?? 'INFO';
    const level = gw.parseLogLevel(levelText);
    if (!level) {
      ui.error(`==> Invalid log level: ${JSON.stringify(levelText)}. Valid log levels are: ${gw.LOG_LEVELS.map((l) => l.toUpperCase()).join(', ')}`);
      return 1;
    }
    if (!proxyId && !sidecarFor) {
      ui.error('==> Error preparing configuration: -service or -proxy-id must be specified so that proxy can configure itself.');
      return 1;
    }
    let httpAddr: string;
    let token: string;
    try {
      const c = clientOptionsFrom(flags, io.env);
      if (c.baseUrl.startsWith('https:')) throw new Error('HTTPS agent addresses are not supported by the proxy yet');
      httpAddr = c.baseUrl;
      token = c.token;
    } catch (err) {
      ui.error(`==> Error connecting to Trellis agent: ${(err as Error).message}`);
      return 1;
    }
    const logger = gw.createLogger({ level, json: flags.values.get('log-json') === true, write: (line) => io.stderr.write(line) });
    ui.output('==> Trellis Connect proxy starting...');
    ui.info('    Configuration mode: Agent API');
    if (!proxyId) ui.info(`        Sidecar for ID: ${sidecarFor}`);
    // The launcher (bin/trellis) preloads jemalloc where the system has it: say which allocator runs,
    // and what to do when it is glibc's (a burst of connections then stays resident).
    const jemalloc = (process.env.LD_PRELOAD ?? '').split(/[:\s]+/).find((l) => /libjemalloc\.so/.test(l));
    ui.info(`      Memory allocator: ${jemalloc ? `jemalloc (${jemalloc})` : 'glibc malloc (install libjemalloc2 so that memory freed after a burst of connections goes back to the system)'}`);

    return runUntilSignal({
      io, ui, what: 'proxy',
      start: () => gw.startSidecarProxy({
        httpAddr, token: token || undefined,
        proxyServiceId: proxyId || undefined, sidecarFor: sidecarFor || undefined,
        metricsAddr: (flags.values.get('metrics-addr') as string | undefined) || undefined,
        logger,
      }),
      isConfigError: (err) => err instanceof gw.ProxyConfigError,
      banner: (proxy) => {
        ui.info(`              Proxy ID: ${proxy.proxyId}`);
        const pub = proxy.publicAddress();
        if (pub) ui.info(`       Public listener: ${pub.address}:${pub.port}`);
        const m = proxy.metricsAddress();
        if (m) ui.info(`               Metrics: http://${m.address}:${m.port}/metrics`);
      },
    });
  },
};

/** `trellis connect proxy <args>` without loading the rest of the CLI (see main.ts). */
export function runConnectProxy(args: readonly string[], io: CliIO): Promise<number> {
  return execute(connectProxyCommand, args, makeContext(io));
}
