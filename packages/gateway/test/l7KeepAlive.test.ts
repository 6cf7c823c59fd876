// A kept-alive mTLS connection from the L7 upstream listener to a sidecar must stay usable for as
// long as the peer keeps it: the connect timeout belongs to the TLS handshake only. (It once stayed
// on the socket as a 'timeout' listener; http.Agent re-arms the timer of a pooled socket from the
// peer's Keep-Alive hint, and the next request on that connection was destroyed with a false
// "no TLS connection within 5000 ms", a 503 for the caller.)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import tls from 'node:tls';
import { AgentApi } from '../src/agentApi.ts';
import type { CompiledDiscoveryChain } from '../src/chainTypes.ts';
import { L7UpstreamListener } from '../src/l7Upstream.ts';
import { silentLogger } from '../src/log.ts';
import { Metrics } from '../src/metrics.ts';
import { TlsMaterial } from '../src/tlsMaterial.ts';
import { FakeAgent } from './support/fakeAgent.ts';
import { makeLeaf, makeRoot, rootsBody } from './support/testCa.ts';
import { freePort } from '../../../test/support/index.ts';

const TD = '11111111-2222-3333-4444-555555555555.consul';
const DC = 'dc1';
const root = makeRoot(TD);
const material = new TlsMaterial();
let agent: FakeAgent;
let api: AgentApi;
const closers: Array<() => Promise<void> | void> = [];

before(async () => {
  agent = await FakeAgent.start();
  api = new AgentApi({ httpAddr: agent.addr });
  material.setLeaf(makeLeaf(root, { trustDomain: TD, dc: DC, service: 'web' }));
  material.setRoots(rootsBody(TD, [{ root, active: true }]));
});
after(async () => {
  for (const c of closers.reverse()) await c();
  api.close();
  await agent.close();
});

test('a reused keep-alive connection answers a request slower than the keep-alive hint minus 1 s', async () => {
  const service = 'slowish';
  const leaf = makeLeaf(root, { trustDomain: TD, dc: DC, service });
  let n = 0;
  let connections = 0;
  // Keep-Alive: timeout=2 makes http.Agent arm a 1 s timer on the pooled socket; the second answer takes 1.6 s.
  const app = http.createServer((_req, res) => {
    n++;
    const me = n;
    setTimeout(() => { res.writeHead(200, { 'keep-alive': 'timeout=2' }); res.end(`answer ${me}`); }, me === 1 ? 0 : 1600);
  });
  app.keepAliveTimeout = 10_000;
  const sidecar = tls.createServer({ key: leaf.PrivateKeyPEM, cert: leaf.CertPEM, ca: [root.pem], requestCert: true, rejectUnauthorized: true }, (s) => { connections++; app.emit('connection', s); });
  await new Promise<void>((r) => sidecar.listen(0, '127.0.0.1', () => r()));
  closers.push(() => { app.closeAllConnections(); return new Promise<void>((r) => sidecar.close(() => r())); });
  const port = (sidecar.address() as { port: number }).port;

  agent.setHealth(service, [{ Node: { Node: 'n1', Address: '127.0.0.1' }, Service: { ID: `${service}-sidecar-proxy`, Service: `${service}-sidecar-proxy`, Port: port } }]);
  const id = `${service}.default.default.${DC}`;
  const chain: CompiledDiscoveryChain = {
    ServiceName: service, Datacenter: DC, Protocol: 'http', StartNode: `resolver:${id}`,
    Nodes: { [`resolver:${id}`]: { Type: 'resolver', Name: id, Resolver: { Target: id } } },
    Targets: { [id]: { ID: id, Service: service, Datacenter: DC, SNI: `${service}.default.${DC}.internal.${TD}` } },
  };
  const l = new L7UpstreamListener({ api, tls: material, metrics: new Metrics(), logger: silentLogger, chain,
    upstream: { DestinationName: service, LocalBindAddress: '127.0.0.1', LocalBindPort: await freePort() } });
  closers.push(() => l.close());
  await l.healthKnown(5000);
  const local = (await l.listen()).port;

  const client = new http.Agent({ keepAlive: true, maxSockets: 1 });
  closers.push(() => client.destroy());
  const get = () => new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: local, path: '/', agent: client }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => { body += c.toString(); });
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
    req.end();
  });
  assert.deepEqual(await get(), { status: 200, body: 'answer 1' });
  assert.deepEqual(await get(), { status: 200, body: 'answer 2' });
  assert.equal(connections, 1, 'the second request went over the pooled connection');
});

test("a resolver's new ConnectTimeout for the same target applies to the next connection", async () => {
  const service = 'silent';
  // Accepts TCP and never answers the TLS handshake: only the connect timeout ends an attempt.
  const held: import('node:net').Socket[] = [];
  const silent = (await import('node:net')).createServer((s) => { held.push(s); });
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
  closers.push(() => { for (const s of held) s.destroy(); return new Promise<void>((r) => silent.close(() => r())); });
  const port = (silent.address() as { port: number }).port;
  agent.setHealth(service, [{ Node: { Node: 'n1', Address: '127.0.0.1' }, Service: { ID: `${service}-sidecar-proxy`, Service: `${service}-sidecar-proxy`, Port: port } }]);
  const id = `${service}.default.default.${DC}`;
  const chain = (connectTimeout: string): CompiledDiscoveryChain => ({
    ServiceName: service, Datacenter: DC, Protocol: 'http', StartNode: `resolver:${id}`,
    Nodes: { [`resolver:${id}`]: { Type: 'resolver', Name: id, Resolver: { Target: id, ConnectTimeout: connectTimeout } } },
    Targets: { [id]: { ID: id, Service: service, Datacenter: DC, SNI: `${service}.default.${DC}.internal.${TD}`, ConnectTimeout: connectTimeout } },
  });
  const failures: string[] = [];
  const logger = { ...silentLogger, warn: (msg: string, fields?: Record<string, unknown>) => { failures.push(`${msg}: ${String((fields?.error as Error | undefined)?.message ?? '')}`); } };
  const l = new L7UpstreamListener({ api, tls: material, metrics: new Metrics(), logger, chain: chain('1s'),
    upstream: { DestinationName: service, LocalBindAddress: '127.0.0.1', LocalBindPort: await freePort() } });
  closers.push(() => l.close());
  await l.healthKnown(5000);
  const local = (await l.listen()).port;
  const get = () => new Promise<number>((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: local, path: '/', agent: false }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode!)); });
    req.on('error', reject);
    req.end();
  });
  assert.equal(await get(), 503);
  assert.ok(failures.some((f) => f.includes('within 1000 ms')), failures.join('\n'));
  l.setChain(chain('2s'));
  failures.length = 0;
  assert.equal(await get(), 503);
  assert.ok(failures.some((f) => f.includes('within 2000 ms')), `the new timeout applies: ${failures.join('\n')}`);
});
