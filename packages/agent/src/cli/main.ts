// Entry point of the `trellis` command (bin/trellis, an sh launcher, execs Node 24 on this file). Everything testable lives in run.ts; this file only binds it to the real process.
import module from 'node:module';

// Cache compiled modules (and their stripped TypeScript) on disk: start-up is dominated by loading
// a few hundred modules, and the cache roughly halves it from the second start on.
module.enableCompileCache?.();

const argv = process.argv.slice(2);
const { processIO } = await import('./io.ts');
let code: number;
if (argv[0] === 'connect' && argv[1] === 'proxy') {
  // The sidecar proxy is a long-running process with a memory budget (60 MB idle; Node with tls and
  // http loaded is ~52 MB): it loads its own command and the gateway, not every other command.
  const { runConnectProxy } = await import('./commands/connectProxy.ts');
  code = await runConnectProxy(argv.slice(2), processIO());
} else if (argv[0] === 'connect' && argv[1] === 'gateway') {
  // The mesh gateway, likewise: its own command and the gateway only.
  const { runConnectGateway } = await import('./commands/connectGateway.ts');
  code = await runConnectGateway(argv.slice(2), processIO());
} else {
  const { runCli } = await import('./run.ts');
  code = await runCli(argv, processIO());
}
// Exit explicitly: idle keep-alive sockets (fetch) or stdin listeners must not hold the process
// open after the command is done. Writes to pipes and files are synchronous on Linux, and for
// TTYs we wait for the stream to drain first.
process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
