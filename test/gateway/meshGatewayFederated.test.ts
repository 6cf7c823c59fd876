// Mesh gateways across two real datacenters (WAN-joined servers, dc1 primary, dc2 secondary with
// the primary's CA): `trellis connect gateway -register` in each, a test app `api` in dc2, and in
// dc1 `web` (upstream api in dc2, MeshGateway mode local) and `shop` (the same in mode remote; one
// service may not list the same upstream twice, as in Consul). Gateway
// A learns dc2's gateway through `?dc=dc2` on its own agent (no static address).
//   local:  web's sidecar -> A (dc1, LAN) -> B (dc2, WAN) -> api's sidecar
//   remote: shop's sidecar -> B (dc2, WAN) -> api's sidecar
// Each is one mTLS session between the two sidecars.

import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import { startTestApp, type TestApp, type TestAppAnswer } from '../fixtures/testApp.ts';
import { AgentProcess, freePort, launcher, printLogsIfFailed, trellisEnv, waitFor } from '../support/index.ts';

let s1: AgentProcess;
let s2: AgentProcess;
const apps: TestApp[] = [];
let web: TestApp;
let shop: TestApp;
let localUri: string;
let remoteUri: string;
const children: Array<{ name: string; child: ChildProcess; out: () => string }> = [];
const metricsOf: Record<string, string> = {};

function spawnTrellis(name: string, args: string[]) {
  const child = spawn(launcher, args, { env: trellisEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (b: Buffer) => { out += b.toString(); });
  child.stderr!.on('data', (b: Buffer) => { out += b.toString(); });
  children.push({ name, child, out: () => out });
}

async function metric(gw: string, name: string, labels: Record<string, string>): Promise<number> {
  const text = await new Promise<string>((resolve, reject) => {
    http.get(`http://${metricsOf[gw]}/metrics`, { agent: false }, (res) => {
      let s = '';
      res.on('data', (c: Buffer) => { s += c.toString(); });
      res.on('end', () => resolve(s));
    }).on('error', reject);
  });
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name}{`) && Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) sum += Number(line.split(' ').at(-1));
  }
  return sum;
}

/** The upstream call `app` made on one request: the answering app's name, or the failure. */
async function via(app: TestApp, uri: string): Promise<string> {
  const r = await new Promise<TestAppAnswer>((resolve, reject) => {
    http.get(app.url, { agent: false }, (res) => { let s = ''; res.on('data', (c: Buffer) => { s += c.toString(); }); res.on('end', () => resolve(JSON.parse(s) as TestAppAnswer)); }).on('error', reject);
  });
  const call = r.upstream_calls?.[uri];
  return call?.code === 200 ? call.name : `code ${call?.code} ${call?.error ?? ''}`;
}

async function register(agent: AgentProcess, name: string, app: TestApp, upstreams: unknown[] = []) {
  const body = { Name: name, ID: `${name}-1`, Port: app.port,
    Connect: { SidecarService: { Port: await freePort(), Proxy: { Config: { bind_address: '127.0.0.1' }, Upstreams: upstreams } } } };
  const r = await agent.request('PUT', '/v1/agent/service/register', { body: JSON.stringify(body) });
  assert.equal(r.status, 200, r.text);
}

async function startGateway(name: string, agent: AgentProcess) {
  metricsOf[name] = `127.0.0.1:${await freePort()}`;
  spawnTrellis(name, ['connect', 'gateway', '-register', '-service', 'mesh-gateway', '-address', `127.0.0.1:${await freePort()}`,
    '-wan-address', `127.0.0.1:${await freePort()}`, '-http-addr', agent.httpAddr, '-metrics-addr', metricsOf[name]!]);
  await waitFor(`${name} registered and passing`, async () => (await agent.getJson<unknown[]>('/v1/health/service/mesh-gateway?passing=1')).length === 1, 60_000, 250);
}

before(async () => {
  s2 = await AgentProcess.start({ name: 'mgw-s2', mode: 'server', args: ['-datacenter', 'dc2', '-primary-datacenter', 'dc1'] });
  s1 = await AgentProcess.start({ name: 'mgw-s1', mode: 'server', args: ['-datacenter', 'dc1', '-primary-datacenter', 'dc1', '-join-wan', s2.serfWanAddr] });
  await waitFor('dc1 sees dc2', async () => (await s1.getJson<string[]>('/v1/catalog/datacenters')).includes('dc2'), 60_000, 250);
  await waitFor('dc2 runs on the primary\'s roots', async () => {
    const a = await s1.getJson<{ ActiveRootID: string }>('/v1/connect/ca/roots');
    const b = await s2.getJson<{ ActiveRootID: string }>('/v1/connect/ca/roots');
    return a.ActiveRootID !== '' && a.ActiveRootID === b.ActiveRootID;
  }, 60_000, 250);

  const api = await startTestApp({ name: 'api (dc2)' });
  const localPort = await freePort();
  const remotePort = await freePort();
  localUri = `http://127.0.0.1:${localPort}`;
  remoteUri = `http://127.0.0.1:${remotePort}`;
  web = await startTestApp({ name: 'web (dc1)', upstreams: [localUri] });
  shop = await startTestApp({ name: 'shop (dc1)', upstreams: [remoteUri] });
  apps.push(api, web, shop);
  await register(s2, 'api', api);
  await register(s1, 'web', web, [{ DestinationName: 'api', Datacenter: 'dc2', LocalBindPort: localPort, MeshGateway: { Mode: 'local' } }]);
  await register(s1, 'shop', shop, [{ DestinationName: 'api', Datacenter: 'dc2', LocalBindPort: remotePort, MeshGateway: { Mode: 'remote' } }]);
  spawnTrellis('proxy api', ['connect', 'proxy', '-sidecar-for', 'api-1', '-http-addr', s2.httpAddr]);
  spawnTrellis('proxy web', ['connect', 'proxy', '-sidecar-for', 'web-1', '-http-addr', s1.httpAddr]);
  spawnTrellis('proxy shop', ['connect', 'proxy', '-sidecar-for', 'shop-1', '-http-addr', s1.httpAddr]);
  await startGateway('A', s1);
  await startGateway('B', s2);
});

afterEach((t) => {
  printLogsIfFailed(t, s1);
  printLogsIfFailed(t, s2);
  if ((t as { passed?: boolean }).passed === false) for (const c of children) process.stdout.write(`# ${c.name} output:\n${c.out().slice(-3000)}\n`);
});

after(async () => {
  for (const c of children) if (c.child.exitCode === null) c.child.kill('SIGKILL');
  for (const a of apps) await a.close();
  await s1?.dispose();
  await s2?.dispose();
});

test('modes local and remote reach api in dc2; A forwards only the local-mode connections, B both', async () => {
  await waitFor('both callers answered by api (dc2)', async () =>
    (await via(web, localUri)) === 'api (dc2)' && (await via(shop, remoteUri)) === 'api (dc2)', 60_000, 500);
  const aOf = () => metric('A', 'consul_mesh_gateway_conns_total', { target: 'dc2', route: 'remote' });
  const bOf = () => metric('B', 'consul_mesh_gateway_conns_total', { target: 'api.default.dc2', route: 'local' });
  const n = 5;
  // The test apps open a new connection per upstream call; the TCP upstream listeners dial per connection.
  let a0 = await aOf();
  let b0 = await bOf();
  for (let i = 0; i < n; i++) assert.equal(await via(web, localUri), 'api (dc2)');
  assert.equal(await aOf() - a0, n, 'mode local: every connection through A');
  assert.equal(await bOf() - b0, n, 'mode local: every connection through B');
  a0 = await aOf();
  b0 = await bOf();
  for (let i = 0; i < n; i++) assert.equal(await via(shop, remoteUri), 'api (dc2)');
  assert.equal(await aOf() - a0, 0, 'mode remote: not through A');
  assert.equal(await bOf() - b0, n, 'mode remote: every connection through B');
});

test('stopping gateway A breaks only the local-mode path; remote mode keeps working', async () => {
  const a = children.find((c) => c.name === 'A')!;
  a.child.kill('SIGTERM');
  await waitFor('local mode failing', async () => (await via(web, localUri)) !== 'api (dc2)', 30_000, 250);
  for (let i = 0; i < 3; i++) assert.equal(await via(shop, remoteUri), 'api (dc2)');
});
