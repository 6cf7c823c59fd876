// The HTTP/2 upstream listener against sidecars that are real TLS servers on loopback (fake agent
// for health, real certificates): a sidecar that picks ALPN http/1.1 gets the request over
// HTTP/1.1 and its answer (trailers included) goes back to the h2c caller as HTTP/2; a sidecar
// that picks h2 gets every request on one TLS connection (multiplexed streams).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import tls from 'node:tls';
import { AgentApi } from '../src/agentApi.ts';
import type { CompiledDiscoveryChain } from '../src/chainTypes.ts';
import { H2UpstreamListener } from '../src/h2Upstream.ts';
import { silentLogger } from '../src/log.ts';
import { Metrics } from '../src/metrics.ts';
import { TlsMaterial } from '../src/tlsMaterial.ts';
import { FakeAgent } from './support/fakeAgent.ts';
import { makeLeaf, makeRoot, rootsBody } from './support/testCa.ts';
import { freePort } from '../../../test/support/index.ts';

const TD = '11111111-2222-3333-4444-555555555555.consul';
const DC = 'dc1';
let agent: FakeAgent;
let api: AgentApi;
const closers: Array<() => Promise<void> | void> = [];

function chainFor(service: string): CompiledDiscoveryChain {
  const id = `${service}.default.default.${DC}`;
  return {
    ServiceName: service, Datacenter: DC, Protocol: 'http2', StartNode: `resolver:${id}`,
    Nodes: { [`resolver:${id}`]: { Type: 'resolver', Name: id, Resolver: { Target: id } } },
    Targets: { [id]: { ID: id, Service: service, Datacenter: DC, SNI: `${service}.default.${DC}.internal.${TD}` } },
  };
}

const root = makeRoot(TD);
const material = new TlsMaterial();

/** A sidecar stand-in: mTLS with `service`'s certificate, choosing among `alpn`; counts connections. */
async function sidecar(service: string, alpn: string[], onSocket: (s: tls.TLSSocket) => void): Promise<{ port: number; conns: () => number }> {
  const leaf = makeLeaf(root, { trustDomain: TD, dc: DC, service });
  let conns = 0;
  const server = tls.createServer({ key: leaf.PrivateKeyPEM, cert: leaf.CertPEM, ca: [root.pem], requestCert: true, rejectUnauthorized: true, ALPNProtocols: alpn }, (s) => { conns++; onSocket(s); });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  closers.push(() => new Promise<void>((r) => server.close(() => r())));
  return { port: (server.address() as { port: number }).port, conns: () => conns };
}

async function listener(service: string, port: number): Promise<number> {
  agent.setHealth(service, [{ Node: { Node: 'n1', Address: '127.0.0.1' }, Service: { ID: `${service}-sidecar-proxy`, Service: `${service}-sidecar-proxy`, Port: port } }]);
  const l = new H2UpstreamListener({ api, tls: material, metrics: new Metrics(), logger: silentLogger, chain: chainFor(service),
    upstream: { DestinationName: service, LocalBindAddress: '127.0.0.1', LocalBindPort: await freePort() } });
  closers.push(() => l.close());
  await l.healthKnown(5000);
  return (await l.listen()).port;
}

function h2get(port: number, path: string, n = 1): Promise<Array<{ status: number; body: string; trailers: http2.IncomingHttpHeaders | undefined }>> {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  const one = () => new Promise<{ status: number; body: string; trailers: http2.IncomingHttpHeaders | undefined }>((resolve, reject) => {
    const req = session.request({ ':path': path });
    let status = 0;
    let body = '';
    let trailers: http2.IncomingHttpHeaders | undefined;
    req.on('response', (h) => { status = Number(h[':status']); });
    req.on('trailers', (t) => { trailers = t; });
    req.on('data', (c: Buffer) => { body += c.toString(); });
    req.on('end', () => resolve({ status, body, trailers }));
    req.on('error', reject);
  });
  return Promise.all(Array.from({ length: n }, one)).finally(() => session.close());
}

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

test('a sidecar that picks http/1.1: the request goes over HTTP/1.1, the answer and its trailers come back as HTTP/2', async () => {
  const h1 = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', trailer: 'x-sum' });
    res.write(`${req.httpVersion} ${req.method} ${req.url}`);
    res.addTrailers({ 'x-sum': '42' });
    res.end();
  });
  closers.push(() => { h1.closeAllConnections(); });
  const peer = await sidecar('legacy', ['http/1.1'], (s) => h1.emit('connection', s));
  const port = await listener('legacy', peer.port);
  const [r] = await h2get(port, '/a?b=1');
  assert.deepEqual([r!.status, r!.body, r!.trailers?.['x-sum']], [200, '1.1 GET /a?b=1', '42']);
});

test('a sidecar that picks h2: 20 concurrent requests share one TLS connection', async () => {
  const h2 = http2.createServer();
  h2.on('stream', (stream, headers) => {
    stream.respond({ ':status': 200 }, { waitForTrailers: true });
    stream.once('wantTrailers', () => stream.sendTrailers({ 'x-path': String(headers[':path']) }));
    stream.end(`h2 ${headers[':path']}`);
  });
  closers.push(() => { h2.close(); });
  const peer = await sidecar('modern', ['h2', 'http/1.1'], (s) => h2.emit('connection', s));
  const port = await listener('modern', peer.port);
  const out = await h2get(port, '/m', 20);
  for (const r of out) assert.deepEqual([r.status, r.body, r.trailers?.['x-path']], [200, 'h2 /m', '/m']);
  assert.equal(peer.conns(), 1);
});
