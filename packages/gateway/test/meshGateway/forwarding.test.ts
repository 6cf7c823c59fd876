// The mesh gateway's forwarding against a small stand-in agent (real HTTP on loopback) and plain
// TCP backends: after the ClientHello the gateway forwards bytes it never decrypts, so a backend
// that records bytes shows exactly what it does. Routing (own dc to an instance, another dc to a
// static remote gateway, the next instance on a refused dial), byte-exact forwarding, half-close
// per direction, and backpressure (a backend that stops reading stops the caller, the gateway does
// not buffer the stream).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import { startMeshGateway, type MeshGateway } from '../../src/meshGateway/index.ts';

const TD = 'aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee.consul';
let agentServer: http.Server;
let agentAddr: string;
/** Instances the stand-in agent lists for /v1/health/connect/<svc> (ports on 127.0.0.1). */
const instances = new Map<string, number[]>();

/** A TCP backend that records what it receives; `onConn` may take over the socket. */
async function backend(onConn?: (s: net.Socket) => void): Promise<{ port: number; received: () => Buffer; conns: net.Socket[]; close: () => void }> {
  const chunks: Buffer[] = [];
  const conns: net.Socket[] = [];
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    conns.push(s);
    s.on('error', () => undefined);
    if (onConn) { onConn(s); return; }
    s.on('data', (c: Buffer) => chunks.push(c));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as net.AddressInfo).port, received: () => Buffer.concat(chunks), conns, close: () => { for (const c of conns) c.destroy(); server.close(); } };
}

/** Node's ClientHello for `sni` (the bytes a sidecar sends first). */
async function helloFor(sni: string): Promise<Buffer> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const got = new Promise<Buffer>((resolve) => server.once('connection', (s) => s.once('data', (b: Buffer) => { resolve(b); s.destroy(); })));
  const c = tls.connect({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port, servername: sni, rejectUnauthorized: false });
  c.on('error', () => undefined);
  const hello = await got;
  c.destroy();
  server.close();
  return hello;
}

function connect(gw: MeshGateway): Promise<net.Socket> {
  const a = gw.addresses()[0]!;
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port: a.port, allowHalfOpen: true }, () => resolve(s));
    s.once('error', reject);
  });
}

async function until(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Writes `total` bytes of a known pattern to `s` in 64 KB chunks (into `hash` as well), only as fast
 * as `s` drains, then ends it. Returns how many bytes it has written so far.
 */
function pump(s: net.Socket, total: number, hash: ReturnType<typeof createHash>): () => number {
  const chunk = Buffer.alloc(64 * 1024);
  let written = 0;
  const more = () => {
    while (written < total) {
      chunk.fill((written / chunk.length) % 251);
      hash.update(chunk);
      written += chunk.length;
      if (!s.write(chunk)) return;
    }
    s.end();
  };
  s.on('drain', more);
  more();
  return () => written;
}

let gw: MeshGateway;
let remote: Awaited<ReturnType<typeof backend>>;

before(async () => {
  agentServer = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const json = (v: unknown) => { res.writeHead(200, { 'Content-Type': 'application/json' }); res.end(JSON.stringify(v)); };
    if (url.pathname === '/v1/agent/self') return json({ Config: { Datacenter: 'dc1' } });
    if (url.pathname === '/v1/agent/connect/ca/roots') return json({ ActiveRootID: 'x', TrustDomain: TD, Roots: [] });
    if (url.pathname === '/v1/catalog/services') return json(Object.fromEntries([...instances.keys()].map((k) => [k, []])));
    if (url.pathname === '/v1/catalog/datacenters') return json(['dc1']);
    const m = /^\/v1\/health\/connect\/(.+)$/.exec(url.pathname);
    if (m) return json((instances.get(m[1]!) ?? []).map((port, i) => ({ Node: { Node: 'n1', Address: '127.0.0.1' }, Service: { ID: `${m[1]}-${i}`, Service: `${m[1]}-sidecar-proxy`, Port: port } })));
    res.writeHead(404); res.end('not found');
  });
  await new Promise<void>((r) => agentServer.listen(0, '127.0.0.1', r));
  agentAddr = `127.0.0.1:${(agentServer.address() as net.AddressInfo).port}`;
  remote = await backend();
  gw = await startMeshGateway({ httpAddr: agentAddr, address: `127.0.0.1:${await freeLocalPort()}`, staticRemotes: { dc2: [`127.0.0.1:${remote.port}`] }, helloTimeoutMs: 2000 });
});

after(async () => {
  await gw?.stop();
  remote?.close();
  agentServer?.closeAllConnections();
  agentServer?.close();
});

/** The stand-in answers without X-Consul-Index, so the gateway reads it again every second. */
const catalogRead = () => new Promise((r) => setTimeout(r, 1200));

async function freeLocalPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const p = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return p;
}

test('own-datacenter names go to an instance, byte for byte: the hello first, then the stream', async () => {
  const b = await backend();
  instances.set('api', [b.port]);
  await catalogRead();
  const hello = await helloFor(`api.default.dc1.internal.${TD}`);
  const s = await connect(gw);
  const payload = Buffer.from('after the hello: opaque TLS records\n'.repeat(100));
  s.write(hello);
  s.write(payload);
  await until('the backend has everything', () => b.received().length === hello.length + payload.length);
  assert.ok(b.received().equals(Buffer.concat([hello, payload])));
  s.destroy();
  b.close();
});

test('another datacenter\'s names go to its gateway (static remote)', async () => {
  const before = remote.received().length;
  const hello = await helloFor(`payments.default.dc2.internal.${TD}`);
  const s = await connect(gw);
  s.write(hello);
  await until('the remote gateway has the hello', () => remote.received().length === before + hello.length);
  assert.ok(remote.received().subarray(before).equals(hello));
  assert.equal(gw.metrics.get('consul_mesh_gateway_conns_total', { target: 'dc2', route: 'remote' }), 1);
  s.destroy();
});

test('a refused instance is skipped for the next one', async () => {
  const dead = await freeLocalPort();
  const b = await backend();
  instances.set('web', [dead, b.port]);
  const hello = await helloFor(`web.default.dc1.internal.${TD}`);
  await catalogRead();
  for (let i = 0; i < 2; i++) {
    const s = await connect(gw);
    s.write(hello);
    await until(`connection ${i} reached the live instance`, () => b.conns.length === i + 1);
    s.destroy();
  }
  assert.ok(gw.metrics.get('consul_mesh_gateway_dial_failures_total', { target: 'web.default.dc1', route: 'local' }) >= 1);
  b.close();
});

test('half-close: each direction ends on its own; the answer still arrives after the caller ends', async () => {
  let serverSide: net.Socket | undefined;
  const b = await backend((s) => {
    serverSide = s;
    s.on('data', () => undefined);
    // Answer only once the caller has ended its side, then end ours.
    s.on('end', () => { s.write('answer after your FIN'); s.end(); });
  });
  instances.set('half', [b.port]);
  await catalogRead();
  const s = await connect(gw);
  s.write(await helloFor(`half.default.dc1.internal.${TD}`));
  s.end();
  let got = '';
  s.on('data', (c: Buffer) => { got += c.toString(); });
  await new Promise<void>((r) => s.once('end', () => r()));
  assert.equal(got, 'answer after your FIN');
  assert.ok(serverSide);
  s.destroy();
  b.close();
});

test('backpressure: a backend that stops reading stops the caller; resumed, all 48 MB arrive intact', async () => {
  let serverSide!: net.Socket;
  const hash = createHash('sha256');
  let received = 0;
  const b = await backend((s) => {
    serverSide = s;
    s.pause();
    s.on('data', (c: Buffer) => { hash.update(c); received += c.length; });
  });
  instances.set('slow', [b.port]);
  await catalogRead();
  const s = await connect(gw);
  const hello = await helloFor(`slow.default.dc1.internal.${TD}`);
  const sent = createHash('sha256');
  s.write(hello);
  sent.update(hello);
  const total = 48 * 1024 * 1024;
  const written = pump(s, total, sent);
  // With the backend paused, the caller stalls well before 48 MB: what is in flight is the kernel's
  // socket buffers (a few MB each way), not the gateway's memory.
  await new Promise((r) => setTimeout(r, 1500));
  const inFlight = s.bytesWritten;
  assert.ok(written() < total, `the caller was never stopped (${written()} bytes written)`);
  assert.ok(inFlight < 32 * 1024 * 1024, `${inFlight} bytes left the caller while the backend read nothing`);
  serverSide.resume();
  await until('every byte arrived', () => received === hello.length + total, 30_000);
  assert.equal(hash.digest('hex'), sent.digest('hex'));
  s.destroy();
  b.close();
});

test('backpressure back to the backend: a caller that stops reading stops it; after the caller\'s FIN, all 48 MB and the end arrive intact', async () => {
  // The backend -> caller direction (read through onread into the gateway's shared buffer) and its
  // end after the caller had ended (the gateway closes the caller's socket instead of shutting it down).
  const sent = createHash('sha256');
  const total = 48 * 1024 * 1024;
  let written = () => 0;
  const b = await backend((s) => {
    s.on('data', () => undefined);
    s.on('end', () => { written = pump(s, total, sent); });
  });
  instances.set('big', [b.port]);
  await catalogRead();
  const s = await connect(gw);
  s.pause();
  s.write(await helloFor(`big.default.dc1.internal.${TD}`));
  s.end();
  await until('the backend started sending', () => written() > 0);
  await new Promise((r) => setTimeout(r, 1500));
  assert.ok(written() < total, `the backend was never stopped (${written()} bytes written)`);
  assert.ok(written() < 32 * 1024 * 1024, `${written()} bytes left the backend while the caller read nothing`);
  const got = createHash('sha256');
  let received = 0;
  s.on('data', (c: Buffer) => { got.update(c); received += c.length; });
  const ended = new Promise<void>((r) => s.once('end', () => r()));
  s.resume();
  await ended;
  assert.equal(received, total);
  assert.equal(got.digest('hex'), sent.digest('hex'));
  s.destroy();
  b.close();
});

test('a name of no known datacenter, or of no service: closed and counted', async () => {
  for (const [sni, cause] of [[`api.default.dc9.internal.${TD}`, 'unknown_datacenter'], [`nope.default.dc1.internal.${TD}`, 'unknown_service']] as const) {
    const s = await connect(gw);
    s.write(await helloFor(sni));
    // The gateway closes its side: the caller (half-open allowed) sees the end of the stream.
    await new Promise<void>((r) => { s.on('error', () => r()); s.once('end', () => r()); s.once('close', () => r()); s.resume(); });
    s.destroy();
    assert.equal(gw.metrics.get('consul_mesh_gateway_refused_total', { cause }), 1, cause);
  }
  // Only names the catalog lists opened watches: api, web, half, slow, big (health) - not nope or dc9.
  assert.equal(gw.watchCount(), 5);
});
