// A kept-alive mTLS connection from the L7 upstream listener to a sidecar must stay usable for as
// long as the peer keeps it: the connect timeout belongs to the TLS handshake only. (It once stayed
// on the socket as a 'timeout' listener; http.Agent re-arms the timer of a pooled socket from the
// peer's Keep-Alive hint, and the next request on that connection was destroyed with a false
// "no TLS connection within 5000 ms", a 503 for the caller.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { silentLogger } from '../src/log.ts';
import { resolverChain, setInstance, sidecar, upstreamListener, useL7Env } from './support/l7Env.ts';

const env = useL7Env();

test('a reused keep-alive connection answers a request slower than the keep-alive hint minus 1 s', async () => {
  const service = 'slowish';
  let n = 0;
  // Keep-Alive: timeout=2 makes http.Agent arm a 1 s timer on the pooled socket; the second answer takes 1.6 s.
  const app = http.createServer((_req, res) => {
    n++;
    const me = n;
    setTimeout(() => { res.writeHead(200, { 'keep-alive': 'timeout=2' }); res.end(`answer ${me}`); }, me === 1 ? 0 : 1600);
  });
  app.keepAliveTimeout = 10_000;
  const peer = await sidecar(env, service, (s) => app.emit('connection', s));
  env.closers.push(() => { app.closeAllConnections(); });
  const { port: local } = await upstreamListener(env, resolverChain(service));

  const client = new http.Agent({ keepAlive: true, maxSockets: 1 });
  env.closers.push(() => client.destroy());
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
  assert.equal(peer.conns(), 1, 'the second request went over the pooled connection');
});

test("a resolver's new ConnectTimeout for the same target applies to the next connection", async () => {
  const service = 'silent';
  // Accepts TCP and never answers the TLS handshake: only the connect timeout ends an attempt.
  const held: import('node:net').Socket[] = [];
  const silent = (await import('node:net')).createServer((s) => { held.push(s); });
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
  env.closers.push(() => { for (const s of held) s.destroy(); return new Promise<void>((r) => silent.close(() => r())); });
  setInstance(env, service, (silent.address() as { port: number }).port);
  const chain = (connectTimeout: string) => resolverChain(service, connectTimeout);
  const failures: string[] = [];
  const logger = { ...silentLogger, warn: (msg: string, fields?: Record<string, unknown>) => { failures.push(`${msg}: ${String((fields?.error as Error | undefined)?.message ?? '')}`); } };
  const { listener: l, port: local } = await upstreamListener(env, chain('1s'), { logger });
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
