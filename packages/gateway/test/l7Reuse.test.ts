// Connection reuse and request bodies on the whole L7 path in one process: an app's keep-alive
// client -> L7UpstreamListener -> mTLS -> L7Inbound (the payments sidecar's public side) -> the app.
// Twenty sequential requests (bodiless GETs, POSTs with a Content-Length body, POSTs with a chunked
// body) must reach the app intact over exactly one TLS connection and one app connection: a new
// connection per request is what made the L7 path cost ~1 ms of proxy CPU per request suspect
// (bench:proxy). Bodiless requests skip the body read / pipe (httpBody.ts): the bodies that do
// come must still arrive whole.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import tls from 'node:tls';
import { AgentApi } from '../src/agentApi.ts';
import type { CompiledDiscoveryChain } from '../src/chainTypes.ts';
import { L7Inbound } from '../src/l7Inbound.ts';
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

test('20 sequential keep-alive requests, with and without bodies, use 1 TLS connection and 1 app connection', async () => {
  const service = 'payments';
  let appConnections = 0;
  const app = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.stringify({ method: req.method, url: req.url, body: Buffer.concat(chunks).toString(), xfcc: req.headers['x-forwarded-client-cert'] });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
  app.on('connection', () => { appConnections++; });
  app.keepAliveTimeout = 30_000;
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', () => r()));
  closers.push(() => { app.closeAllConnections(); return new Promise<void>((r) => app.close(() => r())); });
  const appPort = (app.address() as { port: number }).port;

  const inbound = new L7Inbound({
    api, metrics: new Metrics(), logger: silentLogger, service,
    localApp: () => ({ host: '127.0.0.1', port: appPort }),
    authorize: () => Promise.resolve({ Authorized: true, Reason: 'test: allowed' }),
  });
  closers.push(() => inbound.close());
  const leaf = makeLeaf(root, { trustDomain: TD, dc: DC, service });
  let tlsConnections = 0;
  const sidecar = tls.createServer({ key: leaf.PrivateKeyPEM, cert: leaf.CertPEM, ca: [root.pem], requestCert: true, rejectUnauthorized: true }, (s) => {
    tlsConnections++;
    inbound.accept(s, { uri: `spiffe://${TD}/ns/default/dc/${DC}/svc/web`, service: 'web', serial: '01' });
  });
  await new Promise<void>((r) => sidecar.listen(0, '127.0.0.1', () => r()));
  closers.push(() => new Promise<void>((r) => sidecar.close(() => r())));
  const sidecarPort = (sidecar.address() as { port: number }).port;

  agent.setHealth(service, [{ Node: { Node: 'n1', Address: '127.0.0.1' }, Service: { ID: `${service}-sidecar-proxy`, Service: `${service}-sidecar-proxy`, Port: sidecarPort } }]);
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
  const call = (method: string, path: string, body?: string, chunked = false) => new Promise<{ status: number; json: Record<string, unknown> }>((resolve, reject) => {
    const headers: Record<string, string> = {};
    if (body !== undefined && !chunked) headers['content-length'] = String(Buffer.byteLength(body));
    const req = http.request({ host: '127.0.0.1', port: local, method, path, headers, agent: client }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => { text += c.toString(); });
      res.on('end', () => { try { resolve({ status: res.statusCode!, json: JSON.parse(text) as Record<string, unknown> }); } catch (err) { reject(new Error(`${res.statusCode}: ${text} (${(err as Error).message})`)); } });
    });
    req.on('error', reject);
    if (body !== undefined && chunked) { req.write(body.slice(0, 3)); req.end(body.slice(3)); } else req.end(body);
  });
  for (let i = 0; i < 20; i++) {
    const kind = i % 3;
    const body = kind === 0 ? undefined : `body ${i} ${'x'.repeat(i * 100)}`;
    const r = await call(kind === 0 ? 'GET' : 'POST', `/r/${i}`, body, kind === 2);
    assert.equal(r.status, 200, `request ${i}`);
    assert.deepEqual(r.json, { method: kind === 0 ? 'GET' : 'POST', url: `/r/${i}`, body: body ?? '', xfcc: `URI=spiffe://${TD}/ns/default/dc/${DC}/svc/web` }, `request ${i}`);
  }
  assert.equal(tlsConnections, 1, 'TLS connections from the upstream listener to the sidecar');
  assert.equal(appConnections, 1, 'connections from the inbound side to the app');
});
