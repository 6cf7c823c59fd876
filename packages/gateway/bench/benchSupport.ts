// What the gateway package's benchmarks share (bench:gateway = gateway.ts, gatewayCpu.ts,
// bench:proxy = proxy.ts): child processes that are always killed (SIGTERM first, so a process run
// with --cpu-prof writes its profile), CPU time and RSS from /proc, openssl, percentiles, the haproxy
// `mode tcp` config that routes by req.ssl_sni, the ClientHello a Node client sends, esbuild bundles
// of a bench entry, and CPU pinning with taskset.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import * as esbuild from 'esbuild';
import { waitFor, type AgentProcess } from '../../../test/support/index.ts';

const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

const children: ChildProcess[] = [];
let agentOfRun: AgentProcess | undefined;

/** SIGKILL every child still running (and the agent given to killWithChildren). */
export function killAll(): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  agentOfRun?.killNow();
}

// Children (and the agent given to killWithChildren) die with this process: on exit, SIGINT, SIGTERM.
process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => { killAll(); process.exit(130); });

/** The agent to kill with the children (AgentProcess.start's, once the bench has it). */
export function killWithChildren(agent: AgentProcess): void {
  agentOfRun = agent;
}

export interface Started {
  child: ChildProcess;
  /** The last 20,000 characters of its stdout and stderr. */
  out: () => string;
  /** Resolves when a line of its output starts with `ready`. */
  ready: Promise<void>;
}

/**
 * Starts a child process that killAll/stopAll stop. `cpus` (a taskset CPU list such as "1") runs
 * it pinned: taskset execs the command, so the PID is the command's and its threads inherit the
 * affinity. BENCH_GATEWAY_LOG=<file>: every child's output is appended there too.
 */
export function start(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cpus?: string } = {}): Started {
  const child = opts.cpus
    ? spawn('taskset', ['-c', opts.cpus, cmd, ...args], { env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn(cmd, args, { env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  let ready!: () => void;
  const readyP = new Promise<void>((r) => { ready = r; });
  const log = process.env['BENCH_GATEWAY_LOG'];
  const keep = (b: Buffer) => { if (log) fs.appendFileSync(log, b); out = (out + b.toString()).slice(-20_000); if (/^ready/m.test(out)) ready(); };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  return { child, out: () => out, ready: readyP };
}

/** SIGTERM to every child still running, SIGKILL to those not gone within `graceMs`. */
export async function stopAll(graceMs = 3000): Promise<void> {
  const alive = children.filter((c) => c.exitCode === null && c.signalCode === null);
  for (const c of alive) c.kill('SIGTERM');
  await Promise.race([
    Promise.all(alive.map((c) => new Promise((r) => c.once('exit', r)))),
    new Promise((r) => setTimeout(r, graceMs).unref()),
  ]);
  killAll();
}

/** The end of a bench run: its children stopped (stopAll), its agent disposed of, its temp directory removed. */
export async function cleanUp(agent: AgentProcess | undefined, tmp: string | undefined): Promise<void> {
  await stopAll();
  await agent?.dispose().catch(() => undefined);
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
}

// CPU placement lives with the test support (the KV bench pins too).
export { pin, usableCpus } from '../../../test/support/cpus.ts';

export function openssl(args: string[], cwd: string): void {
  const r = spawnSync('openssl', args, { cwd, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
}

/** utime and stime of a process, in ms (user space vs the kernel's work for it), from /proc/<pid>/stat. */
export function cpuSplitMs(pid: number): { user: number; sys: number } {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { user: (Number(f[11]) * 1000) / CLK_TCK, sys: (Number(f[12]) * 1000) / CLK_TCK };
}

/** utime + stime of a process, in ms. */
export function cpuMs(pid: number): number {
  const t = cpuSplitMs(pid);
  return t.user + t.sys;
}

/** VmRSS of a process in MB. */
export function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/**
 * A process's resident memory and where it is, in MB: all of it (VmRSS), anonymous (V8's heap,
 * glibc's malloc), file-backed (mostly the node binary's text) and glibc's main-arena `[heap]`
 * within the anonymous part (/proc/<pid>/status and smaps).
 */
export function rssParts(pid: number): { rss: number; anon: number; file: number; heap: number } {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+) kB`).exec(status)?.[1] ?? NaN) / 1024;
  let heap = 0;
  const smaps = fs.readFileSync(`/proc/${pid}/smaps`, 'utf8');
  const at = smaps.indexOf('[heap]');
  if (at >= 0) heap = Number(/Rss:\s+(\d+) kB/.exec(smaps.slice(at))?.[1] ?? 0) / 1024;
  return { rss: kb('VmRSS'), anon: kb('RssAnon'), file: kb('RssFile'), heap };
}

/** The p-th percentile (nearest rank) of ascending `sorted`; NaN when empty. */
export function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.max(0, Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/** A fresh dev agent's leader makes its CA just after election: its trust domain once known. */
export async function trustDomainOf(agent: AgentProcess): Promise<string> {
  let td = '';
  await waitFor('the CA roots name a trust domain', async () => {
    td = (await agent.getJson<{ TrustDomain?: string }>('/v1/agent/connect/ca/roots').catch(() => ({ TrustDomain: '' }))).TrustDomain ?? '';
    return td !== '';
  }, 30_000, 100);
  return td;
}

/** The ClientHello Node sends for `sni` (captured by a plain TCP server). */
export async function captureHello(sni: string, secureContext?: tls.SecureContext): Promise<Buffer> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const got = new Promise<Buffer>((resolve) => server.once('connection', (s) => s.once('data', (b: Buffer) => { resolve(b); s.destroy(); })));
  const c = tls.connect({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port, servername: sni, rejectUnauthorized: false, ...(secureContext ? { secureContext } : {}) });
  c.on('error', () => undefined);
  const hello = await got;
  c.destroy();
  server.close();
  return hello;
}

/** `entry` bundled for Node 24 as the CLI's dist is (no TypeScript stripping at run time). */
export async function bundle(entry: string, outfile: string): Promise<string> {
  await esbuild.build({ entryPoints: [entry], bundle: true, platform: 'node', format: 'esm', target: 'node24', outfile, logLevel: 'warning' });
  return outfile;
}

/** haproxy's first version line (`haproxy -v`). */
export function haproxyVersion(): string {
  return spawnSync('haproxy', ['-v'], { encoding: 'utf8' }).stdout.split('\n')[0] ?? 'haproxy';
}

/** A `mode tcp` frontend routing by req.ssl_sni: exact names or name suffixes to backends. */
export interface SniFrontend {
  name: string;
  port: number;
  routes: Array<{ backend: string; sni?: string; suffix?: string }>;
}

/**
 * haproxy (one thread) in `mode tcp` routing by the ClientHello's SNI, as bench:gateway compares the
 * mesh gateway with: the frontends, and backends of one server each (name -> port on 127.0.0.1).
 */
export function sniHaproxyConfig(frontends: SniFrontend[], backends: Record<string, number>): string {
  let cfg = `global
  nbthread 1
  maxconn 9000
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
`;
  for (const f of frontends) {
    cfg += `frontend ${f.name}
  bind 127.0.0.1:${f.port}
  tcp-request inspect-delay 5s
  tcp-request content accept if { req.ssl_hello_type 1 }
`;
    for (const r of f.routes) cfg += `  use_backend ${r.backend} if { req.ssl_sni ${r.sni !== undefined ? `-i ${r.sni}` : `-m end ${r.suffix}`} }\n`;
  }
  for (const [name, port] of Object.entries(backends)) cfg += `backend ${name}\n  server s1 127.0.0.1:${port}\n`;
  return cfg;
}

/** Writes `cfg` to <dir>/haproxy.cfg, checks it (haproxy -c) and starts haproxy in the foreground. */
export function startHaproxy(dir: string, cfg: string, opts: { cpus?: string } = {}): Started {
  const file = path.join(dir, 'haproxy.cfg');
  fs.writeFileSync(file, cfg);
  const check = spawnSync('haproxy', ['-c', '-f', file], { encoding: 'utf8' });
  if (check.status !== 0) throw new Error(`haproxy config: ${check.stdout}${check.stderr}`);
  return start('haproxy', ['-db', '-f', file], opts);
}
