// The sidecar proxy's speed (issue 13, "Speed"): one run, one load generator (this process, plain
// HTTP/1.1 GETs of the test app), four ways to the same test app process:
//   direct           the app itself
//   trellis ka       upstream listener -> `trellis connect proxy` (web) -> mTLS -> proxy (payments) -> app,
//                    the client keeping its connection alive (http.Agent keepAlive)
//   trellis new      the same path, a new connection per request (as the test apps call upstreams)
//   haproxy ka/new   haproxy (Debian) doing the same two hops in TCP mode: a plain frontend that
//                    re-encrypts to a second frontend terminating mTLS (RSA 2048 leaves of one CA,
//                    verify required both ways, TLS session reuse on) in front of the app
// The proxies are real processes: `trellis agent -dev` (CA, leaves, intentions), two
// `trellis connect proxy -sidecar-for` processes started through node_modules/.bin/trellis.
//
// Per case: latency row = open loop at a fixed rate (default 1,000 requests/s for 10 s, requests
// sent on schedule whether or not earlier ones answered; latency = performance.now() from send to
// the end of the answer); throughput row = closed loop with N connections (default 16) for 10 s.
// "added" = the case's p50/p99 minus the direct case's in the same run.
//
// L7 (issue 14): `trellis l7 ka` is the same keep-alive path with the upstream in HTTP mode through
// a discovery chain: a service-router with 10 routes (the bench's GET / takes the last, the
// catch-all, after nine that do not match), a 3-way service-splitter (v1 / v2 / the resolver's
// default), a service-resolver with two subsets (Service.Meta.version), over two instances whose
// sidecars front the same test app. Its "+p99 vs L4" is its p99 minus `trellis ka`'s in the same run.
//
//   npm run bench:proxy [-- --rate 1000 --seconds 10 --conns 16 --tput-seconds 10]
import { spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { AgentProcess, freePort, launcher, repoRoot, trellisEnv, waitFor } from '../../../test/support/index.ts';
import { planRequest } from '../src/chainEval.ts';
import type { CompiledDiscoveryChain } from '../src/chainTypes.ts';
import { requestInfo } from '../src/routeMatch.ts';
import { cleanUp, cpuMs, killWithChildren, openssl, pct, rssParts, start as startChild } from './benchSupport.ts';

const { values: argv } = parseArgs({
  options: {
    rate: { type: 'string', default: '1000' },
    seconds: { type: 'string', default: '10' },
    conns: { type: 'string', default: '16' },
    'tput-seconds': { type: 'string', default: '10' },
    only: { type: 'string' }, // comma-separated case names, for profiling one case
    // The generator (this process), the app and the agent on CPU 0, the proxies and haproxy on CPU 1
    // (taskset): the generator does not compete with what it measures. For tail latency on a shared
    // machine, also run the whole bench under `nice -n -10` (children inherit it; docs/BENCHMARKS.md).
    pin: { type: 'boolean' },
    help: { type: 'boolean' },
  },
});
if (argv.help) {
  process.stdout.write('npm run bench:proxy [-- --rate 1000 --seconds 10 --conns 16 --tput-seconds 10 --only "trellis ka,trellis l7 ka" --pin]\n'
    + '  Prints latency/throughput per case, the L7 vs L4 rows, the proxies\' CPU per request and their idle RSS after the traffic.\n'
    + '  The proxies run as `trellis connect proxy` does (TRELLIS_NODE, if set, names the Node binary or a wrapper).\n');
  process.exit(0);
}
const RATE = Number(argv.rate);
const SECONDS = Number(argv.seconds);
const CONNS = Number(argv.conns);
const TPUT_SECONDS = Number(argv['tput-seconds']);
const WARMUP_MS = 2000;

// Children and the agent are killed on exit, SIGINT and SIGTERM (benchSupport.ts).
let agent: AgentProcess | undefined;
let tmp: string | undefined;

/** --pin: a proxy's command line on CPU 1 (taskset execs it: the pid stays the proxy's, for its CPU time). */
function onProxyCpu(cmd: string, args: string[]): [string, string[]] {
  return argv.pin ? ['taskset', ['-c', '1', cmd, ...args]] : [cmd, args];
}

const start = (cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env) => startChild(cmd, args, { env });

// --- load generator -------------------------------------------------------------------------

interface Row { ok: number; errors: number; seconds: number; lat: number[]; firstError?: string }

/** Requests that went out on a fresh TCP connection (http.ClientRequest.reusedSocket false). */
let newSockets = 0;

function once(port: number, agent: http.Agent | false): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = http.request({ host: '127.0.0.1', port, path: '/', agent }, (res) => {
      if (!req.reusedSocket) newSockets++;
      res.on('data', () => { /* drain */ });
      res.on('end', () => (res.statusCode === 200 ? resolve(performance.now() - t0) : reject(new Error(`status ${res.statusCode}`))));
      res.on('error', reject);
    });
    req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

/**
 * A keep-alive client. The test app announces `Keep-Alive: timeout=1` and Node's agent drops a
 * socket `agentKeepAliveTimeoutBuffer` (default 1 s) before the server's announced timeout, i.e.
 * at once: without a smaller buffer no socket is ever reused and "ka" would be a new connection
 * per request (checked: the bench prints how many requests went out on a new connection).
 */
function kaAgent(maxSockets: number): http.Agent {
  return new http.Agent({ keepAlive: true, maxSockets, agentKeepAliveTimeoutBuffer: 100 } as http.AgentOptions);
}

function mkAgent(keepAlive: boolean): http.Agent | false {
  return keepAlive ? kaAgent(Infinity) : false;
}

/** Open loop: `rate` requests/s for `ms`, sent on a schedule (catching up each timer tick). */
async function openLoop(port: number, keepAlive: boolean, rate: number, ms: number): Promise<Row> {
  const ag = mkAgent(keepAlive);
  const lat: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  const pending: Promise<void>[] = [];
  const start = performance.now();
  const total = Math.round((rate * ms) / 1000);
  let sent = 0;
  await new Promise<void>((done) => {
    const tick = () => {
      const due = Math.min(total, Math.floor(((performance.now() - start) * rate) / 1000) + 1);
      for (; sent < due; sent++) pending.push(once(port, ag).then((l) => { lat.push(l); }, (err: Error) => { errors++; firstError ??= err.message; }));
      if (sent >= total) done();
      else setTimeout(tick, 1);
    };
    tick();
  });
  await Promise.all(pending);
  if (ag) ag.destroy();
  return { ok: lat.length, errors, seconds: (performance.now() - start) / 1000, lat, firstError };
}

/** Closed loop: `conns` workers, each sending its next request when the previous one answered. */
async function closedLoop(port: number, keepAlive: boolean, conns: number, ms: number): Promise<Row> {
  const ag = keepAlive ? kaAgent(conns) : false;
  const lat: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  const start = performance.now();
  const end = start + ms;
  const worker = async () => {
    while (performance.now() < end && errors < 1000) {
      try { lat.push(await once(port, ag)); } catch (err) { errors++; firstError ??= (err as Error).message; }
    }
  };
  await Promise.all(Array.from({ length: conns }, worker));
  if (ag) ag.destroy();
  return { ok: lat.length, errors, seconds: (performance.now() - start) / 1000, lat, firstError };
}

// --- haproxy reference ----------------------------------------------------------------------

/** A CA and two RSA 2048 leaves (server, client) with SPIFFE URI SANs like the mesh's, as PEM files. */
function makeCerts(dir: string): void {
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=bench CA'], dir);
  for (const [name, svc] of [['server', 'payments'], ['client', 'web']] as const) {
    fs.writeFileSync(path.join(dir, `${name}.ext`), `subjectAltName=URI:spiffe://bench.consul/ns/default/dc/dc1/svc/${svc},DNS:localhost\n`);
    openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${svc}`], dir);
    openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`], dir);
    fs.writeFileSync(path.join(dir, `${name}.pem`), fs.readFileSync(path.join(dir, `${name}.crt`), 'utf8') + fs.readFileSync(path.join(dir, `${name}.key`), 'utf8'));
  }
}

async function startHaproxy(dir: string, appPort: number): Promise<number> {
  const front = await freePort();
  const tlsPort = await freePort();
  const cfg = `global
  log stderr format raw local0 err
  ssl-server-verify required
  tune.ssl.default-dh-param 2048
defaults
  mode tcp
  timeout connect 5s
  timeout client 30s
  timeout server 30s
# hop 1, like the web sidecar's upstream listener: plain TCP in, mTLS out (session reuse is haproxy's default)
frontend upstream_listener
  bind 127.0.0.1:${front}
  default_backend to_payments_sidecar
backend to_payments_sidecar
  server p 127.0.0.1:${tlsPort} ssl crt ${dir}/client.pem ca-file ${dir}/ca.pem verify required sni str(payments) ssl-min-ver TLSv1.3
# hop 2, like the payments sidecar's public listener: mTLS in, plain TCP to the app
frontend public_listener
  bind 127.0.0.1:${tlsPort} ssl crt ${dir}/server.pem ca-file ${dir}/ca.pem verify required ssl-min-ver TLSv1.3
  default_backend app
backend app
  server a 127.0.0.1:${appPort}
`;
  fs.writeFileSync(path.join(dir, 'haproxy.cfg'), cfg);
  const check = spawnSync('haproxy', ['-c', '-f', path.join(dir, 'haproxy.cfg')], { encoding: 'utf8' });
  if (check.status !== 0) throw new Error(`haproxy config: ${check.stdout}${check.stderr}`);
  const p = start(...onProxyCpu('haproxy', ['-db', '-f', path.join(dir, 'haproxy.cfg')]));
  haproxyProc = p.child;
  await waitFor('haproxy answers', async () => { try { await once(front, false); return true; } catch { return false; } }, 15_000, 100)
    .catch((err) => { throw new Error(`${(err as Error).message}\n${p.out()}`); });
  return front;
}

// --- the mesh -------------------------------------------------------------------------------

/** The web sidecar's -metrics-addr port: how many of its upstream connections resumed a TLS session. */
let webMetricsPort = 0;
/** consul_proxy_conns_total{direction="upstream"} and consul_proxy_tls_resumed_total of the web sidecar. */
async function webUpstreamCounts(): Promise<{ conns: number; resumed: number }> {
  const text = await new Promise<string>((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: webMetricsPort, path: '/metrics', agent: false }, (res) => {
      let b = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { b += d; });
      res.on('end', () => resolve(b));
    }).on('error', reject);
  });
  const sum = (re: RegExp) => text.split('\n').filter((l) => re.test(l)).reduce((a, l) => a + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
  return { conns: sum(/^consul_proxy_conns_total\{[^}]*direction="upstream"/), resumed: sum(/^consul_proxy_tls_resumed_total[{ ]/) };
}

async function startMesh(appPort: number): Promise<number> {
  agent = await AgentProcess.start({ name: 'bench-proxy', args: ['-log-level', 'warn'] });
  killWithChildren(agent);
  const upstreamPort = await freePort();
  const register = async (body: unknown) => {
    const r = await agent!.request('PUT', '/v1/agent/service/register', { body: JSON.stringify(body) });
    if (r.status !== 200) throw new Error(`register: ${r.status} ${r.text}`);
  };
  await register({ Name: 'payments', Port: appPort, Connect: { SidecarService: { Port: await freePort(), Proxy: { Config: { bind_address: '127.0.0.1' } } } } });
  await register({
    Name: 'web', Port: await freePort(),
    Connect: { SidecarService: { Port: await freePort(), Proxy: { Config: { bind_address: '127.0.0.1' }, Upstreams: [{ DestinationName: 'payments', LocalBindPort: upstreamPort }] } } },
  });
  webMetricsPort = await freePort();
  const procs = ['payments', 'web'].map((svc) => start(...onProxyCpu(launcher, ['connect', 'proxy', '-sidecar-for', svc, '-http-addr', agent!.httpAddr, '-log-level', 'warn',
    ...(svc === 'web' ? ['-metrics-addr', `127.0.0.1:${webMetricsPort}`] : [])]), trellisEnv()));
  caseProcs.set('trellis', procs.map((p) => p.child));
  await waitFor('web -> payments through the sidecars', async () => { try { await once(upstreamPort, false); return true; } catch { return false; } }, 60_000, 250)
    .catch((err) => { throw new Error(`${(err as Error).message}\n${procs.map((p) => p.out()).join('\n')}`); });
  return upstreamPort;
}

let l7Chain: CompiledDiscoveryChain | undefined;
/** The proxy processes of the trellis cases (L4: payments, web; L7: shop-1, shop-2, web-l7), for their CPU time. */
const caseProcs = new Map<string, ChildProcess[]>();
/** haproxy's one process (all its threads), for its CPU time beside the trellis cases'. */
let haproxyProc: ChildProcess | undefined;
/** What a proxy process runs: its Node flags and whether it is the bundle (a stale bundle means sources, full JIT). */
function runsAs(pid: number): string {
  const args = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  const flags = args.slice(1).filter((a) => a.startsWith('--')).join(' ');
  return `${args.some((a) => a.endsWith('trellis.mjs')) ? 'bundle' : 'SOURCES (stale bundle)'}, ${flags}`;
}
/**
 * The routing decision alone, in this process: what the L7 listener computes per request before it
 * forwards (the request's match fields, then the chain walk: 10 routes tried, a split drawn, the
 * resolver's targets). CPU time, so a loaded machine inflates it less than the end-to-end rows.
 */
function planCost(chain: CompiledDiscoveryChain, n = 20_000): { p50us: number; p99us: number } {
  const headers = { host: '127.0.0.1', 'user-agent': 'bench', accept: '*/*', connection: 'keep-alive' };
  for (let i = 0; i < 2000; i++) planRequest(chain, requestInfo('GET', '/?q=1', headers));
  const t: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    planRequest(chain, requestInfo('GET', '/?q=1', headers));
    t.push((performance.now() - t0) * 1000);
  }
  t.sort((a, b) => a - b);
  return { p50us: pct(t, 50), p99us: pct(t, 99) };
}

/** The L7 path (see the header): web-l7's sidecar routes through the chain of `shop` to its two instances' sidecars. */
async function startL7Mesh(appPort: number): Promise<number> {
  const put = async (method: string, p: string, body: unknown) => {
    const r = await agent!.request(method, p, { body: JSON.stringify(body) });
    if (r.status !== 200) throw new Error(`${method} ${p}: ${r.status} ${r.text}`);
  };
  await put('PUT', '/v1/config', { Kind: 'service-defaults', Name: 'shop', Protocol: 'http' });
  await put('PUT', '/v1/config', { Kind: 'service-resolver', Name: 'shop', Subsets: { v1: { Filter: 'Service.Meta.version == 1' }, v2: { Filter: 'Service.Meta.version == 2' } } });
  await put('PUT', '/v1/config', { Kind: 'service-splitter', Name: 'shop', Splits: [{ Weight: 34, ServiceSubset: 'v1' }, { Weight: 33, ServiceSubset: 'v2' }, { Weight: 33 }] });
  await put('PUT', '/v1/config', { Kind: 'service-router', Name: 'shop', Routes: [
    ...Array.from({ length: 9 }, (_, i) => ({ Match: { HTTP: { PathPrefix: `/api/v${i}`, Header: [{ Name: 'x-tenant', Exact: `t${i}` }] } }, Destination: { ServiceSubset: i % 2 ? 'v1' : 'v2' } })),
    { Match: { HTTP: { PathPrefix: '/' } }, Destination: { Service: 'shop' } },
  ] });
  const upstreamPort = await freePort();
  for (const v of ['1', '2']) {
    await put('PUT', '/v1/agent/service/register', { Name: 'shop', ID: `shop-${v}`, Port: appPort, Meta: { version: v },
      Connect: { SidecarService: { Port: await freePort(), Meta: { version: v }, Proxy: { Config: { bind_address: '127.0.0.1' } } } } });
  }
  await put('PUT', '/v1/agent/service/register', { Name: 'web-l7', Port: await freePort(),
    Connect: { SidecarService: { Port: await freePort(), Proxy: { Config: { bind_address: '127.0.0.1' }, Upstreams: [{ DestinationName: 'shop', LocalBindPort: upstreamPort }] } } } });
  const procs = ['shop-1', 'shop-2', 'web-l7'].map((svc) => start(...onProxyCpu(launcher, ['connect', 'proxy', '-sidecar-for', svc, '-http-addr', agent!.httpAddr, '-log-level', 'warn']), trellisEnv()));
  caseProcs.set('trellis l7', procs.map((p) => p.child));
  // Both subsets answer before the run (the splitter sends a third of the requests to each).
  await waitFor('web-l7 -> shop through the chain', async () => { try { for (let i = 0; i < 6; i++) await once(upstreamPort, false); return true; } catch { return false; } }, 60_000, 250)
    .catch((err) => { throw new Error(`${(err as Error).message}\n${procs.map((p) => p.out()).join('\n')}`); });
  const chain = (JSON.parse((await agent!.request('GET', '/v1/discovery-chain/shop')).text) as { Chain: CompiledDiscoveryChain }).Chain;
  l7Chain = chain;
  process.stderr.write(`l7 chain: ${Object.values(chain.Nodes).map((n) => `${n.Type}${n.Routes ? `(${n.Routes.length} routes)` : n.Splits ? `(${n.Splits.length} splits)` : ''}`).join(', ')}\n`);
  return upstreamPort;
}

// --- main -----------------------------------------------------------------------------------

const loadAvg = () => os.loadavg().map((x) => x.toFixed(2)).join(' ');
const f = (x: number, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : '-');

async function main(): Promise<void> {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-bench-proxy-'));
  if (argv.pin && spawnSync('taskset', ['-a', '-p', '-c', '0', String(process.pid)], { stdio: 'ignore' }).status !== 0) throw new Error('--pin: taskset failed');
  const loadBefore = loadAvg();
  const appPort = await freePort();
  const app = start(process.execPath, [path.join(repoRoot, 'test/fixtures/testApp.ts'), '-name', 'payments', '-listen', `127.0.0.1:${appPort}`]);
  await waitFor('the test app answers', async () => { try { await once(appPort, false); return true; } catch { return false; } }, 15_000, 100)
    .catch((err) => { throw new Error(`${(err as Error).message}\n${app.out()}`); });
  makeCerts(tmp);
  const haPort = await startHaproxy(tmp, appPort);
  const meshPort = await startMesh(appPort);
  const l7Port = await startL7Mesh(appPort);
  const haVersion = spawnSync('haproxy', ['-v'], { encoding: 'utf8' }).stdout.split('\n')[0];

  const cases: Array<{ name: string; port: number; keepAlive: boolean; ref?: string }> = [
    { name: 'direct ka', port: appPort, keepAlive: true },
    { name: 'direct new', port: appPort, keepAlive: false },
    { name: 'trellis ka', port: meshPort, keepAlive: true, ref: 'haproxy ka' },
    { name: 'trellis new', port: meshPort, keepAlive: false, ref: 'haproxy new' },
    { name: 'trellis l7 ka', port: l7Port, keepAlive: true },
    { name: 'haproxy ka', port: haPort, keepAlive: true },
    { name: 'haproxy new', port: haPort, keepAlive: false },
  ].filter((c) => !argv.only || argv.only.split(',').includes(c.name));

  const results = new Map<string, { lat: Row; tput: Row; p50: number; p99: number }>();
  // The proxies' CPU time per request in the throughput row: what the path costs, whatever else runs.
  const cpuPerRequestUs = new Map<string, number>();
  for (const c of cases) {
    process.stderr.write(`${c.name}: warm-up, ${RATE}/s open loop for ${SECONDS} s, ${CONNS} connections closed loop for ${TPUT_SECONDS} s\n`);
    await closedLoop(c.port, c.keepAlive, 4, WARMUP_MS);
    newSockets = 0;
    const lat = await openLoop(c.port, c.keepAlive, RATE, SECONDS * 1000);
    process.stderr.write(`  ${c.name}: ${newSockets} of ${lat.ok} answered requests of the latency row used a new connection\n`);
    newSockets = 0;
    const procsOfCase = c.name.startsWith('haproxy ') ? [haproxyProc!] : caseProcs.get(c.name.replace(/ (ka|new)$/, '')) ?? [];
    const cpu0 = procsOfCase.reduce((a, p) => a + cpuMs(p.pid!) / 1000, 0);
    const counts0 = c.name.startsWith('trellis ') && !c.name.includes('l7') ? await webUpstreamCounts() : undefined;
    const tput = await closedLoop(c.port, c.keepAlive, CONNS, TPUT_SECONDS * 1000);
    if (counts0) {
      const counts = await webUpstreamCounts();
      process.stderr.write(`  ${c.name}: the web sidecar made ${counts.conns - counts0.conns} upstream mTLS connections in the throughput row, ${counts.resumed - counts0.resumed} of them resumed a TLS session\n`);
    }
    if (procsOfCase.length > 0) cpuPerRequestUs.set(c.name, ((procsOfCase.reduce((a, p) => a + cpuMs(p.pid!) / 1000, 0) - cpu0) / Math.max(1, tput.ok)) * 1e6);
    process.stderr.write(`  ${c.name}: ${newSockets} of ${tput.ok} answered requests of the throughput row used a new connection\n`);
    const s = lat.lat.sort((a, b) => a - b);
    results.set(c.name, { lat, tput, p50: pct(s, 50), p99: pct(s, 99) });
  }
  const loadAfter = loadAvg();
  // Idle RSS after the traffic, as test/gateway/proxyProcess and l7Routing check it: 12 s after the
  // last request (the proxies' idle collection runs 5 s after it, idleGc.ts).
  const trellisProcs = [...caseProcs.entries()].filter(([name]) => cases.some((c) => c.name.replace(/ (ka|new)$/, '') === name));
  if (trellisProcs.length > 0) await new Promise((r) => setTimeout(r, 12_000));
  const idleRss = trellisProcs.map(([name, ps]) => `${name} ${ps.map((p) => {
    const parts = rssParts(p.pid!);
    return `${f(parts.rss, 1)} (anon ${f(parts.anon, 1)}, of it glibc [heap] ${f(parts.heap, 1)}; file ${f(parts.file, 1)})`;
  }).join(' / ')} MB`);

  const lines: string[] = [];
  const out = (s: string) => lines.push(s);
  out(`Trellis proxy benchmark  ${new Date().toISOString()}`);
  out(`machine: ${os.cpus().length} x ${os.cpus()[0]?.model.trim()}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB; Node ${process.version}; ${haVersion}`);
  const stat = fs.readFileSync(`/proc/${process.pid}/stat`, 'utf8');
  const nice = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]); // field 19, nice
  out(`generator: this process${argv.pin ? ' (pinned: generator, app, agent on CPU 0; proxies, haproxy on CPU 1)' : ''}${nice !== 0 ? `, nice ${nice}` : ''}; latency rows: open loop ${RATE} requests/s for ${SECONDS} s; throughput: closed loop, ${CONNS} connections, ${TPUT_SECONDS} s; ${WARMUP_MS / 1000} s warm-up per case`);
  out(`app: test/fixtures/testApp.ts (own process, no upstreams); ka = http.Agent keepAlive, new = a new TCP connection per request`);
  out(`trellis: trellis agent -dev + two trellis connect proxy -sidecar-for processes (L4, mTLS, TLS 1.3 resumption); l7: three more (web-l7 in HTTP mode, shop-1/shop-2 HTTP inbound)`);
  for (const [name, ps] of trellisProcs) out(`${name} proxies run: ${runsAs(ps[0]!.pid!)}`);
  out(`haproxy: tcp mode, plain frontend -> ssl backend (mTLS, verify required) -> ssl frontend -> app; default threads`);
  out(`load average (1/5/15 min): ${loadBefore} before, ${loadAfter} after${os.loadavg()[0]! > 1 ? '  <- other processes competed for the 2 cores: treat the numbers with care' : ''}`);
  out('');
  out(`${'case'.padEnd(13)} ${'lat req/s'.padStart(9)} ${'p50 ms'.padStart(7)} ${'p99 ms'.padStart(7)} ${'+p50 ms'.padStart(8)} ${'+p99 ms'.padStart(8)} ${'tput req/s'.padStart(10)} ${'vs haproxy'.padStart(10)} ${'errors'.padStart(7)}`);
  for (const c of cases) {
    const r = results.get(c.name)!;
    const base = results.get(c.keepAlive ? 'direct ka' : 'direct new');
    const tputRate = r.tput.ok / r.tput.seconds;
    const ref = c.ref ? results.get(c.ref) : undefined;
    const ratio = ref && ref.tput.ok > 0 ? tputRate / (ref.tput.ok / ref.tput.seconds) : NaN;
    const added = (x: number, b: number | undefined) => (base && !c.name.startsWith('direct') ? f(x - b!) : '-');
    out(`${c.name.padEnd(13)} ${f(r.lat.ok / r.lat.seconds, 0).padStart(9)} ${f(r.p50).padStart(7)} ${f(r.p99).padStart(7)} ${added(r.p50, base?.p50).padStart(8)} ${added(r.p99, base?.p99).padStart(8)} ${f(tputRate, 0).padStart(10)} ${(Number.isFinite(ratio) ? `${ratio.toFixed(2)}x` : '-').padStart(10)} ${`${r.lat.errors}/${r.tput.errors}`.padStart(7)}`);
  }
  // CPU per request is what a loaded, shared machine disturbs least (throughput and latency move with
  // whatever else runs): the proxies' utime+stime over the throughput row, per answered request.
  const cpuRows = cases.filter((c) => cpuPerRequestUs.has(c.name)).map((c) => `${c.name} ${f(cpuPerRequestUs.get(c.name)!, 0)} us`);
  if (cpuRows.length > 0) out(`proxies' CPU per request (utime+stime of the case's proxy processes over its throughput row): ${cpuRows.join(', ')}`);
  for (const c of cases) {
    const r = results.get(c.name)!;
    if (r.lat.firstError || r.tput.firstError) out(`  ${c.name} first errors: latency row: ${r.lat.firstError ?? '-'}; throughput row: ${r.tput.firstError ?? '-'}`);
  }
  if (idleRss.length > 0) out(`proxies' idle RSS 12 s after the traffic: ${idleRss.join('; ')}`);
  const tk = results.get('trellis ka');
  const dk = results.get('direct ka');
  const hk = results.get('haproxy ka');
  const tn = results.get('trellis new');
  const hn = results.get('haproxy new');
  if (tk && dk && hk) {
    const added99 = tk.p99 - dk.p99;
    out('');
    out('targets (issue 13):');
    // A negative difference means the direct row was noisier than the proxied one: nothing measured.
    out(`  added p99 <= 2 ms at ${RATE} requests/s with keep-alive: ${f(added99)} ms (${added99 < 0 ? 'not measurable: the direct row\'s p99 is the larger, the machine is too noisy' : added99 <= 2 ? 'met' : 'NOT met'})`);
    const vs = (t: typeof tk, h: typeof hk, what: string) => {
      if (h.tput.ok === 0) { out(`  throughput >= 0.8x haproxy (${what}): not measured (haproxy answered nothing in its throughput row)`); return; }
      const r = (t.tput.ok / t.tput.seconds) / (h.tput.ok / h.tput.seconds);
      out(`  throughput >= 0.8x haproxy (${what}): ${r.toFixed(2)}x (${r >= 0.8 ? 'met' : 'NOT met'})`);
    };
    vs(tk, hk, 'keep-alive');
    if (tn && hn) vs(tn, hn, 'new connection per request');
  }
  const l7 = results.get('trellis l7 ka');
  if (l7 && tk) {
    const added = l7.p99 - tk.p99;
    const rate = (r: typeof l7) => r.tput.ok / r.tput.seconds;
    out('');
    out('L7 (issue 14): 10-route router, 3-way splitter, resolver with two subsets, keep-alive, against trellis ka (L4) in this run:');
    out(`  requests/s: L7 ${f(rate(l7), 0)}, L4 ${f(rate(tk), 0)} (${(rate(l7) / rate(tk)).toFixed(2)}x)`);
    out(`  p99 at ${RATE} requests/s: L7 ${f(l7.p99)} ms, L4 ${f(tk.p99)} ms; routing adds ${f(added)} ms p99 (target <= 0.2 ms: ${added < 0 ? 'not measurable: the L4 row\'s p99 is the larger' : added <= 0.2 ? 'met' : 'NOT met'}); p50 ${f(l7.p50 - tk.p50)} ms`);
    const c4 = cpuPerRequestUs.get('trellis ka');
    const c7 = cpuPerRequestUs.get('trellis l7 ka');
    if (c4 !== undefined && c7 !== undefined) out(`  proxies' CPU per request (all their processes, throughput row): L7 ${f(c7, 0)} us, L4 ${f(c4, 0)} us`);
    if (l7Chain) {
      const c = planCost(l7Chain);
      out(`  the routing decision alone (requestInfo + planRequest on this chain, in this process): p50 ${f(c.p50us, 1)} us, p99 ${f(c.p99us, 1)} us`);
    }
  }
  process.stdout.write(lines.join('\n') + '\n');
}

try {
  await main();
} finally {
  await cleanUp(agent, tmp);
}
