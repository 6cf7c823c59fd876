// The mesh gateway's forwarding against a small stand-in agent (real HTTP on loopback) and plain
// TCP backends: after the ClientHello the gateway forwards bytes it never decrypts, so a backend
// that records bytes shows exactly what it does. Routing (own dc to an instance, another dc to a
// static remote gateway, the next instance on a refused dial), byte-exact forwarding, half-close
// per direction, and backpressure (a backend that stops reading stops the caller, the gateway does
// not buffer the stream). Every test runs against both transports (transport.ts): raw (libuv
// handles, the default) and net (net.Socket).

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import { startMeshGateway, type MeshGateway } from '../../src/meshGateway/index.ts';
import { pump } from '../support/pump.ts';

const TD = 'aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee.consul';
let agentServer: http.Server;
let agentAddr: string;
/** Instances the stand-in agent lists for /v1/health/connect/<svc> (ports on 127.0.0.1). */
const instances = new Map<string, number[]>();

/** A TCP backend that records what it receives; `onConn` may take over the socket. */
async function backend(onConn?: (s: net.Socket) => void, host = '127.0.0.1'): Promise<{ port: number; received: () => Buffer; conns: net.Socket[]; close: () => void }> {
  const chunks: Buffer[] = [];
  const conns: net.Socket[] = [];
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    conns.push(s);
    s.on('error', () => undefined);
    if (onConn) { onConn(s); return; }
    s.on('data', (c: Buffer) => chunks.push(c));
  });
  await new Promise<void>((r) => server.listen(0, host, r));
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

/** The stand-in answers without X-Consul-Index, so the gateway reads it again every second. */
const catalogRead = () => new Promise((r) => setTimeout(r, 1200));

async function freeLocalPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const p = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return p;
}

for (const transport of ['raw', 'net'] as const) describe(`transport ${transport}`, () => {
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
      // Services named byname* are registered with a host name as their address.
      if (m) return json((instances.get(m[1]!) ?? []).map((port, i) => ({ Node: { Node: 'n1', Address: m[1]!.startsWith('byname') ? 'localhost' : '127.0.0.1' }, Service: { ID: `${m[1]}-${i}`, Service: `${m[1]}-sidecar-proxy`, Port: port } })));
      res.writeHead(404); res.end('not found');
    });
    await new Promise<void>((r) => agentServer.listen(0, '127.0.0.1', r));
    agentAddr = `127.0.0.1:${(agentServer.address() as net.AddressInfo).port}`;
    remote = await backend();
    gw = await startMeshGateway({ httpAddr: agentAddr, address: `127.0.0.1:${await freeLocalPort()}`, staticRemotes: { dc2: [`127.0.0.1:${remote.port}`] }, helloTimeoutMs: 2000, transport });
    assert.equal(gw.transport, transport);
  });

  after(async () => {
    await gw?.stop();
    remote?.close();
    agentServer?.closeAllConnections();
    agentServer?.close();
  });

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

  test('a reset on either side closes the other; no forwarded connection stays open', { timeout: 30_000 }, async () => {
    const open = (svc: string) => gw.metrics.get('consul_mesh_gateway_conns', { target: `${svc}.default.dc1`, route: 'local' });
    // The backend resets after the hello: the caller is closed.
    const b = await backend((x) => x.once('data', () => x.resetAndDestroy()));
    instances.set('rst', [b.port]);
    await catalogRead();
    const s = await connect(gw);
    s.write(await helloFor(`rst.default.dc1.internal.${TD}`));
    // Its end (allowHalfOpen keeps the caller's own side open) or an error.
    await new Promise<void>((r) => { s.on('error', () => r()); s.once('end', () => r()); s.once('close', () => r()); s.resume(); });
    s.destroy();
    await until('rst closed at the gateway', () => open('rst') === 0);
    // The caller resets mid-stream: the backend is closed.
    const b2 = await backend((x) => x.on('data', () => undefined));
    instances.set('rst2', [b2.port]);
    await catalogRead();
    const s2 = await connect(gw);
    s2.on('error', () => undefined);
    s2.write(await helloFor(`rst2.default.dc1.internal.${TD}`));
    await until('the backend has the connection', () => b2.conns.length === 1);
    await until('rst2 counted open', () => open('rst2') === 1);
    // Its end (the backend allows half-open) or an error.
    const closed = new Promise<void>((r) => { const x = b2.conns[0]!; x.on('error', () => r()); x.once('end', () => r()); x.once('close', () => r()); x.resume(); });
    s2.resetAndDestroy();
    await closed;
    await until('rst2 closed at the gateway', () => open('rst2') === 0);
    b.close();
    b2.close();
  });

  test('an instance registered by host name is dialled at the address it resolves to', { timeout: 30_000 }, async () => {
    const b = await backend(undefined, 'localhost');
    instances.set('byname', [b.port]);
    await catalogRead();
    const hello = await helloFor(`byname.default.dc1.internal.${TD}`);
    const s = await connect(gw);
    s.write(hello);
    await until('the backend has the hello', () => b.received().length === hello.length);
    assert.equal(gw.metrics.get('consul_mesh_gateway_dial_failures_total', { target: 'byname.default.dc1', route: 'local' }), 0);
    s.destroy();
    b.close();
  });

  test('stop() closes forwarded connections and connections still sending their hello', { timeout: 30_000 }, async () => {
    const g = await startMeshGateway({ httpAddr: agentAddr, address: `127.0.0.1:${await freeLocalPort()}`, staticRemotes: { dc2: [`127.0.0.1:${remote.port}`] }, transport });
    const b = await backend((x) => x.on('data', () => undefined));
    instances.set('stopping', [b.port]);
    const fwd = await connect(g);
    fwd.write(await helloFor(`stopping.default.dc1.internal.${TD}`));
    await until('forwarded', () => b.conns.length === 1, 10_000);
    const half = await connect(g);
    half.write(Buffer.from([0x16, 0x03, 0x01]));
    // Each side sees its end (allowHalfOpen keeps its own side open) or an error.
    const closedAt = (x: net.Socket) => new Promise<void>((r) => { x.on('error', () => r()); if (x.destroyed || x.readableEnded) r(); else x.once('end', () => r()); x.resume(); });
    const closing = [closedAt(fwd), closedAt(half), closedAt(b.conns[0]!)];
    await g.stop();
    await Promise.all(closing);
    b.close();
  });
});
