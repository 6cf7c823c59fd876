// The cluster under test: real `trellis agent` processes (through the launcher users run), each in
// its own network namespace (test/support/netns.ts) on the default ports, servers joined by
// -retry-join on each other's addresses and clients on the servers'. The test process reaches each
// agent's HTTP API on its namespace address through the host veth, which no fault ever cuts.
// With --net loopback (loopback.ts) the agents are plain processes on their own 127.x.y.n
// addresses, advertising a relay front address each (-advertise), so peers reach them only
// through the harness's relay; the HTTP API is reached on the agent's own address.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { launcher, trellisEnv } from '../support/paths.ts';
import { request } from '../support/http.ts';
import { Netns } from '../support/netns.ts';
import { LoopbackNet } from './loopback.ts';
import { HostFaults } from './hostFaults.ts';

export const HTTP_PORT = 8500;
export const SERVER_PORT = 8300;

export class ChaosAgent {
  readonly name: string;
  readonly role: 'server' | 'client';
  readonly address: string;
  /** The address peers know it by: its own (namespaces), or its relay front (loopback). */
  readonly advertise: string;
  readonly dir: string;
  #child: ChildProcess | undefined;
  #exited: Promise<void> = Promise.resolve();
  starts = 0;
  paused = false;
  private readonly cluster: ChaosCluster;

  constructor(cluster: ChaosCluster, name: string, role: 'server' | 'client', address: string, dir: string, advertise = address) {
    this.cluster = cluster;
    this.name = name;
    this.role = role;
    this.address = address;
    this.advertise = advertise;
    this.dir = dir;
  }

  get url(): string { return `http://${this.address}:${HTTP_PORT}`; }
  get rpcAddr(): string { return `${this.advertise}:${SERVER_PORT}`; }
  get logFile(): string { return path.join(this.dir, 'agent.log'); }
  get pid(): number | undefined { return this.#child?.pid; }
  get running(): boolean { return this.#child !== undefined && this.#child.exitCode === null && this.#child.signalCode === null; }

  args(): string[] {
    const cfg = path.join(this.dir, 'config.json');
    // Raft at Consul's production timing with raft_multiplier 1 (election timeout 1 s): the
    // schedule's pauses and partitions last several election timeouts.
    fs.writeFileSync(cfg, JSON.stringify({
      performance: { raft_multiplier: 1 },
      ...(this.cluster.minQuorum > 0 ? { autopilot: { min_quorum: this.cluster.minQuorum } } : {}),
    }));
    const a = ['agent', '-data-dir', path.join(this.dir, 'data'), '-node', this.name, '-bind', this.address, '-client', this.address,
      '-retry-interval', '1s', '-config-file', cfg, ...(process.env.TRELLIS_CHAOS_LOG_LEVEL ? ['-log-level', process.env.TRELLIS_CHAOS_LOG_LEVEL] : [])];
    if (this.advertise !== this.address) a.push('-advertise', this.advertise);
    if (this.role === 'server') a.push('-server', '-bootstrap-expect', String(this.cluster.servers.length));
    for (const s of this.cluster.servers) if (s !== this) a.push('-retry-join', s.advertise);
    return a;
  }

  start(): void {
    if (this.running) throw new Error(`${this.name} is already running`);
    this.starts++;
    fs.appendFileSync(this.logFile, `\n---- chaos: start #${this.starts} ${new Date().toISOString()}: trellis ${this.args().join(' ')}\n`);
    const fd = fs.openSync(this.logFile, 'a');
    try {
      // detached: its own process group; `ip netns exec` execs the launcher, which execs Node, so
      // the pid is the agent's.
      this.#child = this.cluster.net.spawn(this.name, launcher, this.args(), {
        cwd: this.dir, env: trellisEnv({ TRELLIS_CHAOS_PLANT: this.cluster.plant || undefined, ...this.cluster.hostFaults.env(this) }), stdio: ['ignore', fd, fd], detached: true,
      });
    } finally {
      fs.closeSync(fd);
    }
    const child = this.#child;
    this.paused = false;
    this.#exited = new Promise<void>((resolve) => child.once('exit', (code, signal) => {
      try { fs.appendFileSync(this.logFile, `---- chaos: exited code=${code} signal=${signal}\n`); } catch { /* dir removed */ }
      resolve();
    }));
  }

  /** kill -9 of its process group, and wait for the exit. */
  async kill(): Promise<void> {
    this.killNow();
    await this.#exited;
  }

  killNow(): void {
    if (!this.running || this.#child?.pid === undefined) return;
    try { process.kill(-this.#child.pid, 'SIGKILL'); } catch { /* gone */ }
    try { process.kill(-this.#child.pid, 'SIGCONT'); } catch { /* gone */ }
    this.paused = false;
  }

  pause(): void {
    if (this.#child?.pid !== undefined && this.running) { process.kill(-this.#child.pid, 'SIGSTOP'); this.paused = true; }
  }

  resume(): void {
    if (this.#child?.pid !== undefined && this.running) process.kill(-this.#child.pid, 'SIGCONT');
    this.paused = false;
  }

  log(): string {
    try { return fs.readFileSync(this.logFile, 'utf8'); } catch { return ''; }
  }

  logTail(lines = 30): string {
    return this.log().split('\n').slice(-lines).join('\n');
  }
}

/** Live clusters, killed synchronously at exit (before the namespaces go: netns.ts hooks run later). */
const live = new Set<ChaosCluster>();
process.on('exit', () => { for (const c of live) c.killAll(); });
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  // Registered before netns.ts's own handlers (installed when the first topology is built), so the
  // agents die first; then netns.ts removes the namespaces and re-raises the signal.
  process.once(sig, () => {
    for (const c of live) {
      c.killAll();
      process.stderr.write(`chaos: ${sig}: agents killed, ${c.net instanceof Netns ? `namespaces ${c.net.prefix}-* removed` : 'relay closed with this process'}; logs left in ${c.root}\n`);
    }
  });
}

export class ChaosCluster {
  readonly net: Netns | LoopbackNet;
  readonly root: string;
  readonly servers: ChaosAgent[] = [];
  readonly clients: ChaosAgent[] = [];
  readonly plant: string;
  readonly minQuorum: number;
  /** disk-stall / clock-step: the LD_PRELOAD libraries agents start with (hostFaults.ts); none by default. */
  hostFaults = new HostFaults({});

  private constructor(net: Netns | LoopbackNet, root: string, plant: string, minQuorum: number) {
    this.net = net;
    this.root = root;
    this.plant = plant;
    this.minQuorum = minQuorum;
  }

  /** Plans the namespaces (refusing names in use) without making anything. */
  static plan(servers: number, clients: number, prefix?: string): Netns {
    const names = [...Array.from({ length: servers }, (_, i) => `s${i + 1}`), ...Array.from({ length: clients }, (_, i) => `c${i + 1}`)];
    return Netns.plan({ members: names, prefix });
  }

  /** Plans the loopback addresses and the relay (nothing opened). */
  static planLoopback(servers: number, clients: number, seed: number): LoopbackNet {
    const names = [...Array.from({ length: servers }, (_, i) => `s${i + 1}`), ...Array.from({ length: clients }, (_, i) => `c${i + 1}`)];
    return LoopbackNet.plan(names, seed);
  }

  /** Builds the namespaces (or opens the relay) and the agents' directories (nothing started). */
  static async create(net: Netns | LoopbackNet, servers: number, clients: number, plant = '', minQuorum = 0): Promise<ChaosCluster> {
    await net.build();
    const root = fs.mkdtempSync(path.join(os.tmpdir(), `trellis-chaos-${net.prefix}-`));
    const c = new ChaosCluster(net, root, plant, minQuorum);
    live.add(c);
    for (const m of net.members) {
      const dir = path.join(root, m.name);
      fs.mkdirSync(dir, { recursive: true });
      const a = new ChaosAgent(c, m.name, m.name.startsWith('s') ? 'server' : 'client', m.address, dir, 'advertise' in m ? m.advertise : m.address);
      (a.role === 'server' ? c.servers : c.clients).push(a);
    }
    return c;
  }

  get agents(): ChaosAgent[] {
    return [...this.servers, ...this.clients];
  }

  byName(name: string): ChaosAgent {
    const a = this.agents.find((x) => x.name === name);
    if (!a) throw new Error(`no agent ${name}`);
    return a;
  }

  startAll(): void {
    for (const a of this.agents) a.start();
  }

  /** The leader as `among` see it, when they all agree ('' otherwise). */
  async leader(among: ChaosAgent[] = this.servers.filter((s) => s.running && !s.paused), timeoutMs = 1500): Promise<ChaosAgent | undefined> {
    const named = await this.leaderViews(among, timeoutMs);
    const first = named[0]?.[1];
    if (!first || named.some(([, n]) => n !== first)) return undefined;
    return this.servers.find((s) => s.name === first);
  }

  /** [server, the leader it names ('' none, '?' no answer)] for each of `among`. */
  async leaderViews(among: ChaosAgent[] = this.servers, timeoutMs = 1500): Promise<Array<[string, string]>> {
    return Promise.all(among.map(async (s): Promise<[string, string]> => {
      try {
        const r = await request(s.url, 'GET', '/v1/status/leader', { timeoutMs });
        const addr = r.status === 200 ? r.json<string>() : '';
        return [s.name, addr === '' ? '' : this.servers.find((x) => x.rpcAddr === addr)?.name ?? addr];
      } catch {
        return [s.name, '?'];
      }
    }));
  }

  /** Waits until every server names one leader, and every agent lists every other as alive. */
  async waitFormed(timeoutMs: number): Promise<ChaosAgent> {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    while (Date.now() < deadline) {
      const exited = this.agents.filter((a) => !a.running);
      if (exited.length > 0) throw new Error(`agent ${exited[0]!.name} exited while the cluster formed; log:\n${exited[0]!.logTail()}`);
      const leader = await this.leader(this.servers);
      if (leader) {
        const alive = await this.aliveCounts();
        if (alive.every((n) => n === this.agents.length)) return leader;
        last = `members alive per agent: ${alive.join(', ')}`;
      } else {
        last = 'no agreed leader';
      }
      await new Promise((r) => setTimeout(r, 300));
    }
    throw new Error(`cluster did not form within ${timeoutMs} ms (${last}); s1 log:\n${this.servers[0]!.logTail()}`);
  }

  /** The Raft voters as `from` (or the first server that answers) lists them; undefined if none answers. */
  async voters(from: ChaosAgent[] = this.servers): Promise<string[] | undefined> {
    for (const s of from) {
      try {
        const r = await request(s.url, 'GET', '/v1/operator/raft/configuration?stale', { timeoutMs: 1000 });
        if (r.status === 200) return r.json<{ Servers: Array<{ Node: string; Voter: boolean }> }>().Servers.filter((x) => x.Voter).map((x) => x.Node).sort();
      } catch { /* next */ }
    }
    return undefined;
  }

  /** How many members each agent lists with Status 1 (alive); -1 for an agent that does not answer. */
  async aliveCounts(among: ChaosAgent[] = this.agents): Promise<number[]> {
    return Promise.all(among.map(async (a) => {
      try {
        const r = await request(a.url, 'GET', '/v1/agent/members', { timeoutMs: 1500 });
        return r.status === 200 ? r.json<Array<{ Status: number }>>().filter((m) => m.Status === 1).length : -1;
      } catch {
        return -1;
      }
    }));
  }

  /** term → leader names, from every server's "raft: leader elected" log lines. */
  leadersByTerm(): Map<number, Set<string>> {
    const out = new Map<number, Set<string>>();
    for (const s of this.servers) {
      for (const m of s.log().matchAll(/raft: leader elected: leader=(\S+) term=(\d+)/g)) {
        const term = Number(m[2]);
        if (!out.has(term)) out.set(term, new Set());
        out.get(term)!.add(m[1]!);
      }
    }
    return out;
  }

  killAll(): void {
    for (const a of this.agents) a.killNow();
  }

  /** Kills every agent, removes the namespaces, and the agents' directories unless keep. */
  async dispose(opts: { keep?: boolean } = {}): Promise<void> {
    await Promise.all(this.agents.map((a) => a.kill()));
    live.delete(this);
    await this.net.destroy();
    if (!opts.keep) fs.rmSync(this.root, { recursive: true, force: true });
  }
}
