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
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { AgentProcess, freePort, repoRoot, waitFor } from '../../../test/support/index.ts';
import { bundle, captureHello, cpuSplitMs, killAll, killWithChildren, rssMb, sniHaproxyConfig, start, startHaproxy, stopAll, trustDomainOf } from './benchSupport.ts';

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

let agent: AgentProcess | undefined;

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
  killWithChildren(agent);
  const td = await trustDomainOf(agent);
  const sni = `echo.default.dc1.internal.${td}`;
  const hello = await captureHello(sni);
  const backendPort = await freePort();
  await startBackend(backendPort, hello.length);
  const r = await agent.request('PUT', '/v1/agent/service/register', { body: JSON.stringify({ Name: 'echo', ID: 'echo', Port: backendPort, Connect: { SidecarService: { Port: backendPort } } }) });
  if (r.status !== 200) throw new Error(`register: ${r.status} ${r.text}`);
  await waitFor('echo healthy', async () => (await agent!.getJson<unknown[]>('/v1/health/connect/echo?passing=1')).length === 1, 30_000, 250);

  const gwPort = await freePort();
  const gwJs = path.join(tmp, 'meshGateway.mjs');
  await bundle(path.join(repoRoot, 'packages/gateway/bench/meshGatewayProcess.ts'), gwJs);
  const flags = (process.env['BENCH_GATEWAY_NODE_FLAGS'] ?? '').split(' ').filter(Boolean);
  // BENCH_GATEWAY_ENV='NAME=value ...': environment for this gateway only (not the baseline).
  const gwEnv = Object.fromEntries((process.env['BENCH_GATEWAY_ENV'] ?? '').split(' ').filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
  const gw = start(process.execPath, [...flags, gwJs, JSON.stringify({ httpAddr: agent.httpAddr, address: `127.0.0.1:${gwPort}` })], { env: { ...process.env, ...gwEnv } });
  // --baseline <entry.ts>: a second gateway built from another copy of meshGatewayProcess.ts (say,
  // the last commit's, from `git archive`), measured in alternation with this one under the same load.
  let base: ReturnType<typeof start> | undefined;
  const basePort = await freePort();
  if (argv.baseline) {
    const baseJs = path.join(tmp, 'meshGatewayBase.mjs');
    await bundle(path.resolve(argv.baseline), baseJs);
    const baseFlags = (process.env['BENCH_BASELINE_NODE_FLAGS'] ?? process.env['BENCH_GATEWAY_NODE_FLAGS'] ?? '').split(' ').filter(Boolean);
    base = start(process.execPath, [...baseFlags, baseJs, JSON.stringify({ httpAddr: agent.httpAddr, address: `127.0.0.1:${basePort}` })]);
    await base.ready;
  }
  // --floor: bench/floorRouter.ts too (first chunk, connect, pipe; nothing else): Node's own cost.
  let floor: ReturnType<typeof start> | undefined;
  const floorPort = await freePort();
  if (argv.floor) {
    const floorJs = path.join(tmp, 'floorRouter.mjs');
    await bundle(path.join(repoRoot, 'packages/gateway/bench/floorRouter.ts'), floorJs);
    floor = start(process.execPath, [floorJs, JSON.stringify({ httpAddr: agent.httpAddr, address: `127.0.0.1:${floorPort}` })]);
    await floor.ready;
  }
  // --raw-floor: bench/rawFloorRouter.ts too (the same on libuv handles, no net.Socket, no streams).
  let rawFloor: ReturnType<typeof start> | undefined;
  const rawFloorPort = await freePort();
  if (argv['raw-floor']) {
    const rawJs = path.join(tmp, 'rawFloorRouter.mjs');
    await bundle(path.join(repoRoot, 'packages/gateway/bench/rawFloorRouter.ts'), rawJs);
    rawFloor = start(process.execPath, [rawJs, JSON.stringify({ httpAddr: agent.httpAddr, address: `127.0.0.1:${rawFloorPort}` })]);
    await rawFloor.ready;
  }
  const haPort = await freePort();
  const ha = startHaproxy(tmp, sniHaproxyConfig([{ name: 'hop1', port: haPort, routes: [{ sni, backend: 'echo' }] }], { echo: backendPort }));
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
  out(`Node ${process.version}; gateway flags: ${flags.join(' ') || '(none)'}; ${argv.rate ? `open loop at ${argv.rate} conn/s` : `${CONNS} workers`}, ${SECONDS} s per row, ${ROUNDS} rounds, the order reversed every other round`);
  const sums = new Map<string, { user: number; sys: number; n: number }>();
  for (let round = 0; round < ROUNDS; round++) {
    // A-B-B-A: the order reversed every other round, so a drift in the machine's load falls on all.
    for (const c of round % 2 === 0 ? cases : [...cases].reverse()) {
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
  if (g) out(`gateway: ${g.user.toFixed(0)} + ${g.sys.toFixed(0)} = ${(g.user + g.sys).toFixed(0)} us/conn; RSS ${rssMb(gw.child.pid!).toFixed(1)} MB`);
  if (h) out(`haproxy: ${h.user.toFixed(0)} + ${h.sys.toFixed(0)} = ${(h.user + h.sys).toFixed(0)} us/conn`);
  if (g && h) out(`ratio: ${((g.user + g.sys) / (h.user + h.sys)).toFixed(2)}x (user ${(g.user / h.user).toFixed(2)}x)`);
  const fl = avg('floor');
  if (fl) out(`floor (first chunk, connect, pipe): ${fl.user.toFixed(0)} + ${fl.sys.toFixed(0)} = ${(fl.user + fl.sys).toFixed(0)} us/conn${h ? `, ${((fl.user + fl.sys) / (h.user + h.sys)).toFixed(2)}x haproxy` : ''}${g ? `; this gateway / floor ${((g.user + g.sys) / (fl.user + fl.sys)).toFixed(2)}x` : ''}`);
  const rf = avg('raw');
  if (rf) out(`raw floor (libuv handles, no net.Socket): ${rf.user.toFixed(0)} + ${rf.sys.toFixed(0)} = ${(rf.user + rf.sys).toFixed(0)} us/conn${h ? `, ${((rf.user + rf.sys) / (h.user + h.sys)).toFixed(2)}x haproxy` : ''}`);
  const b = avg('base');
  if (b) out(`baseline gateway: ${b.user.toFixed(0)} + ${b.sys.toFixed(0)} = ${(b.user + b.sys).toFixed(0)} us/conn${h ? `, ${((b.user + b.sys) / (h.user + h.sys)).toFixed(2)}x haproxy` : ''}${g ? `; this gateway / baseline ${((g.user + g.sys) / (b.user + b.sys)).toFixed(2)}x` : ''}`);
  // SIGTERM and a moment to exit (a gateway run with --cpu-prof writes its profile then).
  await stopAll(5000);
  fs.rmSync(tmp, { recursive: true, force: true });
}

try {
  await main();
} finally {
  killAll();
  await agent?.dispose().catch(() => undefined);
  process.exit(0);
}
