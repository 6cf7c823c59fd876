// The run loop `trellis connect proxy` and `trellis connect gateway` share: start, print the
// banner, stream logs until SIGINT or SIGTERM, stop. A signal during start-up stops the start (it
// finishes in the background and is closed at once) rather than waiting for certificates that may
// never come. Texts are Consul's (command/connect/proxy/proxy.go).
import type { CliIO, SignalName, Ui } from '../io.ts';

export interface RunUntilSignalOptions<T extends { stop(): Promise<void> }> {
  io: CliIO;
  ui: Ui;
  /** "proxy", "mesh gateway": in "==> Trellis Connect <what> shutdown". */
  what: string;
  start(): Promise<T>;
  /** A start-up error the user's configuration caused ("Error preparing configuration"). */
  isConfigError(err: unknown): boolean;
  /** The lines after a successful start (IDs, listeners). */
  banner(started: T): void;
}

export async function runUntilSignal<T extends { stop(): Promise<void> }>(o: RunUntilSignalOptions<T>): Promise<number> {
  const { io, ui } = o;
  const stopRequested = new Promise<SignalName>((resolve) => {
    const on = (sig: SignalName) => () => { io.signals.off('SIGINT', handlers.SIGINT); io.signals.off('SIGTERM', handlers.SIGTERM); resolve(sig); };
    const handlers = { SIGINT: on('SIGINT'), SIGTERM: on('SIGTERM') };
    io.signals.on('SIGINT', handlers.SIGINT);
    io.signals.on('SIGTERM', handlers.SIGTERM);
  });
  const shutdown = `==> Trellis Connect ${o.what} shutdown`;
  let running: T;
  try {
    const started = o.start();
    const first = await Promise.race([started.then((s) => ({ s })), stopRequested.then((sig) => ({ sig }))]);
    if ('sig' in first) {
      void started.then((s) => s.stop(), () => undefined);
      ui.output(shutdown);
      return 0;
    }
    running = first.s;
  } catch (err) {
    const msg = (err as Error).message;
    ui.error(o.isConfigError(err) ? `==> Error preparing configuration: ${msg}` : `==> Failed initializing ${o.what === 'proxy' ? 'proxy' : 'gateway'}: ${msg}`);
    return 1;
  }
  o.banner(running);
  ui.info('');
  ui.output('==> Log data will now stream in as it occurs:\n');
  await stopRequested;
  await running.stop();
  ui.output(shutdown);
  return 0;
}
