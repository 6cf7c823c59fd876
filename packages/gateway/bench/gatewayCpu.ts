// CPU per proxied connection of the mesh gateway against haproxy, without TLS in the load
// generator (bench:gateway's handshakes bound its rate, so few connections per second and a noisy
// per-connection CPU figure on two shared cores). Each connection replays the shape of a TLS 1.3
// mTLS exchange byte-for-byte-count: a real ClientHello (so both proxies parse a real SNI), the
// server's flight (~1.9 KB), the client's (~1.6 KB), the tickets (~0.5 KB), a ping and its pong,
// then the client closes. The proxies see the same reads, writes and closes as in bench:gateway;
// the load generator spends almost nothing, so many more connections are counted per second.
//
//   node packages/gateway/bench/gatewayCpu.ts [--seconds 5 --conns 16 --rounds 3] [--rate <conn/s>] [--floor] [--raw-floor] [--baseline <entry.ts>]
// Closed loop with --conns workers, or with --rate an open loop at that many new connections/s.
// --floor adds bench/floorRouter.ts (Node's net.Socket and pipe cost alone, no gateway logic);
// --raw-floor bench/rawFloorRouter.ts (the same on libuv handles: no net.Socket, no streams).
// Env BENCH_GATEWAY_NODE_FLAGS='--flag ...' adds Node/V8 flags to the gateway process
// (BENCH_BASELINE_NODE_FLAGS to the baseline's, default the same); BENCH_GATEWAY_ENV='NAME=value ...'
// sets environment variables for it alone.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import * as esbuild from 'esbuild';
import { AgentProcess, freePort, repoRoot, waitFor } from '../../../test/support/index.ts';

const { values: argv } = parseArgs({
  options: {
    seconds: { type: 'string', default: '5' },
    conns: { type: 'string', default: '16' },
    rounds: { type: 'string', default: '3' },
    only: { type: 'string' },
    baseline: { type: 'string' },
    rate: { type: 'string' },
    floor: { type: 'boolean', default: false },
    'raw-floor': { type: 'boolean', default: false },
  },
});
const SECONDS = Number(argv.seconds);
const CONNS = Number(argv.conns);
const ROUNDS = Number(argv.rounds);
const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

const children: ChildProcess[] = [];
let agent: AgentProcess | undefined;
function killAll(): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  agent?.killNow();
}
process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => { killAll(); process.exit(130); });

function start(cmd: string, args: string[], env: Record<string, string> = {}): { child: ChildProcess; out: () => string; ready: Promise<void> } {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  children.push(child);
  let out = '';
  let ready!: () => void;
  const readyP = new Promise<void>((r) => { ready = r; });
  // BENCH_GATEWAY_LOG=<file>: every child's output is appended there too (with --trace-gc, say).
  const log = process.env['BENCH_GATEWAY_LOG'];
  const keep = (b: Buffer) => { if (log) fs.appendFileSync(log, b); out = (out + b.toString()).slice(-20_000); if (/^ready/m.test(out)) ready(); };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  return { child, out: () => out, ready: readyP };
}

function cpuSplitMs(pid: number): { user: number; sys: number } {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { user: (Number(f[11]) * 1000) / CLK_TCK, sys: (Number(f[12]) * 1000) / CLK_TCK };
}

/** The ClientHello Node sends for `sni` (captured by a plain TCP server). */
async function captureHello(sni: string): Promise<Buffer> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const got = new Promise<Buffer>((resolve) => server.once('connection', (s) => s.once('data', (b: Buffer) => { resolve(b); s.destroy(); })));
  const c = tls.connect({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port, servername: sni, rejectUnauthorized: false });
  c.on('error', () => undefined);
  const hello = await got;
  c.destroy();
  server.close();
  return hello;
}

const SERVER_FLIGHT = Buffer.alloc(1900, 0x17);
const CLIENT_FLIGHT = Buffer.alloc(1600, 0x17);
const TICKETS = Buffer.alloc(500, 0x17);
const PING = Buffer.alloc(27, 0x17);

/** The backend: answers each client flight as a TLS server would, by byte counts. */
function startBackend(port: number, helloLen: number): Promise<net.Server> {
  const server = net.createServer((s) => {
    s.setNoDelay(true);
    let got = 0;
    let phase = 0;
    s.on('data', (c: Buffer) => {
      got += c.length;
      if (phase === 0 && got >= helloLen) { phase = 1; s.write(SERVER_FLIGHT); }
      if (phase === 1 && got >= helloLen + CLIENT_FLIGHT.length) { phase = 2; s.write(TICKETS); }
      if (phase === 2 && got >= helloLen + CLIENT_FLIGHT.length + PING.length) { phase = 3; s.write(PING); }
    });
    s.on('end', () => s.end());
    s.on('error', () => s.destroy());
  });
  return new Promise((r) => server.listen(port, '127.0.0.1', 4096, () => r(server)));
}

/** One replayed connection: resolves when the pong arrived and the socket is closed. */
function oneConn(port: number, hello: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port, noDelay: true });
    let got = 0;
    let phase = 0;
    const timer = setTimeout(() => s.destroy(new Error('timeout')), 10_000);
    s.once('connect', () => s.write(hello));
    s.on('data', (c: Buffer) => {
      got += c.length;
      if (phase === 0 && got >= SERVER_FLIGHT.length) { phase = 1; s.write(CLIENT_FLIGHT); }
      if (phase === 1 && got >= SERVER_FLIGHT.length + TICKETS.length) { phase = 2; s.write(PING); }
      if (phase === 2 && got >= SERVER_FLIGHT.length + TICKETS.length + PING.length) { phase = 3; clearTimeout(timer); s.destroy(); resolve(); }
    });
    s.on('error', (e) => { clearTimeout(timer); reject(e); });
    s.on('close', () => { clearTimeout(timer); if (phase !== 3) reject(new Error(`closed in phase ${phase} after ${got} bytes`)); });
  });
}

/** Open loop at `rate` new connections/s (the rate bench:gateway's TLS handshakes allow is ~200/s). */
async function openLoop(port: number, hello: Buffer, rate: number, ms: number, pid: number): Promise<{ perSec: number; user: number; sys: number; errors: number; firstError?: string }> {
  let ok = 0;
  let errors = 0;
  let firstError: string | undefined;
  const c0 = cpuSplitMs(pid);
  const pending: Array<Promise<void>> = [];
  const t0 = performance.now();
  const total = Math.floor((rate * ms) / 1000);
  for (let i = 0; i < total; i++) {
    const wait = t0 + (i * 1000) / rate - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    pending.push(oneConn(port, hello).then(() => { ok++; }, (e: Error) => { errors++; firstError ??= e.message; }));
  }
  await Promise.all(pending);
  const c1 = cpuSplitMs(pid);
  return { perSec: ok / ((performance.now() - t0) / 1000), user: ((c1.user - c0.user) * 1000) / Math.max(1, ok), sys: ((c1.sys - c0.sys) * 1000) / Math.max(1, ok), errors, firstError };
}

async function closedLoop(port: number, hello: Buffer, ms: number, pid?: number): Promise<{ perSec: number; user: number; sys: number; errors: number; firstError?: string }> {
  let ok = 0;
  let errors = 0;
  let firstError: string | undefined;
  const c0 = pid ? cpuSplitMs(pid) : { user: 0, sys: 0 };
  const end = performance.now() + ms;
  await Promise.all(Array.from({ length: CONNS }, async () => {
    while (performance.now() < end) {
      try { await oneConn(port, hello); ok++; } catch (e) { errors++; firstError ??= (e as Error).message; }
    }
  }));
  const c1 = pid ? cpuSplitMs(pid) : { user: 0, sys: 0 };
  return { perSec: ok / (ms / 1000), user: ((c1.user - c0.user) * 1000) / Math.max(1, ok), sys: ((c1.sys - c0.sys) * 1000) / Math.max(1, ok), errors, firstError };
}

async function main(): Promise<void> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-bench-gwcpu-'));
  agent = await AgentProcess.start({ name: 'bench-gwcpu' });
  let td = '';
  await waitFor('the CA roots name a trust domain', async () => {
    td = (await agent!.getJson<{ TrustDomain?: string }>('/v1/agent/connect/ca/roots').catch(() => ({ TrustDomain: '' }))).TrustDomain ?? '';
    return td !== '';
  }, 30_000, 100);
  const sni = `echo.default.dc1.internal.${td}`;
  const hello = await captureHello(sni);
  const backendPort = await freePort();
  await startBackend(backendPort, hello.length);
  const r = await agent.request('PUT', '/v1/agent/service/register', { body: JSON.stringify({ Name: 'echo', ID: 'echo', Port: backendPort, Connect: { SidecarService: { Port: backendPort } } }) });
  if (r.status !== 200) throw new Error(`register: ${r.status} ${r.text}`);
  await waitFor('echo healthy', async () => (await agent!.getJson<unknown[]>('/v1/health/connect/echo?passing=1')).length === 1, 30_000, 250);

  const gwPort = await freePort();
  const gwJs = path.join(tmp, 'meshGateway.mjs');
  await esbuild.build({ entryPoints: [path.join(repoRoot, 'packages/gateway/bench/meshGatewayProcess.ts')], bundle: true, platform: 'node', format: 'esm', target: 'node24', outfile: gwJs, logLevel: 'warning' });
  const flags = (process.env['BENCH_GATEWAY_NODE_FLAGS'] ?? '').split(' ').filter(Boolean);
  // BENCH_GATEWAY_ENV='NAME=value ...': environment for this gateway only (not the baseline).
  const gwEnv = Object.fromEntries((process.env['BENCH_GATEWAY_ENV'] ?? '').split(' ').filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
  const gw = start(process.execPath, [...flags, gwJs, JSON.stringify({ httpAddr: agent.httpAddr, address: `127.0.0.1:${gwPort}` })], gwEnv);
  // --baseline <entry.ts>: a second gateway built from another copy of meshGatewayProcess.ts (say,
  // the last commit's, from `git archive`), measured in alternation with this one under the same load.
  let base: ReturnType<typeof start> | undefined;
  const basePort = await freePort();
  if (argv.baseline) {
    const baseJs = path.join(tmp, 'meshGatewayBase.mjs');
    await esbuild.build({ entryPoints: [path.resolve(argv.baseline)], bundle: true, platform: 'node', format: 'esm', target: 'node24', outfile: baseJs, logLevel: 'warning' });
    const baseFlags = (process.env['BENCH_BASELINE_NODE_FLAGS'] ?? process.env['BENCH_GATEWAY_NODE_FLAGS'] ?? '').split(' ').filter(Boolean);
    base = start(process.execPath, [...baseFlags, baseJs, JSON.stringify({ httpAddr: agent.httpAddr, address: `127.0.0.1:${basePort}` })]);
    await base.ready;
  }
  // --floor: bench/floorRouter.ts too (first chunk, connect, pipe; nothing else): Node's own cost.
  let floor: ReturnType<typeof start> | undefined;
  const floorPort = await freePort();
  if (argv.floor) {
    const floorJs = path.join(tmp, 'floorRouter.mjs');
    await esbuild.build({ entryPoints: [path.join(repoRoot, 'packages/gateway/bench/floorRouter.ts')], bundle: true, platform: 'node', format: 'esm', target: 'node24', outfile: floorJs, logLevel: 'warning' });
    floor = start(process.execPath, [floorJs, JSON.stringify({ httpAddr: agent.httpAddr, address: `127.0.0.1:${floorPort}` })]);
    await floor.ready;
  }
  // --raw-floor: bench/rawFloorRouter.ts too (the same on libuv handles, no net.Socket, no streams).
  let rawFloor: ReturnType<typeof start> | undefined;
  const rawFloorPort = await freePort();
  if (argv['raw-floor']) {
    const rawJs = path.join(tmp, 'rawFloorRouter.mjs');
    await esbuild.build({ entryPoints: [path.join(repoRoot, 'packages/gateway/bench/rawFloorRouter.ts')], bundle: true, platform: 'node', format: 'esm', target: 'node24', outfile: rawJs, logLevel: 'warning' });
    rawFloor = start(process.execPath, [rawJs, JSON.stringify({ httpAddr: agent.httpAddr, address: `127.0.0.1:${rawFloorPort}` })]);
    await rawFloor.ready;
  }
  const haPort = await freePort();
  fs.writeFileSync(path.join(tmp, 'haproxy.cfg'), `global
  nbthread 1
  maxconn 9000
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend hop1
  bind 127.0.0.1:${haPort}
  tcp-request inspect-delay 5s
  tcp-request content accept if { req.ssl_hello_type 1 }
  use_backend echo if { req.ssl_sni -i ${sni} }
backend echo
  server s1 127.0.0.1:${backendPort}
`);
  const ha = start('haproxy', ['-db', '-f', path.join(tmp, 'haproxy.cfg')]);
  await gw.ready;
  const cases = [
    { name: 'gw', port: gwPort, pid: gw.child.pid! },
    { name: 'ha', port: haPort, pid: ha.child.pid! },
    ...(base ? [{ name: 'base', port: basePort, pid: base.child.pid! }] : []),
    ...(floor ? [{ name: 'floor', port: floorPort, pid: floor.child.pid! }] : []),
    ...(rawFloor ? [{ name: 'raw', port: rawFloorPort, pid: rawFloor.child.pid! }] : []),
  ].filter((c) => !argv.only || argv.only.split(',').includes(c.name));
  for (const c of cases) {
    await waitFor(`${c.name} answers`, async () => { try { await oneConn(c.port, hello); return true; } catch { return false; } }, 20_000, 200);
    await closedLoop(c.port, hello, 2000); // warm-up (JIT, first catalog answers)
  }
  const out = (s: string) => process.stdout.write(`${s}\n`);
  out(`Node ${process.version}; gateway flags: ${flags.join(' ') || '(none)'}; ${argv.rate ? `open loop at ${argv.rate} conn/s` : `${CONNS} workers`}, ${SECONDS} s per row, ${ROUNDS} rounds alternating`);
  const sums = new Map<string, { user: number; sys: number; n: number }>();
  for (let round = 0; round < ROUNDS; round++) {
    for (const c of cases) {
      const row = argv.rate ? await openLoop(c.port, hello, Number(argv.rate), SECONDS * 1000, c.pid) : await closedLoop(c.port, hello, SECONDS * 1000, c.pid);
      const s = sums.get(c.name) ?? { user: 0, sys: 0, n: 0 };
      s.user += row.user; s.sys += row.sys; s.n++;
      sums.set(c.name, s);
      out(`  round ${round + 1} ${c.name}: ${row.perSec.toFixed(0)} conn/s, cpu ${row.user.toFixed(0)} user + ${row.sys.toFixed(0)} sys = ${(row.user + row.sys).toFixed(0)} us/conn; load ${os.loadavg()[0]!.toFixed(1)}${row.errors ? `; ${row.errors} errors (${row.firstError})` : ''}`);
    }
  }
  const avg = (n: string) => { const s = sums.get(n); return s ? { user: s.user / s.n, sys: s.sys / s.n } : undefined; };
  const g = avg('gw');
  const h = avg('ha');
  if (g) out(`gateway: ${g.user.toFixed(0)} + ${g.sys.toFixed(0)} = ${(g.user + g.sys).toFixed(0)} us/conn; RSS ${(Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${gw.child.pid}/status`, 'utf8'))![1]) / 1024).toFixed(1)} MB`);
  if (h) out(`haproxy: ${h.user.toFixed(0)} + ${h.sys.toFixed(0)} = ${(h.user + h.sys).toFixed(0)} us/conn`);
  if (g && h) out(`ratio: ${((g.user + g.sys) / (h.user + h.sys)).toFixed(2)}x (user ${(g.user / h.user).toFixed(2)}x)`);
  const fl = avg('floor');
  if (fl) out(`floor (first chunk, connect, pipe): ${fl.user.toFixed(0)} + ${fl.sys.toFixed(0)} = ${(fl.user + fl.sys).toFixed(0)} us/conn${h ? `, ${((fl.user + fl.sys) / (h.user + h.sys)).toFixed(2)}x haproxy` : ''}${g ? `; this gateway / floor ${((g.user + g.sys) / (fl.user + fl.sys)).toFixed(2)}x` : ''}`);
  const rf = avg('raw');
  if (rf) out(`raw floor (libuv handles, no net.Socket): ${rf.user.toFixed(0)} + ${rf.sys.toFixed(0)} = ${(rf.user + rf.sys).toFixed(0)} us/conn${h ? `, ${((rf.user + rf.sys) / (h.user + h.sys)).toFixed(2)}x haproxy` : ''}`);
  const b = avg('base');
  if (b) out(`baseline gateway: ${b.user.toFixed(0)} + ${b.sys.toFixed(0)} = ${(b.user + b.sys).toFixed(0)} us/conn${h ? `, ${((b.user + b.sys) / (h.user + h.sys)).toFixed(2)}x haproxy` : ''}${g ? `; this gateway / baseline ${((g.user + g.sys) / (b.user + b.sys)).toFixed(2)}x` : ''}`);
  // SIGTERM and a moment to exit (a gateway run with --cpu-prof writes its profile then).
  const alive = children.filter((c) => c.exitCode === null && c.signalCode === null);
  for (const c of alive) c.kill('SIGTERM');
  await Promise.race([Promise.all(alive.map((c) => new Promise((r) => c.once('exit', r)))), new Promise((r) => setTimeout(r, 5000).unref())]);
  fs.rmSync(tmp, { recursive: true, force: true });
}

try {
  await main();
} finally {
  killAll();
  await agent?.dispose().catch(() => undefined);
  process.exit(0);
}
