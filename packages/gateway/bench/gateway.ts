// The mesh gateway's speed (issue 15, "Speed"): one run, one load generator (this process, mTLS
// clients with a leaf of the bench CA), five ways to the same backend (bench/tlsEcho.ts, an mTLS
// server standing in for the destination's sidecar, answering "ping\n" with "pong\n"):
//   direct     the backend itself
//   gw x1      one mesh gateway (dc1 name -> the backend, found through a real dev agent's catalog)
//   gw x2      two chained gateways: A (dc1) forwards dc2 names to B (a stand-in for dc2's gateway,
//              by a static address: ?dc= forwarding is another helper's work), B to the backend
//   ha x1      haproxy (Debian) `mode tcp`, one thread, routing by req.ssl_sni to the backend
//   ha x2      the same haproxy with two frontends chained the same way
// The gateways are processes of their own (bench/meshGatewayProcess.ts, startMeshGateway as
// `trellis connect gateway` runs it), so their CPU time is read from /proc/<pid>/stat.
//
// Rows per case:
//   new conn   closed loop, N workers, each a new TLS connection per request (full handshake, no
//              session resumption): connections/s, p50/p99 of connect+request, CPU per connection
//              of the gateway(s) / haproxy
//   long-lived closed loop, N connections opened first, many requests each: requests/s, p50/p99
//   @half      open loop of new connections at half the one-gateway peak: p50/p99 (added per hop)
// Then: 10,000 concurrent idle connections through one gateway (fewer if the open-files limit
// cannot hold 2 per connection in the gateway), the gateway's RSS.
//
//   npm run bench:gateway [-- --seconds 8 --conns 16 --idle 10000]
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
    seconds: { type: 'string', default: '8' },
    conns: { type: 'string', default: '16' },
    idle: { type: 'string', default: '10000' },
    only: { type: 'string' },
  },
});
const SECONDS = Number(argv.seconds);
const CONNS = Number(argv.conns);
const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

const children: ChildProcess[] = [];
let agent: AgentProcess | undefined;
let tmp: string | undefined;
function killAll(): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  agent?.killNow();
}
process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => { killAll(); process.exit(130); });

function start(cmd: string, args: string[]): { child: ChildProcess; out: () => string; ready: Promise<void> } {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  let ready!: () => void;
  const readyP = new Promise<void>((r) => { ready = r; });
  const keep = (b: Buffer) => { out = (out + b.toString()).slice(-20_000); if (/^ready/m.test(out)) ready(); };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  return { child, out: () => out, ready: readyP };
}

function openssl(args: string[], cwd: string): void {
  const r = spawnSync('openssl', args, { cwd, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
}

/** A CA and two RSA 2048 leaves with SPIFFE URI SANs, as the mesh's (the backend: echo; the client: web). */
function makeCerts(dir: string, td: string): void {
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=bench CA'], dir);
  for (const [name, svc] of [['server', 'echo'], ['client', 'web']] as const) {
    fs.writeFileSync(path.join(dir, `${name}.ext`), `subjectAltName=URI:spiffe://${td}/ns/default/dc/dc1/svc/${svc}\n`);
    openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${svc}`], dir);
    openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`], dir);
  }
}

/** utime + stime of a process, in ms. */
function cpuMs(pid: number): number {
  const t = cpuSplitMs(pid);
  return t.user + t.sys;
}

/** utime and stime of a process, in ms (user space vs the kernel's work for it). */
function cpuSplitMs(pid: number): { user: number; sys: number } {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { user: (Number(f[11]) * 1000) / CLK_TCK, sys: (Number(f[12]) * 1000) / CLK_TCK };
}

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

let clientCtx: tls.SecureContext;

/** One new mTLS connection, one ping/pong, closed: ms from connect() to the pong. */
function newConnRequest(port: number, sni: string): Promise<number> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername: sni, secureContext: clientCtx, checkServerIdentity: () => undefined });
    const timer = setTimeout(() => s.destroy(new Error('timeout')), 10_000);
    s.once('secureConnect', () => s.write('ping\n'));
    s.once('data', () => { clearTimeout(timer); const ms = performance.now() - t0; s.destroy(); resolve(ms); });
    s.once('error', (e) => { clearTimeout(timer); reject(e); });
    s.once('close', () => { clearTimeout(timer); reject(new Error('closed')); });
  });
}

function openConn(port: number, sni: string): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername: sni, secureContext: clientCtx, checkServerIdentity: () => undefined });
    s.once('secureConnect', () => resolve(s));
    s.once('error', reject);
  });
}

function pingOn(s: tls.TLSSocket): Promise<number> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const onData = () => { s.off('error', onErr); resolve(performance.now() - t0); };
    const onErr = (e: Error) => { s.off('data', onData); reject(e); };
    s.once('data', onData);
    s.once('error', onErr);
    s.write('ping\n');
  });
}

interface Row { ok: number; errors: number; firstError?: string; perSec: number; p50: number; p99: number; cpuPer?: number; userPer?: number }

function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function summarize(lat: number[], errors: number, firstError: string | undefined, ms: number): Row {
  lat.sort((a, b) => a - b);
  return { ok: lat.length, errors, firstError, perSec: lat.length / (ms / 1000), p50: pct(lat, 50), p99: pct(lat, 99) };
}

async function closedNew(port: number, sni: string, conns: number, ms: number, pids: number[]): Promise<Row> {
  const lat: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  const cpu0 = pids.reduce((a, p) => a + cpuMs(p), 0);
  const user0 = pids.reduce((a, p) => a + cpuSplitMs(p).user, 0);
  const end = performance.now() + ms;
  await Promise.all(Array.from({ length: conns }, async () => {
    while (performance.now() < end) {
      try { lat.push(await newConnRequest(port, sni)); } catch (e) { errors++; firstError ??= (e as Error).message; }
    }
  }));
  const row = summarize(lat, errors, firstError, ms);
  if (pids.length) {
    row.cpuPer = ((pids.reduce((a, p) => a + cpuMs(p), 0) - cpu0) * 1000) / Math.max(1, row.ok); // µs
    row.userPer = ((pids.reduce((a, p) => a + cpuSplitMs(p).user, 0) - user0) * 1000) / Math.max(1, row.ok);
  }
  return row;
}

async function closedLong(port: number, sni: string, conns: number, ms: number, pids: number[]): Promise<Row> {
  const sockets = await Promise.all(Array.from({ length: conns }, () => openConn(port, sni)));
  for (const s of sockets) await pingOn(s); // warm
  const lat: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  const cpu0 = pids.reduce((a, p) => a + cpuMs(p), 0);
  const end = performance.now() + ms;
  await Promise.all(sockets.map(async (s) => {
    while (performance.now() < end) {
      try { lat.push(await pingOn(s)); } catch (e) { errors++; firstError ??= (e as Error).message; break; }
    }
  }));
  for (const s of sockets) s.destroy();
  const row = summarize(lat, errors, firstError, ms);
  if (pids.length) row.cpuPer = ((pids.reduce((a, p) => a + cpuMs(p), 0) - cpu0) * 1000) / Math.max(1, row.ok);
  return row;
}

async function openNew(port: number, sni: string, rate: number, ms: number): Promise<Row> {
  const lat: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  const pending: Array<Promise<void>> = [];
  const t0 = performance.now();
  const total = Math.floor((rate * ms) / 1000);
  for (let i = 0; i < total; i++) {
    const due = t0 + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    pending.push(newConnRequest(port, sni).then((m) => { lat.push(m); }, (e: Error) => { errors++; firstError ??= e.message; }));
  }
  await Promise.all(pending);
  return summarize(lat, errors, firstError, ms);
}

/** The ClientHello Node sends for `sni` (captured by a plain TCP server), for the idle row. */
async function captureHello(sni: string): Promise<Buffer> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const got = new Promise<Buffer>((resolve) => server.once('connection', (s) => s.once('data', (b: Buffer) => { resolve(b); s.destroy(); })));
  const c = tls.connect({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port, servername: sni, secureContext: clientCtx });
  c.on('error', () => undefined);
  const hello = await got;
  c.destroy();
  server.close();
  return hello;
}

async function metric(addr: string, name: string, labels: Record<string, string>): Promise<number> {
  const res = await fetch(`http://${addr}/metrics`);
  let sum = 0;
  for (const line of (await res.text()).split('\n')) {
    if (line.startsWith(`${name}{`) && Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) sum += Number(line.split(' ').at(-1));
  }
  return sum;
}

async function main(): Promise<void> {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-bench-gateway-'));
  agent = await AgentProcess.start({ name: 'bench-gateway' });
  // A fresh dev agent's leader makes its CA just after election: wait for the trust domain.
  let td = '';
  await waitFor('the CA roots name a trust domain', async () => {
    td = (await agent!.getJson<{ TrustDomain?: string }>('/v1/agent/connect/ca/roots').catch(() => ({ TrustDomain: '' }))).TrustDomain ?? '';
    return td !== '';
  }, 30_000, 100);
  makeCerts(tmp, td);
  const read = (f: string) => fs.readFileSync(path.join(tmp!, f), 'utf8');
  clientCtx = tls.createSecureContext({ key: read('client.key'), cert: read('client.crt'), ca: read('ca.pem') });

  const backendPort = await freePort();
  const sinkPort = await freePort();
  const backend = start(process.execPath, [path.join(repoRoot, 'packages/gateway/bench/tlsEcho.ts'), tmp, String(backendPort), String(sinkPort)]);
  await backend.ready;
  // The backend and the sink as the Connect instances of `echo` and `idle` (sidecar ports).
  for (const [name, port] of [['echo', backendPort], ['idle', sinkPort]] as const) {
    const r = await agent.request('PUT', '/v1/agent/service/register', { body: JSON.stringify({ Name: name, ID: name, Port: port, Connect: { SidecarService: { Port: port } } }) });
    if (r.status !== 200) throw new Error(`register ${name}: ${r.status} ${r.text}`);
  }
  await waitFor('echo and idle healthy', async () => {
    const e = await agent!.getJson<unknown[]>('/v1/health/connect/echo?passing=1');
    const i = await agent!.getJson<unknown[]>('/v1/health/connect/idle?passing=1');
    return e.length === 1 && i.length === 1;
  }, 30_000, 250);

  const bPort = await freePort();
  const aPort = await freePort();
  const aMetrics = `127.0.0.1:${await freePort()}`;
  // BENCH_CPU_PROF=<dir>: the gateways write V8 CPU profiles there when stopped (SIGTERM).
  const prof = process.env['BENCH_CPU_PROF'] ? ['--cpu-prof', `--cpu-prof-dir=${process.env['BENCH_CPU_PROF']}`] : [];
  // BENCH_GATEWAY_NODE_FLAGS='--flag ...': extra Node/V8 flags for the gateways (to compare settings).
  prof.push(...(process.env['BENCH_GATEWAY_NODE_FLAGS'] ?? '').split(' ').filter(Boolean));
  // The gateways run bundled, as `trellis connect gateway` runs from dist (no TypeScript stripping
  // at run time, whose compiler would count in the RSS).
  const gwJs = path.join(tmp, 'meshGateway.mjs');
  await esbuild.build({ entryPoints: [path.join(repoRoot, 'packages/gateway/bench/meshGatewayProcess.ts')], bundle: true, platform: 'node', format: 'esm', target: 'node24', outfile: gwJs, logLevel: 'warning' });
  const gwB = start(process.execPath, [...prof, gwJs, JSON.stringify({ httpAddr: agent.httpAddr, address: `127.0.0.1:${bPort}`, datacenter: 'dc2' })]);
  const gwA = start(process.execPath, [...prof, gwJs, JSON.stringify({ httpAddr: agent.httpAddr, address: `127.0.0.1:${aPort}`, metricsAddr: aMetrics, staticRemotes: { dc2: [`127.0.0.1:${bPort}`] } })]);
  await Promise.all([gwA.ready, gwB.ready]);

  const ha1 = await freePort();
  const ha2 = await freePort();
  const sni1 = `echo.default.dc1.internal.${td}`;
  const sni2 = `echo.default.dc2.internal.${td}`;
  const cfg = `global
  nbthread 1
  maxconn 9000
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend hop1
  bind 127.0.0.1:${ha1}
  tcp-request inspect-delay 5s
  tcp-request content accept if { req.ssl_hello_type 1 }
  use_backend echo if { req.ssl_sni -i ${sni1} }
  use_backend hop2 if { req.ssl_sni -m end .dc2.internal.${td} }
frontend hop2
  bind 127.0.0.1:${ha2}
  tcp-request inspect-delay 5s
  tcp-request content accept if { req.ssl_hello_type 1 }
  use_backend echo if { req.ssl_sni -i ${sni2} }
backend echo
  server s1 127.0.0.1:${backendPort}
backend hop2
  server s1 127.0.0.1:${ha2}
`;
  fs.writeFileSync(path.join(tmp, 'haproxy.cfg'), cfg);
  const check = spawnSync('haproxy', ['-c', '-f', path.join(tmp, 'haproxy.cfg')], { encoding: 'utf8' });
  if (check.status !== 0) throw new Error(`haproxy config: ${check.stdout}${check.stderr}`);
  const ha = start('haproxy', ['-db', '-f', path.join(tmp, 'haproxy.cfg')]);
  const haVersion = spawnSync('haproxy', ['-v'], { encoding: 'utf8' }).stdout.split('\n')[0];

  const cases = [
    { name: 'direct', port: backendPort, sni: sni1, pids: [] as number[], hops: 0 },
    { name: 'gw x1', port: aPort, sni: sni1, pids: [gwA.child.pid!], hops: 1 },
    { name: 'gw x2', port: aPort, sni: sni2, pids: [gwA.child.pid!, gwB.child.pid!], hops: 2 },
    { name: 'ha x1', port: ha1, sni: sni1, pids: [ha.child.pid!], hops: 1 },
    { name: 'ha x2', port: ha1, sni: sni2, pids: [ha.child.pid!], hops: 2 },
  ].filter((c) => !argv.only || argv.only.split(',').includes(c.name));
  for (const c of cases) {
    try {
      await waitFor(`${c.name} answers`, async () => { try { await newConnRequest(c.port, c.sni); return true; } catch { return false; } }, 20_000, 200);
    } catch (err) {
      throw new Error(`${(err as Error).message}\nhaproxy: ${ha.out()}\ngateway A: ${gwA.out()}\ngateway B: ${gwB.out()}\nbackend: ${backend.out()}`);
    }
  }
  const ms = SECONDS * 1000;
  const results = new Map<string, { fresh: Row; long: Row; half?: Row }>();
  for (const c of cases) {
    // Warm-up (JIT, the gateway's first catalog answers), not measured.
    await closedNew(c.port, c.sni, CONNS, Math.min(2000, ms / 2), []);
    const fresh = await closedNew(c.port, c.sni, CONNS, ms, c.pids);
    const long = await closedLong(c.port, c.sni, CONNS, ms, c.pids);
    results.set(c.name, { fresh, long });
    process.stderr.write(`${c.name}: new ${fresh.perSec.toFixed(0)}/s, long-lived ${long.perSec.toFixed(0)}/s\n`);
  }
  const peak = results.get('gw x1')?.fresh.perSec ?? results.get('direct')?.fresh.perSec ?? 200;
  const halfRate = Math.max(10, Math.floor(peak / 2));
  for (const c of cases) results.get(c.name)!.half = await openNew(c.port, c.sni, halfRate, ms);

  // 10,000 idle connections through gateway A (2 descriptors each in the gateway).
  const limit = Number(spawnSync('bash', ['-c', 'ulimit -n'], { encoding: 'utf8' }).stdout.trim()) || 1024;
  const idleWanted = Number(argv.idle);
  const idleN = Math.min(idleWanted, Math.floor((limit - 300) / 2));
  const hello = await captureHello(`idle.default.dc1.internal.${td}`);
  const rssBefore = rssMb(gwA.child.pid!);
  const idle: net.Socket[] = [];
  for (let i = 0; i < idleN; i += 200) {
    await Promise.all(Array.from({ length: Math.min(200, idleN - i) }, () => new Promise<void>((resolve, reject) => {
      const s = net.connect(aPort, '127.0.0.1', () => { s.write(hello); resolve(); });
      s.on('error', reject);
      idle.push(s);
    })));
  }
  await waitFor('idle connections all forwarded', async () => (await metric(aMetrics, 'consul_mesh_gateway_conns', { target: 'idle.default.dc1' })) >= idleN, 60_000, 250);
  await new Promise((r) => setTimeout(r, 2000));
  const rssIdle = rssMb(gwA.child.pid!);
  for (const s of idle) s.destroy();

  const out = (s: string) => process.stdout.write(`${s}\n`);
  out('');
  out(`machine: ${os.cpus().length} x ${os.cpus()[0]?.model.trim()}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB; load average ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}; Node ${process.version}; ${haVersion}`);
  out(`load: ${CONNS} workers/connections, ${SECONDS} s per row; RSA 2048 mTLS leaves; @half = open loop at ${halfRate} new connections/s (half the one-gateway peak)`);
  out('');
  const f = (n: number | undefined, d = 2) => (n === undefined || Number.isNaN(n) ? '-' : n.toFixed(d));
  out(`${'case'.padEnd(7)} | ${'new/s'.padStart(6)} ${'p50'.padStart(6)} ${'p99'.padStart(6)} ${'cpu us/conn'.padStart(11)} | ${'long req/s'.padStart(10)} ${'p50'.padStart(6)} ${'p99'.padStart(6)} ${'cpu us/req'.padStart(10)} | ${'@half p50'.padStart(9)} ${'p99'.padStart(6)} ${'+p99/hop'.padStart(8)} | errors`);
  const direct = results.get('direct');
  for (const c of cases) {
    const r = results.get(c.name)!;
    const addedPerHop = direct && c.hops > 0 ? (r.half!.p99 - direct.half!.p99) / c.hops : undefined;
    const errs = r.fresh.errors + r.long.errors + r.half!.errors;
    out(`${c.name.padEnd(7)} | ${f(r.fresh.perSec, 0).padStart(6)} ${f(r.fresh.p50).padStart(6)} ${f(r.fresh.p99).padStart(6)} ${f(r.fresh.cpuPer, 0).padStart(11)} | ${f(r.long.perSec, 0).padStart(10)} ${f(r.long.p50).padStart(6)} ${f(r.long.p99).padStart(6)} ${f(r.long.cpuPer, 1).padStart(10)} | ${f(r.half!.p50).padStart(9)} ${f(r.half!.p99).padStart(6)} ${f(addedPerHop).padStart(8)} | ${errs}${errs ? ` (${r.fresh.firstError ?? r.long.firstError ?? r.half!.firstError})` : ''}`);
  }
  out('');
  out('CPU per new connection, user space + kernel (µs; /proc/<pid>/stat utime + stime):');
  for (const c of cases) {
    const r = results.get(c.name)!.fresh;
    if (r.cpuPer !== undefined) out(`  ${c.name.padEnd(7)} ${f(r.userPer, 0)} + ${f(r.cpuPer - (r.userPer ?? 0), 0)}`);
  }
  out('');
  out(`idle: ${idleN} concurrent connections through one gateway (asked ${idleWanted}; open-files limit ${limit}, 2 per connection): gateway RSS ${f(rssBefore, 1)} MB before, ${f(rssIdle, 1)} MB with them open`);
  out('');
  out('targets (issue 15):');
  const ratio = (a: number | undefined, b: number | undefined) => (a !== undefined && b ? a / b : undefined);
  for (const [hop, gw, hp] of [['1 hop', 'gw x1', 'ha x1'], ['2 hops', 'gw x2', 'ha x2']] as const) {
    const g = results.get(gw);
    const h = results.get(hp);
    if (!g || !h) continue;
    const rn = ratio(g.fresh.perSec, h.fresh.perSec);
    const rl = ratio(g.long.perSec, h.long.perSec);
    const rc = ratio(g.fresh.cpuPer, h.fresh.cpuPer);
    out(`  ${hop}: new connections ${f(rn)}x haproxy (target >= 1.0: ${rn !== undefined && rn >= 1 ? 'met' : 'NOT met'}); long-lived ${f(rl)}x (>= 0.8: ${rl !== undefined && rl >= 0.8 ? 'met' : 'NOT met'}); CPU per new connection ${f(rc)}x haproxy's (<= 1.2: ${rc !== undefined && rc <= 1.2 ? 'met' : 'NOT met'})`);
  }
  const g1 = results.get('gw x1');
  if (g1 && direct) {
    const added = g1.half!.p99 - direct.half!.p99;
    // A direct case slower than the gateway's (a loaded machine) makes the difference meaningless.
    if (direct.half!.p99 > 20 || added < 0) out(`  added p99 per gateway hop at half load: not measurable in this run (direct p99 ${f(direct.half!.p99)} ms, one gateway ${f(g1.half!.p99)} ms)`);
    else out(`  added p99 per gateway hop at half load: ${f(added)} ms (<= 1 ms: ${added <= 1 ? 'met' : 'NOT met'})`);
  }
  out(`  idle RSS with ${idleN} connections: ${f(rssIdle, 1)} MB (<= 300 MB${idleN < 10_000 ? `, at ${idleN} not 10,000` : ''}: ${rssIdle <= 300 ? 'met' : 'NOT met'})`);
}

async function stopAll(): Promise<void> {
  const alive = children.filter((c) => c.exitCode === null && c.signalCode === null);
  for (const c of alive) c.kill('SIGTERM');
  await Promise.race([
    Promise.all(alive.map((c) => new Promise((r) => c.once('exit', r)))),
    new Promise((r) => setTimeout(r, 3000).unref()),
  ]);
  killAll();
}

try {
  await main();
} finally {
  await stopAll();
  await agent?.dispose().catch(() => undefined);
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
}
