// `trellis agent`: build and validate the configuration, start the agent (../../agent.ts), keep the
// pid file for its lifetime, and turn signals into a graceful stop (SIGINT/SIGTERM) or a reload
// (SIGHUP). Messages about the agent's own lifecycle are "==> ..." lines, as Consul prints them.

import fs from 'node:fs';
import type { Command, AgentHandle, AgentModule, CommandContext } from '../command.ts';
import { AGENT_FLAGS } from '../../config/agentFlags.ts';
import { buildRuntimeConfig, type RuntimeConfig } from '../../config/runtime.ts';
import { ConfigError } from '../../config/errors.ts';
import { FlagError } from '../../config/flags.ts';
import type { SignalName } from '../io.ts';

/** The agent runtime, loaded only by `trellis agent` (other commands never load libp2p, fastify, ...).
 *  A literal specifier, so the bundler (build.ts) includes it. */
async function defaultLoadAgent(): Promise<AgentModule> {
  return await import('../../agent.ts');
}

/** Signals closer together than this are one signal delivered twice (see onStop). */
const DUPLICATE_SIGNAL_MS = 250;

/** Go's os.Signal names, which Consul prints. */
const SIGNAL_WORDS: Record<SignalName, string> = { SIGINT: 'interrupt', SIGTERM: 'terminated', SIGHUP: 'hangup' };

export function banner(c: RuntimeConfig): string {
  const rows: Array<[string, string]> = [
    ['Version', `'${c.version}'`],
    ['Node ID', c.nodeId ? `'${c.nodeId}'` : '(generated at start)'],
    ['Node name', `'${c.nodeName}'`],
    ['Datacenter', `'${c.datacenter}' (Segment: '${c.serverMode ? '<all>' : ''}')`],
    ['Server', `${c.serverMode} (Bootstrap: ${c.bootstrap})`],
    ['Client Addr', `[${c.clientAddrs.join(' ')}] (HTTP: ${c.ports.http}, HTTPS: ${c.ports.https}, gRPC: ${c.ports.grpc}, DNS: ${c.ports.dns})`],
    ['Cluster Addr', `${c.advertiseAddrLan} (LAN: ${c.ports.serfLan}, WAN: ${c.ports.serfWan})`],
    ['Encrypt', `Gossip: ${c.encryptKey !== ''}, TLS-Outgoing: ${c.tls.internalRpc.verifyOutgoing}, TLS-Incoming: ${c.tls.internalRpc.verifyIncoming}`],
    ['Data Dir', c.devMode ? '(in memory: -dev)' : `'${c.dataDir}'`],
  ];
  return rows.map(([k, v]) => `${k.padStart(18)}: ${v}`).join('\n');
}

function removePid(file: string): void {
  if (!file) return;
  try {
    fs.rmSync(file, { force: true });
  } catch {
    // Nothing useful to do if it cannot be removed at exit; a stale pid file is overwritten next start.
  }
}

export async function runAgent(ctx: CommandContext, argv: readonly string[]): Promise<number> {
  const { ui } = ctx;
  let config: RuntimeConfig;
  let warnings: string[];
  try {
    ({ config, warnings } = buildRuntimeConfig(argv));
  } catch (err) {
    if (err instanceof ConfigError || err instanceof FlagError) {
      ui.error(`==> ${err.message}`);
      return 1;
    }
    throw err;
  }
  for (const w of warnings) ui.error(`==> WARNING: ${w}`);
  if (config.bootstrap && !config.devMode) ui.error('==> WARNING: Bootstrap mode enabled! Do not enable unless necessary');
  if (config.devMode) ui.error('==> WARNING: Dev mode: all state is kept in memory and lost when the agent stops; do not use it in production');

  // Consul's start-up order: the data dir (with its parents) exists before the pid file is
  // written, so `-data-dir /x/n1/data -pid-file /x/n1/pid` works when /x/n1 does not exist yet.
  if (config.dataDir && !config.devMode) {
    try {
      fs.mkdirSync(config.dataDir, { recursive: true, mode: 0o755 });
    } catch (err) {
      ui.error(`==> Error creating data dir ${config.dataDir}: ${(err as Error).message}`);
      return 1;
    }
  }
  if (config.pidFile) {
    try {
      fs.writeFileSync(config.pidFile, String(process.pid), { mode: 0o644 });
    } catch (err) {
      ui.error(`==> Could not write pid file ${config.pidFile}: ${(err as Error).message}`);
      return 1;
    }
  }

  ui.output('==> Starting Trellis agent...');
  ui.output(banner(config));
  ui.output('');
  ui.output('==> Log data will now stream in as it occurs:\n');

  // Signals that arrive while starting are remembered and acted on once start settles.
  let resolveSignal!: (sig: SignalName) => void;
  const firstSignal = new Promise<SignalName>((r) => { resolveSignal = r; });
  let stopping = false;
  let forced: ((code: number) => void) | undefined;
  const forcedExit = new Promise<number>((r) => { forced = r; });
  let handle: AgentHandle | undefined;
  let reloading = Promise.resolve();

  let firstSignalAt = 0;
  const onStop = (sig: SignalName) => () => {
    // Under a wrapper that forwards signals to its child in the same process group (`npm start`),
    // a Ctrl-C reaches us twice: from the terminal and forwarded, a millisecond apart. Only a signal that comes
    // noticeably later is the user insisting.
    if (stopping && Date.now() - firstSignalAt < DUPLICATE_SIGNAL_MS) return;
    if (stopping) {
      ui.error(`==> Caught second signal ${SIGNAL_WORDS[sig]}. Exiting`);
      forced?.(1);
      return;
    }
    stopping = true;
    firstSignalAt = Date.now();
    ui.output(`==> Caught signal: ${SIGNAL_WORDS[sig]}`);
    resolveSignal(sig);
  };
  const onHup = () => {
    ui.output(`==> Caught signal: ${SIGNAL_WORDS.SIGHUP}`);
    reloading = reloading.then(() => reload(ctx, argv, handle));
  };
  const handlers = { SIGINT: onStop('SIGINT'), SIGTERM: onStop('SIGTERM') };
  ctx.io.signals.on('SIGINT', handlers.SIGINT);
  ctx.io.signals.on('SIGTERM', handlers.SIGTERM);
  // Node's default for SIGHUP is to exit; Consul reloads instead.
  ctx.io.signals.on('SIGHUP', onHup);
  try {
    try {
      const mod = await (ctx.loadAgent ?? defaultLoadAgent)();
      handle = await mod.startAgent(config, { reloadConfig: () => buildRuntimeConfig(argv).config });
    } catch (err) {
      ui.error(`==> Error starting agent: ${(err as Error).message ?? String(err)}`);
      return 1;
    }
    ui.output('==> Trellis agent running!');

    const outcome = await Promise.race([firstSignal, forcedExit]);
    if (typeof outcome === 'number') return outcome;
    ui.output('==> Gracefully shutting down agent...');
    // Consul: SIGTERM leaves the cluster with leave_on_terminate (clients by default), SIGINT
    // unless skip_leave_on_interrupt (servers by default).
    const leave = outcome === 'SIGINT' ? !config.skipLeaveOnInterrupt : config.leaveOnTerminate;
    const stopped = await Promise.race([
      handle.stop({ leave }).then(() => 0, (err: unknown) => {
        ui.error(`==> Error during shutdown: ${(err as Error).message ?? String(err)}`);
        return 1;
      }),
      forcedExit,
    ]);
    if (stopped === 0) ui.output('==> Agent stopped');
    return stopped;
  } finally {
    ctx.io.signals.off('SIGINT', handlers.SIGINT);
    ctx.io.signals.off('SIGTERM', handlers.SIGTERM);
    ctx.io.signals.off('SIGHUP', onHup);
    removePid(config.pidFile);
  }
}

async function reload(ctx: CommandContext, argv: readonly string[], handle: AgentHandle | undefined): Promise<void> {
  let next: RuntimeConfig;
  try {
    ({ config: next } = buildRuntimeConfig(argv));
  } catch (err) {
    ctx.ui.error(`==> Failed to reload configs: ${(err as Error).message}`);
    return;
  }
  if (!handle?.reload) {
    ctx.ui.error('==> Reload is not supported by this agent yet; restart it to apply configuration changes');
    return;
  }
  try {
    await handle.reload(next);
    ctx.ui.output('==> Reloaded configuration');
  } catch (err) {
    ctx.ui.error(`==> Failed to reload configs: ${(err as Error).message}`);
  }
}

export const agentCommand: Command = {
  name: 'agent',
  synopsis: 'Runs a Trellis agent',
  help: `Usage: trellis agent [options]

  Starts the Trellis agent and runs until an interrupt is received. The
  agent represents a single node in a cluster.

      $ trellis agent -dev
      $ trellis agent -server -bootstrap-expect=3 -data-dir=/var/lib/trellis -retry-join=10.0.0.2`,
  flags: AGENT_FLAGS,
  async run(ctx, _flags, argv) {
    return runAgent(ctx, argv);
  },
};
