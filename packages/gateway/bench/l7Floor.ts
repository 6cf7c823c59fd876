// The floor under issue 14's L7 target ("routing adds <= 0.2 ms p99 over L4"): how much p99 an
// HTTP/1.1-aware forwarder written in Node adds over a byte pipe in the same two-hop topology as
// bench:proxy's `trellis ka` / `trellis l7 ka`, with none of Trellis's code in the way:
//
//   generator -> hop 1 (plain TCP in) -> mTLS -> hop 2 (TLS in) -> test app (test/fixtures/testApp.ts)
//
//   l4      hop 1 and hop 2 pipe bytes (socket.pipe both ways, one upstream connection per downstream one)
//   l7min   both hops find each request head's end (\r\n\r\n), read its Content-Length with indexOf
//           and forward the bytes unchanged over their own keep-alive pool (hop 1: TLS to hop 2,
//           hop 2: TCP to the app), reading the answer's head the same way to know where it ends:
//           the least an HTTP-aware hop can do (no header object, no re-serialisation, no routing)
//   l7parse l7min plus what a router must do with the head: split it into a header object with
//           lower-case names, then write a new head from that object (string concatenation)
//
// Each hop is its own Node process (as the sidecars are), run with the proxy launcher's flags
// (--lite-mode --max-semi-space-size=4 --heap-growing-percent=50; `--jit` drops --lite-mode). All
// three pairs run at once on their own ports; the latency rows are interleaved (l4, l7min, l7parse,
// then the reverse order, `--reps` times), each an open loop at `--rate` requests/s for `--seconds`
// on one keep-alive connection pool (http.Agent, as bench:proxy). CPU per request = utime+stime of
// the pair's two processes over its rows. `--pin`: the generator and the app on CPU 0, the hops on
// CPU 1 (taskset), so the generator does not compete with the proxies it measures. Then a closed loop
// on `--conns` keep-alive connections per pair, twice: the pair's CPU per request with no new connections.
//
//   node packages/gateway/bench/l7Floor.ts [--rate 500 --seconds 10 --reps 3 --conns 4 --pin --jit]
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';

const repoRoot = path.resolve(import.meta.dirname, '../../..');

// --- the bench (parent) ----------------------------------------------------------------------

const { values: argv } = parseArgs({
  options: {
    rate: { type: 'string', default: '500' },
    seconds: { type: 'string', default: '10' },
    reps: { type: 'string', default: '3' },
    conns: { type: 'string', default: '4' },
    modes: { type: 'string', default: 'l4,l7min,l7parse' },
    pin: { type: 'boolean', default: false },
    jit: { type: 'boolean', default: false },
  },
});


function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => { const p = (s.address() as net.AddressInfo).port; s.close(() => resolve(p)); });
  });
}

function cpuSeconds(pid: number): number {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

function once(port: number, agent: http.Agent): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = http.request({ host: '127.0.0.1', port, path: '/', agent }, (res) => {
      res.on('data', () => undefined);
      res.on('end', () => (res.statusCode === 200 ? resolve(performance.now() - t0) : reject(new Error(`status ${res.statusCode}`))));
      res.on('error', reject);
    });
    req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

/** Open loop as bench:proxy's: `rate` requests/s for `ms`, on schedule, keep-alive. */
async function openLoop(port: number, rate: number, ms: number): Promise<{ lat: number[]; errors: number }> {
  const ag = new http.Agent({ keepAlive: true, agentKeepAliveTimeoutBuffer: 100 } as http.AgentOptions);
  const lat: number[] = [];
  let errors = 0;
  const pending: Promise<void>[] = [];
  const start = performance.now();
  const total = Math.round((rate * ms) / 1000);
  let sent = 0;
  await new Promise<void>((done) => {
    const tick = () => {
      const due = Math.min(total, Math.floor(((performance.now() - start) * rate) / 1000) + 1);
      for (; sent < due; sent++) pending.push(once(port, ag).then((l) => { lat.push(l); }, () => { errors++; }));
      if (sent >= total) done(); else setTimeout(tick, 1);
    };
    tick();
  });
  await Promise.all(pending);
  ag.destroy();
  return { lat, errors };
}

const pct = (s: number[], p: number) => s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;

async function bench(): Promise<void> {
  const rate = Number(argv.rate);
  const seconds = Number(argv.seconds);
  const reps = Number(argv.reps);
  const conns = Number(argv.conns);
  const modes = argv.modes!.split(',');
  const children: ChildProcess[] = [];
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-l7floor-'));
  const cleanup = () => { for (const c of children) if (c.exitCode === null) c.kill('SIGKILL'); fs.rmSync(tmp, { recursive: true, force: true }); };
  process.on('exit', cleanup);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => process.exit(130));
  if (argv.pin) spawnSync('taskset', ['-a', '-p', '-c', '0', String(process.pid)], { stdio: 'ignore' });
  const ossl = (args: string[]) => { const r = spawnSync('openssl', args, { cwd: tmp, encoding: 'utf8' }); if (r.status !== 0) throw new Error(r.stderr); };
  ossl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=floor CA']);
  for (const n of ['server', 'client']) {
    ossl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${n}.key`, '-out', `${n}.csr`, '-subj', `/CN=${n}`]);
    ossl(['x509', '-req', '-in', `${n}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${n}.crt`, '-days', '2']);
  }
  const node = process.execPath;
  const flags = [...(argv.jit ? [] : ['--lite-mode']), '--max-semi-space-size=4', '--heap-growing-percent=50'];
  const startProc = (args: string[], pinTo?: string): Promise<ChildProcess> => {
    const cmd = pinTo && argv.pin ? 'taskset' : node;
    const full = pinTo && argv.pin ? ['-c', pinTo, node, ...args] : args;
    const c = spawn(cmd, full, { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, MALLOC_ARENA_MAX: '2' } });
    children.push(c);
    return new Promise((resolve, reject) => {
      c.stdout!.once('data', () => resolve(c));
      c.once('exit', (code) => reject(new Error(`${args.join(' ')} exited ${code}`)));
    });
  };
  const appPort = await freePort();
  const app = spawn(node, [path.join(repoRoot, 'test/fixtures/testApp.ts'), '-name', 'payments', '-listen', `127.0.0.1:${appPort}`], { stdio: 'ignore' });
  children.push(app);
  const ports = new Map<string, number>();
  const pairs = new Map<string, ChildProcess[]>();
  const hop = path.join(import.meta.dirname, 'l7FloorHop.mjs');
  for (const mode of modes) {
    const p1 = await freePort();
    const p2 = await freePort();
    const h2 = await startProc([...flags, hop, 'hop2', mode, String(p2), String(appPort), tmp], '1');
    const h1 = await startProc([...flags, hop, 'hop1', mode, String(p1), String(p2), tmp], '1');
    ports.set(mode, p1);
    pairs.set(mode, [h1, h2]);
  }
  for (let i = 0; i < 50; i++) { try { await once(appPort, new http.Agent()); break; } catch { await new Promise((r) => setTimeout(r, 100)); } }
  // Warm-up: each path 2 s at the rate (pools filled, code compiled as far as the flags let it).
  for (const mode of modes) await openLoop(ports.get(mode)!, rate, 2000);
  const rows = new Map<string, Array<{ p50: number; p99: number; cpuUs: number; errors: number; load: number }>>();
  for (let r = 0; r < reps; r++) {
    const order = r % 2 === 0 ? modes : [...modes].reverse();
    for (const mode of order) {
      const ps = pairs.get(mode)!;
      const cpu0 = ps.reduce((a, p) => a + cpuSeconds(p.pid!), 0);
      const { lat, errors } = await openLoop(ports.get(mode)!, rate, seconds * 1000);
      const cpu = ps.reduce((a, p) => a + cpuSeconds(p.pid!), 0) - cpu0;
      lat.sort((a, b) => a - b);
      const row = { p50: pct(lat, 50), p99: pct(lat, 99), cpuUs: (cpu / Math.max(1, lat.length)) * 1e6, errors, load: os.loadavg()[0]! };
      (rows.get(mode) ?? rows.set(mode, []).get(mode)!).push(row);
      process.stderr.write(`rep ${r + 1} ${mode.padEnd(8)} p50 ${row.p50.toFixed(2)} ms  p99 ${row.p99.toFixed(2)} ms  CPU ${row.cpuUs.toFixed(0)} us/req  errors ${errors}  load ${row.load.toFixed(2)}\n`);
    }
  }
  // CPU per request without new connections: a closed loop on `--conns` keep-alive connections
  // (fixed, so no TLS handshakes), the pair's utime+stime over it. CPU time is what a shared
  // machine disturbs least, and all of a hop's per-request work is on the request's path.
  const cpuRows = new Map<string, number[]>();
  for (let r = 0; r < 2; r++) {
    for (const mode of r % 2 === 0 ? modes : [...modes].reverse()) {
      const ps = pairs.get(mode)!;
      const ag = new http.Agent({ keepAlive: true, maxSockets: conns, agentKeepAliveTimeoutBuffer: 100 } as http.AgentOptions);
      const cpu0 = ps.reduce((a, p) => a + cpuSeconds(p.pid!), 0);
      let n = 0;
      const end = performance.now() + seconds * 500;
      await Promise.all(Array.from({ length: conns }, async () => { while (performance.now() < end) { await once(ports.get(mode)!, ag).catch(() => undefined); n++; } }));
      ag.destroy();
      const us = ((ps.reduce((a, p) => a + cpuSeconds(p.pid!), 0) - cpu0) / Math.max(1, n)) * 1e6;
      (cpuRows.get(mode) ?? cpuRows.set(mode, []).get(mode)!).push(us);
      process.stderr.write(`closed loop ${conns} conns ${mode.padEnd(8)} ${n} requests  CPU ${us.toFixed(0)} us/req  load ${os.loadavg()[0]!.toFixed(2)}\n`);
    }
  }
  const f = (x: number) => x.toFixed(2);
  const lines: string[] = [];
  const out = (s: string) => { lines.push(s); };
  out(`l7 floor  ${new Date().toISOString()}  Node ${process.version}  hops: ${flags.join(' ')}${argv.pin ? '  pinned: generator+app CPU 0, hops CPU 1' : ''}`);
  out(`open loop ${rate} requests/s, ${seconds} s per row, ${reps} reps interleaved; load average now ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const l4 = rows.get('l4');
  for (const [mode, rs] of rows) {
    const p99s = rs.map((x) => x.p99);
    const added = l4 && mode !== 'l4' ? rs.map((x, i) => x.p99 - l4[i]!.p99) : [];
    out(`${mode.padEnd(8)} closed loop (${conns} keep-alive connections, ${seconds / 2} s, twice): CPU/req ${cpuRows.get(mode)!.map((x) => x.toFixed(0)).join(' ')} us`);
    out(`${mode.padEnd(8)} p50 ${rs.map((x) => f(x.p50)).join(' ')}  p99 ${p99s.map(f).join(' ')} (median ${f(med(p99s))})`
      + `${added.length ? `  +p99 vs l4 same rep ${added.map(f).join(' ')} (median ${f(med(added))})` : ''}  CPU/req ${rs.map((x) => x.cpuUs.toFixed(0)).join(' ')} us`);
  }
  process.stdout.write(lines.join('\n') + '\n');
  process.exit(0);
}

await bench();
