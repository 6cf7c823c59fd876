// Gossip benchmark (npm run bench:gossip → npx node packages/agent/bench/gossip.ts).
//
// Prints, in one run:
//   1. simulated convergence (the real SWIM core on the seeded simulator) at Consul's LAN defaults
//      for 100, 1,000 and 5,000 members — a join, a graceful leave and a crash reaching 99.9% of
//      the pool — beside the epidemic model of Serf's convergence simulator;
//   2. false failure declarations at 10% packet loss with 5% stalled members, Lifeguard on and off;
//   3. real agents at Consul's defaults: 50 agents in one process (time to a full member list, RSS,
//      idle CPU per agent), 10 agents in 10 processes (the same, each process measured from /proc),
//      and the RSS and idle CPU of a real client agent process (`trellis agent` joined to a -dev
//      server). Idle CPU is measured over --idle seconds after a 5 s settle.
//
// Each part runs in a child process of its own so that memory and CPU numbers are not mixed up
// (one simulated pool of 5,000 members alone holds 25 million member records).
//
// Options: --quick (smaller and shorter: 100/1,000 members, 30 s of false-positive simulation),
//          --seed=<n>, --only=sim|fp|real, --idle=<seconds> (idle CPU window, default 60).
// Not in the default run (they need root for network namespaces):
//   --only=detect [--members=5] [--trials=9]   dead-node detection time of real member processes (kill -9)
//   --only=loss [--members=4] [--rates=10,20,30] [--windows=2] [--window=60]
//                                              false failure declarations under nft packet loss
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { createInterface } from 'node:readline';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { epidemicModel, falsePositives, measureLifecycle } from '../src/gossip/sim/index.ts';
import type { Lifecycle, Propagation } from '../src/gossip/sim/index.ts';
import { GossipPool } from '../src/gossip/index.ts';
import { AgentProcess } from '../../../test/support/index.ts';
import { Netns, ensureNetnsTools } from '../../../test/support/netns.ts';

const self = fileURLToPath(import.meta.url);
const args = process.argv.slice(2);
const flag = (name: string): string | undefined => args.find((a) => a.startsWith(`--${name}=`))?.split('=')[1];
const quick = args.includes('--quick');
const seed = Number(flag('seed') ?? 1);
const idleSeconds = Number(flag('idle') ?? 60);

function child<T>(mode: string, extra: string[], heapMb: number): T {
  const r = spawnSync(process.execPath, [`--max-old-space-size=${heapMb}`, self, `--child=${mode}`, `--seed=${seed}`, ...extra], {
    encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, stdio: ['ignore', 'pipe', 'inherit'],
  });
  if (r.status !== 0) throw new Error(`bench child ${mode} ${extra.join(' ')} failed with status ${r.status}`);
  const line = r.stdout.trim().split('\n').at(-1)!;
  return JSON.parse(line) as T;
}

const fmt = (n: number | undefined, d = 2): string => (n === undefined ? 'n/a' : n.toFixed(d));

// ---------------------------------------------------------------------------------- children

async function childSim(n: number): Promise<void> {
  const t0 = performance.now();
  const r = measureLifecycle({ seed, members: n });
  console.log(JSON.stringify({ ...r, wallSeconds: (performance.now() - t0) / 1000, rssMb: process.memoryUsage().rss / 1e6 }));
}

async function childFp(n: number, lifeguard: boolean, durationMs: number): Promise<void> {
  const t0 = performance.now();
  const { list, ...r } = falsePositives({ seed, members: n, lossRate: 0.1, stalledFraction: 0.05, swim: { lifeguard } }, durationMs);
  void list;
  console.log(JSON.stringify({ ...r, wallSeconds: (performance.now() - t0) / 1000 }));
}

async function childReal(n: number): Promise<void> {
  const pools: GossipPool[] = [];
  for (let i = 0; i < n; i++) {
    const p = await GossipPool.create({ nodeName: `a${i}`, datacenter: 'dc1', bindAddr: '127.0.0.1', port: 0, joinTimeoutMs: 15_000 });
    await p.start();
    pools.push(p);
  }
  // Agents join through members already in the pool, at most 4 joins at once and with
  // retries, as -retry-join would: 49 simultaneous noise handshakes against one event loop on a
  // shared machine can outlast the join timeout.
  const t0 = performance.now();
  const joined: GossipPool[] = [pools[0]!];
  let next = 1;
  const worker = async (): Promise<void> => {
    while (next < n) {
      const p = pools[next++]!;
      for (let attempt = 1; ; attempt++) {
        const via = joined[Math.floor(Math.random() * joined.length)]!;
        try {
          await p.join([via.joinAddress]);
          break;
        } catch (err) {
          if (attempt >= 5) throw err;
        }
      }
      joined.push(p);
    }
  };
  await Promise.all(Array.from({ length: 4 }, worker));
  const joinedMs = performance.now() - t0;
  const full = (): boolean => pools.every((p) => p.members().filter((m) => m.Status === 1).length === n);
  while (!full()) {
    if (performance.now() - t0 > 300_000) throw new Error(`${n} agents did not converge within 300 s`);
    await new Promise((r) => setTimeout(r, 20));
  }
  const convergedMs = performance.now() - t0;
  // Let joins settle (periodic push-pulls after a join) before measuring the idle cost.
  await new Promise((r) => setTimeout(r, 5000));
  const c0 = process.cpuUsage();
  const w0 = performance.now();
  await new Promise((r) => setTimeout(r, idleSeconds * 1000));
  const cpu = process.cpuUsage(c0);
  const wall = performance.now() - w0;
  const cpuPerAgentPct = ((cpu.user + cpu.system) / 1000 / wall) * 100 / n;
  const rssMb = process.memoryUsage().rss / 1e6;
  const stats = pools.map((p) => p.stats());
  const stable = pools.every((p) => p.members().filter((m) => m.Status === 1).length === n);
  const suspicions = stats.reduce((a, s) => a + s.suspicionsRaised, 0);
  const deaths = stats.reduce((a, s) => a + s.deadDeclared, 0);
  await Promise.all(pools.map((p) => p.stop()));
  console.log(JSON.stringify({ joinedMs, convergedMs, cpuPerAgentPct, rssMb, stable, suspicions, deaths }));
}

/**
 * One agent in a process of its own (for the multi-process row): starts, prints its join address,
 * joins --join (retrying, as -retry-join would), prints when it joined and when its member list
 * first held --n live members (epoch ms: the parent compares processes), then idles until killed.
 */
async function childMember(): Promise<void> {
  const n = Number(flag('n'));
  const p = await GossipPool.create({ nodeName: flag('name')!, datacenter: 'dc1', bindAddr: flag('bind') ?? '127.0.0.1', port: 0, joinTimeoutMs: 15_000 });
  await p.start();
  const say = (o: object): void => void process.stdout.write(`${JSON.stringify(o)}\n`);
  say({ addr: p.joinAddress });
  // Member events with the time they happened here (epoch ms: the parent compares processes).
  for (const type of ['member-join', 'member-failed', 'member-leave'] as const) {
    p.on(type, (row, view) => say({ ev: type, member: row.Name, inc: view.incarnation, health: p.stats().healthScore, at: Date.now() }));
  }
  const via = flag('join');
  if (via) {
    for (let attempt = 1; ; attempt++) {
      try {
        await p.join(via.split(','));
        break;
      } catch (err) {
        if (attempt >= 5) throw err;
      }
    }
  }
  say({ joinedAt: Date.now() });
  const poll = setInterval(() => {
    if (p.members().filter((m) => m.Status === 1).length === n) {
      clearInterval(poll);
      say({ fullAt: Date.now() });
    }
  }, 10);
  process.once('SIGTERM', () => {
    const live = p.members().filter((m) => m.Status === 1).length;
    const st = p.stats();
    say({ live, suspicions: st.suspicionsRaised, deaths: st.deadDeclared });
    void p.stop().then(() => process.exit(0));
  });
}

/** Starts a member process and resolves with it and its first line (its join address). */
function startMember(name: string, n: number, join: string | undefined, lines: Map<ChildProcess, object[]>,
  net?: Netns, ns = name): Promise<{ proc: ChildProcess; addr: string }> {
  const args = [self, '--child=member', `--name=${name}`, `--n=${n}`, ...(join ? [`--join=${join}`] : [])];
  const stdio: SpawnOptions = { stdio: ['ignore', 'pipe', 'inherit'] };
  // In a network namespace of its own (named after the member) when `net` is given.
  const proc = net ? net.spawn(ns, process.execPath, [...args, `--bind=${net.address(ns)}`], stdio) : spawn(process.execPath, args, stdio);
  lines.set(proc, []);
  return new Promise((resolve, reject) => {
    proc.once('exit', (code, signal) => reject(new Error(`member ${name} exited with ${code ?? signal}`)));
    createInterface({ input: proc.stdout! }).on('line', (l) => {
      const o = JSON.parse(l) as { addr?: string };
      lines.get(proc)!.push(o);
      if (o.addr) resolve({ proc, addr: o.addr });
    });
  });
}

async function waitFor(cond: () => boolean, what: string, timeoutMs: number): Promise<void> {
  const t0 = performance.now();
  while (!cond()) {
    if (performance.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** n agents in n processes on loopback: convergence, then each process's idle CPU and RSS from /proc. */
async function childProcs(n: number): Promise<void> {
  const lines = new Map<ChildProcess, object[]>();
  const seedMember = await startMember('p0', n, undefined, lines);
  // Every process is started (and has loaded its code) before the joins are timed.
  const rest = await Promise.all(Array.from({ length: n - 1 }, (_, i) => startMember(`p${i + 1}`, n, seedMember.addr, lines)));
  const procs = [seedMember.proc, ...rest.map((r) => r.proc)];
  const get = <T>(proc: ChildProcess, key: string): T | undefined => (lines.get(proc)!.find((o) => key in o) as Record<string, T> | undefined)?.[key];
  try {
    await waitFor(() => procs.every((p) => get(p, 'fullAt') !== undefined), 'every member list to be full', 120_000);
    const joined = rest.map((r) => get<number>(r.proc, 'joinedAt')!);
    const firstJoin = Math.min(...joined);
    const lastJoin = Math.max(...joined);
    const lastFull = Math.max(...procs.map((p) => get<number>(p, 'fullAt')!));
    await new Promise((r) => setTimeout(r, 5000));
    const hz = 100; // USER_HZ on Linux
    const before = procs.map((p) => procUsage(p.pid!));
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, idleSeconds * 1000));
    const after = procs.map((p) => procUsage(p.pid!));
    const secs = (performance.now() - t0) / 1000;
    const cpuPct = after.map((a, i) => ((a.ticks - before[i]!.ticks) / hz) / secs * 100);
    for (const p of procs) p.kill('SIGTERM');
    await waitFor(() => procs.every((p) => get(p, 'live') !== undefined), 'members to report', 20_000);
    const stable = procs.every((p) => get<number>(p, 'live') === n);
    const suspicions = procs.reduce((a, p) => a + get<number>(p, 'suspicions')!, 0);
    const deaths = procs.reduce((a, p) => a + get<number>(p, 'deaths')!, 0);
    console.log(JSON.stringify({
      joinSpanMs: lastJoin - firstJoin, afterLastJoinMs: lastFull - lastJoin, cpuPct, rssMb: after.map((a) => a.rssMb), stable, suspicions, deaths,
    }));
  } finally {
    for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL');
  }
}

type MemberLine = { ev?: string; member?: string; at?: number; fullAt?: number };

/** Events `observer` printed of `type` about `member` at or after `since` (epoch ms). */
function eventsOf(lines: Map<ChildProcess, object[]>, observer: ChildProcess, type: string, member: string, since: number): number[] {
  return (lines.get(observer)! as MemberLine[]).filter((o) => o.ev === type && o.member === member && o.at! >= since).map((o) => o.at!);
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;

/**
 * Dead-node detection, as the chaos harness measures it but without its load: n members (GossipPool
 * processes at Consul's LAN defaults), each in a network namespace of its own, so a killed member's
 * address stays and its kernel answers as a real host's does. Each trial kills one member with
 * SIGKILL and times how long until every other member lists it failed; the member then restarts
 * under its name in its namespace and the pool converges again before the next trial.
 */
async function childDetect(n: number, trials: number): Promise<void> {
  ensureNetnsTools();
  const net = await Netns.create({ members: Array.from({ length: n }, (_, i) => `m${i}`) });
  const lines = new Map<ChildProcess, object[]>();
  const live: { name: string; ns: string; proc: ChildProcess; addr: string }[] = [];
  const all: ChildProcess[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const name = `m${i}`;
      const m = await startMember(name, n, live[0]?.addr, lines, net, name);
      live.push({ name, ns: name, ...m });
      all.push(m.proc);
    }
    const full = (): boolean => live.every((m) => (lines.get(m.proc)! as MemberLine[]).some((o) => o.fullAt !== undefined));
    await waitFor(full, 'every member list to be full', 120_000);
    const lastMs: number[] = [];
    const firstMs: number[] = [];
    for (let t = 0; t < trials; t++) {
      await new Promise((r) => setTimeout(r, 3000 + Math.random() * 1000));
      const victim = live.splice(Math.floor(Math.random() * live.length), 1)[0]!;
      const t0 = Date.now();
      victim.proc.kill('SIGKILL');
      const seen = (): number[] => live.map((m) => eventsOf(lines, m.proc, 'member-failed', victim.name, t0)[0]).filter((x) => x !== undefined);
      await waitFor(() => seen().length === live.length, `every member to list ${victim.name} failed`, 90_000);
      const at = seen();
      lastMs.push(Math.max(...at) - t0);
      firstMs.push(Math.min(...at) - t0);
      // A member listed failed and then alive again (a newer incarnation of it reached someone
      // late) is a detection that did not hold: say so.
      const rejoined = live.filter((m) => eventsOf(lines, m.proc, 'member-join', victim.name, t0).length > 0).map((m) => m.name);
      const failedLines = live.flatMap((m) => (lines.get(m.proc)! as (MemberLine & { inc?: number; health?: number })[])
        .filter((o) => o.ev === 'member-failed' && o.member === victim.name && o.at! >= t0));
      const incs = [...new Set(failedLines.map((o) => o.inc))];
      const health = failedLines.map((o) => o.health ?? 0);
      process.stderr.write(`  trial ${t + 1}: ${victim.name} killed; first member saw it failed after ${((Math.min(...at) - t0) / 1000).toFixed(2)} s, every member after ${((Math.max(...at) - t0) / 1000).toFixed(2)} s (at incarnation ${incs.join('/')}; health scores ${health.join(' ')}${rejoined.length ? `; listed alive again by ${rejoined.join(', ')}` : ''})\n`);
      // The member restarts in its namespace under its name (kill -9 and restart, as the chaos
      // harness does): a new process, port and peer id, taking over the failed member's name. Only
      // the member just killed is ever dead, so gossip is not spread over a trail of dead ones.
      const name = victim.name;
      const joinedAfter = Date.now();
      const m = await startMember(name, n, live[0]!.addr, lines, net, victim.ns);
      live.push({ name, ns: victim.ns, ...m });
      all.push(m.proc);
      await waitFor(() => live.every((o) => o.name === name || eventsOf(lines, o.proc, 'member-join', name, joinedAfter).length > 0)
        && (lines.get(m.proc)! as MemberLine[]).some((o) => o.fullAt !== undefined), `${name} to join`, 120_000);
    }
    console.log(JSON.stringify({ n, trials, lastMs, firstMs, medianLastMs: median(lastMs), medianFirstMs: median(firstMs) }));
  } finally {
    for (const p of all) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    await net.destroy();
  }
}

/**
 * False failure declarations under packet loss: n members in network namespaces (every member
 * alive throughout), `windows` windows of `windowS` seconds at each loss rate (nft numgen on every
 * member's input, as the chaos harness's loss fault). A declaration is one member-failed event at one
 * member, from the start of the window until 10 s after it ended (a suspicion raised under loss
 * may run out just after). Between windows the pool is healed until every member lists every member alive.
 */
async function childLoss(n: number, rates: number[], windows: number, windowS: number): Promise<void> {
  ensureNetnsTools();
  const names = Array.from({ length: n }, (_, i) => `m${i}`);
  const net = await Netns.create({ members: names });
  const lines = new Map<ChildProcess, object[]>();
  const procs: ChildProcess[] = [];
  let first: string | undefined;
  try {
    for (const name of names) {
      const m = await startMember(name, n, first, lines, net, name);
      first ??= m.addr;
      procs.push(m.proc);
    }
    await waitFor(() => procs.every((p) => (lines.get(p)! as MemberLine[]).some((o) => o.fullAt !== undefined)), 'every member list to be full', 120_000);
    // Alive in every list: the last join/failed event each observer printed about each member is a join.
    const allAlive = (): boolean => procs.every((p) => names.every((name) => {
      const evs = (lines.get(p)! as MemberLine[]).filter((o) => o.member === name && (o.ev === 'member-join' || o.ev === 'member-failed'));
      return evs.length === 0 || evs.at(-1)!.ev === 'member-join';
    }));
    const results: { rate: number; declarations: number[] }[] = [];
    for (const rate of rates) {
      const declarations: number[] = [];
      for (let w = 0; w < windows; w++) {
        await new Promise((r) => setTimeout(r, 3000));
        const t0 = Date.now();
        await net.loss(rate);
        await new Promise((r) => setTimeout(r, windowS * 1000));
        await net.loss(0);
        await new Promise((r) => setTimeout(r, 10_000));
        const t1 = Date.now();
        let count = 0;
        const who: string[] = [];
        for (const [i, p] of procs.entries()) {
          for (const o of lines.get(p)! as MemberLine[]) {
            if (o.ev === 'member-failed' && o.at! >= t0 && o.at! <= t1) { count++; who.push(`${o.member} by ${names[i]}`); }
          }
        }
        declarations.push(count);
        process.stderr.write(`  ${rate}% loss, window ${w + 1}: ${count} false failure declarations${who.length ? ` (${who.join(', ')})` : ''}\n`);
        await waitFor(allAlive, 'every member alive again', 180_000);
      }
      results.push({ rate, declarations });
    }
    console.log(JSON.stringify({ n, windowS, results }));
  } finally {
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    await net.destroy();
  }
}

/** RSS (MB) and CPU ticks (user + system) of a process and its descendants, from /proc. */
function procUsage(pid: number): { rssMb: number; ticks: number } {
  let rssKb = 0;
  let ticks = 0;
  const visit = (p: number): void => {
    try {
      const status = readFileSync(`/proc/${p}/status`, 'utf8');
      rssKb += Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(f[11]) + Number(f[12]);
      for (const t of readdirSync(`/proc/${p}/task`)) {
        for (const c of readFileSync(`/proc/${p}/task/${t}/children`, 'utf8').trim().split(/\s+/).filter(Boolean)) visit(Number(c));
      }
    } catch {
      // The process ended meanwhile.
    }
  };
  visit(pid);
  return { rssMb: rssKb / 1024, ticks };
}

/** A real server agent (-dev) and a real client agent joined to it, as `trellis` processes: the
 *  client's RSS after it settled, and its idle CPU over the idle window. */
async function childAgents(): Promise<void> {
  const server = await AgentProcess.start({ mode: 'dev', name: 'bench-server' });
  const client = await AgentProcess.start({ mode: 'client', name: 'bench-client', args: ['-retry-join', server.serfAddr] });
  try {
    await new Promise((r) => setTimeout(r, 5000));
    const hz = 100; // USER_HZ on Linux
    const before = procUsage(client.pid!);
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, idleSeconds * 1000));
    const after = procUsage(client.pid!);
    const cpuPct = ((after.ticks - before.ticks) / hz) / ((performance.now() - t0) / 1000) * 100;
    console.log(JSON.stringify({ clientRssMb: after.rssMb, clientCpuPct: cpuPct, serverRssMb: procUsage(server.pid!).rssMb }));
  } finally {
    await client.dispose();
    await server.dispose();
  }
}

// ---------------------------------------------------------------------------------- report

function row(label: string, p: Propagation, modelSeconds?: number, modelRounds?: number): string {
  const model = modelSeconds === undefined ? '' : `   model ${fmt(modelSeconds)} s (${fmt(modelRounds, 1)} rounds)`;
  return `    ${label.padEnd(8)} ${fmt(p.seconds).padStart(6)} s  ${fmt(p.gossipRounds, 1).padStart(6)} gossip rounds  ${fmt(p.probePeriods, 1).padStart(5)} probe periods  (${p.reached}/${p.of})${model}`;
}

async function main(): Promise<void> {
  const only = flag('only');
  console.log(`gossip benchmark (seed ${seed}${quick ? ', quick' : ''}) — Consul LAN defaults: probe 1 s / timeout 500 ms, gossip 200 ms × 3, suspicion mult 4 (max ×6), retransmit mult 4`);

  if (!only || only === 'sim') {
    console.log('\n1. Simulated convergence to 99.9% of members (loss 0, latency 0.2–2 ms)');
    for (const n of quick ? [100, 1000] : [100, 1000, 5000]) {
      const heap = n >= 5000 ? 12_000 : 4096;
      const r = child<Lifecycle & { wallSeconds: number; rssMb: number }>('sim', [`--n=${n}`], heap);
      const m = epidemicModel(n, 3, 200);
      console.log(`  N = ${n}  (simulated in ${fmt(r.wallSeconds, 1)} s, ${fmt(r.rssMb, 0)} MB)`);
      console.log(row('join', r.join, m.seconds, m.rounds));
      console.log(row('leave', r.leave, m.seconds, m.rounds));
      console.log(row('failure', r.failure) + '   (detection: first probe + suspicion ≥ 4·log10(N) s, then dissemination)');
    }
  }

  if (!only || only === 'fp') {
    const n = quick ? 200 : 500;
    const dur = quick ? 30_000 : 60_000;
    console.log(`\n2. False failure declarations: ${n} members, ${dur / 1000} s, 10% loss, 5% stalled (process messages 1–15 s late), no crash`);
    for (const lifeguard of [false, true]) {
      const r = child<{ total: number; healthyVictims: number; stalledVictims: number; distinctVictims: number; byStalledObservers: number; suspicions: number; refutations: number; wallSeconds: number }>(
        'fp', [`--n=${n}`, `--lifeguard=${lifeguard}`, `--ms=${dur}`], 4096);
      console.log(`  Lifeguard ${lifeguard ? 'on ' : 'off'}: ${String(r.healthyVictims).padStart(5)} about healthy members, ${String(r.stalledVictims).padStart(6)} about stalled ones (total ${r.total}; ${r.distinctVictims} distinct members; ${r.byStalledObservers} declared by stalled members) — ${r.suspicions} suspicions, ${r.refutations} refutations`);
    }
    console.log('  (a declaration = one member-failed event at one member about a member that had not crashed)');
  }

  if (!only || only === 'real') {
    const n = 50;
    const idleArg = `--idle=${idleSeconds}`;
    console.log(`\n3. Real agents (SWIM over UDP, push-pull over libp2p TCP + noise + yamux, loopback), Consul defaults; idle CPU over ${idleSeconds} s`);
    const r = child<{ joinedMs: number; convergedMs: number; cpuPerAgentPct: number; rssMb: number; stable: boolean; suspicions: number; deaths: number }>('real', [`--n=${n}`, idleArg], 4096);
    console.log(`  ${n} agents, one process: all joins answered in ${fmt(r.joinedMs / 1000)} s; full member list everywhere after ${fmt(r.convergedMs / 1000)} s (${fmt((r.convergedMs - r.joinedMs) / 1000)} s after the last join)`);
    console.log(`    RSS of the process: ${fmt(r.rssMb, 0)} MB; idle CPU per agent: ${fmt(r.cpuPerAgentPct, 3)}% of a core; still converged: ${r.stable}; suspicions ${r.suspicions}, deaths declared ${r.deaths}`);
    const np = 10;
    const m = child<{ joinSpanMs: number; afterLastJoinMs: number; cpuPct: number[]; rssMb: number[]; stable: boolean; suspicions: number; deaths: number }>('procs', [`--n=${np}`, idleArg], 1024);
    const spread = (xs: number[], d: number): string => `mean ${fmt(xs.reduce((a, b) => a + b, 0) / xs.length, d)}, min ${fmt(Math.min(...xs), d)}, max ${fmt(Math.max(...xs), d)}`;
    console.log(`  ${np} agents, ${np} processes (joined at once through one of them): joins answered within ${fmt(m.joinSpanMs / 1000)} s of each other; full member list everywhere ${fmt(m.afterLastJoinMs / 1000)} s after the last join`);
    console.log(`    idle CPU per agent process: ${spread(m.cpuPct, 3)}% of a core; RSS per process: ${spread(m.rssMb, 0)} MB; still converged: ${m.stable}; suspicions ${m.suspicions}, deaths declared ${m.deaths}`);
    const a = child<{ clientRssMb: number; clientCpuPct: number; serverRssMb: number }>('agents', [idleArg], 1024);
    console.log(`  a client agent process (trellis agent, joined to a -dev server): RSS ${fmt(a.clientRssMb, 0)} MB, idle CPU ${fmt(a.clientCpuPct, 3)}% of a core; the -dev server: RSS ${fmt(a.serverRssMb, 0)} MB`);
  }
  if (only === 'detect') {
    const n = Number(flag('members') ?? 5);
    const trials = Number(flag('trials') ?? 9);
    console.log(`\n4. Dead-node detection: ${n} members (GossipPool processes, one network namespace each), kill -9 one, ${trials} trials`);
    const r = child<{ lastMs: number[]; firstMs: number[]; medianLastMs: number; medianFirstMs: number }>('detect', [`--n=${n}`, `--trials=${trials}`], 1024);
    const s = (xs: number[]): string => xs.map((x) => fmt(x / 1000)).join(' ');
    console.log(`  every other member lists it failed after: median ${fmt(r.medianLastMs / 1000)} s (min ${fmt(Math.min(...r.lastMs) / 1000)}, max ${fmt(Math.max(...r.lastMs) / 1000)}): ${s(r.lastMs)}`);
    console.log(`  the first member lists it failed after:   median ${fmt(r.medianFirstMs / 1000)} s: ${s(r.firstMs)}`);
  }

  if (only === 'loss') {
    const n = Number(flag('members') ?? 4);
    const rates = (flag('rates') ?? '10,20,30').split(',').map(Number);
    const windows = Number(flag('windows') ?? 2);
    const windowS = Number(flag('window') ?? 60);
    console.log(`\n5. False failure declarations under packet loss: ${n} members (one network namespace each), ${windows} × ${windowS} s per loss rate`);
    const r = child<{ results: { rate: number; declarations: number[] }[] }>('loss', [`--n=${n}`, `--rates=${rates.join(',')}`, `--windows=${windows}`, `--window=${windowS}`], 1024);
    for (const x of r.results) {
      console.log(`  ${String(x.rate).padStart(2)}% loss: ${x.declarations.reduce((a, b) => a + b, 0)} false failure declarations (per window: ${x.declarations.join(', ')}); ${x.declarations.filter((d) => d > 0).length} of ${x.declarations.length} windows had any`);
    }
  }
}

const mode = flag('child');
const n = Number(flag('n') ?? 0);
if (mode === 'sim') await childSim(n);
else if (mode === 'fp') await childFp(n, flag('lifeguard') === 'true', Number(flag('ms')));
else if (mode === 'real') await childReal(n);
else if (mode === 'agents') await childAgents();
else if (mode === 'member') await childMember();
else if (mode === 'procs') await childProcs(n);
else if (mode === 'detect') await childDetect(n, Number(flag('trials')));
else if (mode === 'loss') await childLoss(n, flag('rates')!.split(',').map(Number), Number(flag('windows')), Number(flag('window')));
else await main();
