// The chaos run's options and their parsing: every bad input is refused here, before anything is
// started (no namespace, no process). `npm run chaos -- --help` prints USAGE.

export const FAULTS = ['partition', 'partition-oneway', 'partition-leader', 'partition-ring', 'partition-bridge', 'loss', 'delay', 'kill', 'pause', 'disk-stall', 'clock-step', 'clock-jump'] as const;
export type Fault = (typeof FAULTS)[number];

/** Faults from the issue that this harness knows but cannot inject on this machine, and why. */
export const NOT_POSSIBLE: Record<string, string> = {
  netem: 'tc netem: this kernel has no netem qdisc ("Specified qdisc kind is unknown"); use the "delay" fault (a user-space TCP relay) instead',
};

/** Short names people try, and the fault they mean. */
const DID_YOU_MEAN: Record<string, string> = {
  clock: 'clock-step (one agent\'s wall clock stepped by seconds to minutes, through libfaketime) or clock-jump (its monotonic and wall clocks jumping forward)',
  disk: 'disk-stall (one server\'s writes and syncs to its data directory held, through an LD_PRELOAD shim)',
};

/** Faults that need LD_PRELOAD libraries in the agents (hostFaults.ts): only run when named in --faults. */
export const HOST_FAULTS: readonly Fault[] = ['disk-stall', 'clock-step', 'clock-jump'];

/** Where the cluster runs: network namespaces, or loopback addresses behind a relay (loopback.ts). */
export const NETS = ['auto', 'netns', 'loopback'] as const;
export type NetMode = (typeof NETS)[number];

export interface ChaosOptions {
  /** auto: namespaces when this machine can make them, else loopback (with a message saying why). */
  net: NetMode;
  servers: number;
  clients: number;
  durationMs: number;
  faults: Fault[];
  seed: number;
  /** Quiet time after the last fault is healed, still under load (availability after heal). */
  recoveryMs: number;
  /** Register / lock / counter workers. */
  registerWorkers: number;
  lockWorkers: number;
  counterWorkers: number;
  /** Client-side timeout of one operation: past it, the outcome is indeterminate. */
  opTimeoutMs: number;
  /** Where the report goes. */
  outDir: string;
  /** TRELLIS_CHAOS_PLANT for every agent (test-only planted bug), '' for none. */
  plant: '' | 'stale-reads' | 'early-ack';
  smoke: boolean;
  /** autopilot.min_quorum of every server (0 = Consul's default: dead servers may be removed). */
  minQuorum: number;
  /** Namespace name prefix; default unique per run. */
  prefix?: string;
  /** --federation: two datacenters with mesh gateways under WAN partitions instead (federation.ts). */
  federation?: boolean;
  /** --partitions N (with --federation): exactly N WAN partitions; 0 = as many as fit in --duration. */
  partitions?: number;
}

/** The options --federation takes (the rest configure the single-datacenter run). */
const FEDERATION_FLAGS = ['--federation', '--duration', '--seed', '--out', '--partitions'];

export const USAGE = `usage: npm run chaos -- [options]
  --servers N         server agents (3 or 5; default 3)
  --clients N         client agents (default 1)
  --duration D        how long faults are injected, with a unit: 90s, 2m, 30m (default 60s)
  --faults a,b,...    from: ${FAULTS.join(', ')} (default: all that fit the cluster size, except
                      disk-stall, clock-step and clock-jump, which need gcc / libfaketime and are run
                      when named; clock-step and clock-jump cannot be combined in one run)
  --seed N            schedule seed (default: random, printed)
  --recovery D        load after the last heal (default 10s)
  --timeout D         client-side operation timeout; past it an op is indeterminate (default 3s)
  --workers N         KV register workers, bound to agents in turn (default: one per agent)
  --out DIR           report directory (default chaos-report/<time>-seed<seed>)
  --net MODE          netns: each agent in its own network namespace (needs root, iproute2, nftables);
                      loopback: each agent on its own 127.x.y.n address, peers reaching it only through
                      a fault-injecting relay this process runs (no root needed); auto (default):
                      netns when namespaces can be made here, else loopback, saying why
  --prefix P          network namespace name prefix (default: unique per run; netns only)
  --min-quorum N      autopilot.min_quorum for the servers (default 0, Consul's: autopilot may remove a
                      server dead for 10 s, leaving fewer voters; N = --servers keeps every voter)
  --plant BUG         run every agent with a planted bug (stale-reads, early-ack): the checkers must fail
  --smoke             the CI preset: 3 servers, 1 client, 45s, partition-leader,partition,kill,pause,loss
  --federation        instead: two datacenters (namespaces) with mesh gateways, sidecars and apps; local
                      and cross-datacenter calls while the WAN link between them is cut and healed
                      (takes --duration, --seed, --out, --partitions N only; docs/CHAOS.md)
  --partitions N      with --federation: exactly N WAN partitions (default: as many as fit --duration)
Not possible on this machine: netem (named in the error if asked for).`;

/** A duration with a unit (ms, s, m, h); a bare number is refused (is 30 seconds or minutes?). */
export function parseDuration(flag: string, v: string | undefined): number {
  if (v === undefined || v === '') throw new Error(`${flag} needs a value, e.g. ${flag} 60s`);
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(v.trim());
  if (!m) {
    if (/^\d+(\.\d+)?$/.test(v.trim())) throw new Error(`${flag} ${v}: a duration needs a unit (ms, s, m or h), e.g. ${v}s`);
    throw new Error(`${flag} ${JSON.stringify(v)}: not a duration; use a number with a unit (ms, s, m, h), e.g. 90s or 30m`);
  }
  const n = Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h'];
  if (n <= 0) throw new Error(`${flag} ${v}: must be more than 0`);
  return Math.round(n);
}

function parseInt10(flag: string, v: string | undefined, min: number, max: number): number {
  if (v === undefined || !/^\d+$/.test(v)) throw new Error(`${flag} needs a whole number, not ${JSON.stringify(v ?? '')}`);
  const n = Number(v);
  if (n < min || n > max) throw new Error(`${flag} ${n}: must be between ${min} and ${max}`);
  return n;
}

export function defaultFaults(servers: number): Fault[] {
  return FAULTS.filter((f) => !HOST_FAULTS.includes(f) && (servers >= 5 || (f !== 'partition-ring' && f !== 'partition-bridge')));
}

export const SMOKE_FAULTS: Fault[] = ['partition-leader', 'partition', 'kill', 'pause', 'loss'];

/** Parses argv (after `--`). Throws with a message naming the bad input; `help` when --help. */
export function parseArgs(argv: string[]): ChaosOptions | 'help' {
  const o: ChaosOptions = {
    net: 'auto', servers: 3, clients: 1, durationMs: 60_000, faults: [], seed: Math.floor(Math.random() * 2 ** 31), recoveryMs: 10_000,
    registerWorkers: 0, lockWorkers: 2, counterWorkers: 2, opTimeoutMs: 3000, outDir: '', plant: '', smoke: false, minQuorum: 0,
  };
  let faultsGiven: string | undefined;
  const seen = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const eq = a.indexOf('=');
    const flag = eq > 0 ? a.slice(0, eq) : a;
    const takeValue = (): string | undefined => (eq > 0 ? a.slice(eq + 1) : argv[++i]);
    if (seen.has(flag) && flag !== '--smoke') throw new Error(`${flag} given twice`);
    seen.add(flag);
    switch (flag) {
      case '-h': case '--help': return 'help';
      case '--smoke': o.smoke = true; break;
      case '--federation': o.federation = true; break;
      case '--partitions': o.partitions = parseInt10(flag, takeValue(), 1, 20); break;
      case '--net': {
        const v = takeValue() ?? '';
        if (!(NETS as readonly string[]).includes(v)) throw new Error(`--net ${JSON.stringify(v)}: use one of ${NETS.join(', ')}`);
        o.net = v as NetMode;
        break;
      }
      case '--servers': o.servers = parseInt10(flag, takeValue(), 1, 7); break;
      case '--clients': o.clients = parseInt10(flag, takeValue(), 0, 5); break;
      case '--duration': o.durationMs = parseDuration(flag, takeValue()); break;
      case '--recovery': o.recoveryMs = parseDuration(flag, takeValue()); break;
      case '--timeout': o.opTimeoutMs = parseDuration(flag, takeValue()); break;
      case '--workers': o.registerWorkers = parseInt10(flag, takeValue(), 1, 32); break;
      case '--seed': o.seed = parseInt10(flag, takeValue(), 0, Number.MAX_SAFE_INTEGER); break;
      case '--min-quorum': o.minQuorum = parseInt10(flag, takeValue(), 0, 7); break;
      case '--faults': faultsGiven = takeValue() ?? ''; break;
      case '--out': o.outDir = takeValue() ?? ''; if (!o.outDir) throw new Error('--out needs a directory'); break;
      case '--prefix': {
        const p = takeValue() ?? '';
        if (!/^[A-Za-z0-9]{1,8}$/.test(p)) throw new Error(`--prefix ${JSON.stringify(p)}: 1-8 letters or digits`);
        o.prefix = p;
        break;
      }
      case '--plant': {
        const p = takeValue() ?? '';
        if (p !== 'stale-reads' && p !== 'early-ack') throw new Error(`--plant ${JSON.stringify(p)}: not a planted bug; known: stale-reads, early-ack`);
        o.plant = p;
        break;
      }
      default:
        throw new Error(`unknown option ${JSON.stringify(a)}\n${USAGE}`);
    }
  }
  if (o.federation) {
    const other = [...seen].filter((f) => !FEDERATION_FLAGS.includes(f));
    if (other.length) throw new Error(`--federation takes only ${FEDERATION_FLAGS.slice(1).join(', ')}; not ${other.join(', ')} (its one fault is the WAN partition between two datacenters)`);
    if (o.durationMs < 10_000) throw new Error(`--duration ${o.durationMs} ms: at least 10s (a fault window and its heal)`);
    return o;
  }
  if (o.partitions !== undefined) throw new Error('--partitions counts WAN partitions: it goes with --federation');
  if (o.smoke) {
    // The CI preset; explicit flags after it still win where given.
    if (!seen.has('--servers')) o.servers = 3;
    if (!seen.has('--clients')) o.clients = 1;
    if (!seen.has('--duration')) o.durationMs = 45_000;
    if (!seen.has('--recovery')) o.recoveryMs = 8_000;
    if (faultsGiven === undefined) o.faults = [...SMOKE_FAULTS];
  }
  if (faultsGiven !== undefined) {
    const names = faultsGiven.split(',').map((s) => s.trim()).filter(Boolean);
    if (names.length === 0) throw new Error('--faults needs at least one fault name');
    for (const n of names) {
      if (n in DID_YOU_MEAN) throw new Error(`unknown fault ${JSON.stringify(n)}: did you mean ${DID_YOU_MEAN[n]}?`);
      if (n in NOT_POSSIBLE) throw new Error(`fault ${JSON.stringify(n)} is not possible on this machine: ${NOT_POSSIBLE[n]}`);
      if (!(FAULTS as readonly string[]).includes(n)) throw new Error(`unknown fault ${JSON.stringify(n)}; known: ${FAULTS.join(', ')}`);
    }
    o.faults = [...new Set(names)] as Fault[];
  } else if (!o.smoke) {
    o.faults = defaultFaults(o.servers);
  }
  if (o.faults.includes('clock-step') && o.faults.includes('clock-jump')) {
    throw new Error('faults clock-step and clock-jump cannot run together: clock-step moves the wall clock alone (libfaketime with the monotonic clock left real), clock-jump moves both clocks; an agent is started in one mode (run them separately)');
  }
  if (o.servers !== 3 && o.servers !== 5) throw new Error(`--servers ${o.servers}: use 3 or 5 (a Raft cluster of an odd size the schedule's faults are written for)`);
  for (const f of o.faults) {
    if ((f === 'partition-ring' || f === 'partition-bridge') && o.servers < 5) {
      throw new Error(`fault ${f} needs --servers 5 (with 3 servers a majorities ring or bridge is a plain partition)`);
    }
  }
  if (o.net === 'loopback' && o.prefix !== undefined) throw new Error('--prefix names network namespaces; --net loopback makes none (drop --prefix, or use --net netns)');
  if (o.minQuorum > o.servers) throw new Error(`--min-quorum ${o.minQuorum}: more than --servers ${o.servers}`);
  if (o.registerWorkers === 0) o.registerWorkers = o.servers + o.clients;
  if (o.durationMs < 10_000) throw new Error(`--duration ${o.durationMs} ms: at least 10s (a fault window and its heal)`);
  return o;
}

/**
 * The mode a run uses: `unavailable` is why this machine cannot make network namespaces ('' when
 * it can). An explicit --net netns that cannot work is refused before anything starts; auto falls
 * back to loopback and says why.
 */
export function chooseNet(requested: NetMode, unavailable: string): { mode: 'netns' | 'loopback'; message?: string } {
  if (requested === 'loopback') return { mode: 'loopback' };
  if (!unavailable) return { mode: 'netns' };
  if (requested === 'netns') throw new Error(`--net netns: cannot make network namespaces here: ${unavailable} (use --net loopback: a fault-injecting relay on loopback addresses, no root needed)`);
  return { mode: 'loopback', message: `network namespaces cannot be made here (${unavailable}): falling back to --net loopback (each agent on its own 127.x.y.n address, peers reaching it through a fault-injecting relay; docs/CHAOS.md)` };
}
