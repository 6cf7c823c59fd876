// `trellis connect gateway`: runs the mesh gateway (@trellis/gateway) in this process. Consul starts
// one with `consul connect envoy -gateway=mesh -register -service <name> -address <lan>
// -wan-address <wan>` (command/connect/envoy/envoy.go); the flags, the registration (Kind
// mesh-gateway, lan/wan tagged addresses, a TCP check) and the texts follow it. As for `connect
// proxy`, the gateway is imported only when the command runs: the process loads the CLI and the
// gateway, never the agent runtime.

import type { Command } from '../command.ts';
import { execute, makeContext } from '../command.ts';
import { HTTP_CLIENT_FLAGS, clientOptionsFrom } from '../http.ts';
import type { CliIO } from '../io.ts';
import { runUntilSignal } from './runUntilSignal.ts';

export const connectGatewayCommand: Command = {
  name: 'connect gateway',
  synopsis: 'Runs a Trellis Connect mesh gateway',
  help: `Usage: trellis connect gateway [options]

  Starts a mesh gateway and runs until an interrupt is received. The gateway
  reads the server name (SNI) of each TLS connection without terminating it
  and forwards the connection to a healthy instance of the named service in
  this datacenter, or to a mesh gateway of the named datacenter. It holds no
  certificates of the services it routes.

  Register the gateway with the local agent and start it:

    $ trellis connect gateway -register -service mesh-gateway \\
        -address 10.0.0.5:8443 -wan-address 198.51.100.5:8443`,
  flags: [
    { name: 'gateway', kind: 'string', usage: 'The type of gateway to run. Only "mesh" is supported (the default).' },
    { name: 'register', kind: 'bool', usage: 'Register a new gateway service before starting the gateway.' },
    { name: 'expose-servers', kind: 'bool', usage: 'Expose the servers for WAN federation via this mesh gateway.' },
    { name: 'service', kind: 'string', usage: 'Name of the gateway service to register (default "mesh-gateway").' },
    { name: 'proxy-id', kind: 'string', usage: "The gateway's service ID on the local agent (default: the service name)." },
    { name: 'address', kind: 'string', placeholder: 'host:port', usage: 'LAN address to advertise in the gateway service registration and to listen on (default 0.0.0.0:8443).' },
    { name: 'wan-address', kind: 'string', placeholder: 'host:port', usage: 'WAN address to advertise in the gateway service registration (default: the LAN address). Also listened on when it differs and belongs to this host.' },
    { name: 'deregister-after-critical', kind: 'string', usage: 'The amount of time the gateway service health check can be failing before being deregistered (default "6h").' },
    { name: 'metrics-addr', kind: 'string', placeholder: 'address', usage: 'A host:port on which to serve Prometheus metrics at /metrics (connections and bytes per target, refusals by cause). Disabled when empty.' },
    { name: 'hello-timeout', kind: 'string', usage: 'How long a connection may take to send its TLS ClientHello before it is closed (default "10s").' },
    { name: 'log-level', kind: 'string', usage: 'Specifies the log level.' },
    { name: 'log-json', kind: 'bool', usage: 'Output logs in JSON format.' },
    ...HTTP_CLIENT_FLAGS,
  ],
  async run(ctx, flags) {
    const { ui, io } = ctx;
    if (flags.args.length > 0) {
      ui.error('==> Should have no non-flag arguments.');
      return 1;
    }
    const kind = (flags.values.get('gateway') as string | undefined) ?? 'mesh';
    if (kind !== 'mesh') {
      ui.error(`==> Invalid gateway kind ${JSON.stringify(kind)}: only "mesh" is supported`);
      return 1;
    }
    const gw = await import('@trellis/gateway');
    const levelText = (flags.values.get('log-level') as string | undefined) ?? 'INFO';
    const level = gw.parseLogLevel(levelText);
    if (!level) {
      ui.error(`==> Invalid log level: ${JSON.stringify(levelText)}. Valid log levels are: ${gw.LOG_LEVELS.map((l) => l.toUpperCase()).join(', ')}`);
      return 1;
    }
    const timeoutText = (flags.values.get('hello-timeout') as string | undefined) ?? '10s';
    const helloTimeoutMs = parseDurationMs(timeoutText);
    if (helloTimeoutMs === undefined) {
      ui.error(`==> Invalid -hello-timeout ${JSON.stringify(timeoutText)}: want a duration such as 10s or 500ms`);
      return 1;
    }
    let httpAddr: string;
    let token: string;
    try {
      const c = clientOptionsFrom(flags, io.env);
      if (c.baseUrl.startsWith('https:')) throw new Error('HTTPS agent addresses are not supported by the gateway yet');
      httpAddr = c.baseUrl;
      token = c.token;
    } catch (err) {
      ui.error(`==> Error connecting to Trellis agent: ${(err as Error).message}`);
      return 1;
    }
    const logger = gw.createLogger({ level, json: flags.values.get('log-json') === true, name: 'mesh-gateway', write: (line) => io.stderr.write(line) });
    ui.output('==> Trellis Connect mesh gateway starting...');
    return runUntilSignal({
      io, ui, what: 'mesh gateway',
      start: () => gw.startMeshGateway({
        httpAddr, token: token || undefined, logger,
        address: (flags.values.get('address') as string | undefined) || '0.0.0.0:8443',
        wanAddress: (flags.values.get('wan-address') as string | undefined) || undefined,
        register: flags.values.get('register') === true,
        exposeServers: flags.values.get('expose-servers') === true,
        service: (flags.values.get('service') as string | undefined) || undefined,
        serviceId: (flags.values.get('proxy-id') as string | undefined) || undefined,
        deregisterAfterCritical: (flags.values.get('deregister-after-critical') as string | undefined) || undefined,
        metricsAddr: (flags.values.get('metrics-addr') as string | undefined) || undefined,
        helloTimeoutMs,
      }),
      isConfigError: (err) => err instanceof gw.GatewayConfigError,
      banner: (gateway) => {
        ui.info(`            Service ID: ${gateway.serviceId}`);
        ui.info(`            Datacenter: ${gateway.datacenter}`);
        ui.info(`             Transport: ${gateway.transport === 'raw' ? 'raw (libuv TCP handles)' : 'net (net.Socket)'}`);
        for (const a of gateway.addresses()) ui.info(`             Listening: ${a.address}:${a.port}`);
        const m = gateway.metricsAddress();
        if (m) ui.info(`               Metrics: http://${m.address}:${m.port}/metrics`);
      },
    });
  },
};

/** "10s", "500ms", "1m": milliseconds; undefined if not such a duration or not positive. */
function parseDurationMs(s: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)$/.exec(s.trim());
  if (!m) return undefined;
  const ms = Number(m[1]) * (m[2] === 'ms' ? 1 : m[2] === 's' ? 1000 : 60_000);
  return ms > 0 ? ms : undefined;
}

/** `trellis connect gateway <args>` without loading the rest of the CLI (see main.ts). */
export function runConnectGateway(args: readonly string[], io: CliIO): Promise<number> {
  return execute(connectGatewayCommand, args, makeContext(io));
}
