// Connection reuse and request bodies on the whole L7 path in one process: an app's keep-alive
// client -> L7UpstreamListener -> mTLS -> L7Inbound (the payments sidecar's public side) -> the app.
// Twenty sequential requests (bodiless GETs, POSTs with a Content-Length body, POSTs with a chunked
// body) must reach the app intact over exactly one TLS connection and one app connection: a new
// connection per request is what made the L7 path cost ~1 ms of proxy CPU per request suspect
// (bench:proxy). Bodiless requests skip the body read / pipe (httpBody.ts): the bodies that do
// come must still arrive whole.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { DC, TD, inboundSidecar, resolverChain, upstreamListener, useL7Env } from './support/l7Env.ts';

const env = useL7Env();

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
  env.closers.push(() => { app.closeAllConnections(); return new Promise<void>((r) => app.close(() => r())); });
  const appPort = (app.address() as { port: number }).port;

  const peer = await inboundSidecar(env, service, appPort);
  const { port: local } = await upstreamListener(env, resolverChain(service));

  const client = new http.Agent({ keepAlive: true, maxSockets: 1 });
  env.closers.push(() => client.destroy());
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
  assert.equal(peer.conns(), 1, 'TLS connections from the upstream listener to the sidecar');
  assert.equal(appConnections, 1, 'connections from the inbound side to the app');
});
