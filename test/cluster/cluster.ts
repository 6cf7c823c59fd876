// Real server agents for the clustering suites: each `trellis agent -server` process has its own temp
// directory (data dir, log, config file), free loopback ports, and joins the others through
// -retry-join on their LAN gossip (serf) ports. Unlike test/support's AgentProcess, a server here is not
// "ready" on its own: a cluster is ready once its members agree on one leader.
//
//   const c = await Cluster.create(3, { expect: 3 });
//   const leader = await c.formed();     // start every server; one leader, all of them voters
//   (or s.start() each, in any order, then c.waitLeader(): every running server names the same leader)
//   await c.dispose();
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort, launcher, request, trellisEnv, waitFor as supportWaitFor, type HttpResult, type RequestOptions } from '../support/index.ts';

export interface ServerSpec {
  name: string;
  datacenter?: string;
  /** -bootstrap-expect; 0 for none. */
  expect?: number;
  /** Extra JSON config (merged into the generated config file). */
  config?: Record<string, unknown>;
  args?: string[];
  /** -bind (default 127.0.0.1); any of 127.0.0.0/8 works on Linux loopback. HTTP stays on 127.0.0.1. */
  bind?: string;
}

export { sleep } from '../support/index.ts';

/** test/support's waitFor with the longer defaults cluster operations need (elections, catch-up). */
export function waitFor<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 15_000, everyMs = 100): Promise<T> {
  return supportWaitFor(what, fn, timeoutMs, everyMs);
}

/** term → leaders named in the "raft: leader elected" lines of every server's log. */
export function leadersByTerm(servers: ServerProc[]): Map<number, Set<string>> {
  const out = new Map<number, Set<string>>();
  for (const s of servers) {
    for (const m of s.log().matchAll(/raft: leader elected: leader=(\S+) term=(\d+)/g)) {
      const term = Number(m[2]);
      if (!out.has(term)) out.set(term, new Set());
      out.get(term)!.add(m[1]!);
    }
  }
  return out;
}

/**
 * Raft's election safety (§5.2: at most one leader per term), read from the servers' logs. The
 * check only means something if it saw elections, so it also asserts that every server in
 * `servers` logged at least one "leader elected" line and that at least `minTerms` terms had a
 * leader: a change of the log line's format fails here instead of leaving nothing to compare.
 */
export function assertOneLeaderPerTerm(servers: ServerProc[], minTerms = 1): void {
  const silent = servers.filter((s) => !/raft: leader elected: leader=\S+ term=\d+/.test(s.log()));
  if (silent.length > 0) {
    throw new Error(`no "raft: leader elected: leader=… term=…" line in the log of ${silent.map((s) => s.name).join(', ')}: ` +
      `did the log format change? ${silent[0]!.name} ends:\n${silent[0]!.logTail(20)}`);
  }
  const byTerm = leadersByTerm(servers);
  if (byTerm.size < minTerms) throw new Error(`expected leaders in at least ${minTerms} terms, the logs show ${byTerm.size}: ${[...byTerm.keys()].join(', ')}`);
  for (const [term, leaders] of byTerm) {
    if (leaders.size !== 1) throw new Error(`term ${term} had leaders ${[...leaders].join(', ')}`);
  }
}

const live = new Set<ServerProc>();
process.on('exit', () => { for (const s of live) s.killNow(); });

export class ServerProc {
  readonly spec: ServerSpec;
  readonly dir: string;
  readonly ports: { http: number; dns: number; server: number; serfLan: number };
  joins: string[] = [];
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  starts = 0;

  constructor(spec: ServerSpec, dir: string, ports: { http: number; dns: number; server: number; serfLan: number }) {
    this.spec = spec;
    this.dir = dir;
    this.ports = ports;
  }

  get name(): string { return this.spec.name; }
  get url(): string { return `http://127.0.0.1:${this.ports.http}`; }
  get bindAddr(): string { return this.spec.bind ?? '127.0.0.1'; }
  get rpcAddr(): string { return `${this.bindAddr}:${this.ports.server}`; }
  /** Where others join its LAN gossip pool. */
  get serfAddr(): string { return `${this.bindAddr}:${this.ports.serfLan}`; }
  get logFile(): string { return path.join(this.dir, 'agent.log'); }
  get running(): boolean { return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null; }

  args(): string[] {
    const cfgFile = path.join(this.dir, 'config.json');
    fs.writeFileSync(cfgFile, JSON.stringify({ ...this.spec.config }));
    const a = [
      'agent', '-server', '-data-dir', path.join(this.dir, 'data'), '-node', this.spec.name,
      '-bind', this.bindAddr, '-client', '127.0.0.1',
      '-http-port', String(this.ports.http), '-dns-port', String(this.ports.dns), '-server-port', String(this.ports.server),
      '-serf-lan-port', String(this.ports.serfLan), '-retry-interval', '1s', '-config-file', cfgFile,
      // No WAN pool (Consul's default port 8302 would collide between servers); a spec's args may give one.
      '-serf-wan-port', '-1',
    ];
    if (this.spec.datacenter) a.push('-datacenter', this.spec.datacenter);
    if (this.spec.expect) a.push('-bootstrap-expect', String(this.spec.expect));
    for (const j of this.joins) a.push('-retry-join', j);
    a.push(...(this.spec.args ?? []));
    return a;
  }

  start(): void {
    if (this.running) throw new Error(`${this.name} is already running`);
    this.starts++;
    fs.appendFileSync(this.logFile, `\n---- cluster test: start #${this.starts} ${new Date().toISOString()}: trellis ${this.args().join(' ')}\n`);
    const fd = fs.openSync(this.logFile, 'a');
    try {
      this.child = spawn(launcher, this.args(), { cwd: this.dir, env: trellisEnv(), stdio: ['ignore', fd, fd], detached: true });
    } finally {
      fs.closeSync(fd);
    }
    live.add(this);
    const child = this.child;
    this.exited = new Promise<void>((resolve) => child.once('exit', () => { live.delete(this); resolve(); }));
  }

  /** kill -9 of the process group. */
  async kill(): Promise<void> {
    this.killNow();
    await this.exited;
  }

  /** SIGSTOP / SIGCONT to its whole process group: frozen, it looks cut off to the others. */
  pause(): void {
    if (this.child?.pid !== undefined) process.kill(-this.child.pid, 'SIGSTOP');
  }

  resume(): void {
    if (this.child?.pid !== undefined) process.kill(-this.child.pid, 'SIGCONT');
  }

  killNow(): void {
    if (!this.running || this.child?.pid === undefined) return;
    try { process.kill(-this.child.pid, 'SIGKILL'); } catch { /* already gone */ }
    try { process.kill(-this.child.pid, 'SIGCONT'); } catch { /* already gone */ }
  }

  /** SIGTERM and wait (SIGKILL after timeoutMs). */
  async stop(timeoutMs = 15_000): Promise<void> {
    if (!this.running) return;
    this.child!.kill('SIGTERM');
    const t = setTimeout(() => this.killNow(), timeoutMs);
    await this.exited;
    clearTimeout(t);
  }

  request(method: string, urlPath: string, opts: RequestOptions = {}): Promise<HttpResult> {
    return request(this.url, method, urlPath, { timeoutMs: 10_000, ...opts });
  }

  async getJson<T>(urlPath: string): Promise<T> {
    const r = await this.request('GET', urlPath);
    if (r.status !== 200) throw new Error(`${this.name} GET ${urlPath}: ${r.status} ${r.text}`);
    return r.json<T>();
  }

  log(): string {
    try { return fs.readFileSync(this.logFile, 'utf8'); } catch { return ''; }
  }

  logTail(lines = 40): string {
    return this.log().split('\n').slice(-lines).join('\n');
  }
}

/** Raft at test speed (Consul's raft_multiplier 1): elections within a fraction of a second. */
export const FAST_RAFT = { performance: { raft_multiplier: 1 } };

export interface ClusterOptions {
  /** -bootstrap-expect of every server (default: the cluster size). */
  expect?: number;
  /** Merged into every server's config file (e.g. { performance: { raft_multiplier: 1 } }). */
  config?: Record<string, unknown>;
  datacenter?: string;
  /** -bind of server i (default 127.0.0.1 for all). */
  bindAddrs?: string[];
}

export class Cluster {
  readonly servers: ServerProc[] = [];
  private readonly root: string;

  private constructor(root: string) {
    this.root = root;
  }

  static async create(n: number, o: ClusterOptions = {}): Promise<Cluster> {
    const c = new Cluster(fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-cluster-')));
    for (let i = 0; i < n; i++) await c.add({ name: `s${i + 1}`, expect: o.expect ?? n, config: o.config, datacenter: o.datacenter, bind: o.bindAddrs?.[i] });
    for (const s of c.servers) s.joins = c.servers.filter((x) => x !== s).map((x) => x.serfAddr);
    return c;
  }

  /** Starts every server and waits until they name one leader and all are voters; returns the leader. */
  async formed(leaderTimeoutMs = 30_000): Promise<ServerProc> {
    for (const s of this.servers) s.start();
    const leader = await this.waitLeader(leaderTimeoutMs);
    await this.waitVoters(this.servers);
    return leader;
  }

  /** A new server (not started) joining every existing one. */
  async add(spec: ServerSpec): Promise<ServerProc> {
    const dir = path.join(this.root, spec.name);
    fs.mkdirSync(dir, { recursive: true });
    const ports = { http: await freePort(), dns: await freePort({ udp: true }), server: await freePort(), serfLan: await freePort({ udp: true }) };
    const s = new ServerProc(spec, dir, ports);
    s.joins = this.servers.map((x) => x.serfAddr);
    this.servers.push(s);
    return s;
  }

  byName(name: string): ServerProc {
    const s = this.servers.find((x) => x.name === name);
    if (!s) throw new Error(`no server ${name}`);
    return s;
  }

  running(): ServerProc[] {
    return this.servers.filter((s) => s.running);
  }

  /** Every running server (or those given) names the same leader; returns it. */
  async waitLeader(timeoutMs = 20_000, among: ServerProc[] = this.running()): Promise<ServerProc> {
    return waitFor('one leader named by every server', async () => {
      const leaders = await Promise.all(among.map(async (s) => {
        const r = await s.request('GET', '/v1/status/leader', { timeoutMs: 2000 });
        return r.status === 200 ? r.json<string>() : '';
      }));
      if (leaders[0] === '' || leaders.some((l) => l !== leaders[0])) return undefined;
      return this.servers.find((s) => s.rpcAddr === leaders[0]);
    }, timeoutMs);
  }

  /** Every given server lists exactly these voters (by address). */
  async waitVoters(expected: ServerProc[], timeoutMs = 20_000, among: ServerProc[] = this.running()): Promise<void> {
    const want = expected.map((s) => s.rpcAddr).sort().join(',');
    await waitFor(`voters ${want}`, async () => {
      for (const s of among) {
        const peers = await s.getJson<string[]>('/v1/status/peers');
        if ([...peers].sort().join(',') !== want) return false;
      }
      return true;
    }, timeoutMs);
  }

  /** Prints every server's log tail (for a failed test). */
  dumpLogs(lines = 40): void {
    for (const s of this.servers) process.stderr.write(`\n==== ${s.name} (${s.logFile}) ====\n${s.logTail(lines)}\n`);
  }

  async dispose(opts: { keep?: boolean } = {}): Promise<void> {
    await Promise.all(this.servers.map((s) => s.kill()));
    if (!opts.keep && process.env.TRELLIS_E2E_KEEP !== '1') fs.rmSync(this.root, { recursive: true, force: true });
  }
}
