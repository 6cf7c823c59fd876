// What the L7 fast path (h1Server.ts) hands to node:http, on the whole path in one process: an app's
// client -> L7UpstreamListener -> mTLS -> L7Inbound -> the app. An HTTP/1.0 request and a request
// with `Expect: 100-continue` are served by node:http on the upstream listener (the expectation is
// forwarded, so the inbound side hands its connection over too) and reach the app whole; requests
// on the fast path before and after still work on the same listener.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
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
let local = 0;
const seen: Array<{ method: string; url: string; version: string; body: string; expect?: string }> = [];

before(async () => {
  agent = await FakeAgent.start();
  api = new AgentApi({ httpAddr: agent.addr });
  material.setLeaf(makeLeaf(root, { trustDomain: TD, dc: DC, service: 'web' }));
  material.setRoots(rootsBody(TD, [{ root, active: true }]));
  const service = 'payments';
  const app = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString();
      seen.push({ method: req.method!, url: req.url!, version: req.httpVersion, body, expect: req.headers.expect });
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(`got ${body}`) });
      res.end(`got ${body}`);
    });
  });
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', () => r()));
  closers.push(() => { app.closeAllConnections(); return new Promise<void>((r) => app.close(() => r())); });
  const appPort = (app.address() as net.AddressInfo).port;
  const inbound = new L7Inbound({
    api, metrics: new Metrics(), logger: silentLogger, service,
    localApp: () => ({ host: '127.0.0.1', port: appPort }),
    authorize: () => Promise.resolve({ Authorized: true, Reason: 'test: allowed' }),
  });
  closers.push(() => inbound.close());
  const leaf = makeLeaf(root, { trustDomain: TD, dc: DC, service });
  const sidecar = tls.createServer({ key: leaf.PrivateKeyPEM, cert: leaf.CertPEM, ca: [root.pem], requestCert: true, rejectUnauthorized: true }, (s) => {
    inbound.accept(s, { uri: `spiffe://${TD}/ns/default/dc/${DC}/svc/web`, service: 'web', serial: '01' });
  });
  await new Promise<void>((r) => sidecar.listen(0, '127.0.0.1', () => r()));
  closers.push(() => new Promise<void>((r) => sidecar.close(() => r())));
  agent.setHealth(service, [{ Node: { Node: 'n1', Address: '127.0.0.1' }, Service: { ID: `${service}-sidecar-proxy`, Service: `${service}-sidecar-proxy`, Port: (sidecar.address() as net.AddressInfo).port } }]);
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
  local = (await l.listen()).port;
});
after(async () => {
  for (const c of closers.reverse()) await c();
  api.close();
  await agent.close();
});

/** Sends raw bytes on a new connection, returns everything until the listener closes it. */
function raw(text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(local, '127.0.0.1');
    let got = '';
    s.on('data', (d: Buffer) => { got += d.toString('latin1'); });
    s.on('end', () => { s.end(); resolve(got); });
    s.on('error', reject);
    s.write(text);
  });
}

test('HTTP/1.0 goes through node:http on the upstream listener and reaches the app', async () => {
  const out = await raw('POST /old HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello');
  assert.match(out, /^HTTP\/1\.[01] 200 /);
  assert.match(out, /got hello$/);
  assert.deepEqual(seen.at(-1), { method: 'POST', url: '/old', version: '1.1', body: 'hello', expect: undefined });
});

test('Expect: 100-continue gets its 100 and the body reaches the app through both sidecars', async () => {
  const answer = await new Promise<{ status: number; body: string; continued: boolean }>((resolve, reject) => {
    let continued = false;
    const req = http.request({ host: '127.0.0.1', port: local, method: 'PUT', path: '/expect', agent: false, headers: { expect: '100-continue', 'content-length': 3 } }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => { body += c.toString(); });
      res.on('end', () => resolve({ status: res.statusCode!, body, continued }));
    });
    req.on('continue', () => { continued = true; req.end('abc'); });
    req.on('error', reject);
  });
  assert.deepEqual(answer, { status: 200, body: 'got abc', continued: true });
  assert.deepEqual(seen.at(-1), { method: 'PUT', url: '/expect', version: '1.1', body: 'abc', expect: '100-continue' });
});

test('fast-path requests on the same listener before and after the handed-over ones', async () => {
  const out = await raw('GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  assert.equal(out.match(/HTTP\/1\.1 200 OK/g)?.length, 2, out);
  assert.deepEqual(seen.slice(-2).map((s) => s.url), ['/a', '/b']);
});
