// The simulator's command line (root: `npm run sim -- …`).
//
//   npm run sim -- --seeds 10000 [--start N] [--steps N] [--quiet N] [--trace N] [--bug NAME] [--stop]
//   SEED=<n> npm run sim            replay one seed and print its trace
//
// Each seed is an independent simulated cluster run; the same seed always produces the same run,
// so a failing seed is a complete bug report.
import { parseArgs } from 'node:util';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { runSeed, DEFAULT_DRAIN_STEPS, DEFAULT_QUIET_STEPS, DEFAULT_STEPS, type RunResult } from './run.ts';
import { NO_FAULTS, type FaultRates, type SimBug } from './cluster.ts';

const BUGS: readonly SimBug[] = ['forgetVoteOnCrash', 'ignoreSync', 'localReads', 'neverHeal', 'sendBeforeSync'];

function usage(problem?: string): never {
  if (problem) process.stderr.write(`sim: ${problem}\n`);
  process.stderr.write([
    'usage: npm run sim -- [--seeds N] [--start N] [--steps N] [--quiet N] [--drain N] [--trace N] [--bug NAME] [--set k=v]… [--rate k=p]… [--stop] [--jobs N]',
    '       SEED=<n> npm run sim   (replay one seed with its trace)',
    `  --seeds  number of seeds to run (default 100)`,
    `  --start  first seed (default 1)`,
    `  --steps  fault-phase steps per seed (default ${DEFAULT_STEPS})`,
    `  --quiet  fault-free steps after the faults, clients active (default ${DEFAULT_QUIET_STEPS})`,
    `  --drain  bound on the steps to converge once clients stop (liveness; default ${DEFAULT_DRAIN_STEPS})`,
    `  --trace  trace lines to print for a failure (default 60; a replay prints 400)`,
    `  --bug    inject a deliberate bug to see the checkers catch it: ${BUGS.join(', ')}`,
    `  --set    pin a cluster config field for every seed, e.g. --set preVote=false --set initialVoters=5`,
    `  --rate   override a per-step fault probability, e.g. --rate crash=0.02 --rate membership=0.03`,
    `  --stop   stop at the first failing seed`,
    `  --jobs   worker threads to spread seeds over (default 1; seeds and their runs are unchanged)`,
    '',
  ].join('\n'));
  process.exit(2);
}

function intOption(name: string, raw: string | undefined, fallback: number, min = 0): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < min) usage(`--${name} must be an integer ≥ ${min}, got ${JSON.stringify(raw)}`);
  return n;
}

let parsed;
try {
  parsed = parseArgs({
    options: {
      seeds: { type: 'string' }, start: { type: 'string' }, steps: { type: 'string' }, quiet: { type: 'string' }, drain: { type: 'string' },
      trace: { type: 'string' }, bug: { type: 'string' }, stop: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
      set: { type: 'string', multiple: true }, rate: { type: 'string', multiple: true }, jobs: { type: 'string' },
    },
    strict: true,
  });
} catch (err) {
  usage((err as Error).message);
}
const v = parsed.values;
if (v.help) usage();
if (v.bug !== undefined && !BUGS.includes(v.bug as SimBug)) usage(`--bug must be one of ${BUGS.join(', ')}, got ${JSON.stringify(v.bug)}`);
const bug = v.bug as SimBug | undefined;
const steps = intOption('steps', v.steps, DEFAULT_STEPS);
const quietSteps = intOption('quiet', v.quiet, DEFAULT_QUIET_STEPS);
const drainSteps = intOption('drain', v.drain, DEFAULT_DRAIN_STEPS);
const SETTABLE = ['initialVoters', 'spareNodes', 'electionTicks', 'heartbeatTicks', 'preVote', 'checkQuorum', 'readOnly',
  'maxInflight', 'maxMsgBytes', 'fsyncSteps', 'snapshotEvery', 'snapshotTrail', 'clients', 'keys', 'clientTimeout', 'readIndexShare'] as const;
const pinned: Record<string, unknown> = {};
for (const kv of v.set ?? []) {
  const eq = kv.indexOf('=');
  const key = kv.slice(0, eq);
  if (eq < 1 || !(SETTABLE as readonly string[]).includes(key)) usage(`--set takes field=value with field one of ${SETTABLE.join(', ')}; got ${JSON.stringify(kv)}`);
  const raw = kv.slice(eq + 1);
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    value = raw; // a bare word such as lease
  }
  pinned[key] = value;
}
const rates: Partial<FaultRates> = {};
for (const kv of v.rate ?? []) {
  const [key, raw] = kv.split('=');
  const p = Number(raw);
  if (!key || !(key in NO_FAULTS) || raw === undefined || !(p >= 0 && p <= 1)) {
    usage(`--rate takes name=probability with name one of ${Object.keys(NO_FAULTS).join(', ')} and 0 ≤ p ≤ 1; got ${JSON.stringify(kv)}`);
  }
  rates[key as keyof FaultRates] = p;
}
const envSeed = process.env.SEED;
const replay = envSeed !== undefined && envSeed !== '';
const start = replay ? intOption('SEED', envSeed, 0) : intOption('start', v.start, 1);
const count = replay ? 1 : intOption('seeds', v.seeds, 100, 1);
const traceLines = intOption('trace', v.trace, replay ? 400 : 60);

function replayHint(seed: number): string {
  const extra = [
    steps !== DEFAULT_STEPS ? `--steps ${steps}` : '',
    quietSteps !== DEFAULT_QUIET_STEPS ? `--quiet ${quietSteps}` : '',
    drainSteps !== DEFAULT_DRAIN_STEPS ? `--drain ${drainSteps}` : '',
    bug ? `--bug ${bug}` : '',
    ...(v.set ?? []).map((kv) => `--set ${kv}`),
    ...(v.rate ?? []).map((kv) => `--rate ${kv}`),
  ].filter(Boolean).join(' ');
  return `SEED=${seed} npm run sim${extra ? ` -- ${extra}` : ''}`;
}

function formatFailure(r: RunResult): string {
  const out: string[] = [];
  out.push(`\nFAIL seed ${r.seed}`);
  for (const viol of r.violations.slice(0, 5)) out.push(`  [${viol.kind}] at step ${viol.step}: ${viol.message.split('\n').join('\n    ')}`);
  if (r.violations.length > 5) out.push(`  … ${r.violations.length - 5} more violations`);
  const c = r.config;
  out.push(`  cluster: ${c.initialVoters} voters + ${c.spareNodes} spare, election ${c.electionTicks} ticks, heartbeat ${c.heartbeatTicks}, preVote ${c.preVote}, checkQuorum ${c.checkQuorum}, maxInflight ${c.maxInflight}, maxMsgBytes ${c.maxMsgBytes}, fsync ${c.fsyncSteps} steps, snapshot every ${c.snapshotEvery} (trail ${c.snapshotTrail})`);
  out.push(`  last ${Math.min(traceLines, r.trace.length)} trace events (step event):`);
  for (const line of r.trace.slice(-traceLines)) out.push(`    ${line}`);
  out.push(`  replay: ${replayHint(r.seed)}`);
  return out.join('\n') + '\n';
}

/** What one seed's run tells the main thread (small, so workers can post it). */
interface Outcome {
  seed: number;
  ok: boolean;
  unknown: boolean;
  /** The failure report, or (replaying one seed) the trace and stats. */
  text?: string;
}

async function runOne(seed: number): Promise<Outcome> {
  const r = await runSeed(seed, { steps, quietSteps, drainSteps, bug, traceKeep: Math.max(traceLines, 60), config: pinned, rates });
  const unknown = r.stats.linearizability === 'unknown';
  if (!r.ok) return { seed, ok: false, unknown, text: formatFailure(r) };
  if (replay) {
    return { seed, ok: true, unknown, text: `${r.trace.slice(-traceLines).join('\n')}\nseed ${seed}: ok  ${JSON.stringify(r.stats)}\n  digest ${r.digest}\n` };
  }
  return { seed, ok: true, unknown };
}

const jobs = replay ? 1 : intOption('jobs', v.jobs, 1, 1);

if (!isMainThread) {
  // A worker: every jobs-th seed from its offset, each outcome posted as it completes.
  const { offset } = workerData as { offset: number };
  for (let seed = start + offset; seed < start + count; seed += jobs) parentPort!.postMessage(await runOne(seed));
} else {
  const t0 = performance.now();
  const failed: number[] = [];
  const unknown: number[] = [];
  let done = 0;
  let stopping = false;
  const workers: Worker[] = [];
  const onOutcome = (o: Outcome) => {
    done++;
    if (o.unknown) unknown.push(o.seed);
    if (o.text) process.stdout.write(o.text);
    if (!o.ok) failed.push(o.seed);
    if (!replay && done % 250 === 0) {
      process.stdout.write(`… ${done}/${count} seeds, ${failed.length} failing, ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
    }
    if (!o.ok && v.stop) stopping = true;
  };
  const finish = () => {
    const secs = (performance.now() - t0) / 1000;
    failed.sort((a, b) => a - b);
    process.stdout.write(`\n${done} of ${count} seeds from ${start}: ${failed.length} failing${failed.length ? ` (${failed.slice(0, 20).join(', ')}${failed.length > 20 ? ', …' : ''})` : ''}` +
      `${unknown.length ? `; linearizability undecided (search budget) for ${unknown.length}: ${unknown.slice(0, 10).join(', ')}` : ''}; ${secs.toFixed(1)} s\n`);
    process.exit(failed.length > 0 ? 1 : 0);
  };
  if (jobs === 1) {
    for (let seed = start; seed < start + count && !stopping; seed++) onOutcome(await runOne(seed));
    finish();
  } else {
    let running = jobs;
    for (let offset = 0; offset < jobs; offset++) {
      const w = new Worker(new URL(import.meta.url), { workerData: { offset }, argv: process.argv.slice(2), env: process.env });
      workers.push(w);
      w.on('message', (o: Outcome) => {
        onOutcome(o);
        if (stopping) for (const x of workers) void x.terminate();
      });
      w.on('error', (err) => {
        process.stderr.write(`sim: worker ${offset} failed: ${err.stack ?? err}\n`);
        process.exitCode = 2;
      });
      w.on('exit', () => {
        if (--running === 0) finish();
      });
    }
  }
}
