// `trellis connect proxy` as users run it: two proxy processes (web's and payments') started through
// the launcher against an agent API (the gateway's fake agent: real HTTP on loopback, Consul's
// shapes), the test apps in this process. Traffic crosses both processes over mTLS; each process
// stays within the proxy's memory budget (idle RSS <= 60 MB: it loads the CLI and the gateway, not
// the agent runtime); SIGTERM stops it with exit 0; a sidecar that is not registered is an error.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { FakeAgent } from '../../packages/gateway/test/support/fakeAgent.ts';
import { makeLeaf, makeRoot, rootsBody } from '../../packages/gateway/test/support/testCa.ts';
import { startTestApp, type TestApp, type TestAppAnswer } from '../fixtures/testApp.ts';
import { freePort, launcher, runTrellis, trellisEnv, waitFor } from '../support/index.ts';

const TD = 'aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee.consul';
const MAX_IDLE_RSS_MB = 60;

interface ProxyProc { child: ChildProcess; out: () => string; exited: Promise<number | null> }

let agent: FakeAgent;
let webApp: TestApp;
let paymentsApp: TestApp;
let upstreamPort: number;
let metricsPort: number;
let webMetricsPort: number;
const procs: ProxyProc[] = [];

function startProxy(args: string[], env: Record<string, string> = {}): ProxyProc {
  const child = spawn(launcher, ['connect', 'proxy', '-http-addr', agent.addr, ...args], { env: trellisEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (b: Buffer) => { out += b.toString(); });
  child.stderr!.on('data', (b: Buffer) => { out += b.toString(); });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const p = { child, out: () => out, exited };
  procs.push(p);
  return p;
}

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

function get(url: string): Promise<{ status: number; body: TestAppAnswer }> {
  return new Promise((resolve, reject) => {
    http.get(url, { agent: false }, (res) => {
      let s = '';
      res.on('data', (c: Buffer) => { s += c.toString(); });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(s) as TestAppAnswer }));
    }).on('error', reject);
  });
}

before(async () => {
  agent = await FakeAgent.start();
  const root = makeRoot(TD);
  agent.setRoots(rootsBody(TD, [{ root, active: true }]));
  agent.setLeaf('web', makeLeaf(root, { trustDomain: TD, dc: 'dc1', service: 'web' }));
  agent.setLeaf('payments', makeLeaf(root, { trustDomain: TD, dc: 'dc1', service: 'payments' }));
  upstreamPort = await freePort();
  metricsPort = await freePort();
  webMetricsPort = await freePort();
  const paymentsPort = await freePort();
  const webPort = await freePort();
  paymentsApp = await startTestApp({ name: 'payments v1 (onprem)' });
  webApp = await startTestApp({ name: 'web (onprem)', upstreams: [`http://127.0.0.1:${upstreamPort}`] });
  const svc = (id: string, dest: string, port: number, appPort: number, upstreams: Array<{ DestinationName: string; LocalBindPort: number }> = []) => ({
    Kind: 'connect-proxy', ID: id, Service: id, Port: port,
    Proxy: { DestinationServiceName: dest, DestinationServiceID: dest, LocalServicePort: appPort, Upstreams: upstreams, Config: { bind_address: '127.0.0.1' } },
  });
  agent.setService(svc('payments-sidecar-proxy', 'payments', paymentsPort, paymentsApp.port));
  agent.setService(svc('web-sidecar-proxy', 'web', webPort, webApp.port, [{ DestinationName: 'payments', LocalBindPort: upstreamPort }]));
  agent.setHealth('payments', [{ Node: { Address: '127.0.0.1' }, Service: { ID: 'payments-sidecar-proxy', Service: 'payments-sidecar-proxy', Port: paymentsPort } }]);
});

after(async () => {
  for (const p of procs) if (p.child.exitCode === null) p.child.kill('SIGKILL');
  await webApp?.close();
  await paymentsApp?.close();
  await agent?.close();
});

test('two `trellis connect proxy` processes carry web -> payments over mTLS, each idle under the RSS budget, and stop on SIGTERM', async (t) => {
  const payments = startProxy(['-sidecar-for', 'payments', '-metrics-addr', `127.0.0.1:${metricsPort}`]);
  const web = startProxy(['-proxy-id', 'web-sidecar-proxy', '-log-level', 'debug', '-metrics-addr', `127.0.0.1:${webMetricsPort}`]);
  // A failed assertion must not leave them running (the next test starts payments' sidecar again).
  t.after(() => { for (const p of [payments, web]) if (p.child.exitCode === null) p.child.kill('SIGKILL'); });
  for (const p of [payments, web]) {
    await waitFor('the proxy is serving', () => {
      if (p.child.exitCode !== null) throw new Error(`proxy exited ${p.child.exitCode}: ${p.out()}`);
      return p.out().includes('Log data will now stream in as it occurs');
    }, 30_000);
  }
  assert.match(payments.out(), /Proxy ID: payments-sidecar-proxy/);
  const r = await waitFor('web -> payments through the proxy processes', async () => {
    const res = await get(webApp.url);
    return res.status === 200 ? res : undefined;
  }, 10_000);
  assert.equal(r.body.upstream_calls?.[`http://127.0.0.1:${upstreamPort}`]?.name, 'payments v1 (onprem)');
  for (let i = 0; i < 20; i++) assert.equal((await get(webApp.url)).status, 200);
  // A burst: 300 requests at once, each a new connection to web's proxy and a new mTLS connection
  // from it to payments' proxy. The idle budget below holds after it too: the launcher preloads
  // jemalloc, which gives the handshakes' freed memory back (glibc's malloc kept their high-water
  // mark: 63-115 MB idle after bench:proxy's bursts).
  const burst = await Promise.all(Array.from({ length: 300 }, () => get(webApp.url)));
  assert.deepEqual([...new Set(burst.map((b) => b.status))], [200]);
  assert.match(payments.out(), /Memory allocator: jemalloc \(\/\S+libjemalloc\.so\.2\)/);

  const scrape = (port: number) => new Promise<string>((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: '/metrics', agent: false }, (res) => {
      let s = '';
      res.on('data', (c: Buffer) => { s += c.toString(); });
      res.on('end', () => resolve(s));
    }).on('error', reject);
  });
  const metrics = await scrape(metricsPort);
  assert.match(metrics, /consul_proxy_conns_total\{direction="inbound"\} (2[1-9]|[3-9]\d|\d{3,})/);
  // The web proxy's upstream connections after the first resume their TLS session (the test app
  // opens a new connection per request, and so does the web proxy to payments' proxy).
  const resumed = /consul_proxy_tls_resumed_total\{upstream="payments"\} (\d+)/.exec(await scrape(webMetricsPort));
  assert.ok(resumed && Number(resumed[1]) >= 20, `resumed upstream TLS sessions: ${resumed?.[1] ?? 'none'}`);

  process.stdout.write(`# payments proxy after traffic: ${metrics.split('\n').filter((l) => /^(process_|nodejs_)/.test(l)).join(', ')}\n`);
  // Idle: traffic over, a moment for the heap to settle; the PID we hold is the proxy itself.
  const rss = await waitFor(`both proxies at or under ${MAX_IDLE_RSS_MB} MB RSS`, () => {
    const v = [rssMb(payments.child.pid!), rssMb(web.child.pid!)];
    return v.every((x) => x <= MAX_IDLE_RSS_MB) ? v : undefined;
  }, 10_000, 500).catch((err: Error) => {
    throw new Error(`${err.message}: payments ${rssMb(payments.child.pid!).toFixed(1)} MB, web ${rssMb(web.child.pid!).toFixed(1)} MB`);
  });
  process.stdout.write(`# idle RSS: payments proxy ${rss[0]!.toFixed(1)} MB, web proxy ${rss[1]!.toFixed(1)} MB\n`);
  const maps = fs.readFileSync(`/proc/${web.child.pid}/maps`, 'utf8');
  assert.doesNotMatch(maps, /classic-level|leveldown/, 'the proxy process loaded no storage engine');
  assert.match(maps, /libjemalloc\.so\.2/, 'the proxy process runs on jemalloc (deploy/install-test-deps.sh installs libjemalloc2)');

  payments.child.kill('SIGTERM');
  web.child.kill('SIGTERM');
  assert.equal(await payments.exited, 0, payments.out());
  assert.equal(await web.exited, 0, web.out());
  assert.match(web.out(), /Trellis Connect proxy shutdown/);
});

test('the proxy process loads its command and the gateway from the bundle, never the agent runtime', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-proxy-loads-'));
  const file = path.join(dir, 'loaded.txt');
  const p = startProxy(['-sidecar-for', 'payments'], { NODE_OPTIONS: `--import ${pathToFileURL(path.join(import.meta.dirname, 'proxyLoads.mjs')).href}`, TRELLIS_LOADED_FILE: file });
  await waitFor('the proxy is serving', () => {
    if (p.child.exitCode !== null) throw new Error(`proxy exited ${p.child.exitCode}: ${p.out()}`);
    return p.out().includes('Log data will now stream in as it occurs');
  }, 30_000);
  p.child.kill('SIGTERM');
  assert.equal(await p.exited, 0, p.out());
  const files = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((u) => fileURLToPath(u));
  fs.rmSync(dir, { recursive: true, force: true });
  assert.ok(files.some((f) => f.endsWith(path.join('dist', 'trellis.mjs'))), `runs the bundle: ${files.join(', ')}`);
  assert.ok(files.some((f) => /connectProxy-\w+\.mjs$/.test(f)), `loads the connect proxy chunk: ${files.join(', ')}`);
  for (const f of files) {
    assert.ok(!f.includes(`${path.sep}node_modules${path.sep}`), `loads nothing from node_modules: ${f}`);
    const text = fs.readFileSync(f, 'utf8');
    for (const marker of ['createLibp2p', 'Fastify', 'RaftNode', 'classic-level']) {
      assert.ok(!text.includes(marker), `${path.basename(f)} contains ${marker}: the agent runtime was loaded`);
    }
    // A TCP-only proxy does not load the HTTP/2 machinery (h2Upstream/h2Inbound are imported for http2/grpc chains only).
    assert.doesNotMatch(text, /["']node:http2["']/, `${path.basename(f)} imports node:http2 in a TCP-only proxy`);
  }
});

test('bad invocations: Consul\'s errors, exit 1', async () => {
  const r = await runTrellis(['connect', 'proxy', '-http-addr', agent.addr, '-sidecar-for', 'nosuch']);
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.match(r.stderr, /Error preparing configuration: No sidecar proxy registered for nosuch/);
  const none = await runTrellis(['connect', 'proxy', '-http-addr', agent.addr]);
  assert.equal(none.code, 1);
  assert.match(none.stderr, /-service or -proxy-id must be specified/);
  const flagMode = await runTrellis(['connect', 'proxy', '-http-addr', agent.addr, '-service', 'web', '-upstream', 'db:8181']);
  assert.equal(flagMode.code, 1);
  assert.match(flagMode.stderr, /-service, -upstream: not supported by Trellis yet/);
  const badLevel = await runTrellis(['connect', 'proxy', '-http-addr', agent.addr, '-sidecar-for', 'payments', '-log-level', 'loud']);
  assert.equal(badLevel.code, 1);
  assert.match(badLevel.stderr, /Invalid log level: "loud"/);
});
