// `npm run chaos -- --servers 5 --duration 120s --faults partition,kill,pause --seed 42` (or --smoke):
// parses the options (refusing bad ones before anything starts), runs one chaos run and exits 0 when
// every checker passed, 1 on a violation, 2 on bad input or a run that could not be carried out.
// Ctrl-C: the agents are killed and every namespace and rule removed (cluster.ts, netns.ts).
import { parseArgs, USAGE } from './options.ts';
import { runChaos } from './run.ts';

let opts;
try {
  opts = parseArgs(process.argv.slice(2));
} catch (err) {
  process.stderr.write(`chaos: ${(err as Error).message}\n`);
  process.exit(2);
}
if (opts === 'help') {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
try {
  if (opts.federation) {
    // Loaded only here: the federation topology installs its own SIGINT handler when loaded, which
    // the single-datacenter run's Ctrl-C handling (cluster.ts) must not get.
    const { runFederationChaos } = await import('./federation.ts');
    const { report } = await runFederationChaos({ durationMs: opts.durationMs, seed: opts.seed, partitions: opts.partitions ?? 0, outDir: opts.outDir });
    process.exit(report.verdict.ok ? 0 : 1);
  }
  const { report } = await runChaos(opts);
  process.exit(report.verdict.ok ? 0 : 1);
} catch (err) {
  process.stderr.write(`chaos: ${(err as Error).message}\n`);
  process.exit(2);
}
